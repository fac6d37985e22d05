from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from aw_tui.store import atomic
from aw_tui.store.atomic import atomic_write_bytes, atomic_write_text


def _leftover_temp_files(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_writes_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "state.md"
    atomic_write_text(target, "# Analyst/Worker State\nÜ\n")
    assert target.read_text(encoding="utf-8") == "# Analyst/Worker State\nÜ\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _leftover_temp_files(tmp_path) == []


def test_replaces_an_existing_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_bytes(b"old")
    target.chmod(0o600)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_rename_leaves_the_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ledger.json"
    target.write_text("old")

    def refuse(*args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _leftover_temp_files(tmp_path) == []


def test_a_full_disk_surfaces_with_the_target_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ledger.json"
    target.write_text("old")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(OSError) as caught:
        atomic_write_text(target, "new")
    assert caught.value.errno == errno.ENOSPC
    assert str(target) in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert target.read_text() == "old"
    assert _leftover_temp_files(tmp_path) == []


def test_an_interrupt_mid_write_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.md"
    target.write_text("old")

    def interrupted(fd: int, data: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _leftover_temp_files(tmp_path) == []


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "run.json"
    with pytest.raises(FileNotFoundError) as caught:
        atomic_write_text(target, "x")
    assert str(tmp_path / "gone") in str(caught.value)
