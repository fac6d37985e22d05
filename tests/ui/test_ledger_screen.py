"""The ledger screen and the side-by-side comparison, opened from the runs list (Pilot tests on copies of the
bundled sample runs). Expected figures are summed here from the samples' ledger.json, not by the code tested."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aw_tui.model.formatting import format_cost, format_duration, format_money, format_tokens
from aw_tui.store.run import RunWriter
from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.messages import RunsChanged
from aw_tui.ui.screens.ledger import BEST_STYLE, WORST_STYLE, CompareScreen, LedgerScreen
from aw_tui.ui.screens.runs import MARK, RunsScreen
from tests.fixtures.sample_runs import FixedClock, _turn
from tests.ui.ui_kit import LEGACY, NOW, SAMPLE

OURS = SAMPLE  # events.jsonl: newest, first in the list



def app_for(root: Path) -> AwTuiApp:
    return AwTuiApp([root], clock=lambda: NOW, watch=False)


def ledger_json(root: Path, name: str) -> dict:
    return json.loads((root / name / "ledger.json").read_text())


async def wait_until(pilot, condition, what: str):
    for _ in range(150):
        await pilot.pause(0.02)
        value = condition()
        if value:
            return value
    raise AssertionError(f"never: {what}")


async def runs_list(pilot) -> RunsScreen:
    def ready():
        screen = pilot.app.screen
        return screen if isinstance(screen, RunsScreen) and screen.query_one("#runs-table").row_count >= 2 else None

    return await wait_until(pilot, ready, "the runs list shows both runs")


async def select(pilot, screen: RunsScreen, name: str, root: Path) -> None:
    table = screen.query_one("#runs-table")
    table.move_cursor(row=table.get_row_index(str(root / name)))
    await pilot.pause()


async def open_ledger(pilot, root: Path, name: str) -> LedgerScreen:
    screen = await runs_list(pilot)
    await select(pilot, screen, name, root)
    await pilot.press("L")

    def ready():
        top = pilot.app.screen
        return top if isinstance(top, LedgerScreen) and top.opened is not None else None

    return await wait_until(pilot, ready, "the ledger screen opens")


def cell_text(table, row_key: str, column_key: str) -> str:
    return table.get_cell(row_key, column_key).plain


@pytest.mark.parametrize("name", [OURS, LEGACY])
async def test_ledger_screen_shows_every_step_and_the_totals(runs_root, name):
    data = ledger_json(runs_root, name)
    steps = data["steps"]
    async with app_for(runs_root).run_test(size=(160, 48)) as pilot:
        screen = await open_ledger(pilot, runs_root, name)
        table = screen.query_one("#ledger-steps")
        assert table.row_count == len(steps)
        for raw in steps:
            key = f"step-{raw['step']}"
            assert cell_text(table, key, "role") == raw["role"].capitalize()
            assert cell_text(table, key, "model") == raw["model"]
            assert cell_text(table, key, "in") == format_tokens(raw["in"])
            assert cell_text(table, key, "cost") == format_money(raw["cost"])
            assert cell_text(table, key, "wall") == format_duration(raw["wall_ms"])
            for tool, count in raw["tool_counts"].items():
                assert f"{tool}×{count}" in cell_text(table, key, "tools")

        totals = screen.query_one("#ledger-totals")
        assert cell_text(totals, "total", "cost") == format_money(sum(raw["cost"] for raw in steps))
        assert cell_text(totals, "total", "steps") == str(len(steps))
        assert cell_text(totals, "total", "in") == format_tokens(sum(raw["in"] for raw in steps))
        roles = {raw["role"].lower() for raw in steps}
        for role in roles:
            mine = [raw for raw in steps if raw["role"].lower() == role]
            assert cell_text(totals, f"role:{role}", "cost") == format_money(sum(raw["cost"] for raw in mine))
            assert cell_text(totals, f"role:{role}", "steps") == str(len(mine))
        for model in {raw["model"] for raw in steps}:
            mine = [raw for raw in steps if raw["model"] == model]
            assert cell_text(totals, f"model:{model}", "out") == format_tokens(sum(raw["out"] for raw in mine))
            assert cell_text(totals, f"model:{model}", "wall") == format_duration(sum(raw["wall_ms"] for raw in mine))

        timing = screen.query_one("#ledger-timing")
        assert cell_text(timing, "steps", "time") == format_duration(sum(raw["wall_ms"] for raw in steps))
        assert cell_text(timing, "average", "time") == format_duration(sum(raw["wall_ms"] for raw in steps) / len(steps))
        for role in roles:
            wall = sum(raw["wall_ms"] for raw in steps if raw["role"].lower() == role)
            assert cell_text(timing, f"steps:{role}", "time") == format_duration(wall)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(pilot.app.screen, RunsScreen)


async def test_ledger_timing_shows_operator_wait_and_external_time(runs_root):
    async with app_for(runs_root).run_test(size=(160, 48)) as pilot:
        screen = await open_ledger(pilot, runs_root, OURS)
        timing = screen.query_one("#ledger-timing")
        # gate-1 waited from 09:30:21.5 to 09:31:01.5; gate-2 opened with the run's last event.
        assert cell_text(timing, "operator_wait", "activity") == "Operator wait (2 gates)"
        assert cell_text(timing, "operator_wait", "time") == "40.0 s"
        # The run is not live: end-to-end runs from its start to its last event, 09:30:00 -> 09:31:33.6023.
        assert cell_text(timing, "end_to_end", "time") == format_duration(93_602.3)
        await pilot.press("escape")
        screen = await open_ledger(pilot, runs_root, LEGACY)
        timing = screen.query_one("#ledger-timing")
        assert cell_text(timing, "external", "time") == format_duration(47_900)
        assert "bash×14" in str(screen.query_one("#ledger-tool-calls").render())


async def test_ledger_screen_follows_a_live_run(runs_root):
    run_dir = runs_root / OURS
    before = ledger_json(runs_root, OURS)["steps"]
    async with app_for(runs_root).run_test(size=(160, 48)) as pilot:
        screen = await open_ledger(pilot, runs_root, OURS)
        clock = FixedClock(datetime(2026, 3, 14, 9, 40, tzinfo=timezone.utc))
        writer = RunWriter.attach(run_dir, clock=clock)
        try:
            _turn(writer, clock, step=4, role="worker", phase="WORKER_RUN", file_phase="worker_result",
                  model="openai/gpt-5-mini", thinking="low", usage={"input": 1000, "output": 100, "cost": 0.5},
                  tools=[("bash", "pytest", 500.0, None)], report="# more\n", state_after="ANALYST_REVIEWING",
                  seconds=3)  # fmt: skip
            screen.post_message(RunsChanged(frozenset({run_dir})))
            table = screen.query_one("#ledger-steps")
            await wait_until(pilot, lambda: table.row_count == len(before) + 1, "the new step shows")
        finally:
            writer.close()
        assert cell_text(table, "step-4", "cost") == "$0.500"
        assert table.cursor_row == table.row_count - 1  # the cursor was on the last row, so it follows
        totals = screen.query_one("#ledger-totals")
        assert cell_text(totals, "total", "cost") == format_money(sum(raw["cost"] for raw in before) + 0.5)


async def test_marking_two_runs_and_c_compares_their_ledgers(runs_root):
    ours_cost = sum(raw["cost"] for raw in ledger_json(runs_root, OURS)["steps"])
    legacy_cost = sum(raw["cost"] for raw in ledger_json(runs_root, LEGACY)["steps"])
    async with app_for(runs_root).run_test(size=(160, 48)) as pilot:
        screen = await runs_list(pilot)
        await select(pilot, screen, OURS, runs_root)
        await pilot.press("space")
        await select(pilot, screen, LEGACY, runs_root)
        await pilot.press("space")
        table = screen.query_one("#runs-table")
        assert cell_text(table, str(runs_root / OURS), "mark") == MARK
        assert cell_text(table, str(runs_root / LEGACY), "mark") == MARK
        await pilot.press("c")

        def comparison():
            top = pilot.app.screen
            return top if isinstance(top, CompareScreen) and top.query_one("#compare-table").row_count else None

        compare = await wait_until(pilot, comparison, "the comparison opens")
        grid = compare.query_one("#compare-table")
        labels = [str(column.label) for column in grid.columns.values()]
        assert OURS in labels[1] and LEGACY in labels[2]  # in the order marked: ours is the baseline
        assert "Fix the failing duration parser test" in labels[1]

        cheap, dear = grid.get_cell("cost", "run-0"), grid.get_cell("cost", "run-1")
        assert cheap.plain == format_cost(ours_cost, True)
        assert dear.plain.startswith(format_cost(legacy_cost, True))
        # Differences highlighted: the cheaper run green, the dearer red, the second relative to the first.
        assert cheap.style == BEST_STYLE and dear.style == WORST_STYLE
        assert dear.plain.endswith(f"×{legacy_cost / ours_cost:.1f}")
        # Only the ledger from the original extension records steps over an hour: it is the slower one.
        assert grid.get_cell("wall", "run-0").style == BEST_STYLE
        assert grid.get_cell("wall", "run-1").style == WORST_STYLE
        # Both runs took one worker step: nothing to highlight.
        assert grid.get_cell("steps:worker", "run-0").style == "" == grid.get_cell("steps:worker", "run-1").style
        assert {"cost:analyst", "cost:worker", "in:analyst", "out:worker", "cache_read", "steps", "wall:worker"} <= {
            row.value for row in grid.rows
        }

        await pilot.press("escape")
        await pilot.pause()
        assert pilot.app.screen is screen
        # Marks survive a reload of the list; space again unmarks.
        await pilot.press("r")
        await pilot.pause(0.2)
        assert cell_text(table, str(runs_root / OURS), "mark") == MARK
        await pilot.press("space")
        assert cell_text(table, str(runs_root / LEGACY), "mark") != MARK


async def test_compare_with_one_mark_notifies_and_opens_nothing(runs_root):
    async with app_for(runs_root).run_test(size=(160, 48)) as pilot:
        screen = await runs_list(pilot)
        await pilot.press("space", "c")
        await pilot.pause()
        assert pilot.app.screen is screen
        messages = [note.message for note in pilot.app._notifications]
        assert any("1 run marked" in message and "two or more" in message for message in messages)
