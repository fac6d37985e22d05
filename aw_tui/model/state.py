"""RunState and the one reducer that builds it from events.

`reduce(state, event)` and `reduce_all(state, events)` are pure: they never change the state passed in. To stay
cheap on runs with thousands of agents, a batch copies the top-level containers once and copies a node only the
first time the batch changes it (copy-on-write); nodes never changed are shared between the old and new state.
Folding events one at a time or in any batching gives equal states (tests/model/test_reducer.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Callable

from aw_tui.model import events as ev
from aw_tui.model.ledger import (
    OTHER_ROLE, ZERO_USAGE, Ledger, LedgerCompaction, LedgerStep, Usage, operator_wait_ms,
)  # fmt: skip

MAX_PROBLEMS = 50  # problems kept for display; the counters keep counting beyond
MAX_LOGS = 500
MAX_NOTES = 20  # the seed keeps the last 20 operator notes


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A line of events.jsonl that could not be read as an event. Not written to files; fed to the reducer so the
    count lives in RunState like everything else."""

    line_no: int
    offset: int
    reason: str


@dataclass(slots=True)
class PhaseNode:
    id: str
    title: str
    parent: str | None
    status: str = "active"  # pending | active | done | failed | skipped
    started_at: datetime | None = None
    finished_at: datetime | None = None
    agents: list[str] = field(default_factory=list)  # top-level agents of this phase, in start order
    phases: list[str] = field(default_factory=list)  # child phases

    def copy(self) -> PhaseNode:
        return PhaseNode(
            self.id, self.title, self.parent, self.status, self.started_at, self.finished_at,
            list(self.agents), list(self.phases),
        )  # fmt: skip


