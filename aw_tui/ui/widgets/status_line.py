"""The run's status line: name, state (PAUSED loudly), lease, age of the last event."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from aw_tui.model.formatting import format_age
from aw_tui.model.state import RunState


class StatusLine(Static):
    _shown_markup = ""

    def show(self, name: str, state: RunState, lease: str, now: datetime) -> None:
        text = Text.assemble((name, "bold"), "  ", (state.state, "bold cyan"))
        if state.paused:
            text.append("  ⏸ PAUSED ", style="bold white on red")
        lease_style = {"live": "green", "orphaned": "bold yellow"}.get(lease, "dim")
        shown = {"live": "engine live", "orphaned": "ORPHANED (no engine: aw-tui resume)", "none": "no engine"}
        text.append(f"  {shown.get(lease, lease)}", style=lease_style)
        if state.read_only:
            text.append("  read-only", style="cyan")
        if state.last_event_at is not None:
            text.append(f"  last event {format_age(max(0.0, (now - state.last_event_at).total_seconds()))} ago",
                        style="dim")  # fmt: skip
        if state.malformed_lines or state.problems:
            text.append(f"  {len(state.problems)} problem(s)", style="yellow")
        if text.markup != self._shown_markup:  # it is refreshed every second and on every event: redraw on change
            self._shown_markup = text.markup
            self.update(text)
