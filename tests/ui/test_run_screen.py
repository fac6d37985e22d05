"""The run screen's keys turn into operator commands on control.jsonl (Pilot tests on a copy of a sample run)."""

from __future__ import annotations

from aw_tui.store.control import read_commands
from tests.ui.ui_kit import app_for, wait_for_run_screen


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


async def test_an_open_run_is_kept_out_of_full_collections_until_its_screen_closes(run_dir):
    # A big run's objects walked by each full collection stall frames; a closed screen's must be collectable again.
    import gc

    assert gc.get_freeze_count() == 0
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        await wait_for_run_screen(pilot)
        assert gc.get_freeze_count() > 0
        await pilot.press("escape")
        await pilot.pause()
        assert gc.get_freeze_count() == 0
