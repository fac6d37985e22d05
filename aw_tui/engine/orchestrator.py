"""The analyst/worker orchestrator: the seed's loop and state machine on a run directory.

    ANALYST_PLANNING -> WORKER_RUNNING -> ANALYST_REVIEWING -> WORKER_RUNNING -> ... -> DONE (confirm_done gate)

Everything the engine decides is an event in the run's log, and everything it needs to continue is derived
from the state those events fold into: the step counter, the current instruction, how many recoveries the
worker has had, when the operator last spoke, what the budget is. So `Orchestrator.run()` continues a run
exactly where the log leaves off, whether it was created a second ago or killed with kill -9 mid-turn.

Three tasks run side by side: the main loop (turns and gates), the control loop (control.jsonl, watched with
watchfiles) and the heartbeat (the lease). Only the control loop resolves gates, and only from operator
commands; abort and finish cancel the main loop, which stops any model call and kills running tool processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aw_tui.engine import llm
from aw_tui.engine.agent import AgentFailed, AgentHooks, AgentResult, AgentSpec, run_agent
from aw_tui.engine.background import stop_background
from aw_tui.engine.delegate import DELEGATE_ROLE, SubagentRuntime
from aw_tui.engine.prompts import (
    ANALYST_SYSTEM,
    WORKER_SYSTEM,
    TurnFacts,
    analyst_plan_prompt,
    analyst_review_prompt,
    worker_prompt,
    worker_recovery_prompt,
)
from aw_tui.engine.protocol import (
    MIN_SUBSTANTIVE_ANALYST_CHARS,
    instruction_id,
    missing_worker_sections,
    parse_next_state,
    section,
    substantive_length,
    worker_asks_for_operator,
)
from aw_tui.engine.tools import ToolContext
from aw_tui.model import events as ev
from aw_tui.model.commands import ANSWERABLE_GATE_KINDS, WAITING_STATES, Command, judge_command
from aw_tui.model.formatting import one_line
from aw_tui.model.settings import Settings
from aw_tui.model.state import AgentNode, Gate, RunState
from aw_tui.model.stepreport import StepReportData, render_step_report
from aw_tui.store.atomic import atomic_write_text
from aw_tui.store.control import BadCommand, ControlReader
from aw_tui.store.eventlog import Clock, read_events, utc_now
from aw_tui.store.jsonl import JsonlRecord, append_lines, read_all
from aw_tui.store.run import RunError, RunWriter

MAX_WORKER_RECOVERIES = 2
HEARTBEAT_S = 5.0
CONTROL_POLL_S = 1.0  # a fallback for filesystems where change notifications do not arrive
CONTROL_DEBOUNCE_MS = 30
DERIVED_INTERVAL_S = 1.0
# The run settings key under which the engine keeps what is not a user setting (the scripted provider's script).
ENGINE_KEY = "engine"

# Marks a gate that reports a failure (a turn that could not finish): a standing --auto-approve never answers it,
# or a permanent error (a bad key) would be retried without end.
FAILURE_OPTION = "failure"

PHASE_FILE_SUFFIX = {"plan": "analyst_plan", "result": "worker_result", "review": "analyst_review"}
# The states in which the engine works; an operator_input gate's binding names the one to return to.
WORKING_STATES = ("ANALYST_PLANNING", "WORKER_RUNNING", "ANALYST_REVIEWING")


class StopRun(Exception):
    """End the run in `state` (ABORTED, FINISHED, FAILED) for `reason`."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


@dataclass
class EngineOptions:
    heartbeat_s: float = HEARTBEAT_S
    control_poll_s: float = CONTROL_POLL_S
    watch: bool = True  # watch control.jsonl with watchfiles (else poll only)
    sleep: Callable[[float], Any] = asyncio.sleep  # waits between model-call retries


def run_settings(state: RunState) -> tuple[Settings, dict[str, Any]]:
    """The Settings a run was started with, and the engine's own entries (not user settings)."""
    data = dict(state.settings)
    engine = data.pop(ENGINE_KEY, None) or {}
    return Settings.model_validate(data), dict(engine)


def unrecorded_agents(state: RunState) -> list[AgentNode]:
    """The agents whose work no step report records, left by an engine that died: every running agent, and an
    analyst or worker turn that finished but died before its step report was written (with its sub-agents).

    Such a turn's answer was never acted on, so it is redone. Recording it as interrupted keeps its spending apart
    from the recorded steps, and the scripted provider plays its calls again instead of skipping them.
    """
    agents = state.agents
    marked = {a.id for a in agents.values() if a.status == "running"}
    if state.kind == "analyst_worker":
        recorded = {ref.agent for ref in state.steps}
        unrecorded = [a for a in agents.values() if a.parent is None and a.step is not None
                      and a.role in ("analyst", "worker") and a.status == "done" and a.id not in recorded]  # fmt: skip
        marked.update(a.id for a in unrecorded)
        pending = [child for a in unrecorded for child in a.children]
        while pending:  # the sub-agents of an unrecorded turn belong to it
            node = agents.get(pending.pop())
            if node is not None and node.status == "done" and node.id not in marked:
                marked.add(node.id)
                pending.extend(node.children)
    return [a for a in agents.values() if a.id in marked]


