"""Running real analyst/worker runs against llmock: a user config that points both roles at the server, scripted
replies per role, a wire tap (the Authorization header each request carried, the usage each response carried),
and the run driven to a defined end.

The engine is reached the way a user reaches a local OpenAI-compatible server: `[analyst]`/`[worker]` with an
`openai/<name>` model and an `api_base`, read by `load_config()`, started with `start_run`, run by the
orchestrator. Nothing in the engine is patched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from llmock.pytest_plugin import LLMock
from llmock.scenarios import Match, Reply, ToolCall
from llmock.testing import LLMockServer

from aw_tui.engine.launch import start_run
from aw_tui.engine.orchestrator import FAILURE_OPTION, EngineOptions, Orchestrator
from aw_tui.model import events as ev
from aw_tui.model.commands import new_command
from aw_tui.store.config import load_config, user_config_path
from aw_tui.store.control import send_command
from tests.engine.orchestration_kit import Outcome, analyst, worker_report

ANALYST_MODEL = "chaos-analyst"
WORKER_MODEL = "chaos-worker"
TASK = "Read notes.txt and report what it says."
NOTES = "The release is on Friday.\n"

# Generous: no good call may time out on a loaded 2-core machine. Only the stall test waits for a timeout.
TIMEOUT_S = 5.0
MAX_RETRY_AFTER_S = 0.5
MAX_ATTEMPTS = 3
# Waits the engine asks for up to this long are waited for real (llmock judges them against Retry-After);
# longer ones (exponential backoff, 1 s and up) are cut to it, since no Retry-After is at stake there.
LONGEST_REAL_WAIT_S = 0.3


# --- what the server sent, and was sent ---------------------------------------------------------------------


@dataclass
class ServedRequest:
    """One chat request as the wire saw it: its Authorization header and the usage objects sent back."""

    authorization: str = ""
    usages: list[dict[str, int]] = field(default_factory=list)


class WireTap:
    """ASGI middleware outside llmock's own: per chat request, in arrival order, a ServedRequest taken from the
    bytes that actually went out (after llmock cut or corrupted them). Independent of what the engine makes of
    them."""

    def __init__(self, app: Any, sink: list[ServedRequest]) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        served = ServedRequest(authorization=headers.get("authorization", ""))
        self.sink.append(served)
        body: list[bytes] = []

        async def tap(message: Any) -> None:
            if message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tap)
        finally:
            served.usages.extend(_usages(b"".join(body)))


def _usages(raw: bytes) -> list[dict[str, int]]:
    text = raw.decode("utf-8", errors="replace")
    payloads = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")] or [text]
    found = []
    for payload in payloads:
        try:
            data = json.loads(payload)
        except ValueError:
            continue  # a chunk llmock corrupted, [DONE], or an empty body
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            found.append(data["usage"])
    return found


class TappedServer:
    """A real llmock server in a thread, with a WireTap in front of it."""

    def __init__(self) -> None:
        self.server = LLMockServer()
        self.served: list[ServedRequest] = []
        # Added before the server starts, so it sits outside llmock's middleware and sees the bytes as sent.
        self.server.app.add_middleware(WireTap, sink=self.served)

    def __enter__(self) -> TappedServer:
        self.server.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server.stop()

    def fresh(self) -> LLMock:
        """llmock reset for a new test, answering only what the test scripts (no tool calls of its own)."""
        self.served.clear()
        return LLMock(self.server).reset().tool_mode("off")


# --- configuration and replies --------------------------------------------------------------------------------


def write_user_config(base_url: str, *, stream: bool, timeout_s: float = TIMEOUT_S) -> Path:
    """The user's config.toml, as a user with a local OpenAI-compatible server would write it."""
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    roles = {"thinking": "off", "api_base": base_url}
    config = {
        "analyst": {"model": f"openai/{ANALYST_MODEL}", **roles},
        "worker": {"model": f"openai/{WORKER_MODEL}", **roles},
        "llm": {"max_attempts": MAX_ATTEMPTS, "max_retry_after_s": MAX_RETRY_AFTER_S, "timeout_s": timeout_s,
                "stream": stream},
    }  # fmt: skip
    path.write_text(tomli_w.dumps(config))
    return path