@dataclass(slots=True)
class AgentNode:
    id: str
    role: str
    model: str
    thinking: str
    phase: str | None
    parent: str | None
    label: str
    step: int | None
    started_at: datetime
    status: str = "running"
    finished_at: datetime | None = None
    usage: Usage = ZERO_USAGE
    context_tokens: int | None = None
    llm_calls: int = 0
    llm_failures: int = 0  # failed tries (retried or not), from llm.attempt
    tool_count: int = 0
    tool_errors: int = 0
    tools_running: int = 0
    tool_ms: float = 0.0
    tool_ms_by_name: dict[str, float] = field(default_factory=dict)
    tool_counts: dict[str, int] = field(default_factory=dict)
    report: str | None = None
    error: str | None = None
    children: list[str] = field(default_factory=list)

    def copy(self) -> AgentNode:
        node = AgentNode(
            self.id, self.role, self.model, self.thinking, self.phase, self.parent, self.label, self.step,
            self.started_at, self.status, self.finished_at, self.usage, self.context_tokens, self.llm_calls,
            self.llm_failures, self.tool_count, self.tool_errors, self.tools_running, self.tool_ms, dict(self.tool_ms_by_name),
            dict(self.tool_counts), self.report, self.error, list(self.children),
        )  # fmt: skip
        return node

    def elapsed_ms(self, now: datetime) -> float:
        end = self.finished_at or now
        return max(0.0, (end - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class Gate:
    id: str
    kind: str
    title: str
    body: str
    options: tuple[str, ...]
    requested_by: str
    binding: str | None
    opened_at: datetime
    opened_seq: int
    status: str = "open"  # open | approved | rejected | answered | canceled
    text: str | None = None
    resolved_by: str | None = None
    command_id: str | None = None
    resolved_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True, slots=True)
class StepRef:
    step: int
    role: str
    phase: str
    path: str
    agent: str | None
    ts: datetime


@dataclass(frozen=True, slots=True)
class OperatorNote:
    ts: datetime
    text: str


@dataclass(frozen=True, slots=True)
class Memo:
    """The analyst's working memory, as state.md shows it."""

    hypothesis: str | None = None
    next_action: str | None = None
    operator_expected: str | None = None
    done: tuple[str, ...] = ()
    open_questions: tuple[str, ...] = ()
    instruction_id: str | None = None
    instruction: str | None = None


@dataclass(slots=True)
class RunState:
    run_id: str = ""
    task: str = ""
    title: str = ""
    workspace: str = ""
    kind: str = "analyst_worker"
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    state: str = "IDLE"
    state_reason: str = ""
    paused: bool = False
    memo: Memo = Memo()
    phases: dict[str, PhaseNode] = field(default_factory=dict)
    agents: dict[str, AgentNode] = field(default_factory=dict)
    root_phases: list[str] = field(default_factory=list)
    root_agents: list[str] = field(default_factory=list)  # agents with neither phase nor known parent
    gates: dict[str, Gate] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    steps: list[StepRef] = field(default_factory=list)
    notes: list[OperatorNote] = field(default_factory=list)
    commands: dict[str, tuple[str, str]] = field(default_factory=dict)  # command id -> (status, reason)
    logs: list[ev.Log] = field(default_factory=list)
    last_seq: int = 0
    last_event_at: datetime | None = None
    events_applied: int = 0
    malformed_lines: int = 0
    unknown_events: int = 0
    problems: list[str] = field(default_factory=list)
    # Set for runs of the original extension, which have no events and must never be written.
    read_only: bool = False
    # A workflow run's last workflow.stats (agent_calls, cached_calls, output_tokens, ...); empty for other runs.
    workflow_stats: dict[str, Any] = field(default_factory=dict)

    # --- derived views ---------------------------------------------------------------------------------

    @property
    def open_gates(self) -> list[Gate]:
        """Open gates, oldest first."""
        return sorted((g for g in self.gates.values() if g.is_open), key=lambda g: g.opened_seq)

    @property
    def is_terminal(self) -> bool:
        return self.state in ev.TERMINAL_STATES

    @property
    def running_agents(self) -> list[AgentNode]:
        return [a for a in self.agents.values() if a.status == "running"]

    def shallow_copy(self) -> RunState:
        copy = RunState.__new__(RunState)
        for f in _RUNSTATE_FIELDS:
            setattr(copy, f, getattr(self, f))
        return copy


_RUNSTATE_FIELDS = tuple(f.name for f in fields(RunState))

ReducerInput = ev.KnownEvent | ev.UnknownEvent | MalformedLine


# --- the reducer ------------------------------------------------------------------------------------------


def reduce(state: RunState, event: ReducerInput) -> RunState:
    """The state after one event. Pure: `state` is left as it was."""
    return reduce_all(state, (event,))


def reduce_all(state: RunState, events: Iterable[ReducerInput]) -> RunState:
    """The state after a batch of events, equal to folding `reduce` over them one by one. Pure."""
    batch = _Batch(state)
    for event in events:
        batch.apply(event)
    return batch.state


def fold(events: Iterable[ReducerInput]) -> RunState:
    return reduce_all(RunState(), events)


class _Batch:
    """A working copy of a state for one batch. Containers are copied up front; nodes on first change."""

    __slots__ = ("state", "_owned_agents", "_owned_phases")

    def __init__(self, base: RunState) -> None:
        state = base.shallow_copy()
        state.phases = dict(base.phases)
        state.agents = dict(base.agents)
        state.root_phases = list(base.root_phases)
        state.root_agents = list(base.root_agents)
        state.gates = dict(base.gates)
        state.ledger = base.ledger.clone()
        state.steps = list(base.steps)
        state.notes = list(base.notes)
        state.commands = dict(base.commands)
        state.logs = list(base.logs)
        state.problems = list(base.problems)
        self.state = state
        self._owned_agents: set[str] = set()
        self._owned_phases: set[str] = set()

    # copy-on-write access to nodes
    def agent(self, agent_id: str) -> AgentNode | None:
        node = self.state.agents.get(agent_id)
        if node is None or agent_id in self._owned_agents:
            return node
        node = node.copy()
        self.state.agents[agent_id] = node
        self._owned_agents.add(agent_id)
        return node

    def phase(self, phase_id: str) -> PhaseNode | None:
        node = self.state.phases.get(phase_id)
        if node is None or phase_id in self._owned_phases:
            return node
        node = node.copy()
        self.state.phases[phase_id] = node
        self._owned_phases.add(phase_id)
        return node

    def problem(self, message: str) -> None:
        if len(self.state.problems) < MAX_PROBLEMS:
            self.state.problems.append(message)

    def apply(self, event: ReducerInput) -> None:
        state = self.state
        handler = _HANDLERS_BY_CLASS.get(event.__class__)
        if handler is _malformed:
            _malformed(self, event)
            return
        seq = event.seq  # type: ignore[union-attr]
        if seq <= state.last_seq:
            # Already applied: a tail that re-read an overlap, or a duplicated line. Applying twice would bill twice.
            return
        if seq != state.last_seq + 1:
            missing = state.last_seq + 1
            what = f"event {missing} is" if missing == seq - 1 else f"events {missing}..{seq - 1} are"
            self.problem(f"{what} missing (gap before seq {seq})")
        state.last_seq = seq
        state.last_event_at = event.ts  # type: ignore[union-attr]
        state.events_applied += 1
        if handler is None:
            state.unknown_events += 1
            return
        handler(self, event)


def _malformed(b: _Batch, e: MalformedLine) -> None:
    b.state.malformed_lines += 1
    b.problem(f"line {e.line_no}: {e.reason}")


def _run_created(b: _Batch, e: ev.RunCreated) -> None:
    s = b.state
    s.run_id, s.task, s.title, s.workspace, s.kind = e.run_id, e.task, e.title or e.task, e.workspace, e.kind
    s.settings = dict(e.settings)
    s.created_at = e.ts


def _run_state(b: _Batch, e: ev.RunStateChanged) -> None:
    b.state.state = e.state
    b.state.state_reason = e.reason


def _run_paused(b: _Batch, e: ev.RunPaused) -> None:
    b.state.paused = True


def _run_resumed(b: _Batch, e: ev.RunResumed) -> None:
    b.state.paused = False


def _memo(b: _Batch, e: ev.MemoUpdated) -> None:
    old = b.state.memo
    b.state.memo = Memo(
        hypothesis=old.hypothesis if e.hypothesis is None else e.hypothesis,
        next_action=old.next_action if e.next_action is None else e.next_action,
        operator_expected=old.operator_expected if e.operator_expected is None else e.operator_expected,
        done=old.done if e.done is None else tuple(e.done),
        open_questions=old.open_questions if e.open_questions is None else tuple(e.open_questions),
        instruction_id=old.instruction_id if e.instruction_id is None else e.instruction_id,
        instruction=old.instruction if e.instruction is None else e.instruction,
    )


def _ensure_phase(b: _Batch, phase_id: str, title: str, parent: str | None, ts: datetime) -> PhaseNode:
    node = b.phase(phase_id)
    if node is not None:
        return node
    if parent is not None and parent not in b.state.phases:
        b.problem(f"phase {phase_id!r} names unknown parent phase {parent!r}")
        parent = None
    node = PhaseNode(phase_id, title, parent, started_at=ts)
    b.state.phases[phase_id] = node
    b._owned_phases.add(phase_id)
    if parent is None:
        b.state.root_phases.append(phase_id)
    else:
        parent_node = b.phase(parent)
        assert parent_node is not None
        parent_node.phases.append(phase_id)
    return node


def _phase_started(b: _Batch, e: ev.PhaseStarted) -> None:
    existing = e.id in b.state.phases
    node = _ensure_phase(b, e.id, e.title, e.parent, e.ts)
    if existing:  # restarted (e.g. a resumed run) or declared earlier: active now
        node.title = e.title
        node.status = "active"
        node.finished_at = None
        if node.started_at is None:
            node.started_at = e.ts


def _phase_declared(b: _Batch, e: ev.PhaseDeclared) -> None:
    if e.id in b.state.phases:
        return  # already declared or started (a resumed run declares its phases again): keep what it shows
    node = _ensure_phase(b, e.id, e.title, e.parent, e.ts)
    node.status = "pending"
    node.started_at = None


def _phase_finished(b: _Batch, e: ev.PhaseFinished) -> None:
    node = b.phase(e.id)
    if node is None:
        b.problem(f"phase.finished for unknown phase {e.id!r}")
        return
    node.status = e.status
    node.finished_at = e.ts


def _agent_started(b: _Batch, e: ev.AgentStarted) -> None:
    s = b.state
    if e.id in s.agents:
        # The same agent started again (a resumed turn): restart its clock, keep what it has spent.
        node = b.agent(e.id)
        assert node is not None
        node.status, node.started_at, node.finished_at, node.error = "running", e.ts, None, None
        node.tools_running = 0
        return
    node = AgentNode(e.id, e.role, e.model, e.thinking, e.phase, e.parent, e.label, e.step, e.ts)
    s.agents[e.id] = node
    b._owned_agents.add(e.id)
    if e.parent is not None and e.parent in s.agents:
        parent = b.agent(e.parent)
        assert parent is not None
        parent.children.append(e.id)
    elif e.phase is not None:
        if e.parent is not None:
            b.problem(f"agent {e.id!r} names unknown parent agent {e.parent!r}")
        _ensure_phase(b, e.phase, e.phase, None, e.ts).agents.append(e.id)
    else:
        if e.parent is not None:
            b.problem(f"agent {e.id!r} names unknown parent agent {e.parent!r}")
        s.root_agents.append(e.id)


def _agent_finished(b: _Batch, e: ev.AgentFinished) -> None:
    node = b.agent(e.id)
    if node is None:
        b.problem(f"agent.finished for unknown agent {e.id!r}")
        return
    node.status = e.status
    node.finished_at = e.ts
    node.tools_running = 0
    if e.report is not None:
        node.report = e.report
    if e.error is not None:
        node.error = e.error


def _agent_usage(b: _Batch, e: ev.AgentUsage) -> None:
    usage = Usage(e.input, e.output, e.cache_read, e.cache_write, e.reasoning, e.cost, e.cost_known)
    node = b.agent(e.agent)
    if node is None:
        b.problem(f"usage for unknown agent {e.agent!r} booked under role {OTHER_ROLE!r}")
        b.state.ledger.add_usage(OTHER_ROLE, "unknown", usage)
        return
    node.usage = node.usage + usage
    node.llm_calls += 1
    if e.context_tokens is not None:
        node.context_tokens = e.context_tokens
    b.state.ledger.add_usage(node.role, node.model, usage)


def _tool_started(b: _Batch, e: ev.ToolStarted) -> None:
    node = b.agent(e.agent)
    if node is None:
        b.problem(f"tool.started for unknown agent {e.agent!r}")
        return
    node.tools_running += 1


def _tool_finished(b: _Batch, e: ev.ToolFinished) -> None:
    node = b.agent(e.agent)
    if node is None:
        b.problem(f"tool.finished for unknown agent {e.agent!r}")
        return
    node.tools_running = max(0, node.tools_running - 1)
    node.tool_count += 1
    node.tool_ms += e.duration_ms
    node.tool_ms_by_name[e.tool] = node.tool_ms_by_name.get(e.tool, 0.0) + e.duration_ms
    node.tool_counts[e.tool] = node.tool_counts.get(e.tool, 0) + 1
    if e.error is not None:
        node.tool_errors += 1


def _llm_attempt(b: _Batch, e: ev.LlmAttempt) -> None:
    if e.outcome == "ok":
        return
    node = b.agent(e.agent)
    if node is None:
        b.problem(f"llm.attempt for unknown agent {e.agent!r}")
        return
    node.llm_failures += 1


def _step_report(b: _Batch, e: ev.StepReport) -> None:
    s = b.state
    s.steps.append(StepRef(e.step, e.role, e.phase, e.path, e.agent, e.ts))
    node = s.agents.get(e.agent) if e.agent is not None else None
    if e.agent is not None and node is None:
        b.problem(f"step {e.step} names unknown agent {e.agent!r}")
    if node is None:
        step = LedgerStep(
            step=e.step, role=e.role, phase=e.phase, model="", thinking_level="", usage=ZERO_USAGE,
            wall_ms=0.0, tool_ms=0.0, tool_ms_by_name={}, tool_counts={}, tool_errors=0,
            state_after=e.state_after, started_at=None, finished_at=e.ts, artifact=e.artifact or e.path,
            context_tokens=e.context_tokens, context_window=e.context_window, agent=e.agent,
        )  # fmt: skip
    else:
        finished = node.finished_at or e.ts
        step = LedgerStep(
            step=e.step, role=e.role, phase=e.phase, model=node.model, thinking_level=node.thinking,
            usage=node.usage, wall_ms=node.elapsed_ms(finished), tool_ms=node.tool_ms,
            tool_ms_by_name=dict(node.tool_ms_by_name), tool_counts=dict(node.tool_counts),
            tool_errors=node.tool_errors, state_after=e.state_after, started_at=node.started_at,
            finished_at=finished, artifact=e.artifact or e.path,
            context_tokens=e.context_tokens if e.context_tokens is not None else node.context_tokens,
            context_window=e.context_window, agent=e.agent,
            operator_wait_ms=_operator_wait_in(s, e.agent, node.started_at, finished),
        )  # fmt: skip
    s.ledger.steps.append(step)


def _operator_wait_in(s: RunState, agent: str, started: datetime | None, finished: datetime) -> float:
    """How long the agent's own gates were open between its start and its end (overlapping gates once)."""
    if started is None:
        return 0.0
    # operator_wait_ms cuts each wait at `finished` and merges overlaps; the start is cut here.
    return operator_wait_ms(
        [(max(g.opened_at, started), g.resolved_at) for g in s.gates.values() if g.requested_by == agent], finished
    )


def _compaction(b: _Batch, e: ev.Compaction) -> None:
    try:
        started_at: datetime | None = datetime.fromtimestamp(e.ts.timestamp() - e.duration_ms / 1000, tz=e.ts.tzinfo)
    except (OverflowError, ValueError, OSError):
        # A duration reaching back before year 1 (or beyond what the platform's time_t holds): no start time.
        b.problem(f"compaction at seq {e.seq}: its start, {e.duration_ms:g} ms before its end, is out of range")
        started_at = None
    b.state.ledger.compactions.append(
        LedgerCompaction(
            started_at=started_at, finished_at=e.ts, model=e.model,
            phase=e.phase, role=e.role, wall_ms=e.duration_ms, tokens_before=e.tokens_before, status=e.status,
            error=e.error,
        )  # fmt: skip
    )


def _gate_opened(b: _Batch, e: ev.GateOpened) -> None:
    if e.id in b.state.gates:
        b.problem(f"gate {e.id!r} opened twice; the second is ignored")
        return
    b.state.gates[e.id] = Gate(
        e.id, e.kind, e.title, e.body, tuple(e.options), e.requested_by, e.binding, e.ts, e.seq
    )


def _gate_resolved(b: _Batch, e: ev.GateResolved) -> None:
    gate = b.state.gates.get(e.id)
    if gate is None:
        b.problem(f"gate.resolved for unknown gate {e.id!r}")
        return
    if not gate.is_open:
        b.problem(f"gate {e.id!r} was already {gate.status}; a second resolution is ignored")
        return
    b.state.gates[e.id] = Gate(
        gate.id, gate.kind, gate.title, gate.body, gate.options, gate.requested_by, gate.binding, gate.opened_at,
        gate.opened_seq, e.decision, e.text, e.resolved_by, e.command_id, e.ts,
    )  # fmt: skip
    if e.text and e.decision != "canceled":
        _add_note(b, OperatorNote(e.ts, e.text))


def _operator_noted(b: _Batch, e: ev.OperatorNoted) -> None:
    _add_note(b, OperatorNote(e.ts, e.text))


def _add_note(b: _Batch, note: OperatorNote) -> None:
    notes = b.state.notes
    notes.append(note)
    if len(notes) > MAX_NOTES:
        del notes[: len(notes) - MAX_NOTES]


def _command_acknowledged(b: _Batch, e: ev.CommandAcknowledged) -> None:
    b.state.commands[e.command_id] = ("acknowledged", "")


def _command_rejected(b: _Batch, e: ev.CommandRejected) -> None:
    b.state.commands[e.command_id] = ("rejected", e.reason)


def _workflow_stats(b: _Batch, e: ev.WorkflowStats) -> None:
    b.state.workflow_stats = e.model_dump(exclude={"seq", "ts", "type"})


def _log(b: _Batch, e: ev.Log) -> None:
    logs = b.state.logs
    logs.append(e)
    if len(logs) > MAX_LOGS:
        del logs[: len(logs) - MAX_LOGS]


_HANDLERS: dict[str, Callable[[_Batch, Any], None]] = {
    "run.created": _run_created,
    "run.state": _run_state,
    "run.paused": _run_paused,
    "run.resumed": _run_resumed,
    "memo.updated": _memo,
    "phase.started": _phase_started,
    "phase.declared": _phase_declared,
    "phase.finished": _phase_finished,
    "agent.started": _agent_started,
    "agent.finished": _agent_finished,
    "agent.usage": _agent_usage,
    "tool.started": _tool_started,
    "tool.finished": _tool_finished,
    "llm.attempt": _llm_attempt,
    "step.report": _step_report,
    "compaction": _compaction,
    "gate.opened": _gate_opened,
    "gate.resolved": _gate_resolved,
    "operator.note": _operator_noted,
    "command.acknowledged": _command_acknowledged,
    "command.rejected": _command_rejected,
    "workflow.stats": _workflow_stats,
    "log": _log,
}
assert set(_HANDLERS) == ev.EVENT_TYPES, "every known event type needs a handler"
# Dispatch on the class: cheaper than reading `type` off each event, and it routes MalformedLine too.
_HANDLERS_BY_CLASS: dict[type, Callable[[_Batch, Any], None]] = {
    cls: _HANDLERS[cls.model_fields["type"].default] for cls in ev.KNOWN_EVENT_CLASSES
}
_HANDLERS_BY_CLASS[MalformedLine] = _malformed
