"""The sandbox: where the worker's file tools may go, and which shell commands need the operator.

Two independent decisions live here, both pure and synchronous so the agent loop only has to ask:

* `resolve_in_workspace` / `open_in_workspace` confine a path to the workspace. Paths are resolved with
  realpath at the moment of use (so a symlink made during the run is seen), compared by path components (so
  `/srv/app-evil` is not inside `/srv/app`), and files are then opened by walking from the workspace root with
  O_NOFOLLOW on every component, so a directory swapped for a symlink between the check and the open is refused
  rather than followed.
* `classify_command` decides whether a bash command needs operator approval. It tokenizes the command with a
  small shell lexer (quotes, escapes, `$(...)`, backticks, `${...}`, here-docs, operators), looks through
  wrappers (`env`, `nice`, `xargs`, `timeout`, `sudo`, `find -exec`, `bash -c`, ...) and checks each simple
  command. It is a tripwire, not a jail: a script the worker wrote and then runs can still do anything. When the
  text cannot be understood (a command name built from a variable, `eval`, unbalanced quotes) the verdict is
  "dangerous", never "safe".
"""

from __future__ import annotations

import errno
import glob
import itertools
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aw_tui.store.atomic import write_all_and_fsync

# ---------------------------------------------------------------------------------------------------------------
# Path confinement
# ---------------------------------------------------------------------------------------------------------------

MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255  # one path component (NAME_MAX on Linux and macOS)
# Inside the workspace, but never written by the file tools: aw-tui's own config and runs, and git internals
# (hooks and config run programs on the operator's next git command). Matched on the first path components.
DEFAULT_PROTECTED = (".git", ".aw-tui")


class SandboxRefusal(Exception):
    """The sandbox said no. `reason` is one sentence meant for the model and the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_within(path: str, root: str) -> bool:
    """Component-wise containment: '/srv/app/x' is within '/srv/app', '/srv/app-evil' is not."""
    if path == root:
        return True
    prefix = root if root.endswith("/") else root + "/"
    return path.startswith(prefix)


def workspace_root(workspace: Path | str) -> Path:
    """The workspace's real path; it must be an existing directory."""
    real = os.path.realpath(os.fspath(workspace))
    if not os.path.isdir(real):
        raise SandboxRefusal(f"the workspace {workspace} is not a directory")
    return Path(real)


def resolve_in_workspace(
    workspace: Path | str, path: str, *, protected: Iterable[str] = (), allow_root: bool = True
) -> Path:
    """The real path `path` names, if it lies inside the workspace; else SandboxRefusal with the reason.

    Relative paths are taken from the workspace root. `..` is allowed only while it stays inside. Absolute
    paths must point inside the workspace. Symlinks are followed as they are now: a link (anywhere in the path,
    including the last component, dangling or not) that leads outside is refused. `protected` lists
    workspace-relative paths (e.g. ".git") that this call refuses, used for writes.
    """
    if not isinstance(path, str):
        raise SandboxRefusal("the path must be a string")
    shown = path if len(path) <= 200 else path[:200] + "..."
    if path == "":
        raise SandboxRefusal("the path is empty")
    if "\x00" in path:
        raise SandboxRefusal(f"the path {shown!r} contains a NUL byte")
    if len(path) > MAX_PATH_CHARS:
        raise SandboxRefusal(f"the path is longer than {MAX_PATH_CHARS} characters")
    if any(len(os.fsencode(name)) > MAX_NAME_BYTES for name in path.split("/")):
        raise SandboxRefusal(f"a name in the path {shown!r} is longer than {MAX_NAME_BYTES} bytes")
    if path.startswith("~"):
        raise SandboxRefusal(
            f"the path {shown!r} is in a home directory, outside the workspace; use a path relative to the workspace"
        )
    root = str(workspace_root(workspace))
    candidate = path if os.path.isabs(path) else os.path.join(root, path)
    lexical = os.path.normpath(candidate)
    real = os.path.realpath(candidate)
    if not _is_within(real, root):
        if os.path.isabs(path) and not _is_within(lexical, root) and not _is_within(
            lexical, os.path.normpath(os.path.abspath(os.fspath(workspace)))
        ):
            raise SandboxRefusal(f"the absolute path {shown!r} is outside the workspace {root}")
        if not _is_within(lexical, root) and ".." in Path(path).parts:
            raise SandboxRefusal(f"the path {shown!r} uses '..' to leave the workspace {root}")
        raise SandboxRefusal(
            f"the path {shown!r} leads outside the workspace through a symbolic link (it resolves to {real})"
        )
    if not allow_root and real == root:
        raise SandboxRefusal("the path is the workspace root itself")
    relative = os.path.relpath(real, root)
    for entry in protected:
        entry = entry.strip("/")
        if entry and (relative == entry or relative.startswith(entry + "/")):
            raise SandboxRefusal(f"the path {shown!r} is inside {entry}/, which the file tools may not change")
    return Path(real)


def open_parent_in_workspace(
    workspace: Path | str, real_path: Path | str, *, make_parents: bool = False
) -> tuple[int, str]:
    """(fd of the directory holding `real_path`, its last name), reached without following any symlink.

    Walks from the workspace root with openat(O_NOFOLLOW) per component, so a component that became a symlink
    since `resolve_in_workspace` checked the path is refused instead of followed. `make_parents` creates missing
    directories on the way (inside the workspace, by construction). The caller closes the fd.
    """
    root = str(workspace_root(workspace))
    real = os.fspath(real_path)
    if not _is_within(real, root):
        raise SandboxRefusal(f"{real} is outside the workspace {root}")
    parts = [p for p in os.path.relpath(real, root).split("/") if p not in ("", ".")]
    if not parts:
        raise SandboxRefusal("the path is the workspace root, a directory")
    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            try:
                next_fd = _open_dir_component(name, dir_flags, dir_fd)
            except FileNotFoundError:
                if not make_parents:
                    raise
                try:
                    os.mkdir(name, 0o755, dir_fd=dir_fd)
                except FileExistsError:
                    pass
                next_fd = _open_dir_component(name, dir_flags, dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd, parts[-1]


def open_in_workspace(workspace: Path | str, real_path: Path | str, flags: int = os.O_RDONLY) -> int:
    """Open the regular file `real_path` (from `resolve_in_workspace`) without following any symlink.

    Directories raise IsADirectoryError; FIFOs, sockets and devices are refused (opening them can block or
    reach outside). Returns a file descriptor the caller must close.
    """
    dir_fd, name = open_parent_in_workspace(workspace, real_path)
    try:
        try:
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as error:
            _raise_if_link(error, name, dir_fd)
            raise
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", name)
        if not stat.S_ISREG(info.st_mode):
            raise SandboxRefusal(f"{name!r} is not a regular file (a FIFO, socket or device)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def replace_in_workspace(
    workspace: Path | str, real_path: Path | str, data: bytes, *, make_parents: bool = False
) -> bool:
    """Write `data` as the file `real_path` atomically (temp file, fsync, rename); True if it existed before.

    The rename replaces the directory entry itself, so the write never goes through a symlink or a hard link
    to a file outside (a hard-linked file is unlinked from its twin, which keeps its content). An existing
    file keeps its permission bits.
    """
    dir_fd, name = open_parent_in_workspace(workspace, real_path, make_parents=make_parents)
    temp = f".{name[:200]}.{os.urandom(4).hex()}.aw-tmp"
    try:
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise SandboxRefusal(f"{name!r} is a symbolic link (made or changed after the path was checked)")
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise SandboxRefusal(f"{name!r} is not a regular file (a FIFO, socket or device)")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        try:
            if info is not None:
                os.fchmod(fd, stat.S_IMODE(info.st_mode))
            write_all_and_fsync(fd, data)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return info is not None
    except BaseException:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    finally:
        os.close(dir_fd)


def _open_dir_component(name: str, flags: int, dir_fd: int) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        _raise_if_link(error, name, dir_fd)
        raise


def _raise_if_link(error: OSError, name: str, dir_fd: int) -> None:
    """Turn "this component is a symlink" (ELOOP from O_NOFOLLOW, or ENOTDIR with O_DIRECTORY) into a refusal."""
    if error.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        is_link = error.errno == errno.ELOOP
    if is_link:
        raise SandboxRefusal(
            f"{name!r} is a symbolic link (made or changed after the path was checked); links are not followed here"
        ) from error


# ---------------------------------------------------------------------------------------------------------------
# Dangerous-command policy
# ---------------------------------------------------------------------------------------------------------------


def _compile_pattern(text: str) -> re.Pattern[str]:
    """A regex given raw ("\\bdocker\\b") or JS-style with flags ("/docker/i")."""
    match = re.fullmatch(r"/(.*)/([imsx]*)", text, flags=re.DOTALL)
    if match:
        flags = 0
        for letter in match.group(2):
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}[letter]
        return re.compile(match.group(1), flags)
    return re.compile(text)


