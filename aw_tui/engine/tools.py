"""The worker's tools as data: name, JSON schema, handler, and whether it changes anything.

The agent loop calls `run_tool(name, args, ctx)` and gets a `ToolResult` back, always: a tool outside the policy,
arguments that do not fit the schema, a path outside the workspace, a rejected dangerous command and any error
inside a handler all come back as a result the model can read (`content`), with `error` and `refused` set for
the `tool.finished` event. Only cancellation propagates.

Confinement lives in `aw_tui.engine.sandbox` (paths, the static command checks) and `aw_tui.engine.confine`
(the OS layer around every process bash starts); this module only asks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aw_tui.engine import confine
from aw_tui.engine.llm import SECRET_NAME
from aw_tui.engine.sandbox import (
    DEFAULT_PROTECTED,
    CommandVerdict,
    DangerPolicy,
    SandboxRefusal,
    classify_command,
    open_in_workspace,
    open_parent_in_workspace,
    replace_in_workspace,
    resolve_in_workspace,
    workspace_root,
)
from aw_tui.model.formatting import counted

if TYPE_CHECKING:
    from aw_tui.model.settings import ToolSettings

Approver = Callable[[str], Awaitable[bool]]
Handler = Callable[[dict[str, Any], "ToolContext"], Awaitable["ToolResult"]]
# Runs a `delegate` call for the agent that owns the context (aw_tui.engine.delegate provides one).
DelegateHandler = Callable[[dict[str, Any], "ToolContext"], Awaitable["ToolResult"]]

MAX_OUTPUT_LINES = 2000
MAX_OUTPUT_BYTES = 50_000
BINARY_SNIFF_BYTES = 8192
GREP_MAX_FILE_BYTES = 10_000_000
GREP_LINE_CHARS = 500

READ_ONLY_TOOLS = ("read", "grep", "find", "ls")
POLICIES: dict[str, tuple[str, ...] | None] = {
    "all-tools": None,  # every tool
    "read-only": READ_ONLY_TOOLS,
    "no-tools": (),
}


class ToolError(Exception):
    """A failure the model should read and can act on (not found, ambiguous edit, bad regex)."""


@dataclass(frozen=True)
class ToolResult:
    content: str  # exactly what the model sees
    error: str | None = None  # short, for the tool.finished event; None when the tool succeeded
    refused: bool = False  # the policy, the sandbox or the operator said no: nothing ran
    artifact: str | None = None  # the full output, saved under artifacts/ when `content` was cut
    log: tuple[tuple[str, str], ...] = ()  # (level, message) for the run's event log, beside tool.finished

    @classmethod
    def failure(cls, message: str, *, content: str | None = None) -> ToolResult:
        return cls(content=content if content is not None else f"Error: {message}", error=message)

    @classmethod
    def refusal(cls, reason: str) -> ToolResult:
        return cls(content=f"Refused: {reason}", error=reason, refused=True)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of the subset `validate_arguments` understands
    handler: Handler
    mutates: bool


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    aborted: bool = False


@dataclass
class ToolContext:
    """Everything a tool call needs from the run: where, what is allowed, and who approves.

    `approve(command_text) -> bool` is asked, with the exact command text, before a dangerous bash command runs;
    only `True` lets it run. Without an approver dangerous commands are refused. `abort()` stops every process
    group bash started through this context.
    """

    workspace: Path
    artifacts_dir: Path
    policy: str = "all-tools"
    approve: Approver | None = None
    bash_timeout_s: float = 120.0
    dangerous: DangerPolicy = field(default_factory=DangerPolicy)
    bash_max_timeout_s: float = 3600.0  # cap on a timeout the model asks for
    max_output_lines: int = MAX_OUTPUT_LINES
    max_output_bytes: int = MAX_OUTPUT_BYTES
    max_capture_bytes: int = 20_000_000  # a command printing more is stopped (`yes`, runaway logs)
    kill_grace_s: float = 1.0  # SIGTERM, then SIGKILL after this long
    protected: tuple[str, ...] = DEFAULT_PROTECTED  # workspace-relative paths write/edit never change
    env: Mapping[str, str] | None = None  # bash's environment; None: ours without credential-like variables
    # Subagents: the agent these calls are made for, a narrower tool list (an agent definition's `tools`, applied
    # within the policy), and the `delegate` tool, offered only when a handler is set.
    agent_id: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    delegate: DelegateHandler | None = None
    # The OS layer around bash (aw_tui.engine.confine): what this machine supports; None probes it (once a
    # process). An operator-approved dangerous command runs unconfined, with the operator's authority, unless
    # `confine_approved_commands`: then it may write anywhere except the run directory and aw-tui's config.
    shell_support: confine.Support | None = None
    confine_approved_commands: bool = False
    _running: dict[int, _Running] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, tools: ToolSettings, *, workspace: Path, artifacts_dir: Path,
                      policy: str | None = None) -> ToolContext:  # fmt: skip
        """A context as the project's [tools] settings make it: their policy (unless `policy` is given), bash's
        timeout, and the patterns that decide which commands wait for the operator."""
        return cls(
            workspace=workspace, artifacts_dir=artifacts_dir, policy=tools.policy if policy is None else policy,
            bash_timeout_s=tools.bash_timeout_s,
            dangerous=DangerPolicy(extra_patterns=tuple(tools.dangerous_patterns),
                                   allowed_patterns=tuple(tools.allowed_patterns)),
        )  # fmt: skip

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown tool policy {self.policy!r}; expected one of {', '.join(POLICIES)}")
        self.workspace = Path(self.workspace)
        self.artifacts_dir = Path(self.artifacts_dir)

    @property
    def root(self) -> Path:
        """The workspace's real path."""
        return workspace_root(self.workspace)

    def offers(self, name: str) -> bool:
        """Whether a call to `name` may run here: the policy, the allowlist and, for delegate, a handler."""
        if self.allowed_tools is not None and name not in self.allowed_tools:
            return False
        if name == DELEGATE_TOOL.name:
            # Delegation starts an agent that may change things, so only a policy allowing every tool permits it.
            return self.delegate is not None and POLICIES[self.policy] is None
        return tool_allowed(name, self.policy)

    def offered_tools(self) -> list[Tool]:
        """The tools the model is offered: the policy's, narrowed by `allowed_tools`, plus delegate when set."""
        return [tool for tool in (*TOOLS.values(), DELEGATE_TOOL) if self.offers(tool.name)]

    def relative(self, real: Path | str) -> str:
        relative = os.path.relpath(os.fspath(real), self.root)
        return "." if relative == "." else relative

    def protected_paths(self) -> tuple[str, ...]:
        """`protected` plus the run directory itself when it lies inside the workspace."""
        extra: list[str] = []
        run_dir = os.path.realpath(self.artifacts_dir.parent)
        root = str(self.root)
        if run_dir != root and run_dir.startswith(root + os.sep):
            extra.append(os.path.relpath(run_dir, root))
        return tuple(self.protected) + tuple(extra)

    def classify(self, command: str) -> CommandVerdict:
        """The dangerous-command verdict bash applies to `command` (for an approver that wants the reasons).

        Writes into the protected paths (the run directory inside the workspace, .aw-tui/) need approval, as the
        file tools refuse them. `.git` itself is left to the classifier's own rules: git writes there all the time.
        """
        protected = tuple(entry for entry in self.protected_paths() if entry.strip("/") != ".git")
        return classify_command(command, self.dangerous, workspace=self.workspace, protected=protected)

    def shell_confinement(self, support: confine.Support, env: dict[str, str], *, output_file: Path | None = None,
                          approved: bool = False) -> confine.ShellConfinement:  # fmt: skip
        """How bash runs a command here: writes only under the workspace and the temp dirs (anywhere, for an
        approved command under `confine_approved_commands`), with the run directory and aw-tui's config dirs
        read-only. `env` is the shell's environment (bash_environment). `output_file` is the command's own output file,
        which it may reopen (`> /dev/stderr`)."""
        from aw_tui.store.config import PROJECT_DIR_NAME, find_project_root, user_config_path

        protect = [self.artifacts_dir.parent, user_config_path().parent, self.root / PROJECT_DIR_NAME]
        project = find_project_root(self.root)
        if project is not None:
            protect.append(project / PROJECT_DIR_NAME)
        if env.get("HOME") and not approved:
            # Kept out by Landlock anyway, unless it lies under a temp dir: then it is made read-only.
            protect.append(Path(env["HOME"]))
        return confine.plan(support, str(self.root), protect=[str(p) for p in protect], env=env,
                            extra_files=[output_file] if output_file else (), anywhere=approved)  # fmt: skip

    def running_process_groups(self) -> list[int]:
        return sorted(self._running)

    async def abort(self, grace_s: float | None = None) -> None:
        """Stop every running bash process group: SIGTERM, then SIGKILL after `grace_s` (default kill_grace_s).

        The bash calls in flight return promptly with error "aborted". Later calls run normally.
        """
        grace = self.kill_grace_s if grace_s is None else grace_s
        running = list(self._running.items())
        for _, entry in running:
            entry.aborted = True
        await asyncio.gather(*(_stop_process_group(pgid, grace) for pgid, _ in running))

    def bash_environment(self) -> dict[str, str]:
        # Variables that look like credentials never reach the worker's shell: `env` would print them.
        base = dict(self.env) if self.env is not None else {
            name: value for name, value in os.environ.items() if not SECRET_NAME.search(name)
        }  # fmt: skip
        # No pager, no prompt, no colour: a worker's shell has no terminal.
        base.update({"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "NO_COLOR": "1",
                     "TERM": "dumb"})  # fmt: skip
        return base


