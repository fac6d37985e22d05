"""The runs list: every run under the watched roots, newest first; `/` filters, Enter opens, `L` shows a ledger,
space marks runs and `c` compares the marked runs' ledgers side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from aw_tui.model.formatting import counted, format_age, format_cost
from aw_tui.ui.actions import bindings
from aw_tui.ui.messages import RunsChanged

if TYPE_CHECKING:
    from aw_tui.store.discovery import RunListing

LIVENESS_STYLE = {"live": "bold green", "orphaned": "yellow", "ended": "dim", "read-only": "cyan", "unreadable": "red"}
MARK = "●"
STATE_STYLE = {"FINISHED": "green", "ABORTED": "red", "FAILED": "bold red", "BLOCKED_NEEDS_OPERATOR": "yellow",
               "WAITING_FOR_OPERATOR": "yellow", "DONE_NEEDS_OPERATOR_CONFIRMATION": "yellow"}  # fmt: skip


class RunsScreen(Screen[None]):
    SCREEN_PANES = ("runs",)
    BINDINGS = bindings(*SCREEN_PANES)

    def __init__(self, roots: list[Path]) -> None:
        super().__init__()
        self.roots = roots
        self.listings: list[RunListing] = []
        self.filter_text = ""
        self._stale = False
        # Marked run paths in the order they were marked: the first marked is the comparison's baseline.
        self.marked: dict[str, None] = {}
        self._behind = False
        self._discovering = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter runs by name, title or state", id="runs-filter", classes="hidden")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(" ", key="mark")
        for label, key in (("Run", "run"), ("State", "state"), ("Age", "age"), ("Analyst", "analyst"),
                           ("Worker", "worker"), ("Other", "other"), ("Gates", "gates"), ("Lease", "lease")):  # fmt: skip
            table.add_column(label, key=key)
        table.focus()
        self.query_one("#runs-empty", Static).update("Reading the runs…")
        self.call_after_refresh(self.reload)  # scan once the empty list is drawn: the first frame does not wait

    def reload(self) -> None:
        self._behind = True
        if not self._discovering:
            self._discover()

    @work(group="discover")
    async def _discover(self) -> None:
        import asyncio

        from aw_tui.store.discovery import discover_runs  # here, not at the top: it is off the first frame's path

        # A burst of changes during a scan costs one more scan, not one per change.
        self._discovering = True
        try:
            while self._behind:
                self._behind = False
                self.listings = await asyncio.to_thread(discover_runs, self.roots, now=self.app.now())  # type: ignore[attr-defined]
                self._fill()
        finally:
            self._discovering = False

    def _fill(self) -> None:
        tables = self.query(DataTable)
        if not tables:
            return  # the screen is being taken down (the app is leaving) while a scan finished in its thread
        table = tables.first()
        selected = self._selected_key()
        table.clear()
        now = self.app.now()  # type: ignore[attr-defined]
        shown = [item for item in self.listings if self._matches(item)]
        for item in shown:
            table.add_row(self._mark_cell(str(item.path)), *self._cells(item, now), key=str(item.path))
        if selected is not None:
            keys = [str(item.path) for item in shown]
            if selected in keys:
                table.move_cursor(row=keys.index(selected))
        empty = self.query_one("#runs-empty", Static)
        if not self.listings:
            roots = ", ".join(str(root) for root in self.roots)
            empty.update(f"No runs under {roots}. Start one with `aw-tui demo` or `aw-tui run \"TASK\"`.")
        elif not shown:
            empty.update(f"No run matches {self.filter_text!r}.")
        else:
            empty.update("")
        self._show_counts(len(shown))

    def _show_counts(self, shown: int) -> None:
        total = len(self.listings) if self.filter_text else shown
        counts = f"{shown} of {counted(total, 'run')}" if self.filter_text else counted(shown, "run")
        marked = len(self._marked_listings())
        self.sub_title = counts + (f", {marked} marked" if marked else "")

    def _mark_cell(self, key: str) -> Text:
        return Text(MARK if key in self.marked else " ", style="bold magenta")

    def _marked_listings(self) -> list[RunListing]:
        # Marks outlive a filter (a hidden run stays marked) but not the run itself.
        by_key = {str(item.path): item for item in self.listings}
        return [by_key[key] for key in self.marked if key in by_key]

    def _cells(self, item: RunListing, now) -> list[Text]:
        summary = item.summary
        if summary is None:
            return [Text(item.name), Text("unreadable", style="red"), *[Text("–")] * 5,
                    Text(item.error or item.liveness, style="red")]  # fmt: skip
        state = summary.state + (" (PAUSED)" if summary.paused else "")
        age = format_age((now - summary.created_at).total_seconds()) if summary.created_at else "–"
        analyst, worker = summary.cost_of("analyst"), summary.cost_of("worker")
        # Every other role (workflow agents, delegates, compaction under no role) in one column.
        others = summary.cost_except("analyst", "worker")
        other = (Text(format_cost(others.cost, others.cost_known), justify="right") if others is not None
                 else Text("–", style="dim", justify="right"))  # fmt: skip
        gates = Text(str(summary.open_gates), style="bold yellow") if summary.open_gates else Text("–", style="dim")
        return [
            Text(item.name),
            Text(state, style=STATE_STYLE.get(summary.state, "")),
            Text(age, justify="right"),
            Text(format_cost(analyst.cost, analyst.cost_known), justify="right"),
            Text(format_cost(worker.cost, worker.cost_known), justify="right"),
            other,
            gates,
            Text(item.liveness, style=LIVENESS_STYLE.get(item.liveness, "")),
        ]

    def _matches(self, item: RunListing) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        haystack = [item.name]
        if item.summary is not None:
            haystack += [item.summary.title, item.summary.state, item.liveness]
        return any(needle in text.lower() for text in haystack)

    def _selected_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    # --- actions ---------------------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.remove_class("hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.value = ""
        box.add_class("hidden")
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._fill()

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_open_run(self) -> None:
        key = self._selected_key()
        if key is not None:
            self.app.open_run(Path(key))  # type: ignore[attr-defined]

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_run(Path(event.row_key.value))  # type: ignore[attr-defined,arg-type]

    def action_toggle_mark(self) -> None:
        key = self._selected_key()
        if key is None:
            return
        if key in self.marked:
            del self.marked[key]
        else:
            self.marked[key] = None
        self.query_one(DataTable).update_cell(key, "mark", self._mark_cell(key))
        self._show_counts(self.query_one(DataTable).row_count)

    def action_compare(self) -> None:
        marked = self._marked_listings()
        readable = [item for item in marked if item.summary is not None]
        if len(readable) < 2:
            unreadable = len(marked) - len(readable)
            why = f" ({unreadable} of them unreadable)" if unreadable else ""
            self.notify(f"{counted(len(marked), 'run')} marked{why}: mark two or more "
                        "readable runs with space, then press c", severity="warning", title="Compare")  # fmt: skip
            return
        if len(readable) < len(marked):
            self.notify(f"left out {len(marked) - len(readable)} unreadable marked run(s)", severity="warning")
        from aw_tui.ui.screens.ledger import CompareScreen

        self.app.push_screen(CompareScreen([item.path for item in readable]))

    def action_ledger(self) -> None:
        key = self._selected_key()
        if key is not None:
            from aw_tui.ui.screens.ledger import LedgerScreen

            self.app.push_screen(LedgerScreen(Path(key)))

    def action_reload(self) -> None:
        self.reload()

    def on_runs_changed(self, message: RunsChanged) -> None:
        # Not `is_current`: Textual counts the screen just below the top one as current (it could show through),
        # so under a run screen that would be true.
        if self.app.screen is not self:
            # Hidden under a run screen: rescanning every run on each event of the open run costs that screen
            # frames; the list catches up once when it is shown again.
            self._stale = True
            return
        self.reload()

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self.reload()