@dataclass(frozen=True)
class DangerPolicy:
    """Operator configuration for `classify_command`.

    `extra_patterns`: regexes (raw or "/re/flags"); a simple command (dequoted, e.g. `docker run x`) or the whole
    command text that matches one needs approval. `allowed_patterns`: regexes that a simple command's dequoted
    text must match *entirely* to be exempt from the built-in rules (e.g. "git push origin feature/.*"); each
    simple command is judged alone, so `git push; rm -rf x` is not exempted by an allowed `git push.*`. Extra
    patterns win over allowed ones. Invalid regexes are skipped and listed in `invalid_patterns`.
    """

    extra_patterns: tuple[str, ...] = ()
    allowed_patterns: tuple[str, ...] = ()
    extra: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    allowed: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    invalid_patterns: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        invalid: list[str] = []

        def compile_all(texts: Sequence[str]) -> tuple[re.Pattern[str], ...]:
            compiled = []
            for text in texts:
                try:
                    compiled.append(_compile_pattern(text))
                except (re.error, KeyError):
                    invalid.append(text)
            return tuple(compiled)

        object.__setattr__(self, "extra_patterns", tuple(self.extra_patterns))
        object.__setattr__(self, "allowed_patterns", tuple(self.allowed_patterns))
        object.__setattr__(self, "extra", compile_all(self.extra_patterns))
        object.__setattr__(self, "allowed", compile_all(self.allowed_patterns))
        object.__setattr__(self, "invalid_patterns", tuple(invalid))

    def is_allowed(self, simple_command: str) -> bool:
        return any(pattern.fullmatch(simple_command) for pattern in self.allowed)

    def extra_match(self, text: str) -> re.Pattern[str] | None:
        return next((pattern for pattern in self.extra if pattern.search(text)), None)


@dataclass(frozen=True)
class CommandVerdict:
    dangerous: bool
    reasons: list[str]

    def summary(self) -> str:
        return "; ".join(self.reasons)


# ---------------------------------------------------------------------------------------------------------------
# A small shell lexer
# ---------------------------------------------------------------------------------------------------------------


class ShellSyntaxError(ValueError):
    pass


@dataclass
class Word:
    raw: str
    value: str = ""  # quotes and escapes removed; expansions kept as written ("$X", "$(cmd)")
    quoted: bool = False
    expands: bool = False  # parameter expansion, command substitution or arithmetic: known only at run time
    glob: bool = False
    brace: bool = False
    tilde: bool = False
    procsub: bool = False  # <(...) or >(...)
    subs: list[str] = field(default_factory=list)  # scripts of $(...), `...`, <(...) to check too
    heredoc: str | None = None  # the body, when this word is a here-doc delimiter


@dataclass(frozen=True)
class Op:
    text: str


Token = Word | Op

_OPERATORS = (";;&", ";;", ";&", "&&", "||", "|&", "&>>", "&>", "<<<", "<<-", "<<", "<>", "<&", ">>", ">|", ">&",
              ";", "&", "|", "<", ">")  # fmt: skip
REDIRECTIONS = frozenset({">", ">>", ">|", "<", "<<", "<<-", "<<<", "<>", ">&", "<&", "&>", "&>>"})
_OUTPUT_REDIRECTIONS = frozenset({">", ">>", ">|", "<>", ">&", "&>", "&>>"})
_WORD_BREAK = frozenset(" \t\r\n;&|()<>")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACE_RE = re.compile(r"\{[^{}\s]*(,|\.\.)[^{}\s]*\}")
_ANSI_SIMPLE = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}  # fmt: skip


class _Lexer:
    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos
        self.n = len(text)

    # -- tokens ----------------------------------------------------------------------------------------------

    def run(self, until_paren: bool = False) -> list[Token]:
        """Tokens up to the end, or (until_paren) up to the `)` closing a `$(`; self.pos is left on that `)`."""
        text = self.text
        tokens: list[Token] = []
        depth = 0
        pending: list[tuple[Word, bool]] = []  # here-docs whose bodies start after the next newline
        expect_delimiter: bool | None = None  # strip-tabs flag of a `<<`/`<<-` waiting for its word
        while self.pos < self.n:
            c = text[self.pos]
            if c in " \t":
                self.pos += 1
                continue
            if c == "\\" and text.startswith("\n", self.pos + 1):
                self.pos += 2
                continue
            if c in "\r\n":
                # \r is not a separator to bash; treating it as one can only make us see more commands.
                tokens.append(Op("\n"))
                self.pos += 1
                if c == "\n" and pending:
                    self._read_heredocs(pending)
                    pending = []
                continue
            if c == "#":
                end = text.find("\n", self.pos)
                self.pos = self.n if end < 0 else end
                continue
            if c == "(":
                depth += 1
                tokens.append(Op("("))
                self.pos += 1
                continue
            if c == ")":
                if until_paren and depth == 0:
                    return tokens
                depth = max(0, depth - 1)
                tokens.append(Op(")"))
                self.pos += 1
                continue
            if c in "<>" and text.startswith("(", self.pos + 1):
                tokens.append(self._process_substitution())
                continue
            if c in ";&|<>":
                op = next(o for o in _OPERATORS if text.startswith(o, self.pos))
                self.pos += len(op)
                tokens.append(Op(op))
                if op in ("<<", "<<-"):
                    expect_delimiter = op == "<<-"
                continue
            word = self._word()
            if word.raw.isdigit() and self.pos < self.n and text[self.pos] in "<>":
                continue  # a file-descriptor number glued to a redirection: `2>err`
            if expect_delimiter is not None:
                pending.append((word, expect_delimiter))
                expect_delimiter = None
            tokens.append(word)
        if until_paren:
            raise ShellSyntaxError("a `$(` is never closed")
        if pending:
            self._read_heredocs(pending)  # a here-doc on the last line has an empty body
        return tokens

    def _read_heredocs(self, pending: list[tuple[Word, bool]]) -> None:
        text = self.text
        for word, strip_tabs in pending:
            lines: list[str] = []
            while self.pos < self.n:
                end = text.find("\n", self.pos)
                line = text[self.pos : self.n if end < 0 else end]
                self.pos = self.n if end < 0 else end + 1
                if (line.lstrip("\t") if strip_tabs else line) == word.value:
                    break
                lines.append(line)
            body = "\n".join(lines)
            word.heredoc = body
            if not word.quoted:  # an unquoted delimiter: the body's $(...) and backticks run
                subs, _ = scan_expansions(body)
                word.subs.extend(subs)

    def _process_substitution(self) -> Word:
        start = self.pos
        inner_start = self.pos + 2
        sub = _Lexer(self.text, inner_start)
        sub.run(until_paren=True)
        self.pos = sub.pos + 1
        return Word(raw=self.text[start : self.pos], value="/dev/fd/63", procsub=True,
                    subs=[self.text[inner_start : sub.pos]])  # fmt: skip

    # -- words -----------------------------------------------------------------------------------------------

    def _word(self) -> Word:
        text = self.text
        start = self.pos
        word = Word(raw="")
        parts: list[str] = []
        unquoted: list[str] = []  # the unquoted characters, to spot brace expansion
        while self.pos < self.n:
            c = text[self.pos]
            if c in _WORD_BREAK:
                break
            if c == "\\":
                if self.pos + 1 >= self.n:
                    self.pos += 1
                    break
                nxt = text[self.pos + 1]
                if nxt != "\n":
                    parts.append(nxt)
                    word.quoted = True
                self.pos += 2
            elif c == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise ShellSyntaxError("a single quote is never closed")
                parts.append(text[self.pos + 1 : end])
                word.quoted = True
                self.pos = end + 1
            elif c == '"':
                self._double_quoted(word, parts)
            elif c == "$":
                self._dollar(word, parts, in_double_quotes=False)
            elif c == "`":
                self._backtick(word, parts)
            else:
                if c in "*?[":
                    word.glob = True
                if c == "~" and self.pos == start:
                    word.tilde = True
                parts.append(c)
                unquoted.append(c)
                self.pos += 1
        word.raw = text[start : self.pos]
        word.value = "".join(parts)
        word.brace = bool(_BRACE_RE.search("".join(unquoted)))
        return word

    def _double_quoted(self, word: Word, parts: list[str]) -> None:
        text = self.text
        word.quoted = True
        self.pos += 1
        while self.pos < self.n:
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return
            if c == "\\" and self.pos + 1 < self.n:
                nxt = text[self.pos + 1]
                if nxt in '$`"\\':
                    parts.append(nxt)
                elif nxt != "\n":
                    parts.append(c + nxt)
                self.pos += 2
            elif c == "$":
                self._dollar(word, parts, in_double_quotes=True)
            elif c == "`":
                self._backtick(word, parts)
            else:
                parts.append(c)
                self.pos += 1
        raise ShellSyntaxError("a double quote is never closed")

    def _dollar(self, word: Word, parts: list[str], *, in_double_quotes: bool) -> None:
        text = self.text
        start = self.pos
        nxt = text[self.pos + 1] if self.pos + 1 < self.n else ""
        if nxt == "(":
            if text.startswith("((", self.pos + 1):
                end = _match_parens(text, self.pos + 1)
                if end is not None and text[end - 2 : end] == "))":
                    body = text[self.pos + 3 : end - 2]
                    stripped = body.strip()
                    if stripped.startswith("(") and stripped.endswith(")"):
                        word.subs.append(stripped[1:-1])  # `$((cmd))` bash may run as a substitution
                    word.subs.extend(scan_expansions(body)[0])
                    word.expands = True
                    parts.append(text[start:end])
                    self.pos = end
                    return
            sub = _Lexer(text, self.pos + 2)
            sub.run(until_paren=True)
            word.subs.append(text[self.pos + 2 : sub.pos])
            word.expands = True
            self.pos = sub.pos + 1
            parts.append(text[start : self.pos])
        elif nxt == "{":
            end = _match_brace(text, self.pos + 1)
            word.subs.extend(scan_expansions(text[self.pos + 2 : end])[0])
            word.expands = True
            self.pos = end + 1
            parts.append(text[start : self.pos])
        elif nxt == "'" and not in_double_quotes:
            decoded, end = _ansi_c(text, self.pos + 2)
            parts.append(decoded)
            word.quoted = True
            self.pos = end
        elif nxt == '"' and not in_double_quotes:
            self.pos += 1
            self._double_quoted(word, parts)
        elif nxt and (nxt.isalnum() or nxt == "_"):
            if nxt.isdigit():
                self.pos += 2
            else:
                match = _NAME_RE.match(text, self.pos + 1)
                assert match is not None
                self.pos = match.end()
            word.expands = True
            parts.append(text[start : self.pos])
        elif nxt and nxt in "@*#?$!-":
            self.pos += 2
            word.expands = True
            parts.append(text[start : self.pos])
        else:
            parts.append("$")
            self.pos += 1

    def _backtick(self, word: Word, parts: list[str]) -> None:
        text = self.text
        pos = self.pos + 1
        inner: list[str] = []
        while pos < self.n and text[pos] != "`":
            if text[pos] == "\\" and pos + 1 < self.n and text[pos + 1] in "`\\$":
                inner.append(text[pos + 1])
                pos += 2
            else:
                inner.append(text[pos])
                pos += 1
        if pos >= self.n:
            raise ShellSyntaxError("a backtick is never closed")
        word.subs.append("".join(inner))
        word.expands = True
        parts.append(text[self.pos : pos + 1])
        self.pos = pos + 1


