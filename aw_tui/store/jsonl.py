"""Append-only JSON-lines files (events.jsonl, control.jsonl): appending, crash repair, tailing.

Generic: one JSON object a line, nothing here knows about event or command types.

Writers
    `JsonlAppender` (or the one-shot `append_lines`) writes each batch of lines with one write under
    an exclusive flock, then fsyncs, so appenders in several processes never interleave inside a
    line. Before each batch, and on open, a torn last line left by a crashed writer is moved to
    `<recovered_dir>/<file name>.partial.<byte offset>` and the file is cut back to its last newline.

Readers
    `JsonlTail` reads from a byte offset to EOF, returns one item per complete line, leaves a partial
    last line for the next call, and reports (never raises on) malformed lines. Readers take no lock.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from aw_tui.store.atomic import fsync_directory, raise_with_path

MAX_LINE_BYTES = 10 * 1024 * 1024
_MAX_LINE_MIB = MAX_LINE_BYTES // (1024 * 1024)
_READ_CHUNK_BYTES = 1024 * 1024
_BACKWARD_SCAN_BYTES = 64 * 1024
_NEW_FILE_MODE = 0o644


# --- writing -------------------------------------------------------------------------------------


def encode_line(item: Mapping[str, Any] | str) -> bytes:
    """One JSONL line (with its "\\n") for a JSON object, or for an already-serialised object.

    A Mapping is encoded compactly with ensure_ascii=False. NaN and infinities are refused
    (allow_nan=False) so the file stays standard JSON for every reader. A str must already be one
    JSON object on one line (e.g. pydantic's model_dump_json()); only its shape is checked.
    """
    if isinstance(item, str):
        if "\n" in item or "\r" in item:
            raise ValueError("a pre-serialised JSONL line must not contain a line break")
        stripped = item.strip()
        if not (stripped.startswith("{") and stripped.endswith("}")):
            raise ValueError(f"a pre-serialised JSONL line must be a JSON object, got {item[:40]!r}")
        text = stripped
    elif isinstance(item, Mapping):
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    else:
        raise TypeError(f"a JSONL line is a JSON object (Mapping or str), got {type(item).__name__}")
    # "strict" utf-8 refuses lone surrogates rather than writing bytes no reader can decode.
    return text.encode("utf-8") + b"\n"


@dataclass(frozen=True)
class PartialLineRepair:
    """A torn last line that was cut off `path` and saved, so the caller can log it."""

    path: Path
    offset: int  # where the torn line started (the file's new size)
    size: int  # bytes moved out of the file
    saved_to: Path


class JsonlAppender:
    """Appends whole lines to one JSONL file; usable as a context manager.

    `open()` creates the file if needed (fsyncing its directory) and repairs a torn last line.
    `repairs` lists every repair this appender made, oldest first (the caller logs them).
    `recovered_dir` defaults to `<file's directory>/artifacts/recovered`, the run layout's place.
    """

    def __init__(self, path: Path | str, *, recovered_dir: Path | str | None = None) -> None:
        self.path = Path(path)
        self.recovered_dir = (
            Path(recovered_dir)
            if recovered_dir is not None
            else self.path.parent / "artifacts" / "recovered"
        )
        self.repairs: list[PartialLineRepair] = []
        self._fd: int | None = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def open(self) -> PartialLineRepair | None:
        """Open (idempotent). Returns the repair made on opening, if any. An OSError names this file."""
        if self._fd is not None:
            return None
        try:
            fd = _open_for_append(self.path)
            try:
                with _exclusive_lock(fd):
                    repair = self._repair_torn_line(fd)
            except BaseException:
                os.close(fd)  # a failed open (e.g. in a with-statement) must not leak the descriptor
                raise
        except OSError as error:  # the repair writes too; a full disk's ENOSPC says what failed, not where
            raise_with_path(error, self.path)
        self._fd = fd
        return repair

    def append(self, items: Iterable[Mapping[str, Any] | str]) -> int:
        """Append a batch of objects as lines; returns the byte offset where the batch starts.

        Everything is encoded before anything is written, so a bad item writes nothing. If the
        write or fsync fails the file is cut back to where the batch started and the error
        propagates, naming this file.
        """
        payload = b"".join(encode_line(item) for item in items)
        if self._fd is None:
            self.open()
        fd = self._fd
        assert fd is not None
        try:
            with _exclusive_lock(fd):
                self._repair_torn_line(fd)
                batch_offset = os.fstat(fd).st_size
                if not payload:
                    return batch_offset
                try:
                    remaining = memoryview(payload)
                    while remaining:  # a regular file rarely writes short; the lock keeps retries whole
                        written = os.write(fd, remaining)
                        remaining = remaining[written:]
                    os.fsync(fd)
                except BaseException:
                    try:
                        os.ftruncate(fd, batch_offset)
                    except OSError:
                        pass  # the next open repairs the torn line instead
                    raise
        except OSError as error:  # os.write's ENOSPC says what failed, not where
            raise_with_path(error, self.path)
        return batch_offset

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> JsonlAppender:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _repair_torn_line(self, fd: int) -> PartialLineRepair | None:
        repair = _repair_torn_line(fd, self.path, self.recovered_dir)
        if repair is not None:
            self.repairs.append(repair)
        return repair


def append_lines(
    path: Path | str,
    items: Iterable[Mapping[str, Any] | str],
    *,
    recovered_dir: Path | str | None = None,
) -> list[PartialLineRepair]:
    """One-shot append (e.g. a CLI writing one command); returns the repairs it had to make."""
    with JsonlAppender(path, recovered_dir=recovered_dir) as appender:
        appender.append(items)
        return appender.repairs


def _open_for_append(path: Path) -> int:
    # O_RDWR (not O_WRONLY) because the repair reads the torn tail back with pread.
    flags = os.O_RDWR | os.O_APPEND
    while True:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
        except FileExistsError:
            pass
        else:
            fsync_directory(path.parent)  # the new directory entry must survive a crash too
            return fd
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            continue  # deleted between the two opens: create it after all


class _exclusive_lock:
    """flock(LOCK_EX) for the duration of a with-block. Blocking: holders only write one batch."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def _repair_torn_line(fd: int, path: Path, recovered_dir: Path) -> PartialLineRepair | None:
    """Move bytes after the last newline into recovered_dir, then cut the file there. Call locked."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    line_start = _start_of_last_line(fd, size)
    saved_to = _save_range(fd, line_start, size, recovered_dir, f"{path.name}.partial.{line_start}")
    # Only now that the bytes are durable elsewhere may they leave the file.
    os.ftruncate(fd, line_start)
    os.fsync(fd)
    return PartialLineRepair(path=path, offset=line_start, size=size - line_start, saved_to=saved_to)


def _start_of_last_line(fd: int, size: int) -> int:
    end = size
    while end > 0:
        start = max(0, end - _BACKWARD_SCAN_BYTES)
        newline_at = os.pread(fd, end - start, start).rfind(b"\n")
        if newline_at >= 0:
            return start + newline_at + 1
        end = start
    return 0


def _save_range(fd: int, start: int, end: int, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        # Never overwrite an earlier recovery that happened to start at the same offset.
        target = directory / (name if attempt == 1 else f"{name}.{attempt}")
        try:
            out_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
            break
        except FileExistsError:
            attempt += 1
    try:
        position = start
        while position < end:
            chunk = os.pread(fd, min(_READ_CHUNK_BYTES, end - position), position)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(out_fd, view) :]
            position += len(chunk)
        os.fsync(out_fd)
    finally:
        os.close(out_fd)
    fsync_directory(directory)
    return target


# --- tailing -------------------------------------------------------------------------------------


# Not frozen: a frozen dataclass's __init__ is ~2.5x slower, which is 15% of a 100k-line rebuild.
# Treat records as read-only all the same.
@dataclass(slots=True)
class JsonlRecord:
    """A complete line that decoded to a JSON object."""

    offset: int  # byte offset of the line's first byte
    line_number: int  # 1-based physical line number (blank lines count)
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A complete line that is not a JSON object. Readers count it; they never crash on it."""

    offset: int
    line_number: int
    size: int  # bytes, without the newline
    reason: str


TailItem: TypeAlias = JsonlRecord | MalformedLine


class TailReset(Exception):
    """The file no longer extends what was already read: it shrank below the offset, was replaced
    by another file, was rewritten before the offset, or vanished after being read.

    Raised by `JsonlTail.read_new()`, which then leaves the tail untouched; the caller should
    discard state built from the file, call `tail.reset()` and read again from the start.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}; read it again from the start")
        self.path = path
        self.reason = reason


_JSON_TYPE_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


class JsonlTail:
    """Reads the lines appended to a JSONL file since the last call, by byte offset.

    Each call costs O(bytes since the last complete line): it seeks to the offset and reads
    1 MiB chunks. A partial last line is left unconsumed and read again, whole, next time.
    A line over MAX_LINE_BYTES is streamed past (never held in memory) and reported malformed.
    `offset` and `line_number` can be saved and handed back to resume a tail later.
    """

    def __init__(self, path: Path | str, *, offset: int = 0, line_number: int = 0) -> None:
        self.path = Path(path)
        self._offset = offset
        self._line_number = line_number
        self._file_identity: tuple[int, int] | None = None

    @property
    def offset(self) -> int:
        """Byte offset of the first line not yet consumed."""
        return self._offset

    @property
    def line_number(self) -> int:
        """Number of complete lines consumed so far (blank and malformed lines included)."""
        return self._line_number

    def reset(self) -> None:
        self._offset = 0
        self._line_number = 0
        self._file_identity = None

    def read_new(self) -> list[TailItem]:
        """Items for the complete lines appended since the last call; [] for a missing file.

        Raises TailReset if the file no longer continues what was read (see TailReset).
        """
        try:
            file = open(self.path, "rb", buffering=0)
        except FileNotFoundError:
            if self._offset > 0:
                raise TailReset(self.path, "the file disappeared") from None
            return []
        with file:
            status = os.fstat(file.fileno())
            identity = (status.st_dev, status.st_ino)
            if self._file_identity is None or self._offset == 0:
                self._file_identity = identity
            elif identity != self._file_identity:
                raise TailReset(self.path, "the file was replaced by another file")
            if status.st_size < self._offset:
                raise TailReset(
                    self.path, f"the file shrank to {status.st_size} bytes, below offset {self._offset}"
                )
            if status.st_size == self._offset:
                return []
            if self._offset > 0:
                # Every consumed line ended in "\n"; anything else there means a rewrite.
                file.seek(self._offset - 1)
                if file.read(1) != b"\n":
                    raise TailReset(self.path, f"the byte before offset {self._offset} is not a newline")
            # A large read creates many objects at once; the cyclic GC would walk them repeatedly
            # for nothing (JSON values have no cycles); pausing it makes a big read ~20% faster.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                return self._consume(file)
            finally:
                if gc_was_enabled:
                    gc.enable()

    def _consume(self, file: Any) -> list[TailItem]:
        items: list[TailItem] = []
        append = items.append
        loads = json.loads
        offset = self._offset  # start of the line being assembled
        line_number = self._line_number
        pending: list[bytes] = []  # pieces of a line whose newline has not been seen yet
        pending_size = 0
        pending_too_long = False  # its bytes are being dropped, only counted
        while chunk := file.read(_READ_CHUNK_BYTES):
            first_newline = chunk.find(b"\n")
            if first_newline < 0:
                pending_size += len(chunk)
                if not pending_too_long:
                    if pending_size > MAX_LINE_BYTES:
                        pending_too_long = True
                        pending.clear()
                    else:
                        pending.append(chunk)
                continue

            # The chunk's first line completes whatever was pending.
            line_size = pending_size + first_newline
            line_number += 1
            if pending_too_long or line_size > MAX_LINE_BYTES:
                items.append(
                    MalformedLine(
                        offset,
                        line_number,
                        line_size,
                        f"line of {line_size} bytes exceeds the {_MAX_LINE_MIB} MiB limit",
                    )
                )
            else:
                head = chunk[:first_newline]
                _decode_line(b"".join([*pending, head]) if pending else head, offset, line_number, items)
            offset += line_size + 1
            pending.clear()
            pending_too_long = False

            # The rest of the chunk: whole lines, then the start of the next one.
            lines = chunk[first_newline + 1 :].split(b"\n")
            remainder = lines.pop()
            for line in lines:
                line_number += 1
                # Hot path inlined: a well-formed object line costs one decode and one parse.
                try:
                    value = loads(line.decode("utf-8"))
                except (ValueError, RecursionError):
                    value = None
                if type(value) is dict and _SURROGATE_ESCAPE not in line and _SURROGATE_ESCAPE_UPPER not in line:
                    append(JsonlRecord(offset, line_number, value))
                else:  # blank, malformed, not an object, or a \\uD8xx escape to check: off the hot path
                    _decode_line(line, offset, line_number, items)
                offset += len(line) + 1
            pending_size = len(remainder)
            if remainder:
                pending.append(remainder)

        self._offset = offset
        self._line_number = line_number
        return items


def _decode_line(line: bytes, offset: int, line_number: int, items: list[TailItem]) -> None:
    if not line or line.isspace():
        return  # blank lines are skipped silently
    try:
        value = json.loads(line.decode("utf-8"))  # strict UTF-8; json.loads(bytes) would sniff
    except UnicodeDecodeError as error:
        reason = f"invalid UTF-8 at byte {error.start}"
    except json.JSONDecodeError as error:
        reason = f"invalid JSON at column {error.colno}: {error.msg}"
    except RecursionError:
        reason = "JSON nested too deeply"
    except ValueError as error:
        # Not a syntax error: a number too long to convert (int_max_str_digits), which json.loads refuses too.
        reason = f"invalid JSON: {str(error).split(';')[0]}"
    else:
        if type(value) is not dict:
            reason = f"not a JSON object (got {_JSON_TYPE_NAMES.get(type(value), 'null')})"
        elif (_SURROGATE_ESCAPE in line or _SURROGATE_ESCAPE_UPPER in line) and _holds_lone_surrogate(value):
            reason = "a string holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair): not text"
        else:
            items.append(JsonlRecord(offset, line_number, value))
            return
    items.append(MalformedLine(offset, line_number, len(line), reason))


# JSON may escape half of a UTF-16 surrogate pair on its own ("\\ud800"); json.loads returns it as a str that no
# encoder accepts, so it would fail later, far from here (writing state.md, opening a step report's path). Our
# writer never produces one (encode_line encodes strict UTF-8). Only lines with such an escape are checked.
_SURROGATE_ESCAPE = b"\\ud"
_SURROGATE_ESCAPE_UPPER = b"\\uD"


def _holds_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False  # decoded once already, so NaN and depth are fine; nothing else to find here
    return False


def read_all(path: Path | str) -> list[TailItem]:
    """Every complete line of `path` ([] if missing): a fresh tail's read_new()."""
    return JsonlTail(path).read_new()
