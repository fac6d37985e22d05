"""Per-role gauges: tokens in/out/cache, cost and share of the run's cost, context fill against the compaction
threshold, budget fill when a budget is set, and sparklines of cost per step over the run (per role and in all)."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from aw_tui.model.formatting import counted, format_cost, format_tokens, sparkline
from aw_tui.model.ledger import compaction_threshold, role_label, role_sort_key
from aw_tui.model.state import RunState

SPARK_WIDTH = 16  # steps shown in a role's sparkline (the latest ones)


def bar(fraction: float, width: int = 12) -> Text:
    fraction = max(0.0, min(1.0, fraction))
    filled = round(fraction * width)
    style = "green" if fraction < 0.7 else "yellow" if fraction < 0.9 else "bold red"
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "dim"), f" {fraction:>4.0%}")


def _positive_number(value: object) -> float | None:
    """A limit from the run's settings, or None when it is not a positive finite number: settings come from the
    run's events, which another version (or a hand edit) may have filled with anything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if 0 < number < math.inf else None


class Gauges(Static):
    _shown_inputs: tuple[object, ...] = ()

    def update_state(self, state: RunState) -> None:
        # What the gauges are drawn from; unchanged (most events of a live run), the redraw and its layout pass
        # are skipped.
        ledger = state.ledger
        running = tuple((a.role, a.context_tokens) for a in state.agents.values() if a.status == "running")
        inputs = (len(ledger.steps), tuple(ledger.usage.items()), state.settings, running)
        if inputs == self._shown_inputs:
            return
        self._shown_inputs = inputs
        by_role = ledger.by_role()
        total = ledger.total
        table = Table(box=None, pad_edge=False, expand=True, show_header=True, header_style="bold")
        for column, justify in (("Role", "left"), ("In", "right"), ("Out", "right"), ("Cache", "right"),
                                ("Cost", "right"), ("Share", "right"), ("Context", "left"),
                                ("Cost per step", "left")):  # fmt: skip
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for role in sorted(by_role, key=role_sort_key):
            usage = by_role[role]
            share = f"{usage.cost / total.cost:.0%}" if total.cost > 0 else "–"
            table.add_row(
                role_label(role), format_tokens(usage.input), format_tokens(usage.output),
                format_tokens(usage.cache_read), format_cost(usage.cost, usage.cost_known), share,
                self._context_fill(state, role),
                Text(sparkline([s.usage.cost for s in ledger.steps if s.role == role], SPARK_WIDTH), style="cyan"),
            )  # fmt: skip
        lines: list[Table | Text] = [table]
        if ledger.steps:
            costs = [step.usage.cost for step in ledger.steps]
            lines.append(Text.assemble("Run cost per step  ", (sparkline(costs, 40), "cyan"),
                                       f"  {counted(len(costs), 'step')}, {format_cost(total.cost, total.cost_known)}"))  # fmt: skip
        budget = state.settings.get("budget") if isinstance(state.settings.get("budget"), dict) else {}
        cap = _positive_number(budget.get("max_cost_usd"))
        if cap is not None:
            lines.append(Text.assemble("Budget  ", bar(total.cost / cap),
                                       f"  {format_cost(total.cost, total.cost_known)} of ${cap:g}"))  # fmt: skip
        cap_tokens = _positive_number(budget.get("max_tokens"))
        if cap_tokens is not None:
            lines.append(Text.assemble("Tokens  ", bar(total.total_tokens / cap_tokens),
                                       f"  {format_tokens(total.total_tokens)} of {format_tokens(cap_tokens)}"))  # fmt: skip
        from rich.console import Group

        self.update(Group(*lines))

    @staticmethod
    def _context_fill(state: RunState, role: str) -> Text:
        """The role's latest context size against its compaction threshold: from the agent running now, else
        from its last step (which also knows the model's window)."""
        tokens, window = None, None
        for step in state.ledger.steps:
            if step.role == role and step.context_tokens:
                tokens, window = step.context_tokens, step.context_window
        running = [a for a in state.agents.values() if a.role == role and a.status == "running" and a.context_tokens]
        if running:
            tokens = running[-1].context_tokens
        if not tokens:
            return Text("–", style="dim")
        settings = state.settings.get(role) if isinstance(state.settings.get(role), dict) else {}
        limit = _positive_number(settings.get("context_limit")) if settings else None
        threshold = compaction_threshold(int(limit) if limit else None, window)
        if not threshold:
            return Text(format_tokens(tokens), style="dim")
        return bar(tokens / threshold, width=8)