def _match_parens(text: str, pos: int) -> int | None:
    """Index after the `)` that closes the `(` at `pos`, or None."""
    depth = 0
    for index in range(pos, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _match_brace(text: str, pos: int) -> int:
    """Index of the `}` that closes the `{` at `pos` (quotes skipped)."""
    depth = 0
    index = pos
    while index < len(text):
        c = text[index]
        if c == "\\":
            index += 2
            continue
        if c == "'":
            end = text.find("'", index + 1)
            if end < 0:
                break
            index = end + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ShellSyntaxError("a `${` is never closed")


def _ansi_c(text: str, pos: int) -> tuple[str, int]:
    """Decode a $'...' string starting after the quote; returns (value, index after the closing quote)."""
    out: list[str] = []
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == "'":
            return "".join(out), pos + 1
        if c != "\\" or pos + 1 >= n:
            out.append(c)
            pos += 1
            continue
        e = text[pos + 1]
        pos += 2
        if e in _ANSI_SIMPLE:
            out.append(_ANSI_SIMPLE[e])
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = re.match(f"[0-9A-Fa-f]{{1,{width}}}", text[pos : pos + width])
            if digits:
                out.append(chr(min(int(digits.group(0), 16), 0x10FFFF)))
                pos += len(digits.group(0))
            else:
                out.append("\\" + e)
        elif e in "01234567":
            digits = re.match(r"[0-7]{0,2}", text[pos : pos + 2])
            assert digits is not None
            out.append(chr(int(e + digits.group(0), 8)))
            pos += len(digits.group(0))
        elif e == "c" and pos < n:
            out.append(chr(ord(text[pos]) & 31))
            pos += 1
        else:
            out.append("\\" + e)
    raise ShellSyntaxError("a $'...' string is never closed")


def scan_expansions(text: str) -> tuple[list[str], bool]:
    """The command substitutions in double-quote-like text (a here-doc body, the inside of `${...}`)."""
    subs: list[str] = []
    lexer = _Lexer(text)
    scratch = Word(raw="")
    parts: list[str] = []
    while lexer.pos < lexer.n:
        c = text[lexer.pos]
        if c == "\\":
            lexer.pos += 2
        elif c == "$":
            lexer._dollar(scratch, parts, in_double_quotes=True)
        elif c == "`":
            lexer._backtick(scratch, parts)
        else:
            lexer.pos += 1
    subs.extend(scratch.subs)
    return subs, scratch.expands


def tokenize(text: str) -> list[Token]:
    """Shell tokens of `text`; raises ShellSyntaxError when quoting is unbalanced."""
    return _Lexer(text).run()


@dataclass
class SimpleCommand:
    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word]] = field(default_factory=list)
    piped_in: bool = False

    def text(self) -> str:
        pieces = [w.value for w in self.words]
        pieces.extend(f"{op} {target.value}" for op, target in self.redirects)
        return " ".join(pieces)

    def all_words(self) -> list[Word]:
        return self.words + [target for _, target in self.redirects]


def split_commands(tokens: list[Token]) -> list[SimpleCommand]:
    """Simple commands in order; `(`, `)`, `;`, `&&`, `||`, `&` and newlines all just separate."""
    commands: list[SimpleCommand] = []
    current = SimpleCommand()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if isinstance(token, Word):
            current.words.append(token)
        elif token.text in REDIRECTIONS:
            if index + 1 >= len(tokens) or not isinstance(tokens[index + 1], Word):
                raise ShellSyntaxError(f"the redirection {token.text} has no target")
            target = tokens[index + 1]
            assert isinstance(target, Word)
            current.redirects.append((token.text, target))
            index += 1
        else:
            if current.words or current.redirects:
                commands.append(current)
            current = SimpleCommand(piped_in=token.text in ("|", "|&"))
        index += 1
    if current.words or current.redirects:
        commands.append(current)
    return commands


# ---------------------------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------------------------

MAX_COMMAND_CHARS = 100_000
MAX_SIMPLE_COMMANDS = 300
MAX_NESTING = 8
_VIRTUAL_WORKSPACE = "/<workspace>"

_SHELLS = frozenset({"sh", "bash", "rbash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "yash"})
_INTERPRETER_RE = re.compile(r"(python|pypy|perl|ruby|node|nodejs|php|lua|deno|bun|tclsh|osascript|Rscript)[0-9.]*")
_INLINE_DANGER_RE = re.compile(
    r"\b(system|popen|exec[lv]?p?e?|spawn\w*|subprocess|child_process|rmtree|unlink\w*|remove|rmdir|removedirs|"
    r"kill|fork|eval|__import__|shell_exec|passthru)\b|`"
)
_RESERVED = frozenset({"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "fi", "done", "esac",
                       "in", "[[", "]]", "coproc"})  # fmt: skip
_DANGEROUS_VARIABLES = frozenset({"IFS", "LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "BASH_ENV", "ENV",
                                  "PROMPT_COMMAND", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_EDITOR",
                                  "GIT_PAGER", "GIT_ASKPASS", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
                                  "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_EXEC_PATH", "PERL5OPT",
                                  "PYTHONSTARTUP", "NODE_OPTIONS", "SHELLOPTS", "BASHOPTS"})  # fmt: skip
_ADMIN_COMMANDS = frozenset({"fdisk", "sfdisk", "parted", "wipefs", "mkswap", "swapon", "swapoff", "shutdown",
                             "reboot", "halt", "poweroff", "telinit", "systemctl", "service", "iptables",
                             "ip6tables", "nft", "ufw", "mount", "umount", "insmod", "rmmod", "modprobe",
                             "useradd", "userdel", "usermod", "groupadd", "passwd", "chpasswd", "visudo",
                             "crontab", "at", "batch", "setcap", "chattr", "chroot", "nsenter", "unshare",
                             "systemd-run", "launchctl", "killall", "pkill"})  # fmt: skip
_ROOT_COMMANDS = frozenset({"sudo", "su", "doas", "pkexec", "run0", "sudoedit"})
# Commands whose path arguments are all changed (created, deleted, modified).
_MUTATORS = frozenset({"rm", "rmdir", "unlink", "shred", "touch", "mkdir", "chmod", "chown", "chgrp", "truncate",
                       "mkfifo", "mknod", "ln"})  # fmt: skip
_DESTINATION_COMMANDS = frozenset({"cp", "mv", "install", "rsync"})
_SAFE_WRITE_TARGETS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "-"})
_GIT_SAFE_CONFIG = re.compile(
    r"(color|user|advice|init|log|format|pull|merge\.conflictstyle|core\.quotepath)\b.*", re.IGNORECASE
)
_GIT_EXEC_CONFIG = re.compile(
    r"(hookspath|sshcommand|pager|editor|fsmonitor|askpass|^alias\.|\.command$|^filter\.|textconv|credential|"
    r"\.program$|^include|uploadpack|receivepack|worktree|gitproxy|external|\.tool$|\.cmd$|hook\.)",
    re.IGNORECASE,
)


