"""Agent definitions: named agents written as markdown with a small frontmatter block.

    ---
    name: scout
    description: Fast read-only reconnaissance
    tools: read, grep, find, ls          (or [read, grep]; leave out for every tool the caller allows)
    model: $fast                         (a model string, `inherit`, or $fast | $balanced | $smart)
    thinking: low                        (a thinking level, or `inherit`; leave out to follow the model choice)
    connector: "## Findings\n\n{output}" (how this agent gets the previous step's output in a pipeline)
    ---
    The body is the agent's system prompt.

They are found in three places, a later one replacing an earlier one by name: the built-ins (scout, worker,
reviewer), the user's `$XDG_CONFIG_HOME/aw-tui/agents/`, and the project's `.aw-tui/agents/`. A file that cannot
be read as a definition is reported with its path and skipped; the others still load.

The frontmatter is read without a YAML library: one `key: value` a line, `#` comments, quoted values, and lists
as `a, b` or `[a, b]`. Nested or multi-line values are reported as malformed rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aw_tui.engine.tools import DELEGATE_TOOL, TOOLS
from aw_tui.model.settings import EFFORTS, THINKING_LEVELS
from aw_tui.store.config import PROJECT_DIR_NAME, find_project_root, user_config_path

AGENTS_DIR_NAME = "agents"
Source = Literal["builtin", "user", "project"]

KNOWN_TOOLS: tuple[str, ...] = (*TOOLS, DELEGATE_TOOL.name)
# Names other agent tools use for what ours call differently (pi's safe_bash is our sandboxed bash).
TOOL_ALIASES = {"safe_bash": "bash"}
INHERIT = "inherit"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


class DefinitionError(ValueError):
    """Why a file is not a usable agent definition (one line, without the path)."""


@dataclass(frozen=True)
class AgentDefinition:
    name: str
    description: str
    prompt: str  # the body: the agent's system prompt
    tools: tuple[str, ...] | None = None  # None: whatever the caller's context allows
    model: str | None = None  # a model string, "$fast" | "$balanced" | "$smart", or None to inherit
    thinking: str | None = None  # None: follow the model choice
    connector: str | None = None  # "{output}" template: how a pipeline hands this agent the previous output
    source: Source = "builtin"
    path: Path | None = None

    @property
    def effort(self) -> str | None:
        """The effort tier the model names ("$smart" -> "smart"), or None for a concrete or inherited model."""
        if self.model and self.model.startswith("$"):
            return self.model[1:]
        return None

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "built-in"


@dataclass(frozen=True)
class DefinitionProblem:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"agent definition {self.path}: {self.reason}; skipped"


class UnknownAgent(ValueError):
    def __init__(self, name: str, available: Iterable[str], where: str = "") -> None:
        self.name = name
        place = f" in {where}" if where else ""
        super().__init__(f"unknown agent{place} {name!r}; available agents: {', '.join(available) or 'none'}")


@dataclass
class AgentCatalog:
    """The definitions in force (by name) and the files that were skipped, with why."""

    agents: dict[str, AgentDefinition] = field(default_factory=dict)
    problems: list[DefinitionProblem] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted(self.agents)

    def get(self, name: str) -> AgentDefinition | None:
        return self.agents.get(name)

    def require(self, name: str) -> AgentDefinition:
        definition = self.agents.get(name)
        if definition is None:
            raise UnknownAgent(name, self.names())
        return definition

    def first_unknown(self, names: Iterable[str]) -> str | None:
        """The first of `names` with no definition (None when all are known), to check a chain up front."""
        return next((name for name in names if name not in self.agents), None)


# --- parsing -------------------------------------------------------------------------------------------------


def split_frontmatter(text: str) -> tuple[dict[str, str], str]:
    """(raw `key: value` pairs, body) of a definition file. Raises DefinitionError."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise DefinitionError("no frontmatter: the file must start with a line `---`")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise DefinitionError("the frontmatter is not closed by a line `---`") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            raise DefinitionError(f"line {number}: nested or continued values are not supported; "
                                  "write `key: value` on one line")  # fmt: skip
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not _KEY_RE.match(key):
            raise DefinitionError(f"line {number}: expected `key: value`, got {line.strip()!r}")
        if key in values:
            raise DefinitionError(f"line {number}: {key!r} is given twice")
        values[key] = value.strip()
    return values, "\n".join(lines[end + 1 :]).strip()


