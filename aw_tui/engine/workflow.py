"""Workflows: a Python file that drives many agents with code, and the run directory it runs in.

A workflow file defines `async def workflow(wf, args)`; whatever it returns is the run's result. `wf` offers:

    await wf.agent(prompt, *, schema=None, model=None, thinking=None, label=None, phase=None, tools=None, retries=2)
    await wf.parallel(thunks)           # a barrier; results in order; a thunk that raises gives None
    await wf.pipeline(items, *stages)   # per item, stage(previous, item, index) in turn; no barrier between stages
    wf.phase(title)                     # the phase the following agents belong to
    wf.phases(titles)                   # declare phases up front: they show as pending in the tree
    wf.log(message)
    wf.budget                           # .total, .spent(), .remaining(): output tokens, like pi-loom's budget
    wf.stats                            # agent_calls, cached_calls, refused_calls, failed_calls, tokens, cost
    await wf.delegate(task, *, effort=None, agent=None, label=None, timeout_s=None)   # -> report text or None
    await wf.chain(steps, task, *, title=None)                                         # -> last output or None
    await wf.loop(agent, task, *, max_iterations=3, judge=None, title=None)            # -> final output or None

Phases can also be declared in the file as a module-level `PHASES = ["Scope", "Research", ...]`; without it, the
titles of literal `wf.phase("...")` calls are taken from the source, in source order.

agent() runs one agent turn through the engine's agent loop (`run_agent`), so every call is an agent in the run's
tree (role "workflow", under its phase) and its usage lands in the ledger under that role. Without a schema it
returns the final text. With a pydantic model as `schema` the agent must end by calling a `respond` tool whose
parameters are the model's JSON schema (also when it has tools of its own); arguments that fail validation go back
to the model. A call that still has no valid answer after `retries` more tries returns None, with a log event
saying why. `tools` is a tool policy: "read-only" (or True), "all-tools", or None for no tools.

Subagents (engine/delegate.py, engine/chains.py): `delegate` runs a fresh child agent on `task` (effort fast |
balanced | smart, or an agent definition by name) and returns its final report; `chain` runs named agents one after
another, each seeing the previous output through `{previous}` (steps as names, {"agent", "task"?, "connector"?}
dicts or chains.PipelineStep); `loop` runs one named agent up to `max_iterations` times, with a `judge` (a name,
{"agent", "criteria"} or chains.Judge) whose YES ends it and whose feedback after a NO reaches the next iteration.
Each gives None when it failed or was refused (an unknown agent or effort, the budget, the cap), with a log event
saying why. Their agents nest under the current phase (a chain or loop as a phase of its own); a delegate bills
under the role "delegate", a chain's or loop's agents under their definitions' names. Agent definitions come from
the workspace's `.aw-tui/agents/`, the user's config dir and the built-ins (scout, worker, reviewer), loaded on
first use; a malformed file is logged once per run. Settings (tool policy, delegate timeout and depth, effort
thinking) are the workspace's config; an effort that names no model of its own runs on the workflow's --model.
Each call is one journal entry (key: kind, phase, label or title, parallel/pipeline path, the task, the options and
the content of the definitions it uses), so a resume answers it without model calls; a call cut off mid-way (a
chain at its second step, say) runs again from its start. Each takes one concurrency slot while it runs, its output
tokens count against the budget, every agent it ran counts toward the cap, and pause and abort reach its agents. In
wf.stats each counts as one call.

On `--model scripted` each agent plays a script role: agent() the role named like its label (else "workflow"); a
subagent the first role the script has of `<title>:<agent>` (a chain or loop step, when title= is given), its label
(delegate's label=), its agent definition's name (a judge: the judge's), its role ("delegate"), else "workflow".

pi-loom's semantics, with its four defects fixed:
- Journal keys come from a call's structural position (phase, label, the parallel/pipeline path that led to it, an
  occurrence number among identical calls there) with its prompt, options and schema, never from a run-wide
  counter: a resumed run finds every completed call whatever order the calls finished in (engine/journal.py).
- A schema is honoured when tools are given too.
- A refused call (budget spent, or the runaway cap of agents per run) still shows: agent.started, then
  agent.finished with status "refused". It raises AgentRefused; parallel and pipeline turn it into None.
- The budget admits calls atomically against a reservation: each call in flight reserves as many output tokens as
  the largest call so far (the first call runs alone, as a probe), and a call that does not fit waits for those in
  flight instead of starting. While calls are no larger than the largest seen before them, a run overshoots its
  budget by at most one call.

Concurrency: at most `concurrency` (16) model calls run at once; parallel and pipeline take no slots themselves.
A run starts at most `max_agents` (1000) live calls; journal hits count toward neither.

Events and journal entries are written in batches, once per event-loop iteration (one fsync each), which keeps a
fan-out of hundreds of agents from paying one fsync per event. On resume, an entry whose batch never reached the
disk is simply a call that runs again.

`WorkflowRunner` runs a loaded workflow file in a run directory (kind "workflow"): state WORKFLOW_RUNNING, then
FINISHED, FAILED (the traceback's last line as the reason, the whole traceback in artifacts/) or ABORTED. It holds
the lease with heartbeats, takes pause/resume/abort/finish/note from control.jsonl, and records the result in
artifacts/workflow_result.json and the stats as a workflow.stats event.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import importlib.util
import inspect
import json
import math
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from aw_tui.engine import llm
from aw_tui.engine.agent import AgentFailed, AgentHooks, AgentSpec, RespondTool, run_agent
from aw_tui.engine.agentdefs import AgentDefinition, UnknownAgent, load_agent_definitions
from aw_tui.engine.background import stop_background
from aw_tui.engine.chains import Judge, PipelineStep, normalize_steps, run_loop, run_pipeline
from aw_tui.engine.delegate import DELEGATE_ROLE, SpecAdjuster, SubagentRuntime
from aw_tui.engine.delegate import delegate as run_delegate
from aw_tui.engine.journal import Journal, JournalEntry, journal_key, stable_json
from aw_tui.engine.tools import POLICIES, ToolContext
from aw_tui.model import events as ev
from aw_tui.model.commands import Command, judge_command
from aw_tui.model.formatting import one_line
from aw_tui.model.ledger import ZERO_USAGE, Usage
from aw_tui.model.settings import EFFORTS, Settings
from aw_tui.store.control import BadCommand, ControlReader
from aw_tui.store.layout import slugify
from aw_tui.store.run import RunWriter

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_AGENTS = 1000
DEFAULT_RETRIES = 2
WORKFLOW_ROLE = "workflow"
SCRIPTED_MODEL = "scripted"  # "play the script": each agent on scripted/<its label> if the script has it
SCRIPTED_FALLBACK_ROLE = "workflow"
LABEL_CHARS = 60
SETTINGS_KEY = "workflow"
JOURNAL_FILE = "journal.jsonl"
RESULT_FILE = "workflow_result.json"
TRACEBACK_FILE = "workflow_traceback.txt"
HEARTBEAT_S = 5.0
CONTROL_POLL_S = 0.5
DERIVED_INTERVAL_S = 1.0

DEFAULT_SYSTEM_PROMPT = (
    "You are one step of an automated workflow. Do what the task asks, completely and nothing beyond it. A program "
    "reads your answer, not a person: no preamble, no offers of further help, no questions back; state facts "
    "plainly, and say so when something cannot be determined."
)

# Where the current call stands in the workflow's structure: parallel indexes, pipeline items and stages.
_PATH: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("aw_tui_workflow_path", default=())


class WorkflowError(Exception):
    """A workflow that cannot load or run as asked; the message is one line for the user."""


class AgentRefused(Exception):
    """An agent() call that was not run (and shows as refused in the tree)."""


class BudgetExhausted(AgentRefused):
    pass


class AgentCapReached(AgentRefused):
    pass


# --- budget --------------------------------------------------------------------------------------------------


class Budget:
    """Output tokens a workflow may spend (`total=None`: no limit), with atomic admission of calls.

    `admit()` lets a call start when the tokens already spent plus a reservation for every call in flight (this
    one included) fit the total; a call that does not fit waits for the calls in flight, and is refused with
    BudgetExhausted once the spent tokens reach the total. The reservation per call is the largest output of any
    call so far; before any call has finished only one runs. A lone call is always admitted while anything is
    left, which is the one call a budget may be overshot by.
    """

    def __init__(self, total: int | None = None) -> None:
        if total is not None and total < 0:
            raise ValueError("a budget cannot be negative")
        self.total = total
        self._spent = 0
        self._in_flight = 0
        self._largest = 0
        self._changed: asyncio.Event | None = None

    def spent(self) -> int:
        return self._spent

    def remaining(self) -> float:
        return math.inf if self.total is None else max(0, self.total - self._spent)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def add(self, tokens: int) -> None:
        """Credit spent output tokens (a call's, or a journal hit's recorded ones)."""
        self._spent += max(0, int(tokens))
        self._largest = max(self._largest, int(tokens))
        self._wake()

    def check(self) -> None:
        if self.total is not None and self._spent >= self.total:
            raise BudgetExhausted(f"token budget exhausted: {self._spent} output tokens spent of {self.total}")

    def _fits(self) -> bool:
        if self.total is None or self._in_flight == 0:
            return True
        if self._largest == 0:
            return False  # nothing finished yet: no estimate, so the first call runs alone
        return self._spent + (self._in_flight + 1) * self._largest <= self.total

    async def admit(self) -> None:
        while True:
            self.check()
            if self._fits():
                self._in_flight += 1  # no await between the check and this: admission is atomic
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def settle(self, output_tokens: int) -> None:
        """A call admitted by `admit()` has ended, having spent `output_tokens`."""
        self._in_flight = max(0, self._in_flight - 1)
        self.add(output_tokens)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def view(self) -> BudgetView:
        return BudgetView(self)


class BudgetView:
    """What a workflow sees of its budget: read only."""

    __slots__ = ("_budget",)

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    @property
    def total(self) -> int | None:
        return self._budget.total

    def spent(self) -> int:
        return self._budget.spent()

    def remaining(self) -> float:
        return self._budget.remaining()

    def __repr__(self) -> str:
        return f"Budget(total={self.total}, spent={self.spent()})"


# --- stats ---------------------------------------------------------------------------------------------------


@dataclass
class WorkflowStats:
    """Totals of one execution of a workflow (a resumed run counts what it did itself)."""

    agent_calls: int = 0  # agent() calls answered, live or from the journal, None results included
    cached_calls: int = 0
    refused_calls: int = 0
    failed_calls: int = 0  # live calls that gave None after their retries
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True

    def add_usage(self, usage: Usage) -> None:
        self.output_tokens += usage.output
        self.total_tokens += usage.total_tokens
        self.cost += usage.cost
        self.cost_known = self.cost_known and usage.cost_known

    def to_event(self) -> ev.WorkflowStats:
        return ev.WorkflowStats(
            agent_calls=self.agent_calls, cached_calls=self.cached_calls, refused_calls=self.refused_calls,
            failed_calls=self.failed_calls, output_tokens=self.output_tokens, total_tokens=self.total_tokens,
            cost=self.cost, cost_known=self.cost_known,
        )  # fmt: skip


# --- batching events and journal entries ---------------------------------------------------------------------


class _Batcher:
    """Collects events (and journal entries) and writes them once per event-loop iteration, in order."""

    def __init__(self, emit: Callable[..., Any], journal: Journal) -> None:
        self._emit = emit
        self._journal = journal
        self._events: list[ev.Event] = []
        self._scheduled = False
        self.error: BaseException | None = None

    def emit(self, *events: ev.Event) -> None:
        self._events.extend(events)
        self.schedule()

    def schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        try:
            self.flush()
        except Exception as error:  # noqa: BLE001 - kept and raised to the workflow at its next call
            self.error = error

    def flush(self) -> None:
        if self._events:
            batch, self._events = self._events, []
            self._emit(*batch)
        self._journal.flush()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise WorkflowError(f"writing the run failed: {self.error}") from self.error


# --- the wf object -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    key: str
    agent_id: str
    prompt: str
    label: str
    phase: str | None
    phase_id: str | None
    model: str
    thinking: str
    tools: str | None
    schema: type[BaseModel] | None
    schema_json: dict[str, Any] | None
    retries: int


@dataclass(frozen=True, slots=True)
class _SubagentCall:
    key: str
    agent_id: str  # stands for the call in the tree when it is refused, or answered by the journal without its agents
    kind: str  # delegate | chain | loop
    label: str
    phase: str | None
    phase_id: str | None

    @property
    def role(self) -> str:
        return DELEGATE_ROLE if self.kind == "delegate" else self.kind


@dataclass(frozen=True, slots=True)
class _SubagentOutcome:
    text: str | None  # None: it failed
    usage: Usage
    agents: list[str]  # the ids of the agents it ran
    error: str | None = None


def _definition_json(definition: AgentDefinition) -> dict[str, Any]:
    """What of an agent definition changes its agents' answers."""
    return {"name": definition.name, "prompt": definition.prompt, "model": definition.model,
            "thinking": definition.thinking, "tools": definition.tools, "connector": definition.connector}  # fmt: skip


