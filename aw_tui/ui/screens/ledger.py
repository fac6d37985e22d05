"""The ledger of one run (steps, totals by role and by model, timing) and several runs' ledgers side by side.

Both screens read their runs off the event loop and follow them while they run: the app forwards RunsChanged,
and a screen whose run is among the changed ones folds the new events in and fills its tables again.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from aw_tui.model.formatting import DASH, counted, format_cost, format_duration, format_tokens, one_line
from aw_tui.model.ledger import (
    Ledger,
    LedgerStep,
    StepTime,
    Usage,
    compare_ledgers,
    format_ratio,
    operator_wait_ms,
    role_label,
    share,
    step_time_by_model,
    step_time_by_role,
    step_time_total,
    timing_summary,
)
from aw_tui.store.run import OpenedRun, RunError, open_run
from aw_tui.ui.actions import bindings
from aw_tui.ui.messages import RunsChanged
from aw_tui.ui.stylesheets import stylesheet

BEST_STYLE = "bold green"
WORST_STYLE = "bold red"


def run_end(opened: OpenedRun, now: datetime) -> datetime | None:
    """Where a run's clock stops: now while an engine holds its lease, else its last event (as `aw-tui ledger`)."""
    live = not opened.legacy and opened.lease_status(now) == "live"
    return now if live else opened.state.last_event_at


def _right(text: str, style: str = "") -> Text:
    return Text(text, style=style, justify="right")


def _tools_cell(step: LedgerStep) -> Text:
    calls = ", ".join(f"{name}×{count}" for name, count in sorted(step.tool_counts.items(), key=lambda kv: -kv[1]))
    cell = Text(calls or DASH, style="" if calls else "dim")
    if step.tool_errors:
        cell.append(f"  {counted(step.tool_errors, 'error')}", style="red")
    return cell


class _FollowsRuns(Screen[None]):
    """A screen showing runs it re-reads when the watcher says they changed (one catch-up at a time)."""

    CSS_PATH = [stylesheet("ledger.tcss")]

    def __init__(self) -> None:
        super().__init__()
        self.opened_runs: list[OpenedRun] = []
        self._changed: set[Path] = set()
        self._catching_up = False

    def on_runs_changed(self, message: RunsChanged) -> None:
        mine = {opened.paths.root.resolve() for opened in self.opened_runs}
        touched = {Path(p).resolve() for p in message.runs} & mine
        if touched:
            self._changed |= touched
            if not self._catching_up:
                self.catch_up()

    @work(group="ledger-catch-up")
    async def catch_up(self) -> None:
        # An OpenedRun's reader is not shared between threads: one refresh at a time; changes during it loop again.
        self._catching_up = True
        try:
            while self._changed:
                changed, self._changed = self._changed, set()
                refreshed = False
                for opened in self.opened_runs:
                    if opened.paths.root.resolve() in changed:
                        refreshed = await asyncio.to_thread(opened.refresh) or refreshed
                if refreshed:
                    await self.show_runs()
        finally:
            self._catching_up = False

    async def show_runs(self) -> None:
        raise NotImplementedError

    def action_back(self) -> None:
        self.app.pop_screen()


