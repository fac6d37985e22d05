"""Event types: one JSON object a line in events.jsonl, the source of truth of a run.

Every event has `seq` (1, 2, 3, ... without gaps) and `ts` (UTC), stamped by the event log when it is appended;
the engine builds events without them. Events are a pydantic union discriminated on `type`. A line whose type
this version does not know becomes an `UnknownEvent`: kept in the file, counted and skipped by the reducer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# The seed's states (reference/seeds.md §1.4) plus FINISHED (confirmed done), FAILED (the engine gave up) and
# WORKFLOW_RUNNING (a workflow run between its start and its end).
StateName = Literal[
    "IDLE",
    "CONFIGURING",
    "ANALYST_PLANNING",
    "WORKER_RUNNING",
    "ANALYST_REVIEWING",
    "WORKFLOW_RUNNING",
    "WAITING_FOR_OPERATOR",
    "BLOCKED_NEEDS_OPERATOR",
    "DONE_NEEDS_OPERATOR_CONFIRMATION",
    "ARCHIVING",
    "ABORTED",
    "FINISHED",
    "FAILED",
]
TERMINAL_STATES: frozenset[str] = frozenset({"ABORTED", "FINISHED", "FAILED"})

AgentStatus = Literal["running", "done", "failed", "refused", "interrupted", "aborted"]
GateKind = Literal["operator_input", "confirm_done", "dangerous_command", "budget", "step_limit"]
GateDecision = Literal["approved", "rejected", "answered", "canceled"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Bounds far beyond any real run (a quadrillion tokens, a thousand years, a billion dollars) that keep every sum
# and ratio of them an ordinary finite float for the ledger and the UI. A larger value marks a damaged line.
MAX_COUNT = 10**15
MAX_MS = 3.2e13
MAX_COST = 1e9
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Millis = Annotated[float, Field(ge=0, le=MAX_MS)]
Dollars = Annotated[float, Field(ge=0, le=MAX_COST)]


class _Event(BaseModel):
    # Frozen: states share event-derived values, so nothing may change them in place. Extra keys from a newer
    # writer are ignored rather than fatal. NaN and infinities are refused: the event log never writes them
    # (store/jsonl.py), and a sum that became infinite could never be shown or compared again.
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    seq: int = 0
    ts: datetime = EPOCH


class RunCreated(_Event):
    type: Literal["run.created"] = "run.created"
    run_id: str
    task: str
    title: str = ""
    workspace: str = ""
    kind: Literal["analyst_worker", "workflow"] = "analyst_worker"
    settings: dict[str, Any] = Field(default_factory=dict)


class RunStateChanged(_Event):
    type: Literal["run.state"] = "run.state"
    state: StateName
    reason: str = ""


class RunPaused(_Event):
    type: Literal["run.paused"] = "run.paused"
    command_id: str | None = None
    reason: str = ""


class RunResumed(_Event):
    type: Literal["run.resumed"] = "run.resumed"
    command_id: str | None = None
    reason: str = ""


class MemoUpdated(_Event):
    """The run's working memory as the analyst last left it; rendered into state.md."""

    type: Literal["memo.updated"] = "memo.updated"
    hypothesis: str | None = None
    next_action: str | None = None
    operator_expected: str | None = None
    done: list[str] | None = None
    open_questions: list[str] | None = None
    instruction_id: str | None = None
    instruction: str | None = None


class PhaseStarted(_Event):
    type: Literal["phase.started"] = "phase.started"
    id: str
    title: str
    parent: str | None = None


class PhaseDeclared(_Event):
    """A phase announced before it starts (a workflow's declared phases): shown as pending until phase.started."""

    type: Literal["phase.declared"] = "phase.declared"
    id: str
    title: str
    parent: str | None = None


class PhaseFinished(_Event):
    type: Literal["phase.finished"] = "phase.finished"
    id: str
    title: str = ""  # for readers of the log alone (headless lines); the tree takes the title from phase.started
    status: Literal["done", "failed", "skipped"] = "done"


class AgentStarted(_Event):
    type: Literal["agent.started"] = "agent.started"
    id: str
    role: str
    model: str
    thinking: str = "off"
    phase: str | None = None
    parent: str | None = None
    label: str = ""
    step: Count | None = None


class AgentFinished(_Event):
    type: Literal["agent.finished"] = "agent.finished"
    id: str
    status: AgentStatus = "done"
    report: str | None = None
    error: str | None = None


class AgentUsage(_Event):
    """Usage of one model call (one attempt); the ledger sums these, so each call is billed once."""

    type: Literal["agent.usage"] = "agent.usage"
    agent: str
    input: Count = 0
    output: Count = 0
    cache_read: Count = 0
    cache_write: Count = 0
    reasoning: Count = 0
    cost: Dollars = 0.0
    cost_known: bool = True
    context_tokens: Count | None = None
    attempt: int = 1


class ToolStarted(_Event):
    type: Literal["tool.started"] = "tool.started"
    agent: str
    call_id: str
    tool: str
    summary: str = ""


class ToolFinished(_Event):
    type: Literal["tool.finished"] = "tool.finished"
    agent: str
    call_id: str
    tool: str
    duration_ms: Millis = 0.0
    error: str | None = None
    # The sandbox or the policy said no (path outside the workspace, a forbidden tool, a rejected command):
    # nothing ran. `error` says why.
    refused: bool = False


