"""Helpers for Pilot tests: the app on a sample run with a fixed clock, and waiting for the run screen."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.screens.run import RunScreen

SAMPLE = "aw_20260314_093000_fix_the_failing_duration_parser_test"  # events.jsonl, with an open gate
LEGACY = "aw_20250902_091203_speed_up_gpu_sort"  # written by the original extension: read-only
NOW = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)


def app_for(run_dir: Path) -> AwTuiApp:
    return AwTuiApp([run_dir.parent], open_path=run_dir, clock=lambda: NOW, watch=False)


async def wait_for_run_screen(pilot) -> RunScreen:
    for _ in range(100):
        await pilot.pause(0.02)
        screen = pilot.app.screen
        if isinstance(screen, RunScreen) and screen.opened is not None:
            return screen
    raise AssertionError("the run screen never opened")


def append_event(run: Path, **fields) -> None:
    """Append one event line the way the engine would (the next seq, whole line)."""
    lines = (run / "events.jsonl").read_text().splitlines()
    seq = json.loads(lines[-1])["seq"] + 1
    with open(run / "events.jsonl", "a") as handle:
        handle.write(json.dumps({"seq": seq, "ts": "2026-03-14T09:40:00Z", **fields}) + "\n")
