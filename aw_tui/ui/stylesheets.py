"""Where the app's TCSS files are: styles/ in a checkout, aw_tui/styles inside the installed wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def stylesheet(name: str) -> Path:
    # find_spec, not importlib.resources: the latter costs milliseconds of imports before the first frame.
    spec = importlib.util.find_spec("aw_tui.styles")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the aw_tui.styles package is missing from this installation")
    return Path(next(iter(spec.submodule_search_locations))) / name
