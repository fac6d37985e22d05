"""The gate queue: open gates oldest first (kind, requester, time waiting, one-line title) and the selected
gate's full body. The screen owns the keys that resolve a gate; this widget only shows and selects."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from aw_tui.model.commands import ANSWERABLE_GATE_KINDS
from aw_tui.model.formatting import format_age
from aw_tui.model.state import Gate

KIND_STYLE = {"dangerous_command": "bold red", "budget": "bold magenta", "confirm_done": "bold green",
              "operator_input": "bold yellow", "step_limit": "bold cyan"}  # fmt: skip


def gate_line(gate: Gate, now: datetime) -> Text:
    waited = format_age(max(0.0, (now - gate.opened_at).total_seconds()))
    return Text.assemble(
        (f"{gate.id} ", "bold"), (f"{gate.kind:<17}", KIND_STYLE.get(gate.kind, "")), (f" {waited:>5} ", "dim"),
        (f"{gate.requested_by}: ", "dim"), gate.title,
    )  # fmt: skip


class GateQueue(Vertical):
    ACTION_PANES = ("gate",)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gates: list[Gate] = []
        self._shown_lines: list[tuple[str, str]] | None = None

    def compose(self) -> ComposeResult:
        yield OptionList(id="gate-list")
        with VerticalScroll(id="gate-body-scroll"):
            yield Static(id="gate-body")

    def update_gates(self, gates: list[Gate], now: datetime) -> None:
        options = self.query_one(OptionList)
        lines = [gate_line(g, now) for g in gates]
        shown = [(g.id, line.markup) for g, line in zip(gates, lines)]
        if shown == self._shown_lines:
            self.gates = gates
            return  # the same gates, the same waiting times: nothing to redraw
        self._shown_lines = shown
        selected = self.selected.id if self.selected else None
        self.gates = gates
        options.clear_options()
        options.add_options([Option(line, id=g.id) for g, line in zip(gates, lines)])
        self.border_title = f"Gates ({len(gates)} open)" if gates else "Gates (none open)"
        if gates:
            ids = [g.id for g in gates]
            options.highlighted = ids.index(selected) if selected in ids else 0
        self._show_body()

    @property
    def selected(self) -> Gate | None:
        options = self.query_one(OptionList)
        index = options.highlighted
        if index is None or not (0 <= index < len(self.gates)):
            return None
        return self.gates[index]

    def move(self, delta: int) -> None:
        if not self.gates:
            return
        options = self.query_one(OptionList)
        index = options.highlighted or 0
        options.highlighted = max(0, min(len(self.gates) - 1, index + delta))
        self._show_body()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_body()

    def _show_body(self) -> None:
        gate = self.selected
        body = self.query_one("#gate-body", Static)
        if gate is None:
            body.update(Text("No gate is waiting for you.", style="dim"))
            return
        keys = "a approve · r reject" + (" · enter answer" if gate.kind in ANSWERABLE_GATE_KINDS else "")
        body.update(Text.assemble((f"{gate.title}\n\n", "bold"), gate.body or "", (f"\n\n{keys}", "dim")))
