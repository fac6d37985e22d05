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
        await pilot.pause()  # the freeze waits for the tree's first frame
        assert gc.get_freeze_count() > 0
        await pilot.press("escape")
        await pilot.pause()
        assert gc.get_freeze_count() == 0


async def test_the_report_follows_the_cursor_once_it_rests_not_every_line_it_passes(run_dir, monkeypatch):
    from aw_tui.ui.widgets.agent_tree import AgentTree
    from aw_tui.ui.widgets.report_view import ReportView

    shown: list[str | None] = []
    real_show = ReportView.show

    async def counted(self, paths, relative, *args, **kwargs):
        shown.append(relative)
        return await real_show(self, paths, relative, *args, **kwargs)

    monkeypatch.setattr(ReportView, "show", counted)
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        await pilot.pause(0.2)
        tree = screen.query_one(AgentTree)
        shown.clear()
        for _ in range(2):  # as a held key does: from analyst-3 past step 3's phase row to step 2's worker
            tree.action_cursor_up()
        await pilot.pause(0.3)
        step = next(s for s in screen.opened.state.steps if s.agent == tree.selected_agent)
        assert shown == [step.path]
        assert screen.query_one(ReportView).path == step.path
