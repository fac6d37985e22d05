"""Keys beyond the gate queue: help from the action registry, the command palette, report search, answer,
pause, note, the new-run dialog and quitting with runs driven in this process (Pilot tests on sample runs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aw_tui.store.control import read_commands
from aw_tui.store.run import open_run
from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.screens.help import HelpScreen
from aw_tui.ui.screens.new_run import NewRunDialog
from aw_tui.ui.screens.run import RunScreen
from aw_tui.ui.widgets.report_view import ReportView

from tests.ui.ui_kit import NOW, SAMPLE, app_for, append_event, wait_for_run_screen



async def test_help_lists_the_focused_pane_first_then_the_screen_then_everywhere(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        await wait_for_run_screen(pilot)
        await pilot.press("g")  # focuses the gate queue
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = pilot.app.screen
        assert isinstance(help_screen, HelpScreen)
        from aw_tui.ui.actions import help_sections

        titles = [title for title, _ in help_sections(help_screen.focused_pane_names, help_screen.screen_pane_names)]
        assert titles[0] == "Gate queue (focused)" and titles[-1] == "Everywhere"
        from rich.console import Console

        console = Console(record=True, width=140)
        console.print(help_screen._render_sections())
        body = console.export_text()
        assert "Approve the selected gate" in body and "Start a run" in body
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(pilot.app.screen, RunScreen)


async def test_every_bound_key_of_the_run_screen_is_in_the_palette_and_runs_there(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        commands = {command.title: command for command in pilot.app.get_system_commands(screen)}
        for binding in screen.BINDINGS:
            assert any(title.startswith(f"{binding.description} (") for title in commands), binding.description
        assert "Quit" not in commands  # Textual's quit-at-once is replaced by ours, which asks about live runs
        await commands["Approve (a)"].callback()
        await pilot.pause()
    (command,) = read_commands(run_dir)
    assert command.cmd == "approve" and command.gate_id == "gate-2"


async def test_report_search_counts_and_moves_between_matches(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        step = screen.opened.state.steps[0]
        tree = screen.query_one("#agent-tree")
        tree.move_cursor(next(node for node in _walk(tree.root) if node.data == step.agent))
        await pilot.pause(0.2)
        view = screen.query_one(ReportView)
        assert view.path == step.path
        source = (run_dir / step.path).read_text()
        word = "the"
        await pilot.press("slash", *word)
        await pilot.pause(0.2)
        assert len(view.matches) == source.lower().count(word) > 1
        assert view.border_subtitle == f"match 1 of {len(view.matches)}"
        await pilot.press("enter")  # next match from the search box
        assert view.current == 1
        await pilot.press("escape", "N")  # leave the box; N goes back
        assert view.current == 0 and view.query_text == word
        await pilot.press("escape")  # ends the search; the markdown is back
        await pilot.pause()
        assert view.query_text == "" and view.matches == [] and isinstance(pilot.app.screen, RunScreen)


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


async def test_enter_answers_an_operator_input_gate_with_typed_text(run_dir):
    append_event(run_dir, type="gate.opened", id="gate-3", kind="operator_input", title="Which Python?",
                 body="Which interpreter should the tests use?", options=[], requested_by="analyst-3")  # fmt: skip
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        assert [gate.id for gate in screen.opened.state.open_gates] == ["gate-2", "gate-3"]
        await pilot.press("g", "j", "enter")
        await pilot.press(*"python3.11", "enter")
        await pilot.pause()
    (command,) = read_commands(run_dir)
    assert (command.cmd, command.gate_id, command.text) == ("answer", "gate-3", "python3.11")


async def test_pause_and_note_keys_send_their_commands(run_dir):
    async with app_for(run_dir).run_test(size=(160, 48)) as pilot:
        await wait_for_run_screen(pilot)
        await pilot.press("p", "m", *"try the slow path", "enter")
        await pilot.pause()
    assert [(c.cmd, c.text) for c in read_commands(run_dir)] == [("pause", None), ("note", "try the slow path")]


async def test_new_run_dialog_checks_the_form_then_starts_a_run_with_its_choices(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    workspace = tmp_path / "project"
    workspace.mkdir()
    driven = []

    async def drive(self, writer):  # the engine itself is tested elsewhere; here: what the dialog starts
        driven.append(writer.paths.root)
        writer.close()
        return "RUNNING"

    monkeypatch.setattr(AwTuiApp, "drive", drive)
    app = AwTuiApp([root], clock=lambda: NOW, watch=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        dialog = pilot.app.screen
        assert isinstance(dialog, NewRunDialog)
        await pilot.press("ctrl+s")
        assert "task is empty" in str(dialog.query_one("#new-run-problem").render())
        await pilot.press(*"add a --verbose flag")
        dialog.query_one("#new-run-worker-model").value = "ollama/qwen3:8b"
        dialog.query_one("#new-run-workspace").value = str(tmp_path / "missing")
        await pilot.press("ctrl+s")
        assert "does not exist" in str(dialog.query_one("#new-run-problem").render())
        dialog.query_one("#new-run-workspace").value = str(workspace)
        await pilot.press("ctrl+s")
        for _ in range(100):
            await pilot.pause(0.02)
            if driven:
                break
    (run,) = driven
    state = open_run(run).state
    assert state.task == "add a --verbose flag" and state.workspace == str(workspace.resolve())
    assert state.settings["worker"]["model"] == "ollama/qwen3:8b"
    assert state.settings["analyst"]["thinking"] == "high"  # the config's default, untouched


async def test_quitting_with_a_run_driven_here_can_leave_it_running_headless(tmp_path):
    from aw_tui.engine.launch import DEMO_TASK, prepare_demo, start_run
    from aw_tui.model.settings import RoleSettings, Settings

    workspace, script = prepare_demo(tmp_path)
    settings = Settings(analyst=RoleSettings(model="scripted/analyst"), worker=RoleSettings(model="scripted/worker"))
    writer = start_run(DEMO_TASK, settings, workspace=workspace, runs_root=tmp_path / "runs", script=script)
    run = writer.paths.root
    app = AwTuiApp([run.parent], clock=lambda: NOW, watch=False, start_engine=lambda: writer)
    async with app.run_test(size=(160, 48)) as pilot:
        told_starting = False
        for _ in range(500):  # the demo's first gate: the worker's `rm -rf build`
            await pilot.pause(0.02)
            told_starting |= any(n.title == "Starting the engine" for n in app._notifications)
            if app._engines and open_run(run).state.open_gates:
                break
        assert open_run(run).state.open_gates, "the demo never reached its first gate"
        # While litellm loaded, the still empty run screen said why.
        assert told_starting, "no notification while the engine started"
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("enter")  # the default answer: leave it running headless
        for _ in range(200):
            await pilot.pause(0.02)
            if not app.is_running:
                break
    try:
        _finish_through_the_headless_engine(run)
    finally:
        _stop_engine_holding(run)  # the detached engine must not outlive a failed test


def _stop_engine_holding(run: Path) -> None:
    import os
    import signal

    try:
        pid = json.loads((run / "lease.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass  # no lease, or its engine already ended


def _finish_through_the_headless_engine(run: Path) -> None:
    from aw_tui.model.commands import new_command
    from aw_tui.store.control import send_command

    # The headless engine that took over holds the lease and acts on commands like any other.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and open_run(run).lease_status() != "live":
        time.sleep(0.1)
    opened = open_run(run)
    assert opened.lease_status() == "live"
    approved: list[str] = []
    while time.monotonic() < deadline:  # the redone turn asks again; then the analyst asks to confirm
        state = open_run(run).state
        if state.state == "FINISHED":
            break
        for gate in state.open_gates:
            if gate.id not in approved:
                send_command(opened.paths, new_command("approve", gate_id=gate.id, source="test"))
                approved.append(gate.id)
        time.sleep(0.1)
    state = open_run(run).state
    assert state.state == "FINISHED"
    assert [s.role for s in state.steps] == ["analyst", "worker", "analyst"]
    assert [a.status for a in state.agents.values()].count("interrupted") == 1  # the worker cut off at its gate
    assert "gate" in (run / "artifacts" / "headless.log").read_text()


async def test_runs_list_filter_then_enter_opens_the_matching_run(runs_root):
    from aw_tui.ui.screens.runs import RunsScreen

    async with AwTuiApp([runs_root], clock=lambda: NOW, watch=False).run_test(size=(160, 48)) as pilot:
        runs = pilot.app.screen
        assert isinstance(runs, RunsScreen)
        for _ in range(100):
            await pilot.pause(0.02)
            if len(runs.listings) == 2:
                break
        await pilot.press("slash", *"gpu", "enter")  # the filter box hands the keys back to the table
        from textual.widgets import DataTable

        shown = [key.value.rsplit("/", 1)[-1] for key in runs.query_one(DataTable).rows]
        assert shown == ["aw_20250902_091203_speed_up_gpu_sort"]
        await pilot.press("enter")
        screen = await wait_for_run_screen(pilot)
        assert screen.path.name == "aw_20250902_091203_speed_up_gpu_sort"


async def test_the_runs_list_under_a_run_screen_waits_to_rescan_until_it_is_shown(runs_root, monkeypatch):
    # Rescanning every run on each event of the open run would cost the run screen its frames.
    from aw_tui.store import discovery
    from aw_tui.ui.messages import RunsChanged
    from aw_tui.ui.screens.runs import RunsScreen

    scans: list[int] = []
    real_discover = discovery.discover_runs

    def counted(*args, **kwargs):
        scans.append(1)
        return real_discover(*args, **kwargs)

    monkeypatch.setattr(discovery, "discover_runs", counted)
    run = runs_root / SAMPLE
    async with AwTuiApp([runs_root], open_path=run, clock=lambda: NOW, watch=False).run_test(size=(160, 48)) as pilot:
        await wait_for_run_screen(pilot)
        runs = pilot.app.screen_stack[-2]
        assert isinstance(runs, RunsScreen)
        for _ in range(100):
            if len(runs.listings) == 2 and not runs._discovering:
                break
            await pilot.pause(0.02)
        scanned = len(scans)
        for _ in range(3):
            pilot.app.post_message(RunsChanged(frozenset({run})))
            await pilot.pause(0.05)
        assert len(scans) == scanned
        await pilot.press("escape")
        for _ in range(100):
            if len(scans) > scanned:
                break
            await pilot.pause(0.02)
        assert len(scans) == scanned + 1  # one rescan for the three changes, once the list is shown


async def test_the_runs_list_counts_one_run_in_the_singular(run_dir):
    from aw_tui.ui.screens.runs import RunsScreen

    async with AwTuiApp([run_dir.parent], clock=lambda: NOW, watch=False).run_test(size=(160, 48)) as pilot:
        runs = pilot.app.screen
        assert isinstance(runs, RunsScreen)
        for _ in range(100):
            await pilot.pause(0.02)
            if runs.listings:
                break
        assert runs.sub_title == "1 run"
