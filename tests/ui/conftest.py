"""Shared by the Pilot tests: a writable copy of the bundled sample run that has an open gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aw_tui.cli import bundled_samples_root
from tests.ui.ui_kit import LEGACY, SAMPLE


@pytest.fixture
def runs_root(tmp_path) -> Path:
    """Both bundled samples, copied (tests may add events) under their own names."""
    root = tmp_path / "runs"
    for name in (SAMPLE, LEGACY):
        shutil.copytree(bundled_samples_root() / name, root / name)
    return root


@pytest.fixture
def run_dir(tmp_path) -> Path:
    target = tmp_path / "runs" / SAMPLE
    shutil.copytree(bundled_samples_root() / SAMPLE, target)
    return target


# --- snapshot tests (tests/ui/test_snapshots.py) --------------------------------------------------------------

import time

import pytest_textual_snapshot
from pytest_textual_snapshot import SVGImageExtension

SNAPSHOTS_DIR = Path(__file__).resolve().parents[2] / "snapshots"


class RepoSnapshots(SVGImageExtension):
    """SVG snapshots in the repo's top-level snapshots/<test file>/, not in __snapshots__/ beside the test."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(SNAPSHOTS_DIR / test_location.basename)


@pytest.fixture
def snapshot(snapshot, monkeypatch):
    # snap_compare picks its extension by the module-level name SVGImageExtension when it is set up, which is
    # after this fixture (it depends on `snapshot`). A subclass rather than a patched classmethod: syrupy asks
    # the extension where the snapshots are again at the end of the session, after the monkeypatch is undone.
    monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", RepoSnapshots)
    return snapshot


@pytest.fixture
def steady_screen(monkeypatch):
    """What a screenshot must not depend on: the timezone and a NO_COLOR left in the developer's environment.
    (The clock, the size, the theme and the cursor blink are set per app in tests/ui/test_snapshots.py.)"""
    monkeypatch.delenv("NO_COLOR", raising=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()
