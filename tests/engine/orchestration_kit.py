"""Building blocks for orchestrator tests: analyst and worker texts in the protocol's shape, and a runner that plays
a script through the real engine on a real run directory, answering gates the way a test says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aw_tui.engine.launch import start_run
from aw_tui.engine.orchestrator import EngineOptions, Orchestrator
from aw_tui.engine.protocol import WORKER_SECTIONS
from aw_tui.engine.scripted import ScriptedProvider, install_script
from aw_tui.model import events as ev
from aw_tui.model.commands import new_command
from aw_tui.model.settings import Settings
from aw_tui.store.control import send_command
from aw_tui.store.run import RunWriter

FILLER = "The reasoning behind this decision is spelled out so that the answer is clearly substantive."


def analyst(next_state: str | None, *, instruction: str = "Run the tests and fix what fails.",
            handoff: str = "None", review: str = "Nothing has run yet.") -> str:  # fmt: skip
    next_block = f"## Next state\n{next_state}\n\n" if next_state else ""
    return (
        "[ANALYST: scripted/analyst]\n"
        f"## Diagnosis / Review\n{review} {FILLER}\n\n"
        f"## Hypothesis\nThe failure has one cause.\n\n"
        f"## Worker instruction\n{instruction}\n\n"
        "## Validation / Risks\nRun the suite.\n\n"
        "## Operational memory\n- nothing yet\n\n"
        f"{next_block}"
        f"## Operator handoff\n{handoff}\n"
    )


def worker_report(*, missing: Sequence[str] = (), extra: str = "") -> str:
    body = "[WORKER: scripted/worker]\n"
    for title in WORKER_SECTIONS:
        if title not in missing:
            body += f"## {title}\nDone as asked. {extra}\n\n"
    return body


def text_turn(text: str, **usage: int) -> dict[str, Any]:
    return {"text": text, "usage": usage or {"input": 1000, "output": 100}}


@dataclass
class Outcome:
    final: str
    writer: RunWriter
    events: list[ev.Event] = field(default_factory=list)
    provider: ScriptedProvider | None = None

    @property
    def state(self):
        return self.writer.state

    def of_type(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


GateAnswer = Callable[[ev.GateOpened, RunWriter], tuple[str, str | None] | None]


def approve_all(gate: ev.GateOpened, writer: RunWriter) -> tuple[str, str | None] | None:
    return ("approve", None)


async def play(
    tmp_path: Path,
    roles: dict[str, list[dict[str, Any]]],
    *,
    answer: GateAnswer | None = approve_all,
    settings: dict[str, Any] | None = None,
    prices: dict[str, Any] | None = None,
    on_event: Callable[[ev.Event, RunWriter], None] | None = None,
    workspace: Path | None = None,
    options: EngineOptions | None = None,
    clock: Any = None,
    timeout_s: float = 30.0,
) -> Outcome:
    """Play `roles` through a fresh run. `answer(gate, writer)` -> (command, text) resolves each gate as it opens
    (through control.jsonl, as an operator would); None leaves it open."""
    script: dict[str, Any] = {"roles": roles}
    if prices is not None:
        script["prices"] = prices
    provider = install_script(script)
    base = {"analyst": {"model": "scripted/analyst"}, "worker": {"model": "scripted/worker"}}
    for key, value in (settings or {}).items():
        base[key] = {**base.get(key, {}), **value}
    ws = workspace or tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    script_file = tmp_path / "script.json"
    script_file.write_text("{}")  # the run records a script path; the test installs its script directly
    writer = start_run("Make the tests pass.", Settings.model_validate(base), workspace=ws,
                       runs_root=tmp_path / "runs", script=script_file)  # fmt: skip
    kwargs: dict[str, Any] = {"options": options or EngineOptions(sleep=_no_sleep, watch=False, control_poll_s=0.01)}
    if clock is not None:
        kwargs["clock"] = clock
    orchestrator = Orchestrator(writer, **kwargs)
    seen: list[ev.Event] = []

    def listen(events: Sequence[ev.Event]) -> None:
        for event in events:
            seen.append(event)
            if on_event is not None:
                on_event(event, writer)
            if isinstance(event, ev.GateOpened) and answer is not None:
                decision = answer(event, writer)
                if decision is not None:
                    command, text = decision
                    send_command(writer.paths, new_command(command, gate_id=event.id, text=text))

    orchestrator.add_listener(listen)
    try:
        final = await asyncio.wait_for(orchestrator.run(), timeout=timeout_s)
    finally:
        writer.close()
    return Outcome(final, writer, seen, provider)


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def send(writer: RunWriter, command: str, **fields: Any) -> None:
    send_command(writer.paths, new_command(command, **fields))
