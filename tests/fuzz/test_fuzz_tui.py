"""The TUI on run directories written from fuzzed content, driven through Textual's Pilot.

A run is written from hostile events.jsonl and control.jsonl content (or, for a run of the original extension,
a hostile ledger.json), opened in the real app, and browsed: every agent in the tree is selected (each shows its
step report, its placeholder, or why its report cannot be read), a few keys are pressed, the ledger screen is
opened and closed, and the runs list is reached. The app must stay up (Pilot re-raises anything that escaped into
it) and its status line must say there are problems whenever the run's content had any.

Each example starts the app, so there are few of them; the store and reducer fuzz tests cover the content far
more widely.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from aw_tui.store.run import open_run
from aw_tui.ui.screens.ledger import LedgerScreen
from aw_tui.ui.screens.run import RunScreen
from aw_tui.ui.screens.runs import RunsScreen
from aw_tui.ui.widgets.agent_tree import AgentTree
from aw_tui.ui.widgets.status_line import StatusLine

from tests.fuzz.strategies import control_file_bytes, events_file_bytes, ledger_file_bytes
from tests.ui.ui_kit import app_for, wait_for_run_screen

# No shrinking: each try starts the app, and shrinking a failure would take many minutes; the failing example is
# reported as it was found.
FUZZ_TUI = settings(max_examples=6, deadline=None, database=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
RUN_NAME = "aw_20260401_120000_fuzzed"
STEP_REPORT = "# Plan\n\n[bold]not markup[/bold] {0} %s\n\n## Transcript\n\n```\n\x1b[31mred\x1b[0m\n```\n"
MOST_AGENTS_VISITED = 6


def write_run(root: Path, files: dict[str, bytes]) -> Path:
    run = root / "runs" / RUN_NAME
    (run / "steps").mkdir(parents=True)
    (run / "steps" / "0001_analyst_plan.md").write_text(STEP_REPORT)  # what a fuzzed step.report may point at
    for name, content in files.items():
        (run / name).write_bytes(content)
    return run


async def browse(run: Path) -> None:
    expected = open_run(run).state
    async with app_for(run).run_test(size=(120, 36)) as pilot:
        screen = await wait_for_run_screen(pilot)
        tree = screen.query_one(AgentTree)
        for agent_id in list(screen.opened.state.agents)[:MOST_AGENTS_VISITED]:
            node = tree.node_for(agent_id)
            if node is not None:
                tree.move_cursor(node)
                await pilot.pause()
        await pilot.press("down", "t")

        status = screen.query_one(StatusLine).content.plain
        assert RUN_NAME in status and expected.state in status
        assert ("problem(s)" in status) == bool(expected.malformed_lines or expected.problems), status

        await pilot.press("L")
        await pilot.pause()  # the ledger screen reads the run off the event loop, then fills its tables
        assert isinstance(pilot.app.screen, LedgerScreen)
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunScreen)
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunsScreen)
        await pilot.press("L")  # the runs list's ledger key, on the run just left
        await pilot.pause()
        assert isinstance(pilot.app.screen, LedgerScreen)


@FUZZ_TUI
@given(events=events_file_bytes(), control=control_file_bytes())
def test_a_run_with_fuzzed_events_and_commands_can_be_browsed(events, control):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(browse(write_run(Path(tmp), {"events.jsonl": events, "control.jsonl": control})))


@settings(FUZZ_TUI, max_examples=4)
@given(ledger=ledger_file_bytes())
def test_a_seed_run_with_a_fuzzed_ledger_can_be_browsed(ledger):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(browse(write_run(Path(tmp), {"ledger.json": ledger})))
