"""Folders shipped inside the package (styles, sample runs, the demo), wherever aw-tui is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(package: str) -> Path:
    # find_spec, not importlib.resources: the latter costs milliseconds of imports before the TUI's first frame.
    # It also finds styles/ in a checkout, mapped to aw_tui.styles by the editable install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {package} package is missing from this installation; reinstall aw-tui")
    return Path(next(iter(spec.submodule_search_locations)))