# Inside the workspace, but writing there changes what aw-tui or git does next: never without the operator.
_BUILTIN_PROTECTED = (
    (".aw-tui", "aw-tui's own configuration and runs"),
    (".git/hooks", "git hooks/config, which run programs"),
    (".git/config", "git hooks/config, which run programs"),
)
MAX_GLOB_MATCHES = 1000  # a pattern is checked against at most this many existing matches


@dataclass
class _State:
    policy: DangerPolicy
    workspace: str  # lexical absolute path (or the virtual one)
    workspace_real: str | None
    cwd: str | None  # where relative paths point now; None: outside the workspace or unknown (after `cd`)
    # Workspace-relative paths no command may change, each with why (aw-tui's config and runs, git hooks, ...).
    protected: tuple[tuple[str, str], ...] = ()
    reasons: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def classify_command(
    text: str,
    policy: DangerPolicy | None = None,
    *,
    workspace: Path | str | None = None,
    protected: Iterable[str] = (),
) -> CommandVerdict:
    """Does this bash command need operator approval, and why. Never raises for any input text.

    `workspace` (the bash tool's working directory) lets writes inside it pass; without it every write to an
    absolute path (except /dev/null and the like) counts as outside. `protected` adds workspace-relative paths
    (the run directory when it lies inside the workspace) that a write needs approval for, like `.aw-tui/`.
    """
    policy = policy or DangerPolicy()
    if workspace is not None:
        lexical = os.path.normpath(os.path.abspath(os.fspath(workspace)))
        real: str | None = os.path.realpath(lexical)
    else:
        lexical, real = _VIRTUAL_WORKSPACE, None
    extra = tuple((entry, f"inside {entry}/, which the worker's tools may not change")
                  for entry in (e.strip("/") for e in protected if isinstance(e, str)) if entry)  # fmt: skip
    state = _State(policy=policy, workspace=lexical, workspace_real=real, cwd=lexical,
                   protected=_BUILTIN_PROTECTED + extra)  # fmt: skip
    if not isinstance(text, str):
        return CommandVerdict(True, ["the command is not text"])
    if len(text) > MAX_COMMAND_CHARS:
        return CommandVerdict(True, [f"the command is longer than {MAX_COMMAND_CHARS} characters, too long to check"])
    if "\x00" in text:
        state.add("the command contains a NUL byte")
    if re.search(r"([\w:.]+)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1\s*&", text):
        state.add("a fork bomb (a function that pipes into itself in the background)")
    match = policy.extra_match(text)
    if match is not None:
        state.add(f"matches the configured dangerous pattern {match.pattern!r}")
    _classify_script(text, state, depth=0)
    return CommandVerdict(bool(state.reasons), list(state.reasons))


def _classify_script(text: str, state: _State, depth: int) -> None:
    if depth > MAX_NESTING:
        state.add(f"nested more than {MAX_NESTING} levels deep (shells within shells), too deep to check")
        return
    try:
        commands = split_commands(tokenize(text))
    except ShellSyntaxError as error:
        state.add(f"cannot be parsed safely: {error}")
        return
    for command in commands:
        state.count += 1
        if state.count > MAX_SIMPLE_COMMANDS:
            state.add(f"more than {MAX_SIMPLE_COMMANDS} commands, too many to check")
            return
        for word in command.all_words():  # substitutions run before the command itself
            for sub in word.subs:
                _classify_script(sub, state, depth + 1)
        _classify_simple(command, state, depth)


def _classify_simple(command: SimpleCommand, state: _State, depth: int) -> None:
    own: list[str] = []
    words = list(command.words)
    while words and _assignment_name(words[0]) is not None:
        name = _assignment_name(words[0])
        if name in _DANGEROUS_VARIABLES or (name or "").startswith("GIT_CONFIG_"):
            own.append(f"sets {name}, which changes what programs run")
        words.pop(0)
    stdin: tuple[str, Word] | None = None
    for op, target in command.redirects:
        if op in ("<<", "<<-"):
            stdin = ("heredoc", target)
        elif op == "<<<":
            stdin = ("string", target)
        elif op == "<":
            stdin = ("file", target)
        elif op in _OUTPUT_REDIRECTIONS:
            if op in (">&", "<&") and (target.value.isdigit() or target.value == "-"):
                continue
            problem = _path_problem(target, state)
            if problem:
                own.append(f"redirects output to {problem}")
    if words:
        _classify_argv(words, state, depth, own, stdin=stdin, piped_in=command.piped_in)
    text = command.text()
    if own and state.policy.is_allowed(text):
        own = []
    match = state.policy.extra_match(text)
    if match is not None:
        own.append(f"`{_short(text)}` matches the configured dangerous pattern {match.pattern!r}")
    for reason in own:
        state.add(reason)


def _assignment_name(word: Word) -> str | None:
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=", word.raw)
    return match.group(1) if match else None


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name_problem(word: Word) -> str | None:
    if word.procsub:
        return f"the command name is a process substitution ({_short(word.raw)})"
    if word.expands:
        return f"the command name is only known at run time ({_short(word.raw)}), so the command cannot be checked"
    if word.brace:
        return f"the command name uses brace expansion ({_short(word.raw)}), so the command cannot be checked"
    if word.glob:
        return f"the command name contains a wildcard ({_short(word.raw)}), so the command cannot be checked"
    return None


@dataclass
class _Options:
    """Parsed command-line options of one command: flags seen, option values, positional words."""

    flags: set[str] = field(default_factory=set)  # "-r", "-f", "--force" (short clusters split)
    values: dict[str, list[Word]] = field(default_factory=dict)
    positionals: list[Word] = field(default_factory=list)
    rest_index: int | None = None  # with stop_at_positional: index of the first positional in args

    def has(self, *names: str) -> bool:
        return any(name in self.flags or name in self.values for name in names)


def _parse_options(
    args: Sequence[Word],
    short_values: str = "",
    long_values: Iterable[str] = (),
    *,
    stop_at_positional: bool = False,
) -> _Options:
    long_values = set(long_values)
    result = _Options()
    index = 0
    while index < len(args):
        word = args[index]
        value = word.value
        if value == "--":
            if stop_at_positional:
                result.rest_index = index + 1
                return result
            result.positionals.extend(args[index + 1 :])
            return result
        if value.startswith("--") and len(value) > 2:
            name, eq, attached = value.partition("=")
            if eq:
                result.values.setdefault(name, []).append(Word(raw=attached, value=attached, expands=word.expands))
            elif name in long_values and index + 1 < len(args):
                result.values.setdefault(name, []).append(args[index + 1])
                index += 1
            else:
                result.flags.add(name)
        elif value.startswith("-") and len(value) > 1 and not word.expands:
            letters = value[1:]
            for offset, letter in enumerate(letters):
                if letter in short_values:
                    attached = letters[offset + 1 :]
                    if attached:
                        result.values.setdefault("-" + letter, []).append(Word(raw=attached, value=attached))
                    elif index + 1 < len(args):
                        result.values.setdefault("-" + letter, []).append(args[index + 1])
                        index += 1
                    else:
                        result.flags.add("-" + letter)
                    break
                result.flags.add("-" + letter)
        else:
            if stop_at_positional:
                result.rest_index = index
                return result
            result.positionals.append(word)
        index += 1
    if stop_at_positional:
        result.rest_index = len(args)
    return result


def _classify_argv(
    words: list[Word],
    state: _State,
    depth: int,
    own: list[str],
    *,
    stdin: tuple[str, Word] | None = None,
    piped_in: bool = False,
    from_xargs: bool = False,
) -> None:
    for _ in range(32):  # wrappers within wrappers
        if not words:
            return
        first = words[0]
        if not first.quoted and first.value in _RESERVED:
            words = words[1:]
            continue
        if not first.quoted and first.value in ("for", "select", "case", "function", "[", "test", "((", "))"):
            return
        problem = _name_problem(first)
        if problem:
            own.append(problem)
            return
        name = posixpath.basename(first.value) if "/" in first.value else first.value
        args = words[1:]
        if name in _ROOT_COMMANDS:
            own.append(f"`{name}` runs a command with root (or another user's) rights")
        unwrapped = _unwrap(name, args, state, depth, own)
        if unwrapped is None:
            _check_command(name, args, state, depth, own, stdin=stdin, piped_in=piped_in, from_xargs=from_xargs)
            return
        words, via_xargs = unwrapped
        from_xargs = from_xargs or via_xargs
    own.append("too many nested command wrappers to check")


