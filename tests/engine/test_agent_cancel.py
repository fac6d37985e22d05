"""A turn cancelled before its first model call still records how it ended (no agent left running forever)."""

from __future__ import annotations

import asyncio

from aw_tui.engine import agent as agent_module
from aw_tui.engine.agent import AgentHooks, AgentSpec, run_agent
from aw_tui.model import events as ev


async def test_a_turn_cancelled_while_its_model_window_is_looked_up_ends_aborted(monkeypatch):
    looking_up = asyncio.Event()

    async def slow_window(model: str) -> int | None:
        looking_up.set()
        await asyncio.sleep(60)
        return None

    monkeypatch.setattr(agent_module, "model_window", slow_window)
    emitted: list[ev.Event] = []
    spec = AgentSpec(id="a1", role="worker", model="scripted/worker")
    turn = asyncio.create_task(run_agent(spec, [], "do it", hooks=AgentHooks(emit=lambda *e: emitted.extend(e))))
    await looking_up.wait()
    turn.cancel()
    try:
        await turn
    except asyncio.CancelledError:
        pass
    assert [type(e).__name__ for e in emitted] == ["AgentStarted", "AgentFinished"]
    assert emitted[-1].status == "aborted"
