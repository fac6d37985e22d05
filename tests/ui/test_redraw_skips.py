"""Panes a live run refreshes on every event redraw only when what they show changed, and always when it did."""

from __future__ import annotations

from datetime import datetime, timezone

from textual.app import App

from aw_tui.model import events as ev
from aw_tui.model.state import fold
from aw_tui.ui.widgets.gauges import Gauges
from tests.model.event_factory import stamp

NOW = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)


def run_events(extra_output: int) -> list:
    events = [
        ev.RunCreated(run_id="r1", task="t"),
        ev.AgentStarted(id="a1", role="worker", model="openai/gpt-5-mini"),
        ev.AgentUsage(agent="a1", input=1000, output=100 + extra_output, cost=0.01),
    ]
    return stamp(events)


class GaugesApp(App[None]):
    def compose(self):
        yield Gauges()


async def test_gauges_redraw_on_new_usage_and_skip_an_unchanged_state():
    app = GaugesApp()
    async with app.run_test(size=(100, 20)):
        gauges = app.query_one(Gauges)
        updates = []
        original = gauges.update
        gauges.update = lambda content="": (updates.append(content), original(content))  # type: ignore[method-assign]
        first = fold(run_events(0))
        gauges.update_state(first)
        gauges.update_state(fold(run_events(0)))  # equal content in new objects: no redraw
        assert len(updates) == 1
        gauges.update_state(fold(run_events(50)))  # more output tokens: a redraw
        assert len(updates) == 2