def _unwrap(
    name: str, args: list[Word], state: _State, depth: int, own: list[str]
) -> tuple[list[Word], bool] | None:
    """For a wrapper (`env`, `nice`, `xargs`, ...): the wrapped command's words (and whether args come from input).

    None when `name` is not a wrapper. An empty list when the wrapper runs nothing we need to look at.
    """

    def after(short_values: str = "", long_values: Iterable[str] = (), skip_positionals: int = 0) -> list[Word]:
        opts = _parse_options(args, short_values, long_values, stop_at_positional=True)
        rest = args[opts.rest_index or 0 :] if opts.rest_index is not None else []
        return rest[skip_positionals:]

    if name in ("env",):
        opts = _parse_options(args, "uCS", ("--unset", "--chdir", "--split-string"), stop_at_positional=True)
        for script in opts.values.get("-S", []) + opts.values.get("--split-string", []):
            _classify_script(script.value, state, depth + 1)
        rest = args[opts.rest_index or 0 :]
        while rest and "=" in rest[0].value and _NAME_RE.match(rest[0].value.split("=", 1)[0]):
            variable = rest[0].value.split("=", 1)[0]
            if variable in _DANGEROUS_VARIABLES:
                own.append(f"sets {variable}, which changes what programs run")
            rest = rest[1:]
        return rest, False
    if name == "command":
        opts = _parse_options(args, stop_at_positional=True)
        if opts.has("-v", "-V"):
            return [], False  # only looks the name up
        return args[opts.rest_index or 0 :], False
    if name in ("builtin", "nohup", "unbuffer", "caffeinate", "then"):
        return args, False
    if name == "exec":
        return after("a"), False
    if name == "nice":
        return after("n", ("--adjustment",)), False
    if name == "time":
        opts = _parse_options(args, "fo", ("--format", "--output"), stop_at_positional=True)
        for target in opts.values.get("-o", []) + opts.values.get("--output", []):
            problem = _path_problem(target, state)
            if problem:
                own.append(f"writes its report to {problem}")
        return args[opts.rest_index or 0 :], False
    if name == "timeout":
        return after("sk", ("--signal", "--kill-after"), skip_positionals=1), False
    if name == "stdbuf":
        return after("ioe", ("--input", "--output", "--error")), False
    if name == "setsid":
        return after(), False
    if name == "ionice":
        return after("cnpPu", ("--class", "--classdata", "--pid", "--pgid", "--uid")), False
    if name in ("chrt", "taskset"):
        opts = _parse_options(args, "TPD" if name == "chrt" else "", stop_at_positional=True)
        if opts.has("-p", "--pid"):
            return [], False
        return args[opts.rest_index or 0 :][1:], False
    if name in ("sudo", "doas", "pkexec", "run0"):
        rest = after("ugCDhprtUTR" if name == "sudo" else "uC",
                     ("--user", "--group", "--close-from", "--chdir", "--host", "--prompt", "--role", "--type",
                      "--other-user", "--command-timeout", "--chroot"))  # fmt: skip
        return rest, False
    if name == "su":
        opts = _parse_options(args, "csgG", ("--command", "--shell", "--group", "--supp-group"))
        for script in opts.values.get("-c", []) + opts.values.get("--command", []):
            _classify_script(script.value, state, depth + 1)
        return [], False
    if name == "xargs":
        rest = after("aEdILlnPs", ("--arg-file", "--delimiter", "--eof", "--max-lines", "--max-args",
                                   "--max-procs", "--max-chars", "--process-slot-var"))  # fmt: skip
        return (rest or [Word(raw="echo", value="echo")]), True
    if name in ("busybox", "toybox"):
        return args, False
    if name in ("strace", "ltrace"):
        opts = _parse_options(args, "oepsEuabIOPSXA", ("--output",), stop_at_positional=True)
        for target in opts.values.get("-o", []) + opts.values.get("--output", []):
            problem = _path_problem(target, state)
            if problem:
                own.append(f"writes its trace to {problem}")
        return args[opts.rest_index or 0 :], False
    if name == "watch":
        rest = after("nd", ("--interval", "--differences"))
        if rest:
            _classify_script(" ".join(w.value for w in rest), state, depth + 1)
        return [], False
    if name == "flock":
        opts = _parse_options(args, "wEc", ("--timeout", "--conflict-exit-code", "--command"), stop_at_positional=True)
        for script in opts.values.get("-c", []) + opts.values.get("--command", []):
            _classify_script(script.value, state, depth + 1)
        return args[opts.rest_index or 0 :][1:], False
    if name == "script":
        opts = _parse_options(args, "cEItTOB", ("--command", "--echo", "--log-io", "--log-timing"))
        for script in opts.values.get("-c", []) + opts.values.get("--command", []):
            _classify_script(script.value, state, depth + 1)
        return [], False
    if name == "parallel":
        for word in args:
            if word.value in (":::", "::::", ":::+"):
                break
            if not word.value.startswith("-"):
                _classify_script(word.value, state, depth + 1)
        return [], False
    return None


def _check_command(
    name: str,
    args: list[Word],
    state: _State,
    depth: int,
    own: list[str],
    *,
    stdin: tuple[str, Word] | None,
    piped_in: bool,
    from_xargs: bool,
) -> None:
    if from_xargs and (name in _MUTATORS or name in _DESTINATION_COMMANDS or name in ("tee", "dd", "sed")):
        own.append(f"`xargs {name}` changes paths read from its input, which are not known until run time")
    if name in _SHELLS:
        _check_shell(name, args, state, depth, own, stdin=stdin, piped_in=piped_in)
    elif _INTERPRETER_RE.fullmatch(name):
        _check_interpreter(name, args, state, own, stdin=stdin, piped_in=piped_in)
    elif name == "eval":
        own.append("`eval` runs text built at run time, which cannot be checked")
    elif name in ("source", "."):
        if args:
            target = args[0]
            if target.expands or target.procsub:
                own.append(f"`{name}` runs a script only known at run time ({_short(target.raw)})")
            elif _path_problem(target, state):
                own.append(f"`{name}` runs a script outside the workspace ({target.value})")
    elif name == "rm":
        _check_rm(args, state, own)
    elif name == "git":
        _check_git(args, state, depth, own)
    elif name in ("curl", "wget"):
        _check_fetch(name, args, state, own)
    elif name == "dd":
        for word in args:
            if word.value.startswith("of="):
                target = Word(raw=word.raw[3:], value=word.value[3:], expands=word.expands)
                problem = _path_problem(target, state) or (
                    f"{target.value} (a device)" if target.value.startswith("/dev/") else None
                )
                if problem:
                    own.append(f"`dd` writes to {problem}")
    elif name.startswith("mkfs") or name in _ADMIN_COMMANDS:
        own.append(f"`{name}` is a system administration command")
    elif name == "init" and any(w.value in ("0", "6") for w in args):
        own.append("`init` shuts the machine down")
    elif name == "kill":
        targets = [w.value for w in args if not re.fullmatch(r"-[A-Za-z0-9]+", w.value) or w.value == "-1"]
        if any(value in ("1", "-1") for value in targets):
            own.append("`kill` of process 1 or of every process (-1)")
    elif name in ("nc", "ncat", "netcat"):
        opts = _parse_options(args, "epsqwicIOTx", ("--exec", "--sh-exec", "--lua-exec"))
        if opts.has("-l", "--listen", "-e", "-c", "--exec", "--sh-exec", "--lua-exec"):
            own.append(f"`{name}` listens for connections or runs a program for them")
    elif name == "socat":
        if any(re.match(r"(?i)(exec|system):", w.value) for w in args):
            own.append("`socat` runs a program for a connection")
    elif name == "find":
        _check_find(args, state, depth, own)
    elif name == "sed":
        _check_sed(args, state, own)
    elif name in ("awk", "gawk", "mawk", "nawk"):
        _check_awk(name, args, state, own)
    elif name == "tee":
        opts = _parse_options(args)
        for target in opts.positionals:
            problem = _path_problem(target, state)
            if problem:
                own.append(f"`tee` writes to {problem}")
    elif name in _MUTATORS:
        _check_mutator(name, args, state, own)
    elif name in _DESTINATION_COMMANDS:
        _check_destination(name, args, state, own)
    elif name == "tar":
        opts = _parse_options(args, "CfbHKNTVXg", ("--directory", "--file", "--exclude-from", "--files-from"))
        for target in opts.values.get("-C", []) + opts.values.get("--directory", []):
            problem = _path_problem(target, state)
            if problem:
                own.append(f"`tar` works in {problem}")
    elif name == "unzip":
        opts = _parse_options(args, "d")
        for target in opts.values.get("-d", []):
            problem = _path_problem(target, state)
            if problem:
                own.append(f"`unzip` extracts into {problem}")
    elif name == "alias":
        for word in args:
            if "=" in word.value:
                _classify_script(word.value.split("=", 1)[1], state, depth + 1)
    elif name == "trap":
        opts = _parse_options(args, stop_at_positional=True)
        rest = args[opts.rest_index or 0 :]
        if rest:
            _classify_script(rest[0].value, state, depth + 1)
    elif name in ("export", "declare", "typeset", "local", "readonly"):
        for word in args:
            variable = word.value.split("=", 1)[0]
            if "=" in word.value and (variable in _DANGEROUS_VARIABLES or variable.startswith("GIT_CONFIG_")):
                own.append(f"sets {variable}, which changes what programs run")
    elif name in ("cd", "pushd", "popd"):
        _change_directory(name, args, state)