def subagent_settings(base: Settings, model: str | None) -> Settings:
    """`base` with every delegate effort that names no model of its own on the workflow's `model` (so a run with
    --model X delegates to X, not to the configured analyst and worker models)."""
    if not model:
        return base
    delegate = base.delegate
    unset = {f"{effort}_model": model for effort in EFFORTS if getattr(delegate, f"{effort}_model") is None}
    if not unset:
        return base
    return base.model_copy(update={"delegate": delegate.model_copy(update=unset)})


_MISS = object()


def default_label(prompt: str) -> str:
    """The prompt's first non-empty line, cut to 60 characters (pi-loom's default label)."""
    first = next((line.strip() for line in prompt.splitlines() if line.strip()), "agent")
    return first if len(first) <= LABEL_CHARS else first[: LABEL_CHARS - 1] + "…"


def tool_policy(tools: Any) -> str | None:
    """agent()'s `tools=` as a tool policy name, or None for an agent without tools."""
    if tools is None or tools is False or tools == "no-tools":
        return None
    if tools is True:
        return "read-only"
    if isinstance(tools, str) and tools in POLICIES:
        return tools
    choices = ", ".join(repr(name) for name in POLICIES if name != "no-tools")
    raise ValueError(f"tools= takes a tool policy ({choices}), True for read-only, or None; got {tools!r}")


_schema_cache: dict[type, dict[str, Any]] = {}