class Orchestrator:
    """Drives one analyst/worker run held by `writer` until it ends or the process stops."""

    def __init__(
        self,
        writer: RunWriter,
        *,
        listener: Callable[[Sequence[ev.Event]], None] | None = None,
        options: EngineOptions | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.writer = writer
        self.paths = writer.paths
        self.settings, self.engine_settings = run_settings(writer.state)
        self.options = options or EngineOptions()
        self._listeners: list[Callable[[Sequence[ev.Event]], None]] = [listener] if listener else []
        self._clock = clock
        self._changed = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._stop: StopRun | None = None
        self._control = ControlReader(self.paths)
        self._tools: ToolContext | None = None
        self._subagents: SubagentRuntime | None = None  # shares delegate ids and agent definitions across turns
        self._operator_wait_s = 0.0
        self._derived_at = float("-inf")
        self._derived_timer: asyncio.TimerHandle | None = None
        self._disk_error: OSError | None = None  # the first write to the run directory that failed
        self._stopped_by_disk_error = False  # the main loop was cancelled because of it
        self._session = AnalystSession(self.paths.artifacts_dir / "sessions" / "analyst.jsonl")
        self.retry_policy = llm.RetryPolicy(
            max_attempts=self.settings.llm.max_attempts,
            max_retry_after_s=self.settings.llm.max_retry_after_s,
            timeout_s=self.settings.llm.timeout_s,
            stream=self.settings.llm.stream,
        )

    # --- plumbing ------------------------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        return self.writer.state

    def add_listener(self, listener: Callable[[Sequence[ev.Event]], None]) -> None:
        self._listeners.append(listener)

    def emit(self, *events: ev.Event) -> list[ev.Event]:
        with self._noting_disk_errors():
            stamped = self.writer.emit(*events)
            for listener in self._listeners:
                listener(stamped)  # a listener may write too (--auto-approve sends its command)
        self._changed.set()
        return stamped

    @contextlib.contextmanager
    def _noting_disk_errors(self) -> Iterator[None]:
        """Remember the first failed write (to the run directory, or by a listener). Hooks run inside the agent loop
        and its tools, which turn errors into tool results; if the run fails, it must fail with this error, not with
        a later one it caused."""
        try:
            yield
        except OSError as error:
            if self._disk_error is None:
                self._disk_error = error
            raise

    async def _until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition()` holds; re-checked whenever an event is emitted."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    def _derived(self, *, force: bool = False) -> None:
        """Rewrite run.json, state.md and ledger.json: at once when forced (a gate, the end), else at most once a
        DERIVED_INTERVAL_S. They are for people and quick listings; events.jsonl, written at once, is the truth,
        and rewriting a long run's checkpoint and ledger after every turn would cost more than the turn."""
        elapsed = time.monotonic() - self._derived_at
        if force or elapsed >= DERIVED_INTERVAL_S:
            self._write_derived_now()
        elif self._derived_timer is None:
            self._derived_timer = asyncio.get_running_loop().call_later(
                DERIVED_INTERVAL_S - elapsed, self._write_derived_later
            )

    def _write_derived_later(self) -> None:
        """The timer's rewrite: an error here has no caller to go to, so it stops the run like one in a turn."""
        try:
            self._write_derived_now()
        except OSError as error:
            self._stop_for_disk_error(error)

    def _stop_for_disk_error(self, error: OSError) -> None:
        """A write to the run directory failed outside the main loop (a full disk, say): end the run with it.

        The run is left as a crash would leave it, so `aw-tui resume` continues it once the disk has room; `run()`
        raises the first such error, which names the file."""
        if self._disk_error is None:
            self._disk_error = error
        self._stopped_by_disk_error = True
        if self._main is not None and not self._main.done():
            self._main.cancel()

    def _write_derived_now(self) -> None:
        if self._derived_timer is not None:
            self._derived_timer.cancel()
            self._derived_timer = None
        self._derived_at = time.monotonic()
        with self._noting_disk_errors():
            self.writer.write_derived()

    # --- the run -------------------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run until the run ends; returns the final state. Takes commands from control.jsonl meanwhile."""
        if self.state.created_at is None:
            # Its first write (run.created) was lost: there is no task or settings to continue with, and the
            # defaults would send a real model a task nobody gave it.
            raise RunError(f"{self.paths.root.name}: the run's first event (run.created) is missing, so there is "
                           "nothing to continue; start the run again")  # fmt: skip
        self._recover_after_restart()
        background = [
            asyncio.create_task(self._control_loop(), name="aw-control"),
            asyncio.create_task(self._heartbeat_loop(), name="aw-heartbeat"),
        ]
        failed = True
        try:
            await self._process_commands()  # commands queued while no engine ran (pause, abort, answers)
            if not self.state.is_terminal and self._stop is None:
                self._main = asyncio.create_task(self._main_loop(), name="aw-main")
                try:
                    await self._main
                except asyncio.CancelledError:
                    if self._stopped_by_disk_error:
                        raise self._disk_error  # type: ignore[misc] # the first write that failed
                    if self._stop is None:
                        raise  # we were cancelled from outside, not by abort/finish
                except Exception:
                    if self._disk_error is not None:
                        raise self._disk_error
                    raise
            if self._stop is not None and not self.state.is_terminal:
                self._finish(self._stop.state, self._stop.reason)
            failed = False
        finally:
            await stop_background(background)
            if self._tools is not None:
                await self._tools.abort(grace_s=0.5)
            try:
                self._derived(force=True)
            except OSError:
                if not failed:
                    raise
                # The run is stopping on an error already (a full disk, most likely); that one is the news.
        return self.state.state

    def _recover_after_restart(self) -> None:
        """Pick up after an engine that died: finish a commit it left cut short, and record the turns it left in
        flight as interrupted (they are redone)."""
        self._complete_cut_commit()  # first: a completed commit records its turn, which then is not redone
        interrupted = unrecorded_agents(self.state)
        if interrupted:
            self.emit(
                *(ev.AgentFinished(id=a.id, status="interrupted",
                                   error="the engine stopped during this turn (crash or kill); the turn is redone")
                  for a in interrupted),  # fmt: skip
                ev.Log(level="warning", message=f"resumed after an interruption: {len(interrupted)} turn(s) in "
                       "flight were recorded as interrupted and will be redone"),  # fmt: skip
            )
        if self.state.state in ("IDLE", "CONFIGURING"):
            self.emit(ev.RunStateChanged(state="ANALYST_PLANNING", reason="the analyst plans the first stage"))
        self._derived(force=True)

    def _complete_cut_commit(self) -> None:
        """Finish recording the last turn if the engine died in the middle of its commit.

        A turn is committed in one write: step.report, then the memo (analyst), the state change and any gate. A
        crash can tear that write after its first lines (a write that spans a page, or a power cut); the repair then
        keeps the whole lines, and the run would be left with the step recorded but its decision lost: the same turn
        done again, a worker without an instruction, a waiting state nobody is asked about. The decision is still
        known: the step report holds the state it led to, and the analyst's answer (its agent's report) the rest.
        """
        ledger_steps = self.state.ledger.steps
        last = ledger_steps[-1] if ledger_steps else None
        if last is None or last.state_after is None:
            return
        state_after = last.state_after
        if self.state.state == state_after and (state_after not in WAITING_STATES or self.state.open_gates):
            return  # the common case, decided without reading the log
        events = read_events(self.paths.events)
        where = max((i for i, e in enumerate(events) if isinstance(e, ev.StepReport)), default=None)
        if where is None:
            return
        # A torn commit is the log's last write: after it come only this process's repair notes.
        tail = [e for e in events[where + 1:] if not isinstance(e, ev.Log)]
        if not all(isinstance(e, (ev.MemoUpdated, ev.RunStateChanged)) for e in tail):
            return  # the run went on after this step, so its commit was whole
        has_memo = any(isinstance(e, ev.MemoUpdated) for e in tail)
        has_state = any(isinstance(e, ev.RunStateChanged) for e in tail)
        reason = f"completing the record of step {last.step}, cut short when the engine stopped"
        agent = self.state.agents.get(last.agent or "")
        if last.role != "analyst" or agent is None:
            if not has_state:
                self.emit(ev.RunStateChanged(state=state_after, reason=reason))  # type: ignore[arg-type]
            return
        memo, next_state, _, gate = self._analyst_outcome(last.step, last.phase, agent.report or "")
        # The answer decides the same again, except where it depends on the clock (the autonomous-hours limit):
        # then the recorded state stands, and a waiting state without its gate is asked about by
        # _wait_for_operator.
        gate = gate if next_state == state_after else None
        if has_state and gate is None:
            return
        extra: list[ev.Event] = [] if has_memo else [memo]
        if gate is not None:
            kind, title, body, binding = gate
            self._open_gate(kind, title, body=body, binding=binding, requested_by=agent.id,
                            state=None if has_state else state_after, reason=reason, extra=extra)  # fmt: skip
        else:
            self.emit(*extra, ev.RunStateChanged(state=state_after, reason=reason))  # type: ignore[arg-type]

    async def _main_loop(self) -> None:
        try:
            while not self.state.is_terminal:
                await self._until(lambda: not self.state.paused)
                state = self.state.state
                if state == "ANALYST_PLANNING":
                    await self._analyst_turn("plan")
                elif state == "ANALYST_REVIEWING":
                    await self._analyst_turn("review")
                elif state == "WORKER_RUNNING":
                    await self._worker_turn()
                elif state in WAITING_STATES or state == "ARCHIVING":
                    await self._wait_for_operator()
                else:
                    raise StopRun("FAILED", f"the engine does not know how to continue from state {state}")
        except StopRun as stop:
            self._finish(stop.state, stop.reason)

    def _finish(self, state: str, reason: str) -> None:
        withdrawn = [
            ev.GateResolved(id=g.id, decision="canceled", resolved_by="engine") for g in self.state.open_gates
        ]
        self.emit(*withdrawn, ev.RunStateChanged(state=state, reason=reason))  # type: ignore[arg-type]
        self._derived(force=True)

    # --- waiting for the operator --------------------------------------------------------------------------

    async def _wait_for_operator(self) -> None:
        gate = self._pending_gate()
        if gate is None:
            # A waiting state and its gate are written together, and a resolved gate is applied at once; so this
            # is an engine that died between the two: apply the operator's decision now, or ask again.
            latest = self._latest_gate(ANSWERABLE_GATE_KINDS)
            if latest is not None and latest.status not in ("open", "canceled"):
                self._apply_resolution(latest)
                return
            self._open_gate(
                "operator_input", "The run is waiting for the operator",
                body="The engine found the run waiting without an open question. Answer to let the analyst plan "
                     "again, or abort the run.",
                binding="ANALYST_PLANNING",
            )  # fmt: skip
            return
        await self._until(lambda: not self.state.gates[gate.id].is_open)
        self._apply_resolution(self.state.gates[gate.id])

    def _pending_gate(self) -> Gate | None:
        return next((g for g in self.state.open_gates if g.kind in ANSWERABLE_GATE_KINDS), None)

    def _latest_gate(self, kinds: Sequence[str]) -> Gate | None:
        gates = [g for g in self.state.gates.values() if g.kind in kinds]
        return max(gates, key=lambda g: g.opened_seq) if gates else None

    def _apply_resolution(self, gate: Gate) -> None:
        """Move on from a waiting state according to the operator's decision on `gate`."""
        if gate.kind == "confirm_done":
            if gate.status == "approved":
                raise StopRun("FINISHED", f"the operator confirmed the run is done (gate {gate.id})")
            self.emit(ev.RunStateChanged(state="ANALYST_PLANNING",
                                         reason=f"the operator sent the analyst back (gate {gate.id})"))  # fmt: skip
        elif gate.kind == "step_limit":
            if gate.status == "approved":
                self.emit(ev.RunStateChanged(state="WORKER_RUNNING",
                                             reason=f"the operator let the worker go on (gate {gate.id})"))  # fmt: skip
            else:
                self.emit(ev.RunStateChanged(state="ANALYST_PLANNING",
                                             reason=f"the operator redirected the analyst (gate {gate.id})"))  # fmt: skip
        else:  # operator_input
            target = gate.binding if gate.binding in WORKING_STATES else "ANALYST_PLANNING"
            extra: list[ev.Event] = []
            if gate.status == "approved" and not gate.text:
                recommended = _field(gate.body, "Recommended answer")
                extra.append(ev.OperatorNoted(text=f"On {gate.title!r}, the operator accepts the recommended answer"
                                                   + (f": {recommended}" if recommended else ".")))  # fmt: skip
            elif gate.status == "rejected" and not gate.text:
                extra.append(ev.OperatorNoted(text=f"On {gate.title!r}, the operator rejects the recommendation; "
                                                   "propose something else."))  # fmt: skip
            self.emit(*extra, ev.RunStateChanged(state=target,  # type: ignore[arg-type]
                                                 reason=f"the operator answered gate {gate.id}"))  # fmt: skip
        self._derived()

    def _open_gate(
        self, kind: str, title: str, *, body: str = "", binding: str | None = None, requested_by: str = "engine",
        state: str | None = None, reason: str = "", extra: Sequence[ev.Event] = (), options: Sequence[str] = (),
    ) -> Gate:  # fmt: skip
        """Open a gate (with the state change that goes with it, in the same write)."""
        gate_id = f"g-{len(self.state.gates) + 1:04d}"
        events: list[ev.Event] = list(extra)
        if state is not None:
            events.append(ev.RunStateChanged(state=state, reason=reason or title))  # type: ignore[arg-type]
        events.append(ev.GateOpened(id=gate_id, kind=kind, title=title, body=body, binding=binding,  # type: ignore[arg-type]
                                    requested_by=requested_by, options=list(options)))  # fmt: skip
        self.emit(*events)
        self._derived(force=True)
        return self.state.gates[gate_id]

    async def _wait_gate(self, gate: Gate) -> Gate:
        started = time.perf_counter()
        try:
            await self._until(lambda: not self.state.gates[gate.id].is_open)
        finally:
            self._operator_wait_s += time.perf_counter() - started
        return self.state.gates[gate.id]

    # --- hooks the agent loop calls ----------------------------------------------------------------------------

    async def _before_model_call(self) -> None:
        await self._until(lambda: not self.state.paused)
        while (over := self._budget_overrun()) is not None:
            what, spent, cap = over
            gate = next((g for g in self.state.open_gates if g.kind == "budget"), None) or self._open_gate(
                "budget", f"Budget reached: {what} {spent} of {cap}",
                body=f"The run has spent {spent} against a cap of {cap} ({what}). Approve to raise the cap (the "
                     "answer's text may give the new cap; without it the cap grows by its original amount), or "
                     "reject to stop the run.",
                binding=what,
            )  # fmt: skip
            resolved = await self._wait_gate(gate)
            if resolved.status == "rejected":
                raise StopRun("ABORTED", f"the budget ({what}) was spent and the operator did not raise it")
            await self._until(lambda: not self.state.paused)

    async def _before_tool_call(self) -> None:
        await self._until(lambda: not self.state.paused)

    async def _approve_command(self, command: str, agent_id: str) -> bool:
        """The dangerous_command gate: the command runs only if the operator approves this exact text."""
        gate = next((g for g in self.state.open_gates if g.kind == "dangerous_command" and g.binding == command),
                    None)  # fmt: skip
        if gate is None:
            verdict = self._tools.classify(command).summary() if self._tools else ""
            gate = self._open_gate(
                "dangerous_command", f"Run: {one_line(command, 100)}",
                body=f"The worker wants to run this command:\n\n    {command}\n\nWhy it needs approval: {verdict}\n\n"
                     "Approve to run exactly this command once; reject to refuse it.",
                binding=command, requested_by=agent_id,
            )  # fmt: skip
        resolved = await self._wait_gate(gate)
        return resolved.status == "approved"

    async def _compaction_failed(self, error: str, role: str) -> None:
        gate = self._open_gate(
            "operator_input", f"Compaction of the {role}'s context failed twice",
            body=f"Problem: the {role}'s conversation reached its compaction threshold and summarising it failed "
                 f"twice ({error}).\nQuestion: try again?\nRecommended answer: answer to try the compaction again; "
                 "abort the run if the model keeps failing.",
            binding=None,
        )  # fmt: skip
        await self._wait_gate(gate)

    def _budget_overrun(self) -> tuple[str, str, str] | None:
        total = self.state.ledger.total
        cost_cap, token_cap = self._budget_caps()
        if cost_cap is not None and total.cost >= cost_cap:
            return "cost", f"${total.cost:.4f}", f"${cost_cap:.4f}"
        tokens = total.total_tokens
        if token_cap is not None and tokens >= token_cap:
            return "tokens", f"{tokens:,}", f"{token_cap:,}"
        return None

    def _budget_caps(self) -> tuple[float | None, int | None]:
        """The caps from settings, raised by every approved budget gate."""
        cost_cap = self.settings.budget.max_cost_usd
        token_cap = self.settings.budget.max_tokens
        for gate in sorted(self.state.gates.values(), key=lambda g: g.opened_seq):
            if gate.kind != "budget" or gate.status != "approved":
                continue
            asked = _number(gate.text)
            if gate.binding == "cost" and cost_cap is not None:
                cost_cap = asked if asked is not None else cost_cap + (self.settings.budget.max_cost_usd or 0)
            elif gate.binding == "tokens" and token_cap is not None:
                token_cap = int(asked) if asked is not None else token_cap + (self.settings.budget.max_tokens or 0)
        return cost_cap, token_cap

    def _hooks(self) -> AgentHooks:
        return AgentHooks(
            emit=self.emit, before_model_call=self._before_model_call, before_tool_call=self._before_tool_call,
            cancel_status=lambda: "aborted" if self._stop is not None else "interrupted", clock=self._clock,
            operator_wait_s=lambda: self._operator_wait_s, sleep=self.options.sleep,
        )  # fmt: skip

    # --- turns -------------------------------------------------------------------------------------------------

    def _next_step(self) -> int:
        return max((s.step for s in self.state.steps), default=0) + 1

    def _agent_id(self, step: int, role: str) -> str:
        base = f"s{step:04d}-{role}"
        if base not in self.state.agents:
            return base
        n = 2
        while f"{base}.{n}" in self.state.agents:
            n += 1
        return f"{base}.{n}"

    def _facts(self, step: int) -> TurnFacts:
        s, st = self.state, self.settings
        latest = s.steps[-1].path if s.steps else None
        last_worker = self._last_worker_step()
        last_instruction = None
        if last_worker is not None:
            node = s.agents.get(last_worker.agent or "")
            last_instruction = f"step {last_worker.step}" + (f" ({node.label})" if node and node.label else "")
        return TurnFacts(
            step=step, state=s.state, task=s.task, run_dir=str(self.paths.root), state_md=str(self.paths.state_md),
            ledger_json=str(self.paths.ledger_json), artifacts_dir=str(self.paths.artifacts_dir),
            workspace=s.workspace, latest_report=str(self.paths.root / latest) if latest else None,
            instruction_id=s.memo.instruction_id, last_completed_instruction=last_instruction,
            notes=[n.text for n in s.notes], tool_policy=st.tools.policy, analyst_model=st.analyst.model,
            worker_model=st.worker.model, analyst_thinking=st.analyst.thinking, worker_thinking=st.worker.thinking,
            analyst_context_limit=st.analyst.context_limit, worker_context_limit=st.worker.context_limit,
            max_autonomous_hours=st.limits.max_autonomous_hours,
            worker_steps_before_operator=st.limits.max_worker_steps_before_operator,
        )  # fmt: skip

    def _tool_context(self, policy: str) -> ToolContext:
        return ToolContext.from_settings(self.settings.tools, workspace=Path(self.state.workspace),
                                         artifacts_dir=self.paths.artifacts_dir, policy=policy)  # fmt: skip

    def _offer_delegate(self, tools: ToolContext, agent_id: str) -> None:
        """Give the agent owning `tools` the delegate tool: its children nest under it and share its approver."""
        hooks = self._hooks()
        hooks.compaction_failed = lambda error: self._compaction_failed(error, DELEGATE_ROLE)
        if self._subagents is None:
            self._subagents = SubagentRuntime(
                settings=self.settings, hooks=hooks, tools=tools, policy=self.retry_policy,
                taken=lambda name: name in self.state.agents or name in self.state.phases,
            )  # fmt: skip
        tools.agent_id = agent_id
        tools.delegate = self._subagents.derive(parent=agent_id, tools=tools, hooks=hooks).tool_handler

    async def _run_turn(
        self, spec: AgentSpec, history: list[dict[str, Any]], prompt: str, tools: ToolContext | None,
        *, context_tokens: int = 0, retry_state: str,
    ) -> AgentResult | None:  # fmt: skip
        """One turn; a turn that fails asks the operator (operator_input gate) and returns None."""
        hooks = self._hooks()
        hooks.compaction_failed = lambda error: self._compaction_failed(error, spec.role)
        self._tools = tools
        try:
            return await run_agent(spec, history, prompt, hooks=hooks, tools=tools, policy=self.retry_policy,
                                   context_tokens=context_tokens)  # fmt: skip
        except AgentFailed as failure:
            self._open_gate(
                "operator_input", f"The {spec.role}'s turn failed",
                body=f"Problem: {failure.message}\nQuestion: try the same turn again?\nRecommended answer: fix the "
                     "cause (key, model name, endpoint, quota) if there is one, then answer to retry; or abort.",
                binding=retry_state, requested_by=spec.id, state="BLOCKED_NEEDS_OPERATOR",
                reason=f"the {spec.role}'s turn failed: {failure.message}", options=(FAILURE_OPTION,),
            )  # fmt: skip
            return None
        finally:
            self._tools = None

    async def _analyst_turn(self, mode: str) -> None:
        step = self._next_step()
        role_settings = self.settings.analyst
        spec = AgentSpec(
            id=self._agent_id(step, "analyst"), role="analyst", model=role_settings.model,
            thinking=role_settings.thinking, api_base=role_settings.api_base,
            context_limit=role_settings.context_limit, step=step, label=f"analyst {mode}",
        )  # fmt: skip
        facts = self._facts(step)
        if mode == "plan":
            prompt = analyst_plan_prompt(facts)
        else:
            worker = self._last_worker_step()
            report = (self.state.agents[worker.agent].report or "") if worker and worker.agent else ""
            prompt = analyst_review_prompt(facts, report or "(the worker left no report)", worker.step if worker else 0)
        history, context_tokens = self._session.load(self.state, ANALYST_SYSTEM.format(model=spec.model))
        started = self._clock()
        current = "ANALYST_PLANNING" if mode == "plan" else "ANALYST_REVIEWING"
        result = await self._run_turn(spec, history, prompt, self._tool_context("read-only"),
                                      context_tokens=context_tokens, retry_state=current)  # fmt: skip
        if result is None:
            return
        memo, next_state, reason, gate = self._analyst_outcome(step, mode, result.text)
        self._write_step(step, "analyst", mode, spec, result, started, next_state, memo.instruction_id)
        with self._noting_disk_errors():
            self._session.save(step, history, result)
        self._commit_turn(step, "analyst", mode, spec, result, next_state, reason, [memo], gate)

    def _analyst_outcome(
        self, step: int, mode: str, text: str,
    ) -> tuple[ev.MemoUpdated, str, str, tuple[str, str, str, str | None] | None]:  # fmt: skip
        """What the analyst's answer decides: the memo, the next state and why, and the gate to open (kind, title,
        body, binding) if any."""
        decision = parse_next_state(text) or "NEEDS_WORKER"
        memo = ev.MemoUpdated(
            hypothesis=section(text, "Hypothesis") or None,
            next_action=_none_if_empty(_first_line(section(text, "Worker instruction"))),
            operator_expected=_none_if_empty(section(text, "Operator handoff")),
        )
        gate: tuple[str, str, str, str | None] | None = None  # kind, title, body, binding
        if substantive_length(text) < MIN_SUBSTANTIVE_ANALYST_CHARS:
            next_state, reason = "BLOCKED_NEEDS_OPERATOR", "the analyst produced no substantive plan"
            gate = ("operator_input", "The analyst produced no substantive plan",
                    f"Problem: the analyst's answer has under {MIN_SUBSTANTIVE_ANALYST_CHARS} characters of content.\n"
                    "Question: what should it do?\nRecommended answer: restate the goal or narrow the task.",
                    "ANALYST_PLANNING")  # fmt: skip
        elif decision == "DONE":
            next_state, reason = "DONE_NEEDS_OPERATOR_CONFIRMATION", "the analyst declared the task done"
            memo = memo.model_copy(update={"instruction_id": "", "instruction": ""})
            gate = ("confirm_done", "The analyst says the task is done",
                    _handoff_or(text, "Diagnosis / Review") or "Approve to finish the run; reject with a reason to "
                    "send the analyst back.", None)  # fmt: skip
        elif decision == "ABORT":
            next_state, reason = "ABORTED", "the analyst aborted the run"
        elif decision == "NEEDS_OPERATOR":
            next_state, reason = "BLOCKED_NEEDS_OPERATOR", "the analyst needs the operator"
            handoff = section(text, "Operator handoff")
            gate = ("operator_input", _first_line(_field(handoff, "Question") or handoff) or "The analyst needs you",
                    handoff or text, "ANALYST_PLANNING")  # fmt: skip
        else:
            instruction = section(text, "Worker instruction")
            if not instruction or instruction.strip().lower().rstrip(".") == "none":
                next_state, reason = "BLOCKED_NEEDS_OPERATOR", "the analyst asked for the worker but gave no instruction"
                gate = ("operator_input", "The analyst gave no worker instruction",
                        "Problem: the analyst's next state is NEEDS_WORKER but its Worker instruction is empty.\n"
                        "Question: how should it go on?\nRecommended answer: ask it to state one bounded stage.",
                        "ANALYST_PLANNING")  # fmt: skip
            else:
                memo = memo.model_copy(update={"instruction_id": instruction_id(step, text), "instruction": instruction})
                next_state, reason, gate = self._worker_checkpoint(mode)
        return memo, next_state, reason, gate

    def _worker_checkpoint(self, mode: str) -> tuple[str, str, tuple[str, str, str, str | None] | None]:
        """Before handing a stage to the worker: the operator's limits (steps between check-ins, hours)."""
        limits = self.settings.limits
        since = self._last_operator_contact()
        if mode == "review":
            hours = (self._clock() - since).total_seconds() / 3600
            if hours >= limits.max_autonomous_hours:
                return ("WAITING_FOR_OPERATOR", "the autonomous time limit was reached", (
                    "step_limit", f"{hours:.1f} h without the operator (limit {limits.max_autonomous_hours:g} h)",
                    "The run has worked on its own for as long as the settings allow. Approve to let the worker "
                    "start the next stage; reject or answer to redirect the analyst.", None))  # fmt: skip
        cap = limits.max_worker_steps_before_operator
        if cap is not None:
            done = sum(
                1 for step in self.state.ledger.steps
                if step.role == "worker" and step.state_after == "ANALYST_REVIEWING"
                and step.finished_at is not None and step.finished_at >= since
            )  # fmt: skip
            if done >= cap:
                return ("WAITING_FOR_OPERATOR", "the worker-step limit between check-ins was reached", (
                    "step_limit", f"{done} worker step(s) since the operator last checked in (limit {cap})",
                    "Approve to let the worker start the next stage; reject or answer to redirect the analyst.",
                    None))  # fmt: skip
        return "WORKER_RUNNING", "the analyst handed the worker a stage", None

    def _last_operator_contact(self) -> datetime:
        s = self.state
        times = [s.created_at or ev.EPOCH]
        times += [g.resolved_at for g in s.gates.values() if g.resolved_at and g.resolved_by != "engine"
                  and g.kind != "dangerous_command"]  # fmt: skip
        times += [n.ts for n in s.notes]
        return max(times)

    def _last_worker_step(self) -> Any:
        return next((ref for ref in reversed(self.state.steps) if ref.role == "worker"), None)

    def _recoveries_so_far(self) -> int:
        """Worker turns already made for the current instruction (after the last analyst turn)."""
        count = 0
        for ref in reversed(self.state.steps):
            if ref.role != "worker":
                break
            count += 1
        return count

    async def _worker_turn(self) -> None:
        step = self._next_step()
        role_settings = self.settings.worker
        memo = self.state.memo
        recovery = self._recoveries_so_far()
        spec = AgentSpec(
            id=self._agent_id(step, "worker"), role="worker", model=role_settings.model,
            thinking=role_settings.thinking, api_base=role_settings.api_base,
            context_limit=role_settings.context_limit, step=step,
            label=f"worker {memo.instruction_id or ''}".strip() + (f" (recovery {recovery})" if recovery else ""),
        )  # fmt: skip
        system = {"role": "system", "content": WORKER_SYSTEM.format(model=spec.model)}
        facts = self._facts(step)
        first_prompt = worker_prompt(facts, memo.instruction or "(no instruction was recorded)")
        recovery_note = None
        if recovery == 0:
            history, prompt = [system], first_prompt
        else:
            previous = self.state.agents.get(self._last_worker_step().agent or "")
            report = (previous.report if previous else "") or ""
            missing = missing_worker_sections(report)
            history = [system, {"role": "user", "content": first_prompt}, {"role": "assistant", "content": report}]
            prompt = worker_recovery_prompt(memo.instruction_id, missing, recovery, MAX_WORKER_RECOVERIES)
            recovery_note = f"{recovery} of {MAX_WORKER_RECOVERIES}: the previous report lacked {', '.join(missing)}"
        started = self._clock()
        tools = self._tool_context(self.settings.tools.policy)
        tools.approve = lambda command: self._approve_command(command, spec.id)
        self._offer_delegate(tools, spec.id)
        try:
            result = await self._run_turn(spec, history, prompt, tools, retry_state="WORKER_RUNNING")
        finally:
            self._withdraw_stale_command_gates()
        if result is None:
            return
        missing = missing_worker_sections(result.text)
        if missing and not worker_asks_for_operator(result.text) and recovery < MAX_WORKER_RECOVERIES:
            next_state, reason = "WORKER_RUNNING", f"the worker's report lacks {', '.join(missing)}; it continues"
        else:
            next_state, reason = "ANALYST_REVIEWING", "the worker reported; the analyst reviews"
        self._write_step(step, "worker", "result", spec, result, started, next_state, memo.instruction_id,
                         recovery=recovery_note)  # fmt: skip
        self._commit_turn(step, "worker", "result", spec, result, next_state, reason, [], None)

    def _withdraw_stale_command_gates(self) -> None:
        stale = [g for g in self.state.open_gates if g.kind == "dangerous_command"]
        if stale:
            self.emit(*(ev.GateResolved(id=g.id, decision="canceled", resolved_by="engine") for g in stale),
                      ev.Log(level="info", message=f"withdrew {len(stale)} command approval request(s): the turn "
                             "that asked ended"))  # fmt: skip

    def _write_step(
        self, step: int, role: str, phase: str, spec: AgentSpec, result: AgentResult, started: datetime,
        state_after: str, instruction: str | None, *, recovery: str | None = None,
    ) -> None:  # fmt: skip
        node = self.state.agents.get(spec.id)
        earlier = [a.id for a in self.state.agents.values() if a.step == step and a.role == role and a.parent is None
                   and a.status == "interrupted" and a.id != spec.id]  # fmt: skip
        note = (f"An earlier try of this turn ({', '.join(earlier)}) was interrupted when the engine stopped; this "
                "is the redo. The earlier try's spending is in the ledger's totals, not in this step.") if earlier else None
        report = render_step_report(
            StepReportData(
                step=step, role=role, phase=phase, model=spec.model, thinking=spec.thinking, started_at=started,
                finished_at=self._clock(), usage=result.usage, final_answer=result.text,
                transcript=result.turn_messages, state_after=state_after, instruction_id=instruction,
                agent_id=spec.id, tool_ms_by_name=dict(node.tool_ms_by_name) if node else {},
                tool_errors=node.tool_errors if node else 0, recovery=recovery, note=note,
            )  # fmt: skip
        )
        with self._noting_disk_errors():
            atomic_write_text(self.paths.step_file(step, PHASE_FILE_SUFFIX[phase]), report)

    def _commit_turn(
        self, step: int, role: str, phase: str, spec: AgentSpec, result: AgentResult, next_state: str, reason: str,
        follow: Sequence[ev.Event], gate: tuple[str, str, str, str | None] | None,
    ) -> None:  # fmt: skip
        path = str(self.paths.step_file(step, PHASE_FILE_SUFFIX[phase]).relative_to(self.paths.root))
        events: list[ev.Event] = [
            ev.StepReport(step=step, role=role, phase=phase, path=path, agent=spec.id, state_after=next_state,
                          context_tokens=result.context_tokens, context_window=result.context_window),
            *follow,
        ]  # fmt: skip
        if gate is None:
            events.append(ev.RunStateChanged(state=next_state, reason=reason))  # type: ignore[arg-type]
            self.emit(*events)
            self._derived()
            return
        kind, title, body, binding = gate
        self._open_gate(kind, title, body=body, binding=binding, requested_by=spec.id, state=next_state,
                        reason=reason, extra=events)  # fmt: skip

    # --- operator commands ---------------------------------------------------------------------------------

    async def _control_loop(self) -> None:
        wake = asyncio.Event()
        watcher = asyncio.create_task(self._watch_control(wake)) if self.options.watch else None
        try:
            while True:
                try:
                    await self._process_commands()
                except OSError as error:  # acknowledging a command is a write too
                    self._stop_for_disk_error(error)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.options.control_poll_s)
                wake.clear()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher

    async def _watch_control(self, wake: asyncio.Event) -> None:
        try:
            from watchfiles import awatch
        except ImportError:  # pragma: no cover - a dependency; polling still works without it
            return
        # Watch the file itself, not the run directory: the engine's own writes there would wake us every turn.
        # If the file is replaced, the watch is lost and the poll fallback carries on.
        self.paths.control.touch(exist_ok=True)
        with contextlib.suppress(Exception):
            async for _ in awatch(self.paths.control, debounce=CONTROL_DEBOUNCE_MS, step=10, watch_filter=None):
                wake.set()

    async def _process_commands(self) -> None:
        for item in self._control.read_new():
            if isinstance(item, BadCommand):
                command_id = item.command_id or f"control-line-{item.line_number}"
                if command_id not in self.state.commands:
                    self.emit(ev.CommandRejected(command_id=command_id, cmd=item.cmd or "?", reason=item.reason))
                continue
            if item.id in self.state.commands:
                continue  # handled before (a restart reads control.jsonl from the start)
            await self._handle(item)

    async def _handle(self, command: Command) -> None:
        reason = judge_command(self.state, command)
        if reason is not None:
            self.emit(ev.CommandRejected(command_id=command.id, cmd=command.cmd, reason=reason))
            return
        ack = ev.CommandAcknowledged(command_id=command.id, cmd=command.cmd)
        cmd = command.cmd
        if cmd == "pause":
            self.emit(ev.RunPaused(command_id=command.id, reason=command.text or ""), ack)
        elif cmd == "resume":
            self.emit(ev.RunResumed(command_id=command.id, reason=command.text or ""), ack)
        elif cmd == "note":
            self.emit(ev.OperatorNoted(text=command.text or "", command_id=command.id), ack)
        elif cmd in ("approve", "reject", "answer"):
            decision = {"approve": "approved", "reject": "rejected", "answer": "answered"}[cmd]
            self.emit(
                ev.GateResolved(id=command.gate_id or "", decision=decision, text=command.text,  # type: ignore[arg-type]
                                resolved_by=command.source, command_id=command.id),
                ack,
            )  # fmt: skip
        elif cmd in ("abort", "finish"):
            self.emit(ack)
            state = "ABORTED" if cmd == "abort" else "FINISHED"
            why = command.text or ("the operator aborted the run" if cmd == "abort" else "the operator finished the run")
            self._request_stop(StopRun(state, why))
        elif cmd == "archive":
            try:
                destination = await asyncio.to_thread(archive_run, self.paths.root, command.text, self._clock())
            except (OSError, ValueError) as error:
                self.emit(ev.CommandRejected(command_id=command.id, cmd=cmd, reason=f"archive failed: {error}"))
                return
            self.emit(ev.Log(level="info", message=f"archived the run to {destination}"), ack)
        self._derived()

    def _request_stop(self, stop: StopRun) -> None:
        self._stop = stop
        if self._main is not None and not self._main.done():
            self._main.cancel()
        if self._tools is not None:
            # Cancelling kills bash through its own cleanup; this makes sure no process group outlives the turn.
            asyncio.get_running_loop().create_task(self._tools.abort(grace_s=0.5))

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            try:
                self.writer.heartbeat()
            except OSError as error:
                try:
                    self.emit(ev.Log(level="warning", message=f"lease heartbeat failed: {error}"))
                except OSError as log_error:  # nothing can be written: the disk is full
                    self._stop_for_disk_error(log_error)
                    return


# --- the analyst's conversation, kept across turns --------------------------------------------------------------


class AnalystSession:
    """The analyst's conversation, saved turn by turn under artifacts/sessions/ so a resumed run continues it.

    Each record names its step; records of steps that never completed (a crash after saving) are ignored, and of
    a step saved more than once (a crash after saving, then the redo) only the last record counts: the redo's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, state: RunState, system_prompt: str) -> tuple[list[dict[str, Any]], int]:
        completed = {ref.step for ref in state.steps}
        history: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        context_tokens = 0
        try:
            items = read_all(self.path)
        except OSError:
            items = []
        records: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, JsonlRecord) or item.value.get("step") not in completed:
                continue
            if not isinstance(item.value.get("messages"), list):
                continue
            if records and records[-1].get("step") == item.value.get("step"):
                records[-1] = item.value  # a redo of the step: its record replaces the interrupted try's
            else:
                records.append(item.value)
        for record in records:
            messages = record["messages"]
            if record.get("reset"):
                history = [history[0], *messages]
            else:
                history.extend(messages)
            context_tokens = int(record.get("context_tokens") or 0)
        return history, context_tokens

    def save(self, step: int, history_in: list[dict[str, Any]], result: AgentResult) -> None:
        if result.compactions:
            record = {"step": step, "reset": True, "messages": result.history[1:]}
        else:
            record = {"step": step, "messages": result.history[len(history_in):]}
        record["context_tokens"] = result.context_tokens
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_lines(self.path, [json.loads(json.dumps(record, default=str))])  # a failed write names the file


# --- archive ---------------------------------------------------------------------------------------------------


def archive_run(run_dir: Path, destination: str | None, now: datetime) -> Path:
    """Copy the run directory to `destination`, or to <runs root>/archive/YYYY/MM/DD/NNN_<name> by default."""
    run_dir = Path(run_dir)
    if destination:
        target = Path(destination).expanduser()
        if target.exists():
            raise ValueError(f"{target} already exists")
    else:
        day = run_dir.parent / "archive" / now.astimezone().strftime("%Y/%m/%d")
        day.mkdir(parents=True, exist_ok=True)
        number = 1 + sum(1 for entry in day.iterdir() if entry.is_dir())
        target = day / f"{number:03d}_{run_dir.name}"
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns(".lease.lock"))
    return target


# --- small helpers ---------------------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return next((line.strip(" -*#>") for line in text.splitlines() if line.strip(" -*#>")), "")


def _none_if_empty(text: str) -> str | None:
    stripped = text.strip()
    return None if not stripped or stripped.lower().rstrip(".") == "none" else stripped


def _field(text: str, name: str) -> str:
    """`Name: value` inside a section (the Operator handoff's Problem / Question / Recommended answer)."""
    for line in text.splitlines():
        head, _, value = line.strip(" -*>").partition(":")
        if head.strip(" *_").lower() == name.lower() and value.strip():
            return value.strip()
    return ""


def _handoff_or(text: str, fallback_section: str) -> str:
    handoff = _none_if_empty(section(text, "Operator handoff"))
    return handoff or section(text, fallback_section)


def _number(text: str | None) -> float | None:
    if not text:
        return None
    cleaned = text.strip().lstrip("$").replace(",", "").replace("_", "")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if value > 0 else None



