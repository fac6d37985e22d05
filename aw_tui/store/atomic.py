"""Atomic file replacement for the derived files (run.json, state.md, ledger.json, lease.json).

A reader sees either the old content or the new content, never a half-written file, and after a
crash the file is one of the two: temp file in the same directory, write, fsync, rename, fsync dir.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import NoReturn

_NEW_FILE_MODE = 0o644


def fsync_directory(directory: Path | str) -> None:
    """Make a create/rename/unlink inside `directory` durable.

    Filesystems that cannot fsync a directory (EINVAL, e.g. some network mounts) are accepted:
    there is nothing more we can do there, and the data itself was already fsynced.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_all_and_fsync(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write fewer than asked) and make them durable."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data` atomically.

    On any error the temp file is removed, `path` keeps its old content, and the error propagates;
    an OSError without a file name (ENOSPC from write, EIO from fsync) gets `path` attached so the
    message says which file failed. The new file keeps the old file's permissions, else 0644.
    """
    target = Path(path)
    directory = target.parent
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise_with_path(error, target)
    try:
        try:
            os.fchmod(fd, mode)  # mkstemp makes 0600; a derived file should read like any other
            write_all_and_fsync(fd, data)
        finally:
            os.close(fd)
        os.replace(temp_name, target)
    except BaseException as error:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise_with_path(error, target)
        raise
    fsync_directory(directory)


def atomic_write_text(path: Path | str, text: str, *, encoding: str = "utf-8") -> None:
    """Replace `path` with `text` atomically (see atomic_write_bytes). No newline translation."""
    atomic_write_bytes(path, text.encode(encoding))


def raise_with_path(error: OSError, target: Path | str) -> NoReturn:
    """Raise `error`, naming `target` if it names no file: os.write's ENOSPC says what failed, not where.
    An error without an errno (one of ours, whose message already says where) is raised as it is."""
    if error.filename is not None or error.errno is None:
        raise error
    # OSError(errno, strerror, filename) picks the matching subclass (FileNotFoundError, ...).
    raise OSError(error.errno, error.strerror or str(error), str(target)) from error