class LedgerScreen(_FollowsRuns):
    """One run's ledger: a row per finished step, totals by role and by model, and where the time went."""

    # The help screen and the palette list the keys of these panes (aw_tui/ui/actions.py).
    SCREEN_PANES = ("ledger",)
    BINDINGS = bindings(*SCREEN_PANES)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._timing_rows: list[tuple[str, str, str, str]] = []

    @property
    def opened(self) -> OpenedRun | None:
        return self.opened_runs[0] if self.opened_runs else None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="ledger-main"):
            yield DataTable(id="ledger-steps", cursor_type="row", zebra_stripes=True)
            yield Static(id="ledger-empty", classes="hidden")
            with Horizontal(id="ledger-lower"):
                yield DataTable(id="ledger-totals", cursor_type="row", zebra_stripes=True)
                with Vertical(id="ledger-timing-box"):
                    yield DataTable(id="ledger-timing", cursor_type="row")
                    yield Static(id="ledger-tool-calls")
        yield Footer()

    async def on_mount(self) -> None:
        steps = self.query_one("#ledger-steps", DataTable)
        steps.border_title = "Steps"
        for label, key in (("Step", "step"), ("Role", "role"), ("Phase", "phase"), ("Model", "model"), ("In", "in"),
                           ("Out", "out"), ("Cache read", "cache_read"), ("Cache write", "cache_write"),
                           ("Cost", "cost"), ("Wall", "wall"), ("Tools", "tools")):  # fmt: skip
            steps.add_column(label, key=key)
        totals = self.query_one("#ledger-totals", DataTable)
        totals.border_title = "Totals by role and by model"
        for label, key in (("By", "by"), ("Name", "name"), ("Steps", "steps"), ("In", "in"), ("Out", "out"),
                           ("Cache read", "cache_read"), ("Cache write", "cache_write"), ("Cost", "cost"),
                           ("Wall", "wall")):  # fmt: skip
            totals.add_column(label, key=key)
        timing = self.query_one("#ledger-timing", DataTable)
        timing.border_title = "Timing"
        for label, key in (("Activity", "activity"), ("Time", "time"), ("Share", "share")):
            timing.add_column(label, key=key)
        try:
            opened = await asyncio.to_thread(open_run, self.path)
        except RunError as error:
            self.notify(str(error), severity="error")
            self.app.pop_screen()
            return
        self.opened_runs = [opened]
        self.title = f"Ledger: {opened.state.title or self.path.name}"
        self.sub_title = self.path.name
        await self.show_runs()
        # End-to-end time and open gates' wait grow with the clock while the run is live, even with no event.
        self.set_interval(1.0, self._show_timing_now)
        steps.focus()

    async def show_runs(self) -> None:
        opened = self.opened
        if opened is None:
            return
        now = self.app.now()  # type: ignore[attr-defined]
        ended = await asyncio.to_thread(run_end, opened, now)
        ledger = opened.state.ledger
        self._fill_steps(ledger)
        self._fill_totals(ledger)
        self._fill_timing(opened, ended)

    async def _show_timing_now(self) -> None:
        opened = self.opened
        if opened is not None:
            now = self.app.now()  # type: ignore[attr-defined]
            self._fill_timing(opened, await asyncio.to_thread(run_end, opened, now))

    def _fill_steps(self, ledger: Ledger) -> None:
        table = self.query_one("#ledger-steps", DataTable)
        # Keep the operator's place; one on the last row follows new steps as they finish.
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        cursor = table.cursor_row
        table.clear()
        repeats: dict[int, int] = {}
        for step in ledger.steps:
            usage = step.usage
            # A step number met again (a replayed or hand-edited log) still gets a row, under a key of its own.
            repeat = repeats[step.step] = repeats.get(step.step, 0) + 1
            key = f"step-{step.step}" if repeat == 1 else f"step-{step.step}.{repeat}"
            table.add_row(
                _right(f"{step.step:04d}"), Text(role_label(step.role)), Text(step.phase), Text(step.model),
                _right(format_tokens(usage.input)), _right(format_tokens(usage.output)),
                _right(format_tokens(usage.cache_read)), _right(format_tokens(usage.cache_write)),
                _right(format_cost(usage.cost, usage.cost_known)), _right(format_duration(step.wall_ms)),
                _tools_cell(step), key=key,
            )  # fmt: skip
        if table.row_count:
            table.move_cursor(row=table.row_count - 1 if following else min(cursor, table.row_count - 1))
        table.border_title = f"Steps ({len(ledger.steps)})"
        empty = self.query_one("#ledger-empty", Static)
        empty.set_class(bool(ledger.steps), "hidden")
        if not ledger.steps:
            empty.update("No finished step yet." if not ledger.usage else
                         "No step entries in this ledger; the totals below come from its per-model totals.")  # fmt: skip

    def _fill_totals(self, ledger: Ledger) -> None:
        table = self.query_one("#ledger-totals", DataTable)
        table.clear()
        time_by_role = step_time_by_role(ledger)
        for role, usage in ledger.by_role().items():
            table.add_row(*self._totals_cells("role", role_label(role), usage, time_by_role.get(role.lower())),
                          key=f"role:{role}")  # fmt: skip
        time_by_model = step_time_by_model(ledger)
        for model, usage in sorted(ledger.by_model().items()):
            table.add_row(*self._totals_cells("model", model, usage, time_by_model.get(model)), key=f"model:{model}")
        table.add_row(*self._totals_cells("", "Total", ledger.total, step_time_total(ledger), style="bold"),
                      key="total")  # fmt: skip

    @staticmethod
    def _totals_cells(by: str, name: str, usage: Usage, time: StepTime | None, style: str = "") -> list[Text]:
        return [
            Text(by, style="dim"), Text(name, style=style),
            _right(str(time.steps) if time else DASH, style), _right(format_tokens(usage.input), style),
            _right(format_tokens(usage.output), style), _right(format_tokens(usage.cache_read), style),
            _right(format_tokens(usage.cache_write), style), _right(format_cost(usage.cost, usage.cost_known), style),
            _right(format_duration(time.wall_ms) if time and time.wall_ms > 0 else DASH, style),
        ]  # fmt: skip

    def _fill_timing(self, opened: OpenedRun, ended: datetime | None) -> None:
        state = opened.state
        ledger = state.ledger
        summary = timing_summary(ledger, state.created_at, ended)
        total_ms = summary.end_to_end_ms
        steps = step_time_total(ledger)
        rows: list[tuple[str, str, str, str]] = []  # (key, activity, time, share)
        (end_to_end, *breakdown) = summary.rows()
        rows.append(("end_to_end", *end_to_end))
        rows.append(("steps", f"Steps ({steps.steps})", format_duration(steps.wall_ms), share(steps.wall_ms, total_ms)))
        for role, time in step_time_by_role(ledger).items():
            label = f"  {role_label(role)} ({counted(time.steps, 'step')})"
            rows.append((f"steps:{role}", label, format_duration(time.wall_ms), share(time.wall_ms, total_ms)))
        average = format_duration(steps.average_wall_ms) if steps.steps else DASH
        rows.append(("average", "Average per step", average, ""))
        gates = list(state.gates.values())
        if gates:
            wait = operator_wait_ms([(gate.opened_at, gate.resolved_at) for gate in gates], ended)
            label = f"Operator wait ({counted(len(gates), 'gate')})"
            rows.append(("operator_wait", label, format_duration(wait), share(wait, total_ms)))
        if steps.external_ms > 0:
            rows.append(("external", "External analyst", format_duration(steps.external_ms),
                         share(steps.external_ms, total_ms)))  # fmt: skip
        rows += [(f"activity:{index}", *row) for index, row in enumerate(breakdown)]
        table = self.query_one("#ledger-timing", DataTable)
        # Called every second: leave the table (and the operator's cursor in it) alone when nothing moved.
        if rows != self._timing_rows:
            self._timing_rows = rows
            cursor = table.cursor_row
            table.clear()
            for key, activity, time, percent in rows:
                table.add_row(Text(activity), _right(time), _right(percent, "dim"), key=key)
            table.move_cursor(row=min(cursor, table.row_count - 1))
        calls = summary.tool_calls_line()
        self.query_one("#ledger-tool-calls", Static).update(f"Tool calls  {calls}" if calls else "")


