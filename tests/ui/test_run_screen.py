"""The run screen's keys turn into operator commands on control.jsonl (Pilot tests on a copy of a sample run)."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aw_tui.cli import bundled_samples_root
from aw_tui.store.control import read_commands
from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.screens.run import RunScreen

SAMPLE = "aw_20260314_093000_fix_the_failing_duration_parser_test"
NOW = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    target = tmp_path / "runs" / SAMPLE
    shutil.copytree(bundled_samples_root() / SAMPLE, target)
    return target


def app_for(run_dir: Path) -> AwTuiApp:
    return AwTuiApp([run_dir.parent], open_path=run_dir, clock=lambda: NOW, watch=False)


async def wait_for_run_screen(pilot) -> RunScreen:
    for _ in range(100):
        await pilot.pause(0.02)
        screen = pilot.app.screen
        if isinstance(screen, RunScreen) and screen.opened is not None:
            return screen
    raise AssertionError("the run screen never opened")


async def test_approve_key_queues_an_approval_of_the_selected_gate(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        (gate,) = screen.opened.state.open_gates
        await pilot.press("a")
        await pilot.pause()
    (command,) = read_commands(run_dir)
    assert command.cmd == "approve" and command.gate_id == gate.id and command.source == "operator (tui)"


async def test_reject_asks_for_a_reason_and_sends_it(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        await wait_for_run_screen(pilot)
        await pilot.press("r")
        await pilot.press(*"needs a test", "enter")
        await pilot.pause()
    (command,) = read_commands(run_dir)
    assert command.cmd == "reject" and command.text == "needs a test"


async def test_abort_asks_first_and_no_is_the_default(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        await wait_for_run_screen(pilot)
        await pilot.press("A", "enter")  # enter on the focused default: No
        await pilot.pause()
        assert read_commands(run_dir) == []
        await pilot.press("A", "y")
        await pilot.pause()
    (command,) = read_commands(run_dir)
    assert command.cmd == "abort"
