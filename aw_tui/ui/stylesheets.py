"""The app's TCSS files: styles/ in a checkout, aw_tui/styles inside the installed wheel."""

from __future__ import annotations

from pathlib import Path

from aw_tui.packaged import package_dir


def stylesheet(name: str) -> Path:
    return package_dir("aw_tui.styles") / name