def schema_json(schema: type[BaseModel] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TypeError(f"schema= takes a pydantic model class (a BaseModel subclass), got {schema!r}")
    cached = _schema_cache.get(schema)
    if cached is None:
        cached = _schema_cache[schema] = schema.model_json_schema()
    return cached


def to_jsonable(value: Any) -> Any:
    """A workflow's value as JSON data: pydantic models dumped, tuples and sets as lists, the rest by repr."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class Workflow:
    """The `wf` a workflow function receives. See the module docstring for the API."""

    def __init__(
        self,
        *,
        emit: Callable[..., Any],
        model: str | None = None,
        thinking: str = "off",
        journal: Journal | None = None,
        budget: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_agents: int = DEFAULT_MAX_AGENTS,
        workspace: Path | None = None,
        artifacts_dir: Path | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        api_base: str | None = None,
        policy: llm.RetryPolicy | None = None,
        role: str = WORKFLOW_ROLE,
        scripted_roles: Iterable[str] = (),
        done_agents: Iterable[str] = (),
        phases_seen: Mapping[str, tuple[str, str]] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        settings: Settings | None = None,
        taken_ids: Iterable[str] = (),
        logged_before: Iterable[str] = (),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_agents < 0:
            raise ValueError("max_agents cannot be negative")
        self.model = model
        self.thinking = thinking
        self.journal = journal if journal is not None else Journal()
        self._budget = Budget(budget)
        self.concurrency = concurrency
        self.max_agents = max_agents
        self.workspace = workspace
        self.artifacts_dir = artifacts_dir
        self.system_prompt = system_prompt
        self.api_base = api_base
        self.policy = policy or llm.RetryPolicy()
        self.role = role
        self.stats = WorkflowStats()
        self.started_calls = 0
        self._scripted_roles = frozenset(scripted_roles)
        self._done_before = frozenset(done_agents)  # agents a previous execution finished: a journal hit shows them
        self._batcher = _Batcher(emit, self.journal)
        self._slots = asyncio.Semaphore(concurrency)
        self._occurrences: dict[str, int] = {}
        self._tool_contexts: dict[str, ToolContext] = {}
        self._phase: str | None = None
        # title -> (phase id, status as this execution knows it: pending | active | done ...)
        self._phases: dict[str, tuple[str, str]] = dict(phases_seen or {})
        self._ids_by_title = {title: phase_id for title, (phase_id, _) in self._phases.items()}
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._sleep = sleep
        self.cancel_status: Callable[[], str] = lambda: "interrupted"
        # Subagents (delegate, chain, loop): settings (None: the config of the workspace, read on first use), ids
        # earlier executions used, and log messages already in the run (so a problem is logged once per run).
        self._settings = settings
        self._taken_ids = frozenset(taken_ids)
        self._logged = set(logged_before)
        self._subagent_root: SubagentRuntime | None = None

    # --- small API -------------------------------------------------------------------------------------------

    @property
    def budget(self) -> BudgetView:
        return self._budget.view()

    @property
    def current_phase(self) -> str | None:
        return self._phase

    def log(self, message: Any) -> None:
        self._batcher.emit(ev.Log(level="info", message=str(message)))

    def emit(self, *events: ev.Event) -> None:
        """Emit events in order with the workflow's own (batched)."""
        self._batcher.emit(*events)

    def flush(self) -> None:
        """Write what is batched now (the runner calls it at the end and before it reads the run's state)."""
        self._batcher.flush()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @paused.setter
    def paused(self, value: bool) -> None:
        if value:
            self._resumed.clear()
        else:
            self._resumed.set()

    # --- phases ----------------------------------------------------------------------------------------------

    def _phase_id(self, title: str) -> str:
        """The phase's id: its slug, made unique by a hash of the title when another title has the same slug."""
        phase_id = self._ids_by_title.get(title)
        if phase_id is None:
            phase_id = f"phase-{slugify(title)}"
            if phase_id in self._ids_by_title.values():
                phase_id = f"{phase_id}-{hashlib.sha256(title.encode()).hexdigest()[:6]}"
            self._ids_by_title[title] = phase_id
        return phase_id

    def phases(self, titles: Iterable[str]) -> None:
        """Declare phases up front: each shows as pending until it starts."""
        declared = []
        for title in titles:
            if not isinstance(title, str) or not title.strip():
                raise ValueError(f"a phase title is a non-empty string, got {title!r}")
            if title in self._phases:
                continue
            phase_id = self._phase_id(title)
            self._phases[title] = (phase_id, "pending")
            declared.append(ev.PhaseDeclared(id=phase_id, title=title))
        if declared:
            self._batcher.emit(*declared)

    def phase(self, title: str) -> None:
        """Enter a phase: the previous one is done, and agents called from now on belong to this one."""
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"a phase title is a non-empty string, got {title!r}")
        if title == self._phase:
            return
        events: list[ev.Event] = []
        if self._phase is not None:
            previous_id, status = self._phases[self._phase]
            if status == "active":
                self._phases[self._phase] = (previous_id, "done")
                events.append(ev.PhaseFinished(id=previous_id, title=self._phase, status="done"))
        events.extend(self._start_phase(title))
        self._phase = title
        self._batcher.emit(*events)

    def _enter_phase(self, title: str | None) -> str | None:
        """The id of the phase a call runs in (None outside any phase), started now if it was not yet."""
        if title is None:
            return None
        started = self._start_phase(title)
        if started:
            self._batcher.emit(*started)
        return self._phase_id(title)

    def _start_phase(self, title: str) -> list[ev.Event]:
        phase_id, status = self._phases.get(title, (None, None))
        if status == "active" and phase_id is not None:
            return []
        phase_id = phase_id or self._phase_id(title)
        self._phases[title] = (phase_id, "active")
        return [ev.PhaseStarted(id=phase_id, title=title)]

    def finish_phases(self, ok: bool) -> None:
        """At the end: active phases are done (failed when the workflow failed); declared ones never started are
        skipped (only when it succeeded: a failed run may yet reach them on resume)."""
        events: list[ev.Event] = []
        for title, (phase_id, status) in list(self._phases.items()):
            if status == "active":
                events.append(ev.PhaseFinished(id=phase_id, title=title,
                                               status="done" if ok or title != self._phase else "failed"))  # fmt: skip
                self._phases[title] = (phase_id, "done")
            elif status == "pending" and ok:
                events.append(ev.PhaseFinished(id=phase_id, title=title, status="skipped"))
                self._phases[title] = (phase_id, "skipped")
        if events:
            self._batcher.emit(*events)

    # --- agent() ---------------------------------------------------------------------------------------------

    def _resolve_model(self, model: str | None, label: str) -> str:
        chosen = model or self.model
        if not chosen:
            raise WorkflowError(
                "agent() needs a model: pass --model to `aw-tui workflow run`, or model= to agent()"
            )
        if chosen == SCRIPTED_MODEL:
            return f"{SCRIPTED_MODEL}/{label if label in self._scripted_roles else SCRIPTED_FALLBACK_ROLE}"
        return chosen

    def _prepare(
        self, prompt: str, schema: Any, model: str | None, thinking: str | None, label: str | None,
        phase: str | None, tools: Any, retries: int,
    ) -> _Call:  # fmt: skip
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("agent() needs a non-empty prompt")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries is a count of extra tries (0 or more), got {retries!r}")
        shape = schema_json(schema)
        name = one_line(label, LABEL_CHARS) if label else default_label(prompt)
        resolved = self._resolve_model(model, name)
        level = thinking or self.thinking
        if level not in llm.THINKING_LEVELS:
            raise ValueError(f"thinking= takes one of {', '.join(llm.THINKING_LEVELS)}, got {level!r}")
        policy = tool_policy(tools)
        if policy is not None:
            self._tool_context(policy)  # no workspace: refuse now, before the call shows anywhere
        phase_title = phase if phase is not None else self._phase
        phase_id = self._enter_phase(phase_title)
        position = {"phase": phase_title, "label": name, "path": list(_PATH.get())}
        # The model as asked for: "scripted" maps to a role by what the installed script holds, not a new call.
        options = {"model": model or self.model, "thinking": level, "tools": policy}
        key = self._key(position, prompt, options, shape)
        return _Call(
            key=key, agent_id=f"wf-{key[:12]}", prompt=prompt, label=name, phase=phase_title, phase_id=phase_id,
            model=resolved, thinking=level, tools=policy, schema=schema, schema_json=shape, retries=retries,
        )  # fmt: skip

    def _key(self, position: Mapping[str, Any], prompt: str, options: Mapping[str, Any], shape: Any) -> str:
        """The journal key of a call, numbered among identical calls at the same position."""
        first = journal_key(position, prompt, options, shape)
        occurrence = self._occurrences.get(first, 0)
        self._occurrences[first] = occurrence + 1
        return first if occurrence == 0 else journal_key(position, prompt, options, shape, occurrence)

    async def agent(
        self,
        prompt: str,
        *,
        schema: type[BaseModel] | None = None,
        model: str | None = None,
        thinking: str | None = None,
        label: str | None = None,
        phase: str | None = None,
        tools: Any = None,
        retries: int = DEFAULT_RETRIES,
    ) -> Any:
        """One agent: its final text, or with `schema` a validated instance; None when every try failed.
        Raises AgentRefused (BudgetExhausted, AgentCapReached) when it is not run at all."""
        self._batcher.raise_if_failed()
        call = self._prepare(prompt, schema, model, thinking, label, phase, tools, retries)
        cached = self._from_journal(call)
        if cached is not _MISS:
            return cached
        if self.started_calls >= self.max_agents:
            self._refuse(call, AgentCapReached(
                f"agent cap reached: {self.max_agents} agents started in this run (a runaway backstop)"))  # fmt: skip
        self.started_calls += 1  # reserved at once, so calls past the cap are refused however they interleave
        async with self._slots:
            try:
                await self._budget.admit()
            except BudgetExhausted as refusal:
                self._refuse(call, refusal)
            spent = ZERO_USAGE
            try:
                value, ok, spent, why = await self._run_live(call)
            finally:
                self._budget.settle(spent.output)
        self.stats.agent_calls += 1
        self.stats.add_usage(spent)
        if ok:
            kind = "json" if call.schema is not None else "text"
            self.journal.record(JournalEntry(
                key=call.key, kind=kind, result=value.model_dump(mode="json") if kind == "json" else value,
                label=call.label, phase=call.phase, output_tokens=spent.output, total_tokens=spent.total_tokens,
                cost=spent.cost,
            ))  # fmt: skip
            self._batcher.schedule()
        else:
            self.stats.failed_calls += 1
            self._batcher.emit(ev.Log(level="warning", agent=call.agent_id,
                                      message=f"agent {call.label!r} gave no result: {why}"))  # fmt: skip
        return value

    def _from_journal(self, call: _Call) -> Any:
        entry = self.journal.get(call.key)
        if entry is None:
            return _MISS
        if call.schema is None:
            if entry.kind != "text":
                return _MISS
            value: Any = entry.result
        else:
            if entry.kind != "json":
                return _MISS
            try:
                value = call.schema.model_validate(entry.result)
            except ValueError:
                return _MISS
        self.stats.agent_calls += 1
        self.stats.cached_calls += 1
        self._budget.add(entry.output_tokens)  # spent by this workflow, if by an earlier execution of it
        if call.agent_id not in self._done_before:
            report = entry.result if entry.kind == "text" else stable_json(entry.result)
            self._batcher.emit(
                self._started_event(call),
                ev.AgentFinished(id=call.agent_id, status="done", report=report),
            )
        return value

    def _started_event(self, call: _Call) -> ev.AgentStarted:
        return ev.AgentStarted(id=call.agent_id, role=self.role, model=call.model, thinking=call.thinking,
                               phase=call.phase_id, label=call.label)  # fmt: skip

    def _refuse(self, call: _Call, refusal: AgentRefused) -> None:
        self._record_refusal(self._started_event(call), f"agent {call.label!r}", refusal)
        raise refusal

    def _record_refusal(self, started: ev.AgentStarted, what: str, refusal: AgentRefused) -> None:
        """A refused call still shows: started, then finished as refused, with a warning saying why."""
        self.stats.refused_calls += 1
        self._batcher.emit(
            started,
            ev.AgentFinished(id=started.id, status="refused", error=str(refusal)),
            ev.Log(level="warning", agent=started.id, message=f"{what} refused: {refusal}"),
        )

    def _hooks(self) -> AgentHooks:
        return AgentHooks(emit=self._batcher.emit, before_model_call=self._resumed.wait,
                          cancel_status=lambda: self.cancel_status(), sleep=self._sleep)  # fmt: skip

    def _tool_context(self, policy: str | None) -> ToolContext | None:
        if policy is None:
            return None
        context = self._tool_contexts.get(policy)
        if context is None:
            if self.workspace is None or self.artifacts_dir is None:
                raise WorkflowError("agents with tools need a workspace (this workflow has none)")
            # The project's [tools] settings hold here too (bash's timeout, the dangerous and allowed patterns); the
            # policy is the call's own.
            context = self._tool_contexts[policy] = ToolContext.from_settings(
                self._load_settings().tools, workspace=self.workspace, artifacts_dir=self.artifacts_dir, policy=policy
            )
        return context

    async def _run_live(self, call: _Call) -> tuple[Any, bool, Usage, str]:
        """(value, ok, usage spent, why it failed) after up to 1 + retries tries."""
        spec = AgentSpec(id=call.agent_id, role=self.role, model=call.model, thinking=call.thinking,
                         api_base=self.api_base, phase=call.phase_id, label=call.label)  # fmt: skip
        history = [{"role": "system", "content": self.system_prompt}]
        tools = self._tool_context(call.tools)
        hooks = self._hooks()
        tries, allowed, spent, why = 0, call.retries + 1, ZERO_USAGE, ""
        while tries < allowed:
            respond = None
            if call.schema is not None:
                assert call.schema_json is not None
                respond = RespondTool(parameters=call.schema_json, validate=call.schema.model_validate,
                                      max_invalid=allowed - tries - 1)  # fmt: skip
            try:
                result = await run_agent(spec, history, call.prompt, hooks=hooks, tools=tools, policy=self.policy,
                                         respond=respond)  # fmt: skip
            except AgentFailed as failure:
                spent = spent + failure.usage
                rejected = len(respond.rejections) if respond is not None else 0
                tries += rejected if failure.kind == "schema" else rejected + 1
                why = failure.message
                if tries < allowed:
                    self._batcher.emit(ev.Log(level="warning", agent=call.agent_id,
                                              message=f"agent {call.label!r}: try {tries} of {allowed} failed ({why}); "
                                                      "trying again"))  # fmt: skip
                continue
            except Exception as error:
                # Not a failure the loop knows (a bug, a broken tool context): end the agent so the tree never
                # shows it running, and let the workflow see the error.
                self._batcher.emit(ev.AgentFinished(id=call.agent_id, status="failed",
                                                    error=f"{type(error).__name__}: {one_line(str(error), 300)}"))  # fmt: skip
                raise
            spent = spent + result.usage
            return (result.structured if call.schema is not None else result.text), True, spent, ""
        return None, False, spent, f"{allowed} tr{'y' if allowed == 1 else 'ies'} failed; the last: {why}"

    # --- parallel and pipeline -------------------------------------------------------------------------------

    def _note_failure(self, where: str, error: BaseException) -> None:
        if isinstance(error, AgentRefused):
            return  # its refusal is in the log already
        self._batcher.emit(ev.Log(level="warning", message=f"{where} failed and gives None: "
                                                           f"{type(error).__name__}: {one_line(str(error), 200)}"))  # fmt: skip

    async def parallel(self, thunks: Iterable[Any]) -> list[Any]:
        """Run every thunk (a callable returning an awaitable, or an awaitable) at once and wait for all: the
        results in order, None for each that raised."""
        items = list(thunks)
        base = _PATH.get()

        async def one(index: int, thunk: Any) -> Any:
            _PATH.set((*base, f"p{index}"))
            try:
                result = thunk() if callable(thunk) else thunk
                if inspect.isawaitable(result):
                    result = await result
                return result
            except Exception as error:  # noqa: BLE001 - a failing branch becomes None, as documented
                self._note_failure(f"parallel item {index}", error)
                return None

        return await _gather([one(i, thunk) for i, thunk in enumerate(items)])

    async def pipeline(self, items: Iterable[Any], *stages: Callable[..., Any]) -> list[Any]:
        """Each item through every stage in turn, `stage(previous, item, index)` (previous is the item itself for
        the first stage), items independently (no barrier between stages). A stage that raises drops its item
        to None and skips the item's later stages. The results in item order."""
        values = list(items)
        base = _PATH.get()

        async def chain(index: int, item: Any) -> Any:
            previous = item
            for number, stage in enumerate(stages):
                _PATH.set((*base, f"i{index}", f"s{number}"))
                try:
                    result = stage(previous, item, index)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as error:  # noqa: BLE001 - the item drops out, as documented
                    self._note_failure(f"pipeline item {index} at stage {number + 1}", error)
                    return None
                previous = result
            return previous

        return await _gather([chain(i, item) for i, item in enumerate(values)])

    # --- subagents: delegate, chain, loop --------------------------------------------------------------------

    async def delegate(
        self, task: str, *, effort: str | None = None, agent: str | None = None, label: str | None = None,
        timeout_s: float | None = None,
    ) -> str | None:  # fmt: skip
        """A fresh child agent on `task` (engine/delegate.py): its final report, or None when it failed or was
        refused (a log event says why). `effort` is fast | balanced | smart (default balanced), `agent` an agent
        definition to run, `timeout_s` overrides `delegate.timeout_s`. The child shows under the current phase and
        bills under the role "delegate"."""
        if not isinstance(task, str) or not task.strip():
            raise ValueError("delegate() needs a non-empty task")
        name = one_line(label, LABEL_CHARS) if label else ""
        runtime = self._subagent_runtime()
        refusal = None
        definitions: list[AgentDefinition] = []
        if effort is not None and effort not in EFFORTS:
            refusal = f"unknown effort {effort!r}; use fast, balanced or smart"
        elif agent:
            found = runtime.catalog.get(agent)
            if found is None:
                refusal = str(UnknownAgent(agent, runtime.catalog.names()))
            else:
                definitions.append(found)

        async def run(child_runtime: SubagentRuntime) -> _SubagentOutcome:
            result = await run_delegate(task, runtime=child_runtime, effort=effort, agent=agent or None,
                                        timeout_s=timeout_s, label=name or None)  # fmt: skip
            child = result.child
            return _SubagentOutcome(text=result.report if result.ok else None,
                                    usage=child.usage if child is not None else ZERO_USAGE,
                                    agents=[child.id] if child is not None else [], error=result.error)  # fmt: skip

        return await self._subagent_call(
            "delegate", label=name, shown=name or f"delegate: {one_line(task, 50)}", prompt=task,
            options={"effort": effort, "agent": agent or None}, definitions=definitions, refusal=refusal, run=run,
        )  # fmt: skip

    async def chain(
        self, steps: Sequence[PipelineStep | Mapping[str, str] | str], task: str, *, title: str | None = None,
    ) -> str | None:  # fmt: skip
        """Named agents one after another, each seeing the previous one's output through `{previous}`
        (chains.run_pipeline): the last step's output, or None when a step failed (a log event says why)."""
        if not isinstance(task, str):
            raise TypeError(f"chain() takes the task as a string, got {type(task).__name__}")
        plan = normalize_steps(list(steps))
        if not plan:
            raise ValueError("chain() needs at least one step")
        runtime = self._subagent_runtime()
        unknown = runtime.catalog.first_unknown([step.agent for step in plan])
        refusal = str(UnknownAgent(unknown, runtime.catalog.names(), "chain")) if unknown is not None else None
        names = list(dict.fromkeys(step.agent for step in plan))
        definitions = [] if refusal else [runtime.catalog.require(n) for n in names]
        label = one_line(title, LABEL_CHARS) if title else ""

        async def run(child_runtime: SubagentRuntime) -> _SubagentOutcome:
            result = await run_pipeline(plan, task, runtime=child_runtime, title=title,
                                        timeout_s=child_runtime.settings.delegate.timeout_s)  # fmt: skip
            return _SubagentOutcome(text=result.final_output if result.ok else None, usage=result.usage,
                                    agents=[step.run.id for step in result.steps],
                                    error=None if result.ok else one_line(result.final_output, 300))  # fmt: skip

        return await self._subagent_call(
            "chain", label=label, shown=label or "chain: " + " → ".join(step.agent for step in plan), prompt=task,
            options={"steps": [dataclasses.asdict(step) for step in plan]}, definitions=definitions,
            refusal=refusal, run=run, title=title,
        )  # fmt: skip

    async def loop(
        self, agent: str, task: str, *, max_iterations: int = 3, judge: str | Judge | Mapping[str, Any] | None = None,
        title: str | None = None,
    ) -> str | None:  # fmt: skip
        """One named agent up to `max_iterations` times, each time with its earlier outputs (chains.run_loop); a
        `judge` (an agent name, Judge(agent, criteria) or {"agent", "criteria"}) ends it with YES on its first
        line, and its feedback after a NO reaches the next iteration. The final output, or None on failure."""
        if not isinstance(task, str) or not isinstance(agent, str):
            raise TypeError("loop() takes the agent's name and the task as strings")
        if not isinstance(max_iterations, int) or max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {max_iterations!r}")
        if isinstance(judge, str):
            judging: Judge | None = Judge(agent=judge)
        elif isinstance(judge, Mapping):
            judging = Judge(agent=str(judge["agent"]), criteria=judge.get("criteria"))
        else:
            judging = judge
        runtime = self._subagent_runtime()
        names = list(dict.fromkeys([agent] + ([judging.agent] if judging else [])))
        unknown = runtime.catalog.first_unknown(names)
        refusal = str(UnknownAgent(unknown, runtime.catalog.names(), "loop")) if unknown is not None else None
        definitions = [] if refusal else [runtime.catalog.require(n) for n in names]
        label = one_line(title, LABEL_CHARS) if title else ""

        async def run(child_runtime: SubagentRuntime) -> _SubagentOutcome:
            result = await run_loop(agent, task, max_iterations, judging, runtime=child_runtime, title=title,
                                    timeout_s=child_runtime.settings.delegate.timeout_s)  # fmt: skip
            agents = [one.id for it in result.iterations for one in (it.run, it.judge_run) if one is not None]
            error = None if result.ok else one_line(result.final_output, 300)
            return _SubagentOutcome(text=result.final_output if result.ok else None, usage=result.usage,
                                    agents=agents, error=error)  # fmt: skip

        judged = f", judged by {judging.agent}" if judging else ""
        return await self._subagent_call(
            "loop", label=label, shown=label or f"loop: {agent} × {max_iterations}{judged}", prompt=task,
            options={"agent": agent, "max_iterations": max_iterations,
                     "judge": dataclasses.asdict(judging) if judging else None},
            definitions=definitions, refusal=refusal, run=run, title=title,
        )  # fmt: skip

    def _subagent_runtime(self) -> SubagentRuntime:
        """The runtime every delegate, chain and loop of this workflow derives from (built on first use: the
        workspace's settings and agent definitions, whose problems are logged then, once per run)."""
        if self._subagent_root is None:
            if self.workspace is None or self.artifacts_dir is None:
                raise WorkflowError("wf.delegate, wf.chain and wf.loop need a workspace (this workflow has none)")
            settings = subagent_settings(self._load_settings(), self.model)
            context = ToolContext.from_settings(settings.tools, workspace=self.workspace,
                                                artifacts_dir=self.artifacts_dir)  # fmt: skip
            catalog = load_agent_definitions(self.workspace)
            for problem in catalog.problems:
                self._log_once("warning", str(problem))
            self._subagent_root = SubagentRuntime(
                settings=settings, hooks=self._hooks(), tools=context, policy=self.policy, catalog=catalog,
                taken=self._taken_ids.__contains__, model=self.model, thinking=self.thinking,
            )  # fmt: skip
        return self._subagent_root

    def _load_settings(self) -> Settings:
        if self._settings is not None:
            return self._settings
        from aw_tui.store.config import ConfigError, load_config

        try:
            self._settings = load_config(self.workspace).settings
        except ConfigError as error:
            self._settings = Settings()
            self._log_once("warning", "subagents use the default settings: the config cannot be used: "
                           + one_line(str(error), 300))  # fmt: skip
        return self._settings

    def _log_once(self, level: str, message: str) -> None:
        if message in self._logged:
            return
        self._logged.add(message)
        self._batcher.emit(ev.Log(level=level, message=message))  # type: ignore[arg-type]

    def _scripted_adjuster(self, title: str | None) -> SpecAdjuster | None:
        """On `--model scripted`: every child plays the first script role there is of `<title>:<agent>` (chain
        and loop steps with a title), its label, its agent definition's name, its role, else "workflow"."""
        if self.model != SCRIPTED_MODEL:
            return None
        roles = self._scripted_roles

        def adjust(spec: AgentSpec, definition: AgentDefinition | None) -> AgentSpec:
            names = [f"{title}:{definition.name}"] if title and definition and spec.role != DELEGATE_ROLE else []
            names += [spec.label, definition.name if definition else "", spec.role]
            role = next((name for name in names if name and name in roles), SCRIPTED_FALLBACK_ROLE)
            return dataclasses.replace(spec, model=f"{SCRIPTED_MODEL}/{role}", api_base=None, context_limit=None)

        return adjust

    async def _subagent_call(
        self, kind: str, *, label: str, shown: str, prompt: str, options: Mapping[str, Any],
        definitions: Sequence[AgentDefinition], refusal: str | None,
        run: Callable[[SubagentRuntime], Awaitable[_SubagentOutcome]], title: str | None = None,
    ) -> str | None:  # fmt: skip
        """What delegate, chain and loop share: the journal, the runaway cap, a concurrency slot, the budget."""
        self._batcher.raise_if_failed()
        phase_title = self._phase
        phase_id = self._enter_phase(phase_title)
        if refusal is not None:  # bad arguments: nothing to show in the tree, only why
            self.stats.refused_calls += 1
            self._batcher.emit(ev.Log(level="warning", message=f"wf.{kind} {shown!r} refused: {refusal}"))
            return None
        position = {"kind": kind, "phase": phase_title, "label": label, "path": list(_PATH.get())}
        # The definitions' content is part of the key: editing an agent's prompt or model runs its calls again.
        options = {**options, "model": self.model, "thinking": self.thinking,
                   "definitions": [_definition_json(d) for d in definitions]}  # fmt: skip
        key = self._key(position, prompt, options, None)
        call = _SubagentCall(key=key, agent_id=f"wf-{key[:12]}", kind=kind, label=shown, phase=phase_title,
                             phase_id=phase_id)  # fmt: skip
        entry = self.journal.get(key)
        if entry is not None and entry.kind == "json" and isinstance(entry.result, dict) \
                and isinstance(entry.result.get("text"), str):  # fmt: skip
            return self._subagent_from_journal(call, entry)
        if self.started_calls >= self.max_agents:
            return self._refuse_subagents(call, AgentCapReached(
                f"agent cap reached: {self.max_agents} agents started in this run (a runaway backstop)"))  # fmt: skip
        self.started_calls += 1
        async with self._slots:
            try:
                await self._budget.admit()
            except BudgetExhausted as exhausted:
                return self._refuse_subagents(call, exhausted)
            spent = ZERO_USAGE
            try:
                runtime = self._subagent_runtime().derive(parent=None, phase=phase_id,
                                                          adjust_spec=self._scripted_adjuster(title))  # fmt: skip
                outcome = await run(runtime)
                spent = outcome.usage
            finally:
                self._budget.settle(spent.output)
        self.started_calls += max(0, len(outcome.agents) - 1)  # every agent it ran counts toward the cap
        self.stats.agent_calls += 1
        self.stats.add_usage(spent)
        if outcome.text is not None:
            self.journal.record(JournalEntry(
                key=key, kind="json", result={"kind": kind, "text": outcome.text, "agents": outcome.agents},
                label=shown, phase=phase_title, output_tokens=spent.output, total_tokens=spent.total_tokens,
                cost=spent.cost,
            ))  # fmt: skip
            self._batcher.schedule()
        else:
            self.stats.failed_calls += 1
            self._batcher.emit(ev.Log(level="warning", message=f"wf.{kind} {shown!r} gave no result: {outcome.error}"))
        return outcome.text

    def _subagent_from_journal(self, call: _SubagentCall, entry: JournalEntry) -> str:
        self.stats.agent_calls += 1
        self.stats.cached_calls += 1
        self._budget.add(entry.output_tokens)
        text: str = entry.result["text"]
        agents = entry.result.get("agents")
        shown_before = isinstance(agents, list) and bool(agents) and all(a in self._done_before for a in agents)
        if not shown_before and call.agent_id not in self._done_before:
            # Its agents are not in this run's tree: one agent stands for the whole call, answered from the journal.
            self._batcher.emit(self._subagent_started(call), ev.AgentFinished(id=call.agent_id, status="done",
                                                                              report=text))  # fmt: skip
        return text

    def _subagent_started(self, call: _SubagentCall) -> ev.AgentStarted:
        return ev.AgentStarted(id=call.agent_id, role=call.role, model=self.model or "", thinking=self.thinking,
                               phase=call.phase_id, label=call.label)  # fmt: skip

    def _refuse_subagents(self, call: _SubagentCall, refusal: AgentRefused) -> None:
        self._record_refusal(self._subagent_started(call), f"wf.{call.kind} {call.label!r}", refusal)