# ---------------------------------------------------------------------------------------------------------------
# Argument validation (the JSON-schema subset the tool schemas use)
# ---------------------------------------------------------------------------------------------------------------

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "boolean": "true or false", "number": "a number",
               "object": "an object"}  # fmt: skip


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _matches_type(value: Any, expected: str) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number") and math.isfinite(value)
    return actual == expected


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_arguments(tool: Tool, args: Any) -> str | None:
    """None when `args` fits `tool.parameters`; else one message the model can act on.

    Understands: type object/string/integer/number/boolean, required, properties, additionalProperties false,
    minimum, maximum, enum. Booleans are not integers; NaN and infinities are not numbers.
    """
    schema = tool.parameters
    if not isinstance(args, dict):
        return f"{tool.name}: the arguments must be a JSON object, got {_json_type(args)}"
    properties: dict[str, Any] = schema.get("properties", {})
    problems: list[str] = []
    missing = [name for name in schema.get("required", []) if name not in args]
    if missing:
        problems.append("missing required argument" + ("s " if len(missing) > 1 else " ")
                        + ", ".join(repr(m) for m in missing))  # fmt: skip
    if schema.get("additionalProperties") is False:
        unexpected = [name for name in args if name not in properties]
        if unexpected:
            allowed = ", ".join(properties) or "none"
            problems.append("unexpected argument" + ("s " if len(unexpected) > 1 else " ")
                            + ", ".join(repr(u) for u in unexpected) + f" (allowed: {allowed})")  # fmt: skip
    for name, value in args.items():
        spec = properties.get(name)
        if spec is None:
            continue
        expected = spec.get("type")
        if expected and not _matches_type(value, expected):
            problems.append(f"argument {name!r} must be {_TYPE_NAMES.get(expected, expected)}, "
                            f"got {_json_type(value)} {_show(value)}")  # fmt: skip
            continue
        if "enum" in spec and value not in spec["enum"]:
            choices = ", ".join(map(repr, spec["enum"]))
            problems.append(f"argument {name!r} must be one of {choices}, got {_show(value)}")
        if "minimum" in spec and value < spec["minimum"]:
            problems.append(f"argument {name!r} must be at least {spec['minimum']}, got {_show(value)}")
        if "maximum" in spec and value > spec["maximum"]:
            problems.append(f"argument {name!r} must be at most {spec['maximum']}, got {_show(value)}")
    if not problems:
        return None
    return f"{tool.name}: " + "; ".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# Output cutting
