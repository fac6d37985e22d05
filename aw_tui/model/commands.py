"""Operator commands: one JSON object a line in control.jsonl, appended by any process, acted on by the engine.

    {"id": "c-3f9a...", "ts": "2026-11-21T10:00:00Z", "cmd": "approve", "gate_id": "g-0002", "text": "..."}

`judge_command(state, command)` is the rule book, pure: whether the engine takes a command in the run's current
state, and if not, the one-line reason it rejects it with (the reason lands in a `command.rejected` event). The
CLI asks the same function before writing, so a command that can only be refused is refused at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aw_tui.model.formatting import one_line
from aw_tui.model.state import RunState

CommandName = Literal["pause", "resume", "abort", "finish", "archive", "answer", "approve", "reject", "note"]
COMMAND_NAMES: tuple[str, ...] = get_args(CommandName)
GATE_COMMANDS = frozenset({"answer", "approve", "reject"})
# Gates the operator can answer with text (the rest are approved or rejected), which the engine waits at between
# turns rather than inside one.
ANSWERABLE_GATE_KINDS = ("operator_input", "confirm_done", "step_limit")
MAX_TEXT_CHARS = 20_000  # an operator answer longer than this is a paste accident, not an answer


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    ts: datetime
    cmd: CommandName
    gate_id: str | None = None
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    # Who sent it, for the record: "cli", "tui", "headless" ...
    source: str = "operator"


class CommandError(ValueError):
    """A control.jsonl line that is not a valid command; the message is one line."""

    def __init__(self, message: str, command_id: str | None = None, cmd: str | None = None) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.cmd = cmd


def new_command(
    cmd: str, *, gate_id: str | None = None, text: str | None = None, source: str = "operator",
    now: datetime | None = None,
) -> Command:  # fmt: skip
    """A fresh command with a unique id. Raises CommandError for an unknown name or bad fields."""
    data = {
        "id": f"c-{uuid.uuid4().hex[:12]}", "ts": now or datetime.now(timezone.utc), "cmd": cmd,
        "gate_id": gate_id, "text": text, "source": source,
    }  # fmt: skip
    return parse_command(data)


def parse_command(data: Any) -> Command:
    if not isinstance(data, dict):
        raise CommandError(f"not a JSON object ({type(data).__name__})")
    command_id = data.get("id") if isinstance(data.get("id"), str) else None
    cmd = data.get("cmd") if isinstance(data.get("cmd"), str) else None
    if cmd is not None and cmd not in COMMAND_NAMES:
        raise CommandError(f"unknown command {cmd!r}; known: {', '.join(COMMAND_NAMES)}", command_id, cmd)
    try:
        command = Command.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise CommandError(f"{where}: {first.get('msg', 'invalid')}" if where else "invalid command",
                           command_id, cmd) from None  # fmt: skip
    if command.ts.tzinfo is None:
        command = command.model_copy(update={"ts": command.ts.replace(tzinfo=timezone.utc)})
    return command


def command_to_json(command: Command) -> dict[str, Any]:
    return command.model_dump(mode="json", exclude_none=True)


# States in which the engine waits for the operator rather than working.
WAITING_STATES = frozenset({"WAITING_FOR_OPERATOR", "BLOCKED_NEEDS_OPERATOR", "DONE_NEEDS_OPERATOR_CONFIRMATION"})


def judge_command(state: RunState, command: Command) -> str | None:
    """None when the engine acts on `command` now; otherwise the reason it is rejected, on one line.

    Gates resolve once: a second approve/reject/answer of the same gate is rejected (and recorded as such).
    """
    reason = _judge(state, command)
    # Gate ids and kinds come from the event log and may hold line breaks; the reason is shown on one line.
    return None if reason is None else one_line(reason)


def _judge(state: RunState, command: Command) -> str | None:
    cmd = command.cmd
    if state.read_only:
        return "this run was written by the original extension and is read-only"
    if state.is_terminal and cmd != "archive":
        return f"the run has ended ({state.state}); it takes no more commands"
    if cmd in GATE_COMMANDS:
        if not command.gate_id:
            return f"{cmd} needs a gate id"
        gate = state.gates.get(command.gate_id)
        if gate is None:
            open_ids = ", ".join(g.id for g in state.open_gates) or "none"
            return f"there is no gate {command.gate_id!r} in this run (open gates: {open_ids})"
        if not gate.is_open:
            by = f" by {gate.resolved_by}" if gate.resolved_by else ""
            return f"gate {gate.id} was already {gate.status}{by}; a gate resolves once"
        if cmd == "answer":
            if not (command.text or "").strip():
                return "answer needs the answer's text"
            if gate.kind not in ANSWERABLE_GATE_KINDS:
                return f"gate {gate.id} is a {gate.kind} gate: approve or reject it (it takes no answer)"
        return None
    if cmd == "pause":
        return "the run is already paused" if state.paused else None
    if cmd == "resume":
        return None if state.paused else "the run is not paused"
    if cmd == "note":
        return None if (command.text or "").strip() else "a note needs text"
    return None  # abort, finish, archive: always taken while the run lives