async def _gather(coroutines: Sequence[Awaitable[Any]]) -> list[Any]:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        raise


# --- workflow files ------------------------------------------------------------------------------------------


@dataclass
class LoadedWorkflow:
    path: Path
    function: Callable[[Workflow, Any], Awaitable[Any]]
    phases: list[str]
    title: str
    description: str
    module: ModuleType | None = None


def extract_phases(source: str) -> list[str]:
    """Titles of literal `<x>.phase("...")` calls, in source order, each once; [] when the source does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "phase"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str) and node.args[0].value.strip()
        ):  # fmt: skip
            found.append((node.lineno, node.col_offset, node.args[0].value))
    titles: list[str] = []
    for _, _, title in sorted(found):
        if title not in titles:
            titles.append(title)
    return titles


def load_workflow_file(path: Path | str) -> LoadedWorkflow:
    """Import a workflow file. Raises WorkflowError with one line (file:line where there is one)."""
    path = Path(path).expanduser()
    shown = str(path)
    if not path.exists():
        raise WorkflowError(f"{shown}: no such workflow file")
    if not path.is_file():
        raise WorkflowError(f"{shown}: not a file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WorkflowError(f"{shown}: cannot read it: {getattr(error, 'strerror', None) or error}") from None
    try:
        code = compile(source, shown, "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f"{shown}:{error.lineno}" if error.lineno else shown
        raise WorkflowError(f"{where}: syntax error: {error.msg}") from None
    except ValueError as error:  # e.g. a NUL byte in the source
        raise WorkflowError(f"{shown}: cannot compile it: {error}") from None
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"aw_tui_workflow_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves a model's annotations through its module
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the user's own workflow file is the point
    except Exception as error:  # noqa: BLE001 - any failure while importing is reported in one line
        sys.modules.pop(name, None)
        line = _line_in(error, shown)
        where = f"{shown}:{line}" if line else shown
        raise WorkflowError(f"{where}: importing the workflow failed: {type(error).__name__}: "
                            f"{one_line(str(error), 200)}") from None  # fmt: skip
    function = module.__dict__.get("workflow")
    if function is None:
        raise WorkflowError(f"{shown}: defines no workflow function; add `async def workflow(wf, args):`")
    if not inspect.iscoroutinefunction(function):
        line = getattr(getattr(function, "__code__", None), "co_firstlineno", None)
        where = f"{shown}:{line}" if line else shown
        raise WorkflowError(f"{where}: `workflow` must be an async function: `async def workflow(wf, args):`")
    declared = module.__dict__.get("PHASES")
    if declared is not None:
        if not isinstance(declared, (list, tuple)) or not all(isinstance(t, str) and t.strip() for t in declared):
            raise WorkflowError(f"{shown}: PHASES must be a list of phase titles (non-empty strings)")
        phases = list(dict.fromkeys(declared))
    else:
        phases = extract_phases(source)
    doc = (inspect.getdoc(module) or "").strip()
    title = module.__dict__.get("TITLE") or (doc.splitlines()[0] if doc else f"workflow {path.stem}")
    return LoadedWorkflow(path=path.resolve(), function=function, phases=phases, title=str(title), description=doc,
                          module=module)  # fmt: skip


def _line_in(error: BaseException, filename: str) -> int | None:
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


# --- running a workflow in a run directory -------------------------------------------------------------------


@dataclass
class WorkflowOutcome:
    state: str  # FINISHED | FAILED | ABORTED, or WORKFLOW_RUNNING when the process stopped mid-run
    reason: str
    result: Any = None
    stats: WorkflowStats = field(default_factory=WorkflowStats)
    result_path: Path | None = None
    traceback_path: Path | None = None


def workflow_settings(writer: RunWriter) -> dict[str, Any]:
    settings = writer.state.settings.get(SETTINGS_KEY)
    return dict(settings) if isinstance(settings, dict) else {}


class _Stop(Exception):
    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class WorkflowRunner:
    """Runs one loaded workflow in the run held by `writer` until it ends (or this process stops)."""

    def __init__(
        self,
        writer: RunWriter,
        loaded: LoadedWorkflow,
        args: Any,
        *,
        listeners: Sequence[Callable[[Sequence[ev.Event]], None]] = (),
        scripted_roles: Iterable[str] = (),
        policy: llm.RetryPolicy | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        control_poll_s: float = CONTROL_POLL_S,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.writer = writer
        self.loaded = loaded
        self.args = args
        self.listeners = list(listeners)
        self.heartbeat_s = heartbeat_s
        self.control_poll_s = control_poll_s
        self._control = ControlReader(writer.paths)
        self._stop: _Stop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._derived_at = 0.0
        self._derived_seq = -1
        settings = dict(settings) if settings is not None else workflow_settings(writer)
        state = writer.state
        self.journal = Journal(writer.paths.artifacts_dir / JOURNAL_FILE, recovered_dir=writer.paths.recovered_dir)
        phases_seen = {p.title: (p.id, p.status) for p in state.phases.values()}
        self.wf = Workflow(
            emit=self._emit, model=settings.get("model"), thinking=settings.get("thinking") or "off",
            journal=self.journal, budget=settings.get("budget"),
            concurrency=int(settings.get("concurrency") or DEFAULT_CONCURRENCY),
            max_agents=int(settings.get("max_agents") if settings.get("max_agents") is not None else DEFAULT_MAX_AGENTS),
            workspace=Path(state.workspace) if state.workspace else None, artifacts_dir=writer.paths.artifacts_dir,
            api_base=settings.get("api_base"), policy=policy, scripted_roles=scripted_roles,
            done_agents=[a.id for a in state.agents.values() if a.status == "done"], phases_seen=phases_seen,
            taken_ids=[*state.agents, *state.phases], logged_before=[log.message for log in state.logs],
        )  # fmt: skip
        self.wf.cancel_status = lambda: "aborted" if self._stop is not None else "interrupted"

    def _emit(self, *events: ev.Event) -> None:
        stamped = self.writer.emit(*events)
        for listener in self.listeners:
            listener(stamped)

    def _write_derived(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or (self.writer.state.last_seq != self._derived_seq and now - self._derived_at >= DERIVED_INTERVAL_S):
            self._derived_at = now
            self._derived_seq = self.writer.state.last_seq
            self.writer.write_derived()

    async def run(self) -> WorkflowOutcome:
        wf = self.wf
        self._recover()
        resumed = bool(self.journal) or self.writer.state.agents
        reason = (f"resumed {self.loaded.path.name}: {len(self.journal)} completed call(s) in the journal"
                  if resumed else f"running {self.loaded.path.name}")  # fmt: skip
        wf.emit(ev.RunStateChanged(state="WORKFLOW_RUNNING", reason=reason))
        if self.loaded.phases:
            wf.phases(self.loaded.phases)
        wf.flush()
        self._write_derived(force=True)
        background = [asyncio.create_task(self._control_loop(), name="aw-workflow-control"),
                      asyncio.create_task(self._heartbeat_loop(), name="aw-workflow-heartbeat")]  # fmt: skip
        outcome: WorkflowOutcome | None = None
        try:
            await self._process_commands()
            if self._stop is not None:
                outcome = WorkflowOutcome(self._stop.state, self._stop.reason)
            else:
                self._task = asyncio.create_task(self._call_workflow(), name="aw-workflow")
                outcome = await self._wait_for_workflow()
        finally:
            await stop_background(background)
            if outcome is None:  # this process is stopping (Ctrl-C, cancelled): the run stays resumable
                with contextlib.suppress(Exception):
                    wf.flush()
                with contextlib.suppress(Exception):
                    self.journal.close()
                with contextlib.suppress(Exception):
                    self._write_derived(force=True)
        self._conclude(outcome)
        return outcome

    async def _call_workflow(self) -> Any:
        return await self.loaded.function(self.wf, self.args)

    async def _wait_for_workflow(self) -> WorkflowOutcome:
        assert self._task is not None
        try:
            result = await self._task
        except asyncio.CancelledError:
            if self._stop is None:
                raise  # cancelled from outside, not by abort/finish
            return WorkflowOutcome(self._stop.state, self._stop.reason)
        except Exception as error:  # noqa: BLE001 - the workflow's own failure ends the run FAILED
            return self._failed(error)
        if self._stop is not None:
            return WorkflowOutcome(self._stop.state, self._stop.reason, result=result)
        calls = self.wf.stats.agent_calls
        return WorkflowOutcome("FINISHED", f"the workflow returned after {calls} agent call(s)", result=result)

    def _failed(self, error: BaseException) -> WorkflowOutcome:
        text = "".join(traceback.format_exception(error))
        path = self.writer.paths.artifacts_dir / TRACEBACK_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError:
            path = None  # type: ignore[assignment]
        last = one_line(traceback.format_exception_only(error)[-1].strip(), 300)
        where = self._where(error)
        reason = f"the workflow raised {last}" + (f" (at {where})" if where else "")
        return WorkflowOutcome("FAILED", reason, traceback_path=path)

    def _where(self, error: BaseException) -> str:
        shown = str(self.loaded.path)
        line = _line_in(error, shown)
        return f"{self.loaded.path.name}:{line}" if line else ""

    def _conclude(self, outcome: WorkflowOutcome) -> None:
        wf = self.wf
        outcome.stats = wf.stats
        ok = outcome.state == "FINISHED"
        wf.finish_phases(ok)
        if ok:
            path = self.writer.paths.artifacts_dir / RESULT_FILE
            data = json.dumps({"result": to_jsonable(outcome.result)}, indent=2, ensure_ascii=False, default=repr)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data + "\n", encoding="utf-8")
            outcome.result_path = path
        wf.emit(wf.stats.to_event(), ev.RunStateChanged(state=outcome.state, reason=outcome.reason))  # type: ignore[arg-type]
        try:
            wf.flush()
        finally:
            self.journal.close()
        self._write_derived(force=True)

    def _recover(self) -> None:
        """Agents that were running when an earlier process died are recorded as interrupted; they run again."""
        interrupted = [a for a in self.writer.state.agents.values() if a.status == "running"]
        if interrupted:
            self._emit(
                *(ev.AgentFinished(id=a.id, status="interrupted",
                                   error="the engine stopped during this call (crash or kill); it runs again")
                  for a in interrupted),
                ev.Log(level="warning", message=f"resumed after an interruption: {len(interrupted)} agent call(s) "
                       "in flight were recorded as interrupted"),
            )  # fmt: skip

    # --- operator commands and the lease ---------------------------------------------------------------------

    async def _control_loop(self) -> None:
        while True:
            await asyncio.sleep(self.control_poll_s)
            await self._process_commands()

    async def _process_commands(self) -> None:
        for item in self._control.read_new():
            if isinstance(item, BadCommand):
                command_id = item.command_id or f"control-line-{item.line_number}"
                if command_id not in self.writer.state.commands:
                    self.wf.emit(ev.CommandRejected(command_id=command_id, cmd=item.cmd or "?", reason=item.reason))
                continue
            if item.id in self.writer.state.commands:
                continue
            self._handle(item)
        self.wf.flush()

    def _handle(self, command: Command) -> None:
        wf = self.wf
        state = self.writer.state
        reason = judge_command(state, command)
        if reason is None and command.cmd == "pause" and wf.paused:
            reason = "the run is already paused"
        if reason is None and command.cmd == "archive":
            reason = "a workflow run is archived after it ends"
        if reason is not None:
            wf.emit(ev.CommandRejected(command_id=command.id, cmd=command.cmd, reason=reason))
            return
        ack = ev.CommandAcknowledged(command_id=command.id, cmd=command.cmd)
        if command.cmd == "pause":
            wf.paused = True
            wf.emit(ev.RunPaused(command_id=command.id, reason=command.text or ""), ack)
        elif command.cmd == "resume":
            wf.paused = False
            wf.emit(ev.RunResumed(command_id=command.id, reason=command.text or ""), ack)
        elif command.cmd == "note":
            wf.emit(ev.OperatorNoted(text=command.text or "", command_id=command.id), ack)
        elif command.cmd in ("abort", "finish"):
            wf.emit(ack)
            state_name = "ABORTED" if command.cmd == "abort" else "FINISHED"
            why = command.text or f"the operator {'aborted' if command.cmd == 'abort' else 'finished'} the run"
            self._stop = _Stop(state_name, why)
            wf.paused = False
            if self._task is not None and not self._task.done():
                self._task.cancel()
        else:
            wf.emit(ev.CommandRejected(command_id=command.id, cmd=command.cmd,
                                       reason=f"a workflow run has no use for {command.cmd}"))  # fmt: skip

    async def _heartbeat_loop(self) -> None:
        beat = time.monotonic()
        while True:
            await asyncio.sleep(min(DERIVED_INTERVAL_S, self.heartbeat_s))
            if time.monotonic() - beat >= self.heartbeat_s:
                beat = time.monotonic()
                try:
                    self.writer.heartbeat()
                except OSError as error:
                    self.wf.emit(ev.Log(level="warning", message=f"lease heartbeat failed: {error}"))
            try:
                self._write_derived()
            except OSError as error:
                self.wf.emit(ev.Log(level="warning", message=f"rewriting the derived files failed: {error}"))


# --- starting and resuming (what `aw-tui workflow run` calls) --------------------------------------------------


def parse_args_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise WorkflowError(f"--args is not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}") from None


def uses_scripted(model: str | None) -> bool:
    return bool(model) and (model == SCRIPTED_MODEL or str(model).startswith(SCRIPTED_MODEL + "/"))


def start_workflow_run(
    loaded: LoadedWorkflow,
    args: Any,
    *,
    runs_root: Path,
    model: str | None,
    thinking: str = "off",
    workspace: Path | None = None,
    script: Path | None = None,
    budget: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_agents: int = DEFAULT_MAX_AGENTS,
    api_base: str | None = None,
) -> RunWriter:
    """A new run directory (leased by this process) for `loaded`, after every check that costs nothing."""
    from aw_tui.engine.orchestrator import ENGINE_KEY

    if not model:
        raise WorkflowError("no model: pass --model MODEL (a litellm model, or `scripted` with --script FILE)")
    workspace = Path(workspace or Path.cwd()).expanduser()
    if not workspace.is_dir():
        raise WorkflowError(f"the workspace {workspace} does not exist or is not a directory")
    engine: dict[str, Any] = {}
    if uses_scripted(model):
        if script is None:
            raise WorkflowError("scripted models play a script: pass --script FILE")
    if script is not None:
        script = Path(script).expanduser().resolve()
        if not script.is_file():
            raise WorkflowError(f"the script {script} does not exist")
        engine["script"] = str(script)
    settings: dict[str, Any] = {
        SETTINGS_KEY: {
            "file": str(loaded.path), "args": args, "model": model, "thinking": thinking, "budget": budget,
            "concurrency": concurrency, "max_agents": max_agents, "api_base": api_base,
        },
    }  # fmt: skip
    if engine:
        settings[ENGINE_KEY] = engine
    task = loaded.description or f"workflow {loaded.path.name}"
    try:
        return RunWriter.create(runs_root, task=task, title=loaded.title, workspace=str(workspace.resolve()),
                                settings=settings, kind="workflow")  # fmt: skip
    except OSError as error:
        raise WorkflowError(f"cannot create a run under {runs_root}: {error.strerror or error}") from None


def recorded_script(writer: RunWriter) -> str | None:
    from aw_tui.engine.orchestrator import ENGINE_KEY

    engine = writer.state.settings.get(ENGINE_KEY)
    script = engine.get("script") if isinstance(engine, dict) else None
    return str(script) if script else None


def install_workflow_script(writer: RunWriter, settings: Mapping[str, Any], script: str | None) -> frozenset[str]:
    """For a run on scripted models: install its script, past the turns an earlier process played. Returns the
    script's role names (an agent whose label is one of them plays that role's turns)."""
    from aw_tui.engine.launch import scripted_calls_made

    if not uses_scripted(settings.get("model")) and not script:
        return frozenset()
    if not script:
        raise WorkflowError("this run uses scripted models but has no script to play: pass --script FILE")
    if not Path(script).is_file():
        raise WorkflowError(f"the script {script} no longer exists")
    from aw_tui.engine.scripted import ScriptError, install_script

    try:
        provider = install_script(Path(script))
        provider.skip(scripted_calls_made(writer.state))
    except ScriptError as error:
        raise WorkflowError(str(error)) from None
    return frozenset(provider.script.roles)


def reopen_workflow_run(
    path: Path, loaded: LoadedWorkflow, *, args: Any = None, script: Path | None = None, **overrides: Any,
) -> tuple[RunWriter, dict[str, Any], str | None]:  # fmt: skip
    """Take over a workflow run to run `loaded` again in it, the journal answering unchanged calls.

    Returns the writer, the settings to run with (the recorded ones, with this file, and `args` and the
    `overrides` that are not None: model, thinking, budget, concurrency, max_agents) and the script to play. What
    differs from the recorded settings is logged; run.created keeps the original ones, so a later resume states
    its changes again.
    """
    writer = RunWriter.attach(path)
    try:
        state = writer.state
        if state.kind != "workflow":
            raise WorkflowError(f"{path.name} is not a workflow run; continue it with `aw-tui resume {path.name}`")
        recorded = workflow_settings(writer)
        before = {**recorded, "script": recorded_script(writer)}
        changed: dict[str, Any] = {"file": str(loaded.path)}
        if args is not None:
            changed["args"] = args
        changed.update({key: value for key, value in overrides.items() if value is not None})
        if script is not None:
            resolved = Path(script).expanduser().resolve()
            if not resolved.is_file():
                raise WorkflowError(f"the script {resolved} does not exist")
            changed["script"] = str(resolved)
        differences = {key: value for key, value in changed.items() if before.get(key) != value}
        if differences:
            writer.emit(ev.Log(level="info", message="resumed with " + ", ".join(
                f"{key}={stable_json(value)}" for key, value in differences.items())))  # fmt: skip
        settings = {**recorded, **changed}
        return writer, settings, settings.pop("script", None) or before["script"]
    except BaseException:
        writer.close()
        raise