def for_model(model: str) -> Match:
    return Match(model=model)


def plan_reply() -> Reply:
    return Reply(text=analyst("NEEDS_WORKER", instruction="Read notes.txt and report what it says."),
                 match=for_model(ANALYST_MODEL))  # fmt: skip


def done_reply() -> Reply:
    return Reply(text=analyst("DONE", review="The worker read the notes; the task is done."),
                 match=for_model(ANALYST_MODEL))  # fmt: skip


def read_notes_reply(*, times: int = 1) -> Reply:
    return Reply(tool_calls=(ToolCall("read", {"path": "notes.txt"}),), times=times, match=for_model(WORKER_MODEL))


def report_reply() -> Reply:
    return Reply(text=worker_report(extra="notes.txt says the release is on Friday."), match=for_model(WORKER_MODEL))


def script_a_whole_run(mock: LLMock, *, tool_call_copies: int = 1) -> None:
    """plan -> worker reads notes.txt -> worker reports -> review says done. A fault that consumes a reply (a
    stream fault lands on a request that is answered) needs another copy of the reply it hit."""
    mock.add(plan_reply(), read_notes_reply(times=tool_call_copies), report_reply(), done_reply())


# --- running ------------------------------------------------------------------------------------------------


class ShortSleep:
    """The engine's wait between attempts: real up to LONGEST_REAL_WAIT_S, shortened beyond. Records each ask."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(min(seconds, LONGEST_REAL_WAIT_S))


GateAnswer = Callable[[ev.GateOpened], tuple[str, str | None] | None]


def finish_or_abort(gate: ev.GateOpened) -> tuple[str, str | None]:
    """Confirm a finished run; abort one whose turn failed (the operator has seen the message)."""
    if FAILURE_OPTION in gate.options:
        return ("abort", "the model call keeps failing")
    return ("approve", None)


@dataclass
class ChaosRun(Outcome):
    sleep: ShortSleep = field(default_factory=ShortSleep)

    @property
    def attempts(self) -> list[ev.LlmAttempt]:
        return self.of_type(ev.LlmAttempt)

    def attempts_of(self, model: str) -> list[ev.LlmAttempt]:
        return [a for a in self.attempts if a.model == f"openai/{model}"]

    @property
    def failure_gates(self) -> list[ev.GateOpened]:
        return [g for g in self.of_type(ev.GateOpened) if FAILURE_OPTION in g.options]


async def run_from_user_config(
    tmp_path: Path, *, answer: GateAnswer = finish_or_abort, timeout_s: float = 30.0
) -> ChaosRun:
    """A run of TASK started from the user's config (as `aw-tui run` does), driven to its end by the engine."""
    settings = load_config().settings
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    (workspace / "notes.txt").write_text(NOTES)
    writer = start_run(TASK, settings, workspace=workspace, runs_root=tmp_path / "runs")
    sleep = ShortSleep()
    orchestrator = Orchestrator(writer, options=EngineOptions(sleep=sleep, watch=False, control_poll_s=0.01))
    seen: list[ev.Event] = []

    def listen(events: Sequence[ev.Event]) -> None:
        for event in events:
            seen.append(event)
            if isinstance(event, ev.GateOpened):
                decision = answer(event)
                if decision is not None:
                    command, text = decision
                    gate_id = None if command == "abort" else event.id
                    send_command(writer.paths, new_command(command, gate_id=gate_id, text=text))

    orchestrator.add_listener(listen)
    try:
        final = await asyncio.wait_for(orchestrator.run(), timeout=timeout_s)
    finally:
        writer.close()
    return ChaosRun(final, writer, seen, sleep=sleep)


def run_files(run_dir: Path) -> list[Path]:
    return sorted(path for path in run_dir.rglob("*") if path.is_file())