def _check_shell(
    name: str,
    args: list[Word],
    state: _State,
    depth: int,
    own: list[str],
    *,
    stdin: tuple[str, Word] | None,
    piped_in: bool,
) -> None:
    command_mode = reads_stdin = False
    index = 0
    while index < len(args):
        value = args[index].value
        if value == "--":
            index += 1
            break
        if value in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            index += 2
            continue
        if len(value) > 1 and value[0] in "-+" and not value.startswith("--") and not args[index].expands:
            command_mode = command_mode or "c" in value[1:]
            reads_stdin = reads_stdin or "s" in value[1:]
        elif not value.startswith("--"):
            break
        index += 1
    positionals = args[index:]
    if command_mode:
        if positionals:
            _classify_script(positionals[0].value, state, depth + 1)
        return
    if positionals and not reads_stdin:
        if positionals[0].expands or positionals[0].procsub:
            own.append(f"`{name}` runs a script only known at run time ({_short(positionals[0].raw)})")
        return
    if stdin is not None and stdin[0] in ("heredoc", "string"):
        word = stdin[1]
        _classify_script(word.heredoc if stdin[0] == "heredoc" and word.heredoc is not None else word.value,
                         state, depth + 1)  # fmt: skip
        return
    if piped_in:
        own.append(f"pipes into `{name}`, which runs text that cannot be checked (like `curl ... | sh`)")


def _check_interpreter(
    name: str, args: list[Word], state: _State, own: list[str], *, stdin: tuple[str, Word] | None, piped_in: bool
) -> None:
    code: list[str] = []
    script_given = False
    in_place = False
    index = 0
    code_flags = {"python": "c", "pypy": "c", "perl": "eE", "ruby": "e", "node": "ep", "nodejs": "ep", "php": "r",
                  "lua": "e", "bun": "e", "deno": ""}  # fmt: skip
    family = _INTERPRETER_RE.fullmatch(name).group(1)  # type: ignore[union-attr]
    letters = code_flags.get(family, "ce")
    value_flags = {"python": "mWXQ", "pypy": "mWX", "perl": "IMmx", "ruby": "IrCx"}.get(family, "")
    while index < len(args):
        word = args[index]
        value = word.value
        if value in ("--eval", "--print", "--command"):
            if index + 1 < len(args):
                code.append(args[index + 1].value)
            index += 2
            continue
        if value == "-" or not value.startswith("-") or value == "--":
            script_given = value not in ("-", "--")
            break
        cluster = value[1:]
        if family == "perl" and cluster.startswith(("i", "pi", "ni")):
            in_place = True
        consumed_next = False
        for offset, letter in enumerate(cluster):
            if letter in letters:
                attached = cluster[offset + 1 :]
                if attached:
                    code.append(attached)
                elif index + 1 < len(args):
                    code.append(args[index + 1].value)
                    consumed_next = True
                break
            if letter in value_flags:
                consumed_next = not cluster[offset + 1 :]
                break
        index += 2 if consumed_next else 1
    if family == "perl" and in_place:
        for target in args[index:]:
            if not target.value.startswith("-"):
                problem = _path_problem(target, state)
                if problem:
                    own.append(f"`perl -i` edits {problem}")
    if stdin is not None and not code and not script_given:
        if stdin[0] == "heredoc" and stdin[1].heredoc is not None:
            code.append(stdin[1].heredoc)
        elif stdin[0] == "string":
            code.append(stdin[1].value)  # `python3 <<< "code"`
    for snippet in code:
        match = _INLINE_DANGER_RE.search(snippet)
        if match:
            own.append(f"inline {family} code calls `{match.group(0)}`, which can run programs or delete files")
            break
        problem = _inline_write_problem(snippet, state)
        if problem:
            own.append(f"inline {family} code {problem}")
            break
    if not code and not script_given and piped_in:
        own.append(f"pipes into `{name}`, which runs text that cannot be checked (like `curl ... | python`)")


# Calls that create or change files in the languages inline code is written in (Python, Perl, Ruby, Node, PHP, Lua).
_INLINE_WRITE_RE = re.compile(
    r"\b(open|sysopen|fopen|write\w*|appendFile\w*|createWriteStream|put_contents|\w*link\w*|"
    r"rename\w*|replace|copy\w*|move|chmod|chown|mkdirs?|makedirs|truncate|touch|utime|mkfifo|mknod)\b",
    re.IGNORECASE,
)
# Where inline code can get a path that is not written in it: the environment, the home or temp directory.
_INLINE_PATH_SOURCE_RE = re.compile(
    r"\b(expanduser|expandvars|home|homedir|getenv|environ|gettempdir|tmpdir|chdir)\b|process\.env|\$ENV\{|ENV\["
)
_STRING_LITERAL_RE = re.compile(r"""(['"`])((?:\\.|(?!\1)[^\\])*)\1""", re.DOTALL)


def _inline_write_problem(code: str, state: _State) -> str | None:
    """Why inline code (`python -c`, `perl -e`, a here-doc) may write outside the workspace; None if it looks inside.

    A tripwire like the rest: code that writes files and names a path outside the workspace (a string literal
    such as '/etc/x', '../x' or '~/.bashrc', or a path from the environment or the home directory)."""
    if not _INLINE_WRITE_RE.search(code):
        return None
    if state.cwd is None:
        return "opens or changes files after `cd` to a directory outside the workspace or unknown"
    source = _INLINE_PATH_SOURCE_RE.search(code)
    if source:
        return f"opens or changes files at a path from `{source.group(0)}`, which may be outside the workspace"
    for match in _STRING_LITERAL_RE.finditer(code):
        literal = match.group(2).lstrip("+<>| \t")  # Perl's two-argument open: ">/tmp/x", ">>~/.bashrc"
        if not literal or "\n" in literal or not ("/" in literal or literal.startswith("~") or literal == ".."):
            continue
        problem = _path_problem(Word(raw=literal, value=literal, tilde=literal.startswith("~")), state)
        if problem:
            return f"opens or changes files and names {problem}"
    return None


def _check_rm(args: list[Word], state: _State, own: list[str]) -> None:
    opts = _parse_options(args)
    recursive = opts.has("-r", "-R", "--recursive")
    force = opts.has("-f", "--force")
    if recursive and force:
        own.append("`rm -rf` (recursive, forced delete)")
    if opts.has("--no-preserve-root"):
        own.append("`rm --no-preserve-root`")
    for target in opts.positionals:
        problem = _path_problem(target, state)
        if problem:
            own.append(f"`rm` deletes {problem}")
        elif recursive and _is_workspace_root(target, state):
            own.append(f"`rm -r {target.value}` deletes the whole workspace")
        elif recursive and (held := _holds_protected(target, state)):
            own.append(f"`rm -r {_short(target.value)}` deletes {held}/ with it")


def _is_workspace_root(target: Word, state: _State) -> bool:
    if state.cwd is None:
        return True
    value = target.value.rstrip("/") or "/"
    if value in ("*", ".*", "./*"):
        return state.cwd == state.workspace
    path = posixpath.normpath(posixpath.join(state.cwd, value))
    return path == state.workspace or (state.workspace_real is not None and path == state.workspace_real)


def _check_mutator(name: str, args: list[Word], state: _State, own: list[str]) -> None:
    short_values = {"chmod": "", "mkdir": "mZ", "touch": "drt", "truncate": "sr", "chown": "", "chgrp": "",
                    "shred": "nsu", "mknod": "mZ", "mkfifo": "mZ", "ln": "St"}.get(name, "")  # fmt: skip
    long_values = ("--mode", "--date", "--reference", "--size", "--iterations", "--suffix", "--target-directory",
                   "--context", "--from")  # fmt: skip
    opts = _parse_options(args, short_values, long_values)
    targets = list(opts.positionals)
    if name in ("chmod", "chown", "chgrp") and targets and not opts.has("--reference"):
        mode = targets.pop(0)
        recursive = opts.has("-R", "--recursive")
        risky_mode = (re.search(r"(^|[^0-7])[0-7]?777$", mode.value) or "+s" in mode.value
                      or re.fullmatch(r"[4267][0-7]{3}", mode.value))  # fmt: skip
        if name == "chmod" and risky_mode and (recursive or mode.value.endswith("777")):
            own.append(f"`chmod {mode.value}` makes files writable by everyone or setuid")
    for values in (opts.values.get("-t", []), opts.values.get("--target-directory", [])):
        targets.extend(values)
    for target in targets:
        problem = _path_problem(target, state)
        if problem:
            verb = "links" if name == "ln" else "changes"
            own.append(f"`{name}` {verb} {problem}")


