"""Building blocks for workflow tests: scripted turns, a Workflow wired to an event list, peak concurrency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aw_tui.engine import llm
from aw_tui.engine.journal import Journal
from aw_tui.engine.scripted import ScriptedProvider, install_script
from aw_tui.engine.workflow import Workflow
from aw_tui.model import events as ev
from aw_tui.model.state import RunState, fold

# One try per model call: the workflow's own retries are what these tests count.
ONE_TRY = llm.RetryPolicy(max_attempts=1)


def text_turn(text: str = "x", *, output: int = 10, input: int = 50, delay: float = 0.0) -> dict[str, Any]:
    turn: dict[str, Any] = {"text": text, "usage": {"input": input, "output": output}}
    if delay:
        turn["delay_s"] = delay
    return turn


def respond_turn(arguments: Any, *, output: int = 10, input: int = 50, delay: float = 0.0) -> dict[str, Any]:
    turn: dict[str, Any] = {"tool_calls": [{"name": "respond", "arguments": arguments}],
                            "usage": {"input": input, "output": output}}  # fmt: skip
    if delay:
        turn["delay_s"] = delay
    return turn


def error_turn(kind: str = "bad_request", message: str = "the provider said no") -> dict[str, Any]:
    return {"error": kind, "message": message}


@dataclass
class Harness:
    wf: Workflow
    provider: ScriptedProvider
    events: list[ev.Event] = field(default_factory=list)

    def state(self) -> RunState:
        self.wf.flush()
        stamped = [e.model_copy(update={"seq": i}) for i, e in enumerate(self.events, 1)]
        return fold(stamped)

    def types(self, *only: str) -> list[str]:
        self.wf.flush()
        return [e.type for e in self.events if not only or e.type in only]

    @property
    def model_calls(self) -> int:
        return len(self.provider.calls)


def harness(
    roles: dict[str, list[dict[str, Any]]], *, journal: Path | None = None, prices: dict[str, Any] | None = None,
    **options: Any,
) -> Harness:  # fmt: skip
    """A Workflow on the scripted provider ("scripted": each label plays its own role when the script has one,
    else the shared "workflow" role), its events collected in order."""
    script: dict[str, Any] = {"roles": roles}
    if prices is not None:
        script["prices"] = prices
    provider = install_script(script)
    events: list[ev.Event] = []
    options.setdefault("model", "scripted")
    options.setdefault("policy", ONE_TRY)
    wf = Workflow(emit=lambda *batch: events.extend(batch), journal=Journal(journal) if journal else None,
                  scripted_roles=set(roles), **options)  # fmt: skip
    return Harness(wf, provider, events)


def peak_running(events: Sequence[ev.Event]) -> int:
    """The most agents running at once, from the order of agent.started and agent.finished."""
    running: set[str] = set()
    peak = 0
    for event in events:
        if isinstance(event, ev.AgentStarted):
            running.add(event.id)
            peak = max(peak, len(running))
        elif isinstance(event, ev.AgentFinished):
            running.discard(event.id)
    return peak


async def run(h: Harness, body: Callable[[Workflow], Awaitable[Any]]) -> Any:
    result = await body(h.wf)
    h.wf.flush()
    return result