def unquote(value: str) -> str:
    """A value without one pair of surrounding quotes."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def resolve_escapes(value: str) -> str:
    """`\\n \\t \\r \\\\ \\"` made real; any other backslash stays as written (`100\\%` is `100\\%`)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPES:
            out.append(_ESCAPES[value[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_connector(value: str) -> str:
    return resolve_escapes(unquote(value.strip()))


def parse_list(value: str) -> list[str]:
    """`a, b`, `[a, b]` or `["a", 'b']` -> ["a", "b"]; blanks dropped."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [unquote(item.strip()) for item in text.split(",") if unquote(item.strip())]


def parse_definition(text: str, *, path: Path | None = None, source: Source = "project") -> AgentDefinition:
    """One definition file's text as an AgentDefinition. Raises DefinitionError saying what is wrong."""
    raw, body = split_frontmatter(text)
    values = {key: unquote(value) for key, value in raw.items()}
    name = values.get("name", "")
    if not name:
        raise DefinitionError("`name` is missing")
    if not _NAME_RE.match(name):
        raise DefinitionError(f"name {name!r} may hold only letters, digits, '.', '_' and '-'")
    description = values.get("description", "")
    if not description:
        raise DefinitionError("`description` is missing")
    tools: tuple[str, ...] | None = None
    if "tools" in raw:
        listed = [] if raw["tools"].strip().lower() in ("", "none", "[]") else parse_list(raw["tools"])
        named = [TOOL_ALIASES.get(tool, tool) for tool in listed]
        unknown = [tool for tool in named if tool not in KNOWN_TOOLS]
        if unknown:
            raise DefinitionError(f"unknown tool{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                                  f"the tools are {', '.join(KNOWN_TOOLS)}")  # fmt: skip
        tools = tuple(dict.fromkeys(named))
    model = values.get("model") or None
    if model is not None:
        if model.lower() == INHERIT:
            model = None
        elif model.startswith("$"):
            if model[1:].lower() not in EFFORTS:
                raise DefinitionError(f"model {model!r} names no effort; use $fast, $balanced or $smart")
            model = model.lower()
        elif any(char.isspace() for char in model):
            raise DefinitionError(f"model {model!r} contains spaces")
    thinking = values.get("thinking") or None
    if thinking is not None:
        thinking = thinking.lower()
        if thinking == INHERIT:
            thinking = None
        elif thinking not in THINKING_LEVELS:
            raise DefinitionError(f"thinking {thinking!r} is not one of {', '.join(THINKING_LEVELS)} or inherit")
    connector = parse_connector(raw["connector"]) if raw.get("connector") else None
    return AgentDefinition(name=name, description=description, prompt=body, tools=tools, model=model,
                           thinking=thinking, connector=connector, source=source, path=path)  # fmt: skip


# --- finding them --------------------------------------------------------------------------------------------


def user_agents_dir() -> Path:
    return user_config_path().parent / AGENTS_DIR_NAME


def project_agents_dir(workspace: Path) -> Path:
    """`.aw-tui/agents/` of the project holding `workspace` (its nearest ancestor with .aw-tui/, or itself)."""
    root = find_project_root(Path(workspace)) or Path(workspace).resolve()
    return root / PROJECT_DIR_NAME / AGENTS_DIR_NAME


def load_agent_dir(directory: Path, source: Source) -> tuple[list[AgentDefinition], list[DefinitionProblem]]:
    """Every `*.md` in `directory` (sorted by file name), and the files that were skipped."""
    definitions: list[AgentDefinition] = []
    problems: list[DefinitionProblem] = []
    try:
        paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() == ".md")
    except FileNotFoundError:
        return [], []
    except OSError as error:
        return [], [DefinitionProblem(Path(directory), f"cannot be listed: {error.strerror or error}")]
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            definition = parse_definition(text, path=path, source=source)
        except UnicodeDecodeError as error:
            problems.append(DefinitionProblem(path, f"is not valid UTF-8 (byte {error.start})"))
            continue
        except OSError as error:
            problems.append(DefinitionProblem(path, f"cannot be read: {error.strerror or error}"))
            continue
        except DefinitionError as error:
            problems.append(DefinitionProblem(path, str(error)))
            continue
        if definition.name in seen:
            problems.append(DefinitionProblem(path, f"agent {definition.name!r} is already defined in "
                                                    f"{seen[definition.name]}"))  # fmt: skip
            continue
        seen[definition.name] = path
        definitions.append(definition)
    return definitions, problems


def load_agent_definitions(
    workspace: Path | None = None, *, user_dir: Path | None = None, project_dir: Path | None = None,
    builtins: bool = True,
) -> AgentCatalog:  # fmt: skip
    """Built-ins, then the user's definitions, then the project's: a later one wins by name.

    `user_dir` defaults to the config dir's agents/, `project_dir` to `.aw-tui/agents/` of the project holding
    `workspace` (no project definitions when neither is given).
    """
    catalog = AgentCatalog()
    if builtins:
        catalog.agents.update({d.name: d for d in BUILTIN_AGENTS})
    layers: list[tuple[Path, Source]] = [(user_dir or user_agents_dir(), "user")]
    if project_dir is not None or workspace is not None:
        layers.append((project_dir or project_agents_dir(Path(workspace or ".")), "project"))
    for directory, source in layers:
        definitions, problems = load_agent_dir(directory, source)
        catalog.problems.extend(problems)
        catalog.agents.update({d.name: d for d in definitions})
    return catalog


# --- the built-ins -------------------------------------------------------------------------------------------

SCOUT_PROMPT = """\
You are a scout. Your job is quick, read-only reconnaissance of a codebase so that someone else can act on it.

- Look, do not touch: you can read, search and list files, and nothing more.
- Start wide (layout, entry points, names that match the question), then narrow down to the exact places.
- Quote what matters briefly and always give file paths with line numbers.
- Stop as soon as the question is answered; say plainly what you could not find or are unsure of.
"""

WORKER_PROMPT = """\
You are a worker. You carry out one bounded implementation task in the project and then stop.

- Do what was asked and nothing beyond it; if the task turns out larger or unclear, stop and say so.
- Read before you edit, keep changes small and in the project's style, and run the relevant checks or tests.
- Never work around a refused command or a failing check; report it instead.
- Report what you changed (files), how you verified it (commands and outcomes) and what is left.
"""

REVIEWER_PROMPT = """\
You are a reviewer. You examine code or a change critically and report what is wrong or risky.

- Check correctness first (logic, edge cases, error handling, concurrency), then tests, then clarity.
- Verify claims where you can (read the code, run the tests); do not modify the project.
- Rank findings by severity, each with file and line and a concrete fix; say explicitly when you find nothing.
"""

BUILTIN_AGENTS: tuple[AgentDefinition, ...] = (
    AgentDefinition(name="scout", description="Fast read-only reconnaissance: finds files, symbols and facts.",
                    prompt=SCOUT_PROMPT, tools=("read", "grep", "find", "ls"), model="$fast"),
    AgentDefinition(name="worker", description="Carries out one bounded implementation task with every tool.",
                    prompt=WORKER_PROMPT, tools=("read", "write", "edit", "bash", "grep", "find", "ls", "delegate"),
                    model="$balanced"),
    AgentDefinition(name="reviewer", description="Critical review of code or a change; reads and runs checks.",
                    prompt=REVIEWER_PROMPT, tools=("read", "grep", "find", "ls", "bash"), model="$smart",
                    connector="## The work to review\n\n{output}"),
)  # fmt: skip