class CompareScreen(_FollowsRuns):
    """Two or more runs' ledgers column by column; per row the lowest value green, the highest red, and each
    run after the first with its value relative to the first run's (×1.8)."""

    SCREEN_PANES = ("ledger",)
    BINDINGS = bindings(*SCREEN_PANES)

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = [Path(path) for path in paths]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True, header_height=2)
        yield Static(id="compare-legend")
        yield Footer()

    async def on_mount(self) -> None:
        self.title = "Compare ledgers"
        outcomes = await asyncio.gather(*(asyncio.to_thread(open_run, path) for path in self.paths),
                                        return_exceptions=True)  # fmt: skip
        for path, outcome in zip(self.paths, outcomes):
            if isinstance(outcome, RunError):
                self.notify(f"{path.name}: {outcome}", severity="error")
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self.opened_runs.append(outcome)
        if len(self.opened_runs) < 2:
            self.notify("Comparing needs two or more readable runs", severity="error")
            self.app.pop_screen()
            return
        self.sub_title = f"{len(self.opened_runs)} runs; ratios are relative to the first"
        await self.show_runs()
        self.query_one(DataTable).focus()

    async def show_runs(self) -> None:
        now = self.app.now()  # type: ignore[attr-defined]
        ends = await asyncio.gather(*(asyncio.to_thread(run_end, opened, now) for opened in self.opened_runs))
        end_to_end: list[float | None] = []
        for opened, ended in zip(self.opened_runs, ends):
            started = opened.state.created_at
            if started is None or ended is None:
                end_to_end.append(None)
            else:
                end_to_end.append(max(0.0, (ended - started).total_seconds() * 1000))
        rows = compare_ledgers([opened.state.ledger for opened in self.opened_runs], end_to_end)
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        table.add_column("", key="measure")
        for index, opened in enumerate(self.opened_runs):
            # The run's name identifies it (kept whole unless absurd); its title is a reminder, so it is cut.
            name = one_line(opened.paths.root.name, 64)
            title = one_line(opened.state.title or "", max(32, len(name)))
            table.add_column(Text.assemble((name, "bold"), "\n", (title, "dim")), key=f"run-{index}")
        for row in rows:
            cells: list[Text] = [Text(row.label, style="bold" if ":" not in row.key else "")]
            best, worst = row.best, row.worst
            for index in range(len(self.opened_runs)):
                style = BEST_STYLE if index in best else WORST_STYLE if index in worst else ""
                cell = _right(row.formatted(index), style)
                ratio = row.ratio(index) if index > 0 else None
                if index > 0:
                    # A fixed-width ratio keeps the numbers above one another aligned; a zero has no ratio to show.
                    shown = format_ratio(ratio) if ratio else ""
                    cell.append(f"  {shown:>6}", style="dim")
                cells.append(cell)
            table.add_row(*cells, key=row.key)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.query_one("#compare-legend", Static).update(Text.assemble(
            ("lowest", BEST_STYLE), " and ", ("highest", WORST_STYLE),
            " value of each row where the runs differ; ×N is a run's value over the first run's.",
        ))  # fmt: skip