class LlmAttempt(_Event):
    """One try of one model call, successful or not. Usage of a try that was billed follows as agent.usage."""

    type: Literal["llm.attempt"] = "llm.attempt"
    agent: str
    attempt: int = Field(ge=1, le=MAX_COUNT)
    model: str
    outcome: Literal[
        "ok", "rate_limited", "server_error", "connection_error", "timeout", "bad_request", "auth_error",
        "context_window", "other",
    ]  # fmt: skip
    duration_ms: Millis = 0.0
    error: str | None = None
    # When the engine will try again (Retry-After honoured up to its cap, else backoff); None: no retry.
    retry_in_s: float | None = None


class StepReport(_Event):
    """A finished turn: its report file and the facts the ledger step needs beyond the agent's own events."""

    type: Literal["step.report"] = "step.report"
    step: int = Field(ge=1, le=MAX_COUNT)
    role: str
    phase: str
    path: str
    agent: str | None = None
    state_after: str | None = None
    context_tokens: Count | None = None
    context_window: Count | None = None
    artifact: str | None = None


class Compaction(_Event):
    type: Literal["compaction"] = "compaction"
    agent: str | None = None
    role: str = "other"
    model: str = ""
    phase: str = ""
    tokens_before: Count | None = None
    status: Literal["completed", "failed"]
    duration_ms: Millis = 0.0
    error: str | None = None


class GateOpened(_Event):
    type: Literal["gate.opened"] = "gate.opened"
    id: str
    kind: GateKind
    title: str
    body: str = ""
    options: list[str] = Field(default_factory=list)
    requested_by: str = "engine"
    # What an approval is bound to, e.g. the exact command text of a dangerous_command gate.
    binding: str | None = None


class GateResolved(_Event):
    type: Literal["gate.resolved"] = "gate.resolved"
    id: str
    decision: GateDecision
    text: str | None = None
    resolved_by: str = "operator"
    command_id: str | None = None


class OperatorNoted(_Event):
    """A note from the operator, carried into the next prompts (gate answers become notes too)."""

    type: Literal["operator.note"] = "operator.note"
    text: str
    command_id: str | None = None


class CommandAcknowledged(_Event):
    type: Literal["command.acknowledged"] = "command.acknowledged"
    command_id: str
    cmd: str


class CommandRejected(_Event):
    type: Literal["command.rejected"] = "command.rejected"
    command_id: str
    cmd: str
    reason: str


class WorkflowStats(_Event):
    """A workflow execution's totals, written when it ends: agent() calls (cache hits included, refusals not),
    calls answered from the journal, calls refused (budget, cap), calls that gave None after their retries, and
    the usage its live calls spent."""

    type: Literal["workflow.stats"] = "workflow.stats"
    agent_calls: Count = 0
    cached_calls: Count = 0
    refused_calls: Count = 0
    failed_calls: Count = 0
    output_tokens: Count = 0
    total_tokens: Count = 0
    cost: Dollars = 0.0
    cost_known: bool = True


class Log(_Event):
    type: Literal["log"] = "log"
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str
    agent: str | None = None


KNOWN_EVENT_CLASSES = (
    RunCreated,
    RunStateChanged,
    RunPaused,
    RunResumed,
    MemoUpdated,
    PhaseStarted,
    PhaseDeclared,
    PhaseFinished,
    AgentStarted,
    AgentFinished,
    AgentUsage,
    ToolStarted,
    ToolFinished,
    LlmAttempt,
    StepReport,
    Compaction,
    GateOpened,
    GateResolved,
    OperatorNoted,
    CommandAcknowledged,
    CommandRejected,
    WorkflowStats,
    Log,
)
KnownEvent = Annotated[Union[KNOWN_EVENT_CLASSES], Field(discriminator="type")]
EVENT_TYPES: frozenset[str] = frozenset(cls.model_fields["type"].default for cls in KNOWN_EVENT_CLASSES)


class UnknownEvent(_Event):
    """An event of a type this version does not know (a newer writer): kept in the file, skipped here."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: str


Event = Union[KnownEvent, UnknownEvent]

_KNOWN_ADAPTER: TypeAdapter[Any] = TypeAdapter(KnownEvent)


class EventError(ValueError):
    """A line that is JSON but not a valid event; the message is short enough for a status line."""


def parse_event(data: Any) -> Event:
    """Validate one decoded JSON object as an event. Raises EventError with a one-line reason."""
    if not isinstance(data, dict):
        raise EventError(f"not a JSON object ({type(data).__name__})")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise EventError("no 'type' field")
    try:
        if kind in EVENT_TYPES:
            event = _KNOWN_ADAPTER.validate_python(data)
        else:
            event = UnknownEvent.model_validate(data)
    except ValidationError as exc:
        raise EventError(f"{kind}: {_first_error(exc)}") from None
    if event.seq < 1:
        raise EventError(f"{kind}: 'seq' must be a positive integer")
    if event.ts.tzinfo is None:
        # A naive timestamp is taken as UTC rather than rejected: it came from our own writer or a careless one.
        event = event.model_copy(update={"ts": event.ts.replace(tzinfo=timezone.utc)})
    return event


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    location = [str(part) for part in error.get("loc", ())]
    # The discriminated union puts the type tag first in the location; drop it, the caller names the type.
    if location and location[0] in EVENT_TYPES:
        location = location[1:]
    where = ".".join(location)
    message = error.get("msg", "invalid")
    if len(message) > 80:
        message = message[:77] + "..."
    if "input" in error and not isinstance(error["input"], (dict, list)):
        message = f"{message} (got {error['input']!r:.40})"
    return f"{where}: {message}" if where else message


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON object written to events.jsonl: seq, ts and type first, then the event's own fields."""
    data = event.model_dump(mode="json", exclude_none=True)
    ordered = {"seq": data.pop("seq"), "ts": data.pop("ts"), "type": data.pop("type")}
    ordered.update(data)
    return ordered