# ---------------------------------------------------------------------------------------------------------------


def save_artifact(ctx: ToolContext, tool: str, data: bytes | str) -> Path:
    """Save a tool's full output under the run's artifacts/ directory; returns the path."""
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    path = ctx.artifacts_dir / f"{tool}_{stamp}_{uuid.uuid4().hex[:8]}.txt"
    path.write_bytes(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    return path


def _cut_bytes(text: str, limit: int, *, keep: str) -> str:
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit:
        return text
    piece = data[:limit] if keep == "head" else data[-limit:]
    cut = piece.decode("utf-8", "ignore")
    # Whole lines where possible: drop the partial line at the cut edge unless it is the only one.
    if keep == "head" and "\n" in cut:
        cut = cut[: cut.rindex("\n") + 1]
    elif keep == "tail" and "\n" in cut:
        cut = cut[cut.index("\n") + 1 :]
    return cut


def cut_output(
    ctx: ToolContext, tool: str, text: str, *, keep: str = "head", hint: str = ""
) -> tuple[str, str | None]:
    """(text for the model, artifact path or None): over max_output_lines or max_output_bytes, the full text
    goes to artifacts/ and the model gets the head (or the tail) with a note saying where the rest is."""
    lines = text.splitlines(keepends=True)
    size = len(text.encode("utf-8", "surrogateescape"))
    if len(lines) <= ctx.max_output_lines and size <= ctx.max_output_bytes:
        return text, None
    artifact = save_artifact(ctx, tool, text)
    shown_lines = lines[: ctx.max_output_lines] if keep == "head" else lines[-ctx.max_output_lines :]
    shown = _cut_bytes("".join(shown_lines), ctx.max_output_bytes, keep=keep)
    shown_count = len(shown.splitlines())
    where = "first" if keep == "head" else "last"
    note = (f"[output cut: {len(lines):,} lines, {size:,} bytes in all; showing the {where} {shown_count:,} lines "
            f"(limits {ctx.max_output_lines:,} lines / {ctx.max_output_bytes:,} bytes). "
            f"Full output saved to {artifact} (read and grep can open it){'; ' + hint if hint else ''}]")  # fmt: skip
    if not shown.endswith("\n") and shown:
        shown += "\n"
    body = f"{shown}{note}" if keep == "head" else f"{note}\n{shown}"
    return body, str(artifact)


# ---------------------------------------------------------------------------------------------------------------
# File tools
# ---------------------------------------------------------------------------------------------------------------


def _is_binary(head: bytes) -> bool:
    return b"\x00" in head


def _resolve_readable(ctx: ToolContext, path: str) -> tuple[Path, Path]:
    """(root, real path) for read and grep: the workspace, or else the run's own artifacts/ directory, so the
    model can page through a full output that a cut result pointed it to."""
    try:
        return ctx.root, resolve_in_workspace(ctx.root, path)
    except SandboxRefusal:
        artifacts = os.path.realpath(ctx.artifacts_dir)
        if os.path.isabs(path) and os.path.isdir(artifacts):
            try:
                return Path(artifacts), resolve_in_workspace(artifacts, path)
            except SandboxRefusal:
                pass
        raise


def _shown(ctx: ToolContext, root: Path, real: Path) -> str:
    return ctx.relative(real) if root == ctx.root else str(real)


async def _read(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    root, real = _resolve_readable(ctx, args["path"])
    shown = _shown(ctx, root, real)
    if real.is_dir():
        raise ToolError(f"{shown} is a directory; use ls to list it")
    offset = args.get("offset", 1)
    limit = args.get("limit", ctx.max_output_lines)
    try:
        fd = open_in_workspace(root, real, os.O_RDONLY)
    except FileNotFoundError:
        raise ToolError(f"{shown} does not exist") from None
    numbered: list[str] = []
    total = 0
    with os.fdopen(fd, "rb") as handle:
        if _is_binary(handle.read(BINARY_SNIFF_BYTES)):
            raise ToolError(f"{shown} is a binary file; it cannot be shown as text")
        handle.seek(0)
        for total, raw in enumerate(handle, start=1):
            if offset <= total < offset + limit:
                line = raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r")
                numbered.append(f"{total:>6}\t{line}")
    if total == 0:
        return ToolResult(content=f"({shown} is empty)")
    if offset > total:
        raise ToolError(f"offset {offset} is past the end of {shown}, which has {total} lines")
    last = offset + len(numbered) - 1
    text = "\n".join(numbered) + "\n"
    if last < total or offset > 1:
        text += f"[{shown}: lines {offset}-{last} of {total}"
        text += f"; read on with offset={last + 1}]" if last < total else "]"
    content, artifact = cut_output(ctx, "read", text, hint="or read fewer lines with offset/limit")
    return ToolResult(content=content, artifact=artifact)


async def _write(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    real = resolve_in_workspace(ctx.root, args["path"], protected=ctx.protected_paths(), allow_root=False)
    shown = ctx.relative(real)
    if real.is_dir():
        raise ToolError(f"{shown} is a directory")
    data = args["content"].encode("utf-8", "surrogateescape")
    twins = _hard_link_note(real, shown)
    existed = replace_in_workspace(ctx.root, real, data, make_parents=True)
    lines = args["content"].count("\n") + (0 if args["content"].endswith("\n") or not args["content"] else 1)
    verb = "Overwrote" if existed else "Created"
    return ToolResult(content=f"{verb} {shown} ({len(data):,} bytes, {lines:,} lines){twins}")


async def _edit(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    old, new = args["old_string"], args["new_string"]
    real = resolve_in_workspace(ctx.root, args["path"], protected=ctx.protected_paths(), allow_root=False)
    shown = ctx.relative(real)
    if old == "":
        raise ToolError("old_string is empty; to create or overwrite a whole file use write")
    if old == new:
        raise ToolError("old_string and new_string are the same; nothing would change")
    try:
        fd = open_in_workspace(ctx.root, real, os.O_RDONLY)
    except FileNotFoundError:
        raise ToolError(f"{shown} does not exist; use write to create it") from None
    except IsADirectoryError:
        raise ToolError(f"{shown} is a directory") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    if _is_binary(data[:BINARY_SNIFF_BYTES]):
        raise ToolError(f"{shown} is a binary file; edit only changes text files")
    text = data.decode("utf-8", "surrogateescape")
    first = text.find(old)
    if first < 0:
        hint = ""
        if "\r\n" in text and "\n" in old and "\r\n" not in old:
            hint = " (the file uses CRLF line endings)"
        elif old.strip() and old.strip() in text:
            hint = " (it matches when leading/trailing whitespace is ignored; copy it exactly)"
        raise ToolError(f"old_string was not found in {shown}{hint}; read the file and copy the text exactly")
    if text.find(old, first + 1) >= 0:
        count = max(text.count(old), 2)
        raise ToolError(f"old_string occurs {count} times in {shown}; it must occur exactly once. "
                        "Include more surrounding lines to make it unique")  # fmt: skip
    updated = text[:first] + new + text[first + len(old) :]
    twins = _hard_link_note(real, shown)
    replace_in_workspace(ctx.root, real, updated.encode("utf-8", "surrogateescape"))
    start_line = text.count("\n", 0, first) + 1
    end_line = start_line + new.count("\n")
    span = f"line {start_line}" if end_line == start_line else f"lines {start_line}-{end_line}"
    return ToolResult(content=f"Edited {shown}: replaced 1 occurrence ({span} now){twins}")


def _hard_link_note(real: Path, shown: str) -> str:
    """A note for the result when `real` has hard-linked twins: the write replaces only this name (the twins, maybe
    outside the workspace, keep the old content), which the model and the operator should know."""
    try:
        info = os.lstat(real)
    except OSError:
        return ""
    if not stat.S_ISREG(info.st_mode) or info.st_nlink < 2:
        return ""
    others = info.st_nlink - 1
    return (f". {shown} was hard-linked to {counted(others, 'other name')}; only {shown} changed, "
            f"the other{'s' if others > 1 else ''} kept the old content")  # fmt: skip


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob: `*` and `?` stay within one directory, `**` spans any number, `[...]` is a class."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        c = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif c == "*":
            out.append("[^/]*")
            index += 1
        elif c == "?":
            out.append("[^/]")
            index += 1
        elif c == "[":
            end = pattern.find("]", index + 2)
            if end < 0:
                out.append(re.escape(c))
                index += 1
            else:
                body = pattern[index + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                index = end + 1
        else:
            out.append(re.escape(c))
            index += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _path_matcher(pattern: str) -> Callable[[str], bool]:
    """Patterns without '/' match the file name at any depth (like find -name); others the relative path."""
    pattern = pattern.strip()
    pattern = pattern.removeprefix("./")
    regex = _glob_regex(pattern)
    if "/" in pattern:
        return lambda relative: bool(regex.match(relative))
    return lambda relative: bool(regex.match(relative.rsplit("/", 1)[-1]))


def _walk(root: Path, base: Path) -> Any:
    """(directory, sorted subdirectory names, sorted file names) under `base`, skipping .git; links not followed."""
    for directory, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        yield directory, dirs, sorted(files)


def _grep_sync(
    ctx: ToolContext, root: Path, base: Path, regex: re.Pattern[str], name_glob: str | None, max_matches: int
) -> str:
    matcher = _path_matcher(name_glob) if name_glob else None
    matches: list[str] = []
    skipped = {"binary": 0, "large": 0, "outside": 0}
    files_seen = 0
    in_workspace = root == ctx.root  # else the artifacts directory: show absolute paths
    if base.is_file():
        candidates: Any = [(str(base.parent), [], [base.name])]
    else:
        candidates = _walk(root, base)
    for directory, _, files in candidates:
        for name in files:
            full = os.path.join(directory, name)
            relative = os.path.relpath(full, root) if in_workspace else full
            if matcher and not matcher(os.path.relpath(full, base) if base.is_dir() else name):
                continue
            real = os.path.realpath(full)
            if not (real == str(root) or real.startswith(str(root) + os.sep)):
                skipped["outside"] += 1
                continue
            try:
                fd = open_in_workspace(root, real, os.O_RDONLY)
            except (SandboxRefusal, OSError):
                continue
            with os.fdopen(fd, "rb") as handle:
                if os.fstat(handle.fileno()).st_size > GREP_MAX_FILE_BYTES:
                    skipped["large"] += 1
                    continue
                if _is_binary(handle.read(BINARY_SNIFF_BYTES)):
                    skipped["binary"] += 1
                    continue
                handle.seek(0)
                files_seen += 1
                for number, raw in enumerate(handle, start=1):
                    line = raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r")
                    if regex.search(line):
                        if len(line) > GREP_LINE_CHARS:
                            line = line[:GREP_LINE_CHARS] + " [line cut]"
                        matches.append(f"{relative}:{number}: {line}")
                        if len(matches) >= max_matches:
                            return _grep_report(matches, files_seen, skipped, limit_hit=max_matches)
    return _grep_report(matches, files_seen, skipped, limit_hit=None)


def _grep_report(matches: list[str], files_seen: int, skipped: dict[str, int], *, limit_hit: int | None) -> str:
    notes = []
    if limit_hit is not None:
        notes.append(f"stopped at {limit_hit} matches (max_matches); narrow the pattern or path to see more")
    extra = [f"{count} {kind}" for kind, count in skipped.items() if count]
    if extra:
        notes.append("skipped files: " + ", ".join(extra).replace("outside", "links leading outside the workspace"))
    body = "\n".join(matches) if matches else f"No matches in {files_seen} file(s)."
    return body + "".join(f"\n[{note}]" for note in notes) + "\n"


async def _grep(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    flags = re.IGNORECASE if args.get("ignore_case") else 0
    try:
        regex = re.compile(args["pattern"], flags)
    except re.error as error:
        raise ToolError(f"invalid regular expression {args['pattern']!r}: {error}") from None
    root, base = _resolve_readable(ctx, args.get("path", "."))
    if not base.exists():
        raise ToolError(f"{_shown(ctx, root, base)} does not exist")
    max_matches = args.get("max_matches", 200)
    text = await asyncio.to_thread(_grep_sync, ctx, root, base, regex, args.get("glob"), max_matches)
    content, artifact = cut_output(ctx, "grep", text)
    return ToolResult(content=content, artifact=artifact)


def _find_sync(ctx: ToolContext, base: Path, pattern: str, max_results: int) -> str:
    root = ctx.root
    matcher = _path_matcher(pattern)
    found: list[str] = []
    for directory, dirs, files in _walk(root, base):
        entries = [(d, True) for d in dirs] + [(f, False) for f in files]
        for name, is_dir in sorted(entries):
            full = os.path.join(directory, name)
            if matcher(os.path.relpath(full, base)):
                found.append(os.path.relpath(full, root) + ("/" if is_dir else ""))
                if len(found) >= max_results:
                    return "\n".join(found) + f"\n[stopped at {max_results} results (max_results)]\n"
    if not found:
        return f"No paths match {pattern!r} under {ctx.relative(base)}.\n"
    return "\n".join(found) + "\n"


async def _find(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    base = resolve_in_workspace(ctx.root, args.get("path", "."))
    if not base.is_dir():
        raise ToolError(f"{ctx.relative(base)} is not a directory")
    text = await asyncio.to_thread(_find_sync, ctx, base, args["pattern"], args.get("max_results", 1000))
    content, artifact = cut_output(ctx, "find", text)
    return ToolResult(content=content, artifact=artifact)


async def _ls(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    real = resolve_in_workspace(ctx.root, args.get("path", "."))
    shown = ctx.relative(real)
    if not real.exists():
        raise ToolError(f"{shown} does not exist")
    if not real.is_dir():
        raise ToolError(f"{shown} is a file, not a directory; use read to see it")
    root = str(ctx.root)
    if str(real) == root:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        parent_fd, name = open_parent_in_workspace(root, real)
        try:
            dir_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError as error:
            raise SandboxRefusal(f"{shown!r} changed into a symbolic link after it was checked") from error
        finally:
            os.close(parent_fd)
    rows: list[str] = []
    try:
        names = sorted(os.listdir(dir_fd))
        for name in names:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                rows.append(f"?    {'-':>10}  {name}")
                continue
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(name, dir_fd=dir_fd)
                resolved = os.path.realpath(os.path.join(real, name))
                outside = not (resolved == root or resolved.startswith(root + os.sep))
                rows.append(f"link {'-':>10}  {name} -> {target}" + ("  (outside the workspace)" if outside else ""))
            elif stat.S_ISDIR(info.st_mode):
                rows.append(f"dir  {'-':>10}  {name}/")
            elif stat.S_ISREG(info.st_mode):
                rows.append(f"file {info.st_size:>10}  {name}")
            else:
                rows.append(f"other{'-':>10}  {name}")
    finally:
        os.close(dir_fd)
    header = f"{shown}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}"
    text = header + ("\n" + "\n".join(rows) if rows else " (empty directory)") + "\n"
    content, artifact = cut_output(ctx, "ls", text)
    return ToolResult(content=content, artifact=artifact)


# ---------------------------------------------------------------------------------------------------------------
# bash
# ---------------------------------------------------------------------------------------------------------------


def _group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) processes of a process group via /proc; None where /proc cannot tell."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


def _group_alive(pgid: int) -> bool:
    members = _group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _stop_process_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the group, wait up to `grace_s` for it to go, then SIGKILL what is left."""
    if not _group_alive(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if not _group_alive(pgid):
            return
    _signal_group(pgid, signal.SIGKILL)


def _bash_binary() -> str:
    return shutil.which("bash") or "/bin/sh"


async def _bash(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    command: str = args["command"]
    if not command.strip():
        raise ToolError("the command is empty")
    if "\x00" in command:
        raise ToolError("the command contains a NUL byte")
    verdict = ctx.classify(command)
    operator_approved = False
    if verdict.dangerous:
        why = verdict.summary()
        if ctx.approve is None:
            raise SandboxRefusal(f"this command needs operator approval ({why}) and no operator can approve it here")
        try:
            approved = await ctx.approve(command)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the approver broke: fail closed
            raise SandboxRefusal(f"asking the operator failed ({error}); the command was not run") from error
        if approved is not True:
            raise SandboxRefusal(f"the operator rejected this command ({why}); it was not run. Do not retry it; "
                                 "find another way or ask the operator")  # fmt: skip
        operator_approved = True
    timeout = min(float(args.get("timeout", ctx.bash_timeout_s)), ctx.bash_max_timeout_s)
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    spool_fd, spool_name = tempfile.mkstemp(prefix=".bash-", suffix=".log", dir=ctx.artifacts_dir)
    spool = Path(spool_name)
    keep_spool = False
    try:
        support = ctx.shell_support
        if support is None:
            support = await asyncio.to_thread(confine.system_support)
        env = ctx.bash_environment()

        def plan(approved: bool) -> confine.ShellConfinement:
            return ctx.shell_confinement(support, env, output_file=spool, approved=approved)

        argv = [_bash_binary(), "-c", command]
        usual: confine.ShellConfinement | None = None  # how every unapproved command runs: what the run is told
        if not operator_approved:
            usual = plan(False)
            argv = usual.command(argv)
        elif ctx.confine_approved_commands:
            argv = plan(True).command(argv)
        log = _announce_confinement(ctx, lambda: usual or plan(False))
        with os.fdopen(spool_fd, "wb") as sink:
            outcome = await _run_bash(argv, ctx, sink, timeout, env)
        size = spool.stat().st_size
        data = await asyncio.to_thread(_read_head, spool, ctx.max_capture_bytes)
        text = data.decode("utf-8", "replace")
        notes = list(outcome.notes)
        if size > ctx.max_capture_bytes:
            notes.append(f"output beyond {ctx.max_capture_bytes:,} bytes was not kept")
        lines = text.splitlines(keepends=True)
        artifact = None
        if len(lines) > ctx.max_output_lines or len(data) > ctx.max_output_bytes:
            final = ctx.artifacts_dir / f"bash_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:8]}.log"
            os.replace(spool, final)
            os.chmod(final, 0o644)  # mkstemp made it private; it is a run artifact like any other
            keep_spool = True
            shown = lines[-ctx.max_output_lines :]
            body = _cut_bytes("".join(shown), ctx.max_output_bytes, keep="tail")
            note = (f"[output cut: {len(lines):,} lines, {size:,} bytes in all; showing the last "
                    f"{len(body.splitlines()):,} lines (limits {ctx.max_output_lines:,} lines / "
                    f"{ctx.max_output_bytes:,} bytes). Full output saved to {final} (read and grep can open it)]")  # fmt: skip
            text = f"{note}\n{body}"
            artifact = str(final)
        if not text:
            text = "(no output)"
        if not text.endswith("\n"):
            text += "\n"
        text += "".join(f"[{note}]\n" for note in notes)
        error = outcome.error
        if error:
            text += f"[{error}]\n"
        return ToolResult(content=text.rstrip("\n"), error=error, artifact=artifact, log=log)
    finally:
        if not keep_spool:
            with contextlib.suppress(OSError):
                spool.unlink()


# Runs (by real run directory) whose log already says how the worker's shell is confined: said once per run.
_ANNOUNCED_RUNS: set[str] = set()


def _announce_confinement(
    ctx: ToolContext, usual: Callable[[], confine.ShellConfinement]
) -> tuple[tuple[str, str], ...]:
    run_dir = os.path.realpath(ctx.artifacts_dir.parent)
    if run_dir in _ANNOUNCED_RUNS:
        return ()
    _ANNOUNCED_RUNS.add(run_dir)
    return (usual().describe(run_dir),)


def _read_head(path: Path, limit: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(limit)


@dataclass
class _BashOutcome:
    error: str | None
    notes: list[str]


async def _run_bash(argv: list[str], ctx: ToolContext, sink: Any, timeout: float, env: dict[str, str]) -> _BashOutcome:
    # Output goes to a file, not a pipe: a background child that keeps the pipe open cannot hang us, and the
    # size is easy to watch.
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ctx.root, stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True, env=env,
    )  # fmt: skip
    pgid = process.pid
    entry = _Running(process)
    ctx._running[pgid] = entry
    waiter = asyncio.ensure_future(process.wait())
    notes: list[str] = []
    error: str | None = None
    try:
        deadline = time.monotonic() + timeout
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=0.05)
            if waiter.done() or entry.aborted:
                break
            if time.monotonic() >= deadline:
                error = f"timed out after {timeout:g} s; the command and its child processes were stopped"
                await _stop_process_group(pgid, min(ctx.kill_grace_s, 0.5))
                break
            if os.fstat(sink.fileno()).st_size > ctx.max_capture_bytes:
                error = f"stopped: the output passed {ctx.max_capture_bytes:,} bytes"
                await _stop_process_group(pgid, min(ctx.kill_grace_s, 0.5))
                break
        if entry.aborted:
            # abort() is stopping the group; wait for it rather than racing it.
            await asyncio.wait({waiter}, timeout=ctx.kill_grace_s + 1.0)
            error = "aborted by the operator; the command and its child processes were stopped"
        returncode = await waiter
        if _group_alive(pgid):
            await _stop_process_group(pgid, 0.2)
            notes.append("background processes still running when the command finished were stopped")
        if error is None and returncode != 0:
            error = (f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}")
        return _BashOutcome(error=error, notes=notes)
    except BaseException:
        # Cancelled (the run was aborted or the loop is shutting down): leave nothing running behind.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            await asyncio.shield(waiter)
        raise
    finally:
        ctx._running.pop(pgid, None)


# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_PATH = {"type": "string", "description": "Path relative to the workspace root (absolute paths must be inside it)."}

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            name="read",
            description=("Read a text file. Lines are numbered; use offset (first line, 1-based) and limit (number "
                         "of lines) to page through large files."),
            parameters=_schema({
                "path": _PATH,
                "offset": {"type": "integer", "minimum": 1, "description": "First line to show (1-based)."},
                "limit": {"type": "integer", "minimum": 1, "description": "How many lines to show."},
            }, ["path"]),
            handler=_read,
            mutates=False,
        ),
        Tool(
            name="write",
            description="Create or overwrite a file with the given content. Missing parent directories are created.",
            parameters=_schema({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]),
            handler=_write,
            mutates=True,
        ),
        Tool(
            name="edit",
            description=("Replace one exact piece of text in a file. old_string must occur exactly once in the "
                         "file (copy it exactly, with enough surrounding lines to be unique)."),
            parameters=_schema({
                "path": _PATH,
                "old_string": {"type": "string", "description": "The exact text to replace."},
                "new_string": {"type": "string", "description": "The text to put in its place."},
            }, ["path", "old_string", "new_string"]),
            handler=_edit,
            mutates=True,
        ),
        Tool(
            name="bash",
            description=("Run a bash command in the workspace root (a fresh shell each call; `cd` does not carry "
                         "over). Output (stdout and stderr together) is cut to the last 2000 lines / 50 KB, the "
                         "full output saved to a file. Dangerous commands (rm -rf, git push, sudo, writes "
                         "outside the workspace, ...) wait for the operator's approval."),
            parameters=_schema({
                "command": {"type": "string"},
                "timeout": {"type": "integer", "minimum": 1, "description": "Seconds before the command is stopped."},
            }, ["command"]),
            handler=_bash,
            mutates=True,
        ),
        Tool(
            name="grep",
            description=("Search file contents with a Python regular expression. Prints path:line: text. Skips "
                         "binary files and .git."),
            parameters=_schema({
                "pattern": {"type": "string", "description": "A Python regular expression."},
                "path": {"type": "string", "description": "File or directory to search (default: the workspace)."},
                "glob": {"type": "string",
                         "description": "Only files whose name (or relative path) matches, e.g. *.py"},
                "ignore_case": {"type": "boolean"},
                "max_matches": {"type": "integer", "minimum": 1, "maximum": 10000},
            }, ["pattern"]),
            handler=_grep,
            mutates=False,
        ),
        Tool(
            name="find",
            description=("Find files and directories by glob: '*.py' matches names at any depth, 'src/**/*.ts' "
                         "matches paths. Directories end with '/'. Skips .git."),
            parameters=_schema({
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Directory to search (default: the workspace)."},
                "max_results": {"type": "integer", "minimum": 1, "maximum": 100000},
            }, ["pattern"]),
            handler=_find,
            mutates=False,
        ),
        Tool(
            name="ls",
            description="List one directory: type, size in bytes and name of each entry; symlinks show their target.",
            parameters=_schema({"path": {"type": "string", "description": "Directory (default: the workspace)."}}, []),
            handler=_ls,
            mutates=False,
        ),
    )
}


async def _delegate(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    if ctx.delegate is None:
        raise SandboxRefusal("delegation is not available to this agent")
    return await ctx.delegate(args, ctx)


# Not in TOOLS: it exists only where the engine hands the context a handler (ToolContext.delegate).
DELEGATE_TOOL = Tool(
    name="delegate",
    description=(
        "Hand one self-contained task to a fresh helper agent. It starts with an empty context (none of this "
        "conversation), works in the same workspace with its own tools, and returns only a short final report "
        "(model, duration, tool calls, tokens and cost on the first line). Use it for bounded side work whose "
        "details you do not need to keep: reconnaissance across many files, a focused fix, a review. Write the "
        "task so it stands alone: goal, relevant paths, constraints, what to report. Choose effort on purpose: "
        "fast (cheap look-ups), balanced (ordinary work), smart (hard reasoning). Optionally name an agent "
        "definition (e.g. scout for read-only reconnaissance, reviewer for a review)."
    ),
    parameters=_schema({
        "task": {"type": "string", "description": "The complete, self-contained task for the helper."},
        "effort": {"type": "string", "enum": ["fast", "balanced", "smart"],
                   "description": "fast | balanced | smart: picks the helper's model and thinking level."},
        "agent": {"type": "string", "description": "Optional agent definition to run (scout, worker, reviewer, "
                                                   "or one defined in .aw-tui/agents/)."},
    }, ["task"]),
    handler=_delegate,
    mutates=True,
)


def tool_named(name: str) -> Tool | None:
    """The tool called `name`: one of TOOLS, or delegate."""
    return DELEGATE_TOOL if name == DELEGATE_TOOL.name else TOOLS.get(name)


def tool_allowed(name: str, policy: str) -> bool:
    if policy not in POLICIES:
        raise ValueError(f"unknown tool policy {policy!r}; expected one of {', '.join(POLICIES)}")
    allowed = POLICIES[policy]
    return name in TOOLS and (allowed is None or name in allowed)


def tools_for_policy(policy: str) -> list[Tool]:
    """The tools a policy allows, in registry order. Unknown policies raise ValueError."""
    return [tool for name, tool in TOOLS.items() if tool_allowed(name, policy)]


def openai_tool_specs(tools: list[Tool]) -> list[dict[str, Any]]:
    """The tools in the OpenAI/litellm `tools=` form."""
    return [
        {"type": "function",
         "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}
        for tool in tools
    ]  # fmt: skip


async def run_tool(name: str, args: Any, ctx: ToolContext) -> ToolResult:
    """Run one tool call: policy, arguments, sandbox, handler. Never raises for bad input; cancellation propagates.

    `args` may be the decoded dict or the raw JSON text the model produced.
    """
    tool = tool_named(name)
    if tool is None:
        return ToolResult.failure(f"there is no tool named {name!r}; the tools are: {', '.join(TOOLS)}")
    if not ctx.offers(name):
        allowed = ", ".join(t.name for t in ctx.offered_tools()) or "none"
        narrowed = " and this agent's tool list" if ctx.allowed_tools is not None else ""
        return ToolResult.refusal(f"the tool {name!r} is not allowed under the {ctx.policy} tool policy"
                                  f"{narrowed} (allowed: {allowed})")  # fmt: skip
    if args is None:
        args = {}
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as error:
            return ToolResult.failure(f"{name}: the arguments are not valid JSON ({error})")
    problem = validate_arguments(tool, args)
    if problem:
        return ToolResult.failure(problem)
    try:
        return await tool.handler(args, ctx)
    except SandboxRefusal as refusal:
        return ToolResult.refusal(refusal.reason)
    except ToolError as error:
        return ToolResult.failure(str(error))
    except asyncio.CancelledError:
        raise
    except PermissionError as error:
        return ToolResult.failure(f"{name}: permission denied ({error.filename or error})")
    except Exception as error:  # noqa: BLE001 -- a bug or an OS error: the model reads it, the run goes on
        return ToolResult.failure(f"{name} failed: {type(error).__name__}: {error}")
