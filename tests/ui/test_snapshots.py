"""SVG snapshots of every screen, and of the gate queue with open gates (files in the repo's snapshots/ folder).

Deterministic: a fixed terminal size, a fixed clock (the app's `clock`), TZ=UTC, the default theme, no
animations, no cursor blink, empty config dirs (tests/conftest.py), and copies of the bundled sample runs under
their own names, so no temporary path is drawn. Every key is pressed in `run_before`, which then waits for what
the screen reads off the event loop and stops the cursors blinking on every screen, dialogs included.

Update after an intended change with `pytest tests/ui/test_snapshots.py --snapshot-update`, and look at the SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, TextArea

from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.screens.dialogs import ConfirmDialog, TextPrompt
from aw_tui.ui.screens.help import HelpScreen
from aw_tui.ui.screens.ledger import CompareScreen, LedgerScreen
from aw_tui.ui.screens.new_run import NewRunDialog
from aw_tui.ui.screens.run import RunScreen
from aw_tui.ui.screens.runs import RunsScreen
from aw_tui.ui.widgets.agent_tree import AgentTree
from aw_tui.ui.widgets.gate_queue import GateQueue
from aw_tui.ui.widgets.report_view import ReportView
from tests.ui.ui_kit import LEGACY, NOW, SAMPLE, append_event

pytestmark = pytest.mark.usefixtures("steady_screen")

SIZE = (160, 48)
NARROW = (100, 30)

Before = Callable[[Pilot], Awaitable[None]]



@pytest.fixture
def two_gates(runs_root) -> Path:
    """The sample with a second open gate, an operator_input one, after its confirm_done gate-2."""
    run = runs_root / SAMPLE
    append_event(run, type="gate.opened", id="gate-3", kind="operator_input",
                 title="Which Python should the tests use?",
                 body="The repo pins nothing. The worker can run the suite with python3.11 (the system one) or "
                      "python3.12 (in .venv).\n\nAnswer with the interpreter to use.",
                 options=[], requested_by="analyst-3")  # fmt: skip
    return run


def snapshot_app(root: Path, open_path: Path | None = None) -> AwTuiApp:
    app = AwTuiApp([root], open_path=open_path, clock=lambda: NOW, watch=False)
    app.animation_level = "none"
    app.theme = "textual-dark"  # not TEXTUAL_THEME from the environment
    return app


async def until(pilot: Pilot, ready: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        await pilot.pause(0.02)
        if ready():
            return
    raise AssertionError(f"never got to: {what}")


async def still(pilot: Pilot) -> None:
    """Let pending messages land, then stop every text cursor blinking (a blink is a timer: a coin toss)."""
    await pilot.pause()
    for screen in pilot.app.screen_stack:
        for widget in screen.query(Input):
            widget.cursor_blink = False
        for widget in screen.query(TextArea):
            widget.cursor_blink = False
    await pilot.pause()


async def runs_listed(pilot: Pilot, count: int = 2) -> RunsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await until(pilot, lambda: len(screen.listings) == count and screen.query_one(DataTable).row_count == count,
                f"{count} runs listed")  # fmt: skip
    return screen


async def run_shown(pilot: Pilot) -> RunScreen:
    """The run screen with its run read and drawn (on_mount focuses the tree last)."""

    def ready() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, RunScreen) and screen.opened is not None and screen.query_one(AgentTree).has_focus

    await until(pilot, ready, "the run screen showing its run")
    screen = pilot.app.screen
    assert isinstance(screen, RunScreen)
    return screen


def before(*steps: Callable[[Pilot], Awaitable[object]]) -> Before:
    async def run_before(pilot: Pilot) -> None:
        for step in steps:
            await step(pilot)
        await still(pilot)

    return run_before


def keys(*pressed: str) -> Callable[[Pilot], Awaitable[None]]:
    async def press(pilot: Pilot) -> None:
        await pilot.press(*pressed)
        await pilot.pause()

    return press


def screen_is(kind: type, what: str) -> Callable[[Pilot], Awaitable[None]]:
    async def wait(pilot: Pilot) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, kind), what)

    return wait


# --- the runs list ---------------------------------------------------------------------------------------------


def test_runs_list(snap_compare, runs_root):
    assert snap_compare(snapshot_app(runs_root), terminal_size=SIZE, run_before=before(runs_listed))


def test_runs_list_filtered(snap_compare, runs_root):
    async def one_left(pilot: Pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == 1, "the filter leaving one run")

    assert snap_compare(snapshot_app(runs_root), terminal_size=SIZE,
                        run_before=before(runs_listed, keys("slash", *"gpu"), one_left))  # fmt: skip


def test_runs_list_two_runs_marked(snap_compare, runs_root):
    async def marked(pilot: Pilot) -> None:
        assert len(pilot.app.screen.marked) == 2

    assert snap_compare(snapshot_app(runs_root), terminal_size=SIZE,
                        run_before=before(runs_listed, keys("space", "down", "space"), marked))  # fmt: skip


# --- the run screen --------------------------------------------------------------------------------------------


def test_run_screen_gate_queue_with_two_open_gates(snap_compare, runs_root, two_gates):
    async def second_gate(pilot: Pilot) -> None:
        queue = pilot.app.screen.query_one(GateQueue)
        assert [gate.id for gate in queue.gates] == ["gate-2", "gate-3"]
        assert queue.selected is not None and queue.selected.id == "gate-3"

    # `g` goes to the next waiting gate (gate-3) and focuses the queue: its body shows below the list.
    assert snap_compare(snapshot_app(runs_root, two_gates), terminal_size=SIZE,
                        run_before=before(run_shown, keys("g"), second_gate))  # fmt: skip


def test_run_screen_narrow(snap_compare, runs_root, two_gates):
    assert snap_compare(snapshot_app(runs_root, two_gates), terminal_size=NARROW, run_before=before(run_shown))


def _report_of(step_path: str) -> Callable[[Pilot], Awaitable[None]]:
    async def wait(pilot: Pilot) -> None:
        view = pilot.app.screen.query_one(ReportView)
        await until(pilot, lambda: view.path == step_path, f"the report {step_path} shown")

    return wait


def test_run_screen_finished_step_report(snap_compare, runs_root):
    # The tree starts on the newest agent (analyst-3); two up is the worker of step 2, past step 3's phase row.
    assert snap_compare(snapshot_app(runs_root, runs_root / SAMPLE), terminal_size=SIZE,
                        run_before=before(run_shown, keys("up", "up"),
                                          _report_of("steps/0002_worker_result.md")))  # fmt: skip


def test_run_screen_report_search(snap_compare, runs_root):
    async def found(pilot: Pilot) -> None:
        view = pilot.app.screen.query_one(ReportView)
        await until(pilot, lambda: len(view.matches) > 1, "matches of the search")

    assert snap_compare(snapshot_app(runs_root, runs_root / SAMPLE), terminal_size=SIZE,
                        run_before=before(run_shown, _report_of("steps/0003_analyst_review.md"),
                                          keys("slash", *"none"), found))  # fmt: skip


def test_run_screen_legacy_read_only(snap_compare, runs_root):
    assert snap_compare(snapshot_app(runs_root, runs_root / LEGACY), terminal_size=SIZE, run_before=before(run_shown))


# --- dialogs and the help screen -------------------------------------------------------------------------------


def test_help_on_the_run_screen_gate_queue_focused(snap_compare, runs_root, two_gates):
    assert snap_compare(snapshot_app(runs_root, two_gates), terminal_size=SIZE,
                        run_before=before(run_shown, keys("g", "question_mark"),
                                          screen_is(HelpScreen, "the help screen")))  # fmt: skip


def test_abort_confirmation(snap_compare, runs_root):
    assert snap_compare(snapshot_app(runs_root, runs_root / SAMPLE), terminal_size=SIZE,
                        run_before=before(run_shown, keys("A"),
                                          screen_is(ConfirmDialog, "the abort question")))  # fmt: skip


def test_reject_reason_prompt(snap_compare, runs_root):
    assert snap_compare(snapshot_app(runs_root, runs_root / SAMPLE), terminal_size=SIZE,
                        run_before=before(run_shown, keys("r"),
                                          screen_is(TextPrompt, "the reject prompt")))  # fmt: skip


def test_new_run_dialog(snap_compare, runs_root, monkeypatch):
    # The workspace field starts at the working directory: `/` reads the same on every machine (a temporary
    # directory would not), and holds no .aw-tui/ project config to change the models shown.
    monkeypatch.chdir("/")
    assert snap_compare(snapshot_app(runs_root), terminal_size=SIZE,
                        run_before=before(runs_listed, keys("n"),
                                          screen_is(NewRunDialog, "the new-run dialog")))  # fmt: skip


# --- ledgers ---------------------------------------------------------------------------------------------------


async def _ledger_filled(pilot: Pilot) -> None:
    def ready() -> bool:
        screen = pilot.app.screen
        return (isinstance(screen, LedgerScreen) and screen.opened is not None
                and screen.query_one("#ledger-steps", DataTable).has_focus)  # fmt: skip

    await until(pilot, ready, "the ledger filled")


def test_ledger_screen(snap_compare, runs_root):
    assert snap_compare(snapshot_app(runs_root, runs_root / SAMPLE), terminal_size=SIZE,
                        run_before=before(run_shown, keys("L"), _ledger_filled))  # fmt: skip


def test_compare_screen(snap_compare, runs_root):
    async def compared(pilot: Pilot) -> None:
        def ready() -> bool:
            screen = pilot.app.screen
            return isinstance(screen, CompareScreen) and screen.query_one(DataTable).has_focus

        await until(pilot, ready, "the comparison filled")

    assert snap_compare(snapshot_app(runs_root), terminal_size=SIZE,
                        run_before=before(runs_listed, keys("space", "down", "space", "c"), compared))  # fmt: skip