def _check_destination(name: str, args: list[Word], state: _State, own: list[str]) -> None:
    opts = _parse_options(args, "tSbm" if name != "rsync" else "eTfB",
                          ("--target-directory", "--suffix", "--mode", "--rsh", "--temp-dir", "--filter",
                           "--exclude", "--include", "--backup-dir"))  # fmt: skip
    explicit = opts.values.get("-t", []) + opts.values.get("--target-directory", [])
    if name == "rsync":
        explicit = []
    destinations = explicit or opts.positionals[-1:]
    if name == "mv":
        destinations = destinations + (opts.positionals if explicit else opts.positionals[:-1])
    for target in destinations:
        if name == "rsync" and re.match(r"^[\w.@-]+:", target.value):
            own.append(f"`rsync` copies to another machine ({target.value})")
            continue
        problem = _path_problem(target, state)
        if problem:
            own.append(f"`{name}` writes to {problem}")


def _check_git(args: list[Word], state: _State, depth: int, own: list[str]) -> None:
    index = 0
    while index < len(args):
        value = args[index].value
        if value in ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"):
            operand = args[index + 1] if index + 1 < len(args) else Word(raw="", value="")
            _check_git_global(value, operand, state, own)
            index += 2
            continue
        if value.startswith("--") and "=" in value:
            flag, _, attached = value.partition("=")
            _check_git_global(flag, Word(raw=attached, value=attached, expands=args[index].expands), state, own)
            index += 1
            continue
        if value.startswith("-"):
            index += 1
            continue
        break
    if index >= len(args):
        return
    sub = args[index].value
    rest = args[index + 1 :]
    values = [w.value for w in rest]
    if args[index].expands:
        own.append(f"the git subcommand is only known at run time ({args[index].raw})")
    elif sub == "push":
        own.append("`git push` publishes commits")
    elif sub == "reset" and "--hard" in values:
        own.append("`git reset --hard` discards uncommitted work")
    elif sub == "clean" and not any(v == "--dry-run" or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", v) for v in values):
        own.append("`git clean` deletes untracked files")
    elif sub in ("filter-branch", "filter-repo"):
        own.append(f"`git {sub}` rewrites history")
    elif sub == "checkout" and any(v in ("-f", "--force") for v in values):
        own.append("`git checkout --force` discards uncommitted work")
    elif sub == "branch" and any(v in ("-D",) for v in values):
        own.append("`git branch -D` deletes a branch that may not be merged")
    elif sub == "stash" and values[:1] in (["drop"], ["clear"]):
        own.append(f"`git stash {values[0]}` deletes stashed work")
    elif sub == "reflog" and values[:1] in (["expire"], ["delete"]):
        own.append("`git reflog expire` deletes recovery points")
    elif sub == "update-ref" and "-d" in values:
        own.append("`git update-ref -d` deletes a ref")
    elif sub == "config":
        if any(v in ("--global", "--system") for v in values):
            own.append("`git config --global/--system` changes configuration outside the workspace")
        keys = [v for v in values if not v.startswith("-")]
        if keys and _GIT_EXEC_CONFIG.search(keys[0]):
            own.append(f"`git config {keys[0]}` sets an option that runs programs")
    elif sub == "submodule" and values[:1] == ["foreach"]:
        script = " ".join(v for v in values[1:] if v != "--recursive")
        _classify_script(script, state, depth + 1)
    elif sub == "bisect" and values[:1] == ["run"]:
        _classify_argv(list(rest[1:]), state, depth + 1, own)
    elif sub == "rebase":
        opts = _parse_options(rest, "xsX", ("--exec", "--strategy", "--onto"))
        for script in opts.values.get("-x", []) + opts.values.get("--exec", []):
            _classify_script(script.value, state, depth + 1)
    elif sub == "clone":
        opts = _parse_options(rest, "obcju", ("--origin", "--branch", "--config", "--jobs", "--upload-pack",
                                              "--template", "--separate-git-dir", "--reference",
                                              "--depth"))  # fmt: skip
        if opts.has("-c", "--config", "-u", "--upload-pack", "--template"):
            own.append("`git clone` with options that can run programs")
        if len(opts.positionals) >= 2:
            problem = _path_problem(opts.positionals[1], state)
            if problem:
                own.append(f"`git clone` writes to {problem}")


def _check_git_global(flag: str, operand: Word, state: _State, own: list[str]) -> None:
    if flag == "-c" or flag == "--config-env":
        if not _GIT_SAFE_CONFIG.fullmatch(operand.value):
            own.append(f"`git -c {operand.value}` can make git run programs")
    elif flag == "--exec-path":
        own.append("`git --exec-path` runs git programs from another directory")
    elif flag in ("-C", "--git-dir", "--work-tree") and _path_problem(operand, state):
        own.append(f"`git {flag} {operand.value}` works on a repository outside the workspace")


def _check_fetch(name: str, args: list[Word], state: _State, own: list[str]) -> None:
    if name == "curl":
        opts = _parse_options(args, "odFTKHuXAerbcmwxyYzCEUQ",
                              ("--output", "--data", "--data-binary", "--data-raw", "--data-urlencode", "--form",
                               "--upload-file", "--config", "--header", "--user", "--request", "--cookie-jar",
                               "--dump-header", "--trace", "--trace-ascii", "--stderr", "--json",
                               "--output-dir"))  # fmt: skip
        outputs = (opts.values.get("-o", []) + opts.values.get("--output", []) + opts.values.get("-c", [])
                   + opts.values.get("--cookie-jar", []) + opts.values.get("--dump-header", [])
                   + opts.values.get("--trace", []) + opts.values.get("--trace-ascii", [])
                   + opts.values.get("--output-dir", []) + opts.values.get("--stderr", []))  # fmt: skip
        uploads = opts.values.get("-T", []) + opts.values.get("--upload-file", [])
        for key in ("-d", "--data", "--data-binary", "--data-urlencode", "-F", "--form", "--json"):
            uploads.extend(w for w in opts.values.get(key, []) if "@" in w.value or "<" in w.value)
        if uploads:
            own.append(f"`curl` uploads a local file ({_short(uploads[0].value)})")
        if opts.has("-K", "--config"):
            own.append("`curl --config` reads options from a file")
    else:
        opts = _parse_options(args, "OoPaieTtwQUBhdDIXl",
                              ("--output-document", "--output-file", "--directory-prefix", "--append-output",
                               "--post-file", "--body-file", "--input-file", "--config"))  # fmt: skip
        outputs = (opts.values.get("-O", []) + opts.values.get("--output-document", []) + opts.values.get("-o", [])
                   + opts.values.get("--output-file", []) + opts.values.get("-P", [])
                   + opts.values.get("--directory-prefix", []) + opts.values.get("-a", [])
                   + opts.values.get("--append-output", []))  # fmt: skip
        uploads = opts.values.get("--post-file", []) + opts.values.get("--body-file", [])
        if uploads:
            own.append(f"`wget` uploads a local file ({_short(uploads[0].value)})")
    for target in outputs:
        problem = _path_problem(target, state)
        if problem:
            own.append(f"`{name}` saves to {problem}")


def _check_find(args: list[Word], state: _State, depth: int, own: list[str]) -> None:
    starts: list[Word] = []
    index = 0
    while index < len(args) and not re.match(r"[-(!)]", args[index].value or "x"):
        starts.append(args[index])
        index += 1
    if not starts:
        starts = [Word(raw=".", value=".")]
    while index < len(args):
        value = args[index].value
        if value in ("-exec", "-execdir", "-ok", "-okdir"):
            end = index + 1
            while end < len(args) and args[end].value not in (";", "+"):
                end += 1
            _check_find_exec(list(args[index + 1 : end]), starts, value.endswith("dir"), state, depth, own)
            index = end + 1
            continue
        if value == "-delete":
            for start in starts:
                problem = _path_problem(start, state)
                if problem:
                    own.append(f"`find -delete` deletes under {problem}")
                elif _is_workspace_root(start, state) and start.value not in (".", "./"):
                    own.append("`find -delete` from the workspace root's parent")
        if value in ("-fprint", "-fprint0", "-fprintf", "-fls") and index + 1 < len(args):
            problem = _path_problem(args[index + 1], state)
            if problem:
                own.append(f"`find {value}` writes to {problem}")
        index += 1


def _check_find_exec(
    command: list[Word], starts: list[Word], in_dir: bool, state: _State, depth: int, own: list[str]
) -> None:
    """Check `find -exec CMD {} ;` once per start directory, with `{}` standing for a path under that start:
    `find .. -exec rm {} +` deletes outside the workspace even though `{}` alone looks relative."""
    saved_cwd = state.cwd
    try:
        for start in starts:
            found = posixpath.join(start.value, "{}")
            words = [
                Word(raw=w.raw, value=w.value.replace("{}", found), quoted=w.quoted, glob=w.glob or start.glob,
                     expands=w.expands or start.expands, brace=w.brace or start.brace, tilde=w.tilde or start.tilde,
                     subs=w.subs)
                if "{}" in w.value else w
                for w in command
            ]  # fmt: skip
            if in_dir:
                # -execdir runs in the found file's directory, somewhere under the start.
                state.cwd = None if _path_problem(start, state) else saved_cwd
            _classify_argv(words, state, depth + 1, own)
            state.cwd = saved_cwd
    finally:
        state.cwd = saved_cwd


_SED_S_FLAGS_RE = re.compile(r"s(.)(?:\\.|(?!\1).)*\1(?:\\.|(?!\1).)*\1([0-9a-zA-Z]*)", re.DOTALL)
# A sed w/W (write a file) or e (run a command) command, after an optional address or range.
_SED_ADDRESS = r"(?:[0-9$]+|/(?:\\.|[^/])*/)"
_SED_COMMAND_RE = re.compile(rf"(?:^|[;\n{{}}])\s*{_SED_ADDRESS}?(?:,{_SED_ADDRESS})?\s*!?\s*([wWe])(?:\s|$)")


def _check_sed(args: list[Word], state: _State, own: list[str]) -> None:
    # -i takes an optional suffix glued to it (-i.bak), never the next word: take it out before parsing.
    in_place = any(not w.expands and (w.value.startswith("--in-place") or re.fullmatch(r"-[nErsuzE]*i.*", w.value))
                   for w in args)  # fmt: skip
    args = [w for w in args if not (w.value.startswith("--in-place") or re.fullmatch(r"-[nErsuzE]*i.*", w.value))]
    opts = _parse_options(args, "efl", ("--expression", "--file", "--line-length"))
    scripts = [w.value for w in opts.values.get("-e", []) + opts.values.get("--expression", [])]
    files = list(opts.positionals)
    if not scripts and not opts.has("-f", "--file") and files:
        scripts.append(files.pop(0).value)
    for script in scripts:
        flags = [m.group(2) for m in _SED_S_FLAGS_RE.finditer(script)]
        if any("w" in f or "e" in f for f in flags) or _SED_COMMAND_RE.search(script):
            own.append("the `sed` script writes files or runs commands (w/W/e)")
            break
    if in_place:
        for target in files:
            problem = _path_problem(target, state)
            if problem:
                own.append(f"`sed -i` edits {problem}")


_AWK_COMMAND_RE = re.compile(r"\bsystem\s*\(|\|\s*\"|\"\s*\|\s*getline|\|&")
_AWK_OUTPUT_RE = re.compile(r">>?\s*\"((?:\\.|[^\"\\])*)\"")


def _check_awk(name: str, args: list[Word], state: _State, own: list[str]) -> None:
    opts = _parse_options(args, "Fvfie", ("--field-separator", "--assign", "--file", "--include", "--source"))
    programs = [w.value for w in opts.values.get("-e", []) + opts.values.get("--source", [])]
    files = list(opts.positionals)
    if not programs and not opts.has("-f", "--file") and files:
        programs.append(files.pop(0).value)
    for program in programs:
        if _AWK_COMMAND_RE.search(program):
            own.append(f"the `{name}` program runs commands (system() or a pipe)")
        for target in _AWK_OUTPUT_RE.findall(program):
            problem = _path_problem(Word(raw=target, value=target, tilde=target.startswith("~")), state)
            if problem:
                own.append(f"the `{name}` program writes to {problem}")
    if any(w.value == "inplace" for w in opts.values.get("-i", []) + opts.values.get("--include", [])):
        for target in files:
            problem = _path_problem(target, state)
            if problem and "=" not in target.value:
                own.append(f"`{name} -i inplace` edits {problem}")


def _change_directory(name: str, args: list[Word], state: _State) -> None:
    if name == "popd":
        state.cwd = None
        return
    opts = _parse_options(args)
    if not opts.positionals:
        state.cwd = None  # home
        return
    target = opts.positionals[0]
    if target.value == "-" or target.expands or target.tilde or target.brace or target.glob or state.cwd is None:
        if target.value.startswith("/") and not (target.expands or target.brace or target.glob):
            state.cwd = _inside(posixpath.normpath(target.value), state)
        else:
            state.cwd = None
        return
    state.cwd = _inside(posixpath.normpath(posixpath.join(state.cwd, target.value)), state)


def _inside(path: str, state: _State) -> str | None:
    """`path` if it is inside the workspace (lexically), else None."""
    if _is_within(path, state.workspace):
        return path
    if state.workspace_real and _is_within(path, state.workspace_real):
        return state.workspace + path[len(state.workspace_real) :]
    return None


def _path_problem(word: Word, state: _State) -> str | None:
    """Why `word`, as a path the command will change, may lie outside the workspace; None when it is inside."""
    value = word.value
    if word.procsub:
        return None
    if word.expands:
        return f"{_short(word.raw)} (a path only known at run time)"
    if word.brace:
        return f"{_short(word.raw)} (a path built by brace expansion)"
    if word.tilde or value.startswith("~"):
        return f"{_short(value)} (outside the workspace)"
    if value in _SAFE_WRITE_TARGETS or value.startswith(("/dev/fd/", "/proc/self/fd/")) or value == "":
        return None
    if value.startswith("/"):
        raw = value
    elif state.cwd is None:
        return f"{_short(value)} (relative to a directory outside the workspace or unknown, after `cd`)"
    else:
        raw = posixpath.join(state.cwd, value)
    path = posixpath.normpath(raw)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    inside = _inside(path, state)
    if inside is None:
        return f"{_short(value)} (outside the workspace)"
    lexical_relative = posixpath.relpath(inside, state.workspace)
    if state.workspace_real is None:
        return _protected_problem(value, {lexical_relative}, state)
    # The kernel resolves `link/..` physically (to the link target's parent), so links are followed on the path as
    # written, before any `..` is folded away: `deep/../x` with deep -> /srv/a/b is /srv/a/x.
    candidates = [raw] + (_glob_matches(raw, state) if word.glob else [])
    for candidate in candidates:
        # Follow links that exist now: `out/x` where out -> /etc is outside.
        existing = candidate.split("/")
        while existing and any(ch in existing[-1] for ch in "*?["):
            existing.pop()
        real = os.path.realpath("/".join(existing) or "/")
        if not _is_within(real, state.workspace_real):
            return f"{_short(value)} (leads outside the workspace through a symbolic link, to {real})"
        # Both names count: a link inside the workspace may lead into .aw-tui/ or the run directory.
        real_relative = os.path.relpath(os.path.realpath(candidate), state.workspace_real)
        problem = _protected_problem(value, {lexical_relative, real_relative}, state)
        if problem:
            return problem
    return None


def _glob_matches(pattern: str, state: _State) -> list[str]:
    """What a path pattern inside the workspace names now, the rest of the path appended to each match.

    bash expands the pattern when it runs: `l*/x` may go through a link `link -> /etc`, `tmp/*/control.jsonl` may
    name the run directory. The part after the last wildcard need not exist yet (`l*/new.txt`)."""
    prefix = next((p for p in (state.workspace, state.workspace_real) if p and _is_within(pattern, p)), None)
    if prefix is None:
        return []
    parts = pattern[len(prefix) :].split("/")
    wild = [index for index, part in enumerate(parts) if any(ch in part for ch in "*?[")]
    if not wild:
        return []
    last = wild[-1]
    head = glob.escape(prefix) + "/".join(parts[: last + 1])
    tail = "/".join(parts[last + 1 :])
    matches = itertools.islice(glob.iglob(head), MAX_GLOB_MATCHES)
    return [posixpath.join(match, tail) if tail else match for match in matches]


def _protected_problem(value: str, relatives: Iterable[str], state: _State) -> str | None:
    for relative in relatives:
        for entry, why in state.protected:
            if relative == entry or relative.startswith(entry + "/"):
                return f"{_short(value)} ({why})"
    return None


def _holds_protected(word: Word, state: _State) -> str | None:
    """The protected entry (e.g. the run directory) that lies inside the directory `word` names, if any."""
    if state.cwd is None or word.expands or word.tilde or word.brace:
        return None
    base = word.value if word.value.startswith("/") else posixpath.join(state.cwd, word.value)
    inside = _inside(posixpath.normpath(base), state)
    if inside is None:
        return None
    relative = posixpath.relpath(inside, state.workspace)
    for entry, _ in state.protected:
        if relative != "." and entry.startswith(relative + "/"):
            return entry
    return None

