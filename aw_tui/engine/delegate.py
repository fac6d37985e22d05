"""Subagents: running a fresh child agent for another agent or a workflow, and the `delegate` tool built on it.

A child starts with an isolated context: its own system prompt and the task, nothing of its parent's
conversation. It works in the same workspace through its own ToolContext (the parent's policy, narrowed by an
agent definition's tool list), reports its events through the parent's hooks (so pause, budget and abort apply,
and the tree nests it under its parent), and bills its usage under its own role ("delegate"), which the ledger
shows as a row of its own.

`delegate(task, runtime=..., effort=..., agent=...)` is the plain async function a workflow calls; the worker's
`delegate` tool (tools.DELEGATE_TOOL) reaches the same code through `SubagentRuntime.tool_handler`. What comes
back is only the child's final report, with one header line giving model, duration, tool calls, tokens and
cost; a report over 2,000 lines or 50 KB is cut, its full text saved under artifacts/. A child that runs past
the timeout is cancelled and recorded as failed, saying so. Delegation nests up to `delegate.max_depth`; past
that the tool refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aw_tui.engine import llm
from aw_tui.engine.agent import AgentFailed, AgentHooks, AgentSpec, run_agent
from aw_tui.engine.agentdefs import (
    AgentCatalog,
    AgentDefinition,
    UnknownAgent,
    load_agent_definitions,
)
from aw_tui.engine.tools import ToolContext, ToolResult, cut_output
from aw_tui.model import events as ev
from aw_tui.model.formatting import counted, format_cost, format_duration, one_line
from aw_tui.model.ledger import ZERO_USAGE, Usage
from aw_tui.model.settings import EFFORTS, Settings, effort_choice

DELEGATE_ROLE = "delegate"
DEFAULT_EFFORT = "balanced"
EMPTY_REPORT = "(the delegated task finished without a final report)"

DELEGATE_SYSTEM = """\
You are a helper agent. Another agent handed you one self-contained task. You start with no knowledge of its \
conversation: everything you need is in the task, the project workspace and your tools.

- Do the task and only the task; if it cannot be done as stated, stop and say why.
- Prefer evidence over guesses: read the code, run the checks.
"""

REPORT_RULES = """\
When you are done, answer with a short report (usually 10-25 lines) in this shape, and nothing else:

Task: <the task in one line>
Result: <the outcome>
Evidence: <bullets: files with line numbers, symbols, commands, URLs>
Files: <files you changed, or "none">
Verification: <commands you ran and their outcome, or "not run" and why>
Handoff: <only if something important is left for the caller>
"""


# (the child's spec, its agent definition or None) -> the spec it runs with
SpecAdjuster = Callable[[AgentSpec, AgentDefinition | None], AgentSpec]


@dataclass(frozen=True)
class ChildRun:
    """How one child agent's turn went."""

    id: str
    model: str
    thinking: str
    ok: bool
    text: str  # the final answer ("" when it failed)
    error: str | None = None
    timed_out: bool = False
    duration_ms: float = 0.0
    tool_calls: int = 0
    failed_tool_calls: int = 0
    model_calls: int = 0  # billed calls of the child itself
    usage: Usage = ZERO_USAGE  # the child and everything under it (compactions, its own delegates)

    def stats(self) -> str:
        """`model · duration · N tool calls · N tokens · cost` for a header line."""
        tools = counted(self.tool_calls, "tool call")
        if self.failed_tool_calls:
            tools += f" ({self.failed_tool_calls} failed)"
        parts = [self.model, format_duration(self.duration_ms), tools, f"{self.usage.total_tokens:,} tokens",
                 format_cost(self.usage.cost, self.usage.cost_known)]  # fmt: skip
        if self.timed_out:
            parts.append("timed out")
        return " · ".join(parts)


@dataclass(frozen=True)
class DelegateResult:
    """What `delegate` returns. `text` is what the caller reads: the header and the (cut) report, or the error."""

    ok: bool
    text: str
    report: str = ""  # the child's full final answer
    refused: bool = False  # nothing ran (depth limit, unknown agent, bad effort)
    error: str | None = None
    effort: str | None = None
    agent: str | None = None
    child: ChildRun | None = None
    artifact: str | None = None  # where the full report went when `text` was cut

    @property
    def truncated(self) -> bool:
        return self.artifact is not None

    def tool_result(self) -> ToolResult:
        if self.ok:
            return ToolResult(content=self.text, artifact=self.artifact)
        if self.refused:
            return ToolResult.refusal(self.error or self.text)
        return ToolResult.failure(self.error or self.text, content=self.text)


def depth_refusal(depth: int, max_depth: int) -> str | None:
    """None while an agent at `depth` may delegate (its child would be at most `max_depth` deep), else why not."""
    if depth + 1 <= max_depth:
        return None
    return (f"delegation depth limit reached ({depth + 1} > {max_depth}): a delegated agent may not delegate "
            "further here. Do the task yourself; delegating again and again usually means a recursion loop "
            "(the limit is the setting delegate.max_depth)")  # fmt: skip


# --- the runtime ---------------------------------------------------------------------------------------------


@dataclass
class _Shared:
    """What a runtime and every runtime derived from it share: id counters (so ids never repeat within a run)
    and the agent definitions (loaded once)."""

    counters: dict[str, int] = field(default_factory=dict)
    taken: Callable[[str], bool] | None = None
    catalog: AgentCatalog | None = None

    def new_id(self, base: str) -> str:
        while True:
            self.counters[base] = self.counters.get(base, 0) + 1
            candidate = f"{base}{self.counters[base]}"
            if self.taken is None or not self.taken(candidate):
                return candidate


class SubagentRuntime:
    """What running child agents needs from whoever starts them: settings, hooks, a tool context to derive the
    children's from, agent definitions, and where in the tree they go.

    - `hooks`: the caller's AgentHooks (events, pause/budget waits, cancel status); children use them as theirs.
    - `tools`: a ToolContext for the workspace (policy, approver, artifacts/); each child gets a copy.
    - `parent`: the agent the children nest under (None: under `phase`, or at the root).
    - `depth`: how deep the agent that delegates is (the worker, a workflow agent: 0).
    - `taken(id)`: True for ids already used in the run (agents or phases), so a new one is picked.
    - `catalog`: agent definitions; loaded from the workspace and the user's config dir on first use, and a
      skipped file is reported as a warning Log event then.
    - `model`/`thinking`: what an agent definition that inherits its model gets (default: the balanced effort).
    - `adjust_spec(spec, definition)`: a last say over each child's AgentSpec before it runs, inherited by derived
      runtimes (a workflow on scripted models maps every child to a script role with it).
    """

    def __init__(
        self, *, settings: Settings, hooks: AgentHooks, tools: ToolContext, policy: llm.RetryPolicy | None = None,
        catalog: AgentCatalog | None = None, parent: str | None = None, phase: str | None = None, depth: int = 0,
        taken: Callable[[str], bool] | None = None, model: str | None = None, thinking: str | None = None,
        adjust_spec: SpecAdjuster | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.hooks = hooks
        self.tools = tools
        self.policy = policy or llm.RetryPolicy()
        self.parent = parent
        self.phase = phase
        self.depth = depth
        self.model = model
        self.thinking = thinking
        self.adjust_spec = adjust_spec
        self._shared = _Shared(taken=taken, catalog=catalog)

    # --- deriving ------------------------------------------------------------------------------------------

    def derive(self, *, parent: str | None, phase: str | None = None, depth: int | None = None,
               tools: ToolContext | None = None, hooks: AgentHooks | None = None,
               adjust_spec: SpecAdjuster | None = None) -> SubagentRuntime:  # fmt: skip
        """A runtime for agents started by `parent` (sharing ids, catalog and settings)."""
        child = SubagentRuntime(
            settings=self.settings, hooks=hooks or self.hooks, tools=tools or self.tools, policy=self.policy,
            parent=parent, phase=self.phase if phase is None else phase,
            depth=self.depth if depth is None else depth, model=self.model, thinking=self.thinking,
            adjust_spec=adjust_spec or self.adjust_spec,
        )  # fmt: skip
        child._shared = self._shared
        return child

    @property
    def catalog(self) -> AgentCatalog:
        shared = self._shared
        if shared.catalog is None:
            shared.catalog = load_agent_definitions(self.tools.workspace)
            if shared.catalog.problems:
                self.hooks.emit(*(ev.Log(level="warning", message=str(p)) for p in shared.catalog.problems))
        return shared.catalog

    def new_id(self, base: str) -> str:
        """`base` followed by the next free number (`s0002-worker~d` -> `s0002-worker~d1`)."""
        return self._shared.new_id(base)

    # --- models and tools ----------------------------------------------------------------------------------

    def choose_model(
        self, definition: AgentDefinition | None, effort: str | None = None
    ) -> tuple[str, str, str | None, int | None]:
        """(model, thinking, api_base, context_limit) for a child. An explicit `effort` wins over a definition's
        tier or inherited model, but not over a model the definition names; the definition's thinking level
        wins over the effort's."""
        pinned = definition.model if definition and definition.model and not definition.effort else None
        if pinned is not None:
            choice = effort_choice(self.settings, effort or DEFAULT_EFFORT)
            role = next((r for r in (self.settings.worker, self.settings.analyst) if r.model == pinned), None)
            model, thinking = pinned, choice.thinking
            api_base, limit = (role.api_base, role.context_limit) if role else (None, None)
        elif effort is None and definition is not None and definition.effort is None and self.model:
            model, thinking, api_base, limit = self.model, self.thinking or "medium", None, None
            role = next((r for r in (self.settings.worker, self.settings.analyst) if r.model == model), None)
            if role is not None:
                api_base, limit = role.api_base, role.context_limit
        else:
            tier = effort or (definition.effort if definition else None) or DEFAULT_EFFORT
            choice = effort_choice(self.settings, tier)
            model, thinking, api_base, limit = choice.model, choice.thinking, choice.api_base, choice.context_limit
        if definition is not None and definition.thinking:
            thinking = definition.thinking
        return model, thinking, api_base, limit

    def child_tools(self, agent_id: str, definition: AgentDefinition | None, *, depth: int,
                    hooks: AgentHooks | None = None) -> ToolContext:  # fmt: skip
        """A fresh ToolContext for a child: the caller's workspace, policy and approver, the definition's tool
        list within what the caller has, and its own delegate handler (one level deeper, reporting through
        `hooks`)."""
        allowed = self.tools.allowed_tools
        if definition is not None and definition.tools is not None:
            allowed = tuple(t for t in definition.tools if allowed is None or t in allowed)
        ctx = dataclasses.replace(self.tools, agent_id=agent_id, allowed_tools=allowed, delegate=None)
        nested = self.derive(parent=agent_id, depth=depth, tools=ctx, hooks=hooks)
        ctx.delegate = nested.tool_handler
        return ctx

    # --- running one child ---------------------------------------------------------------------------------

    async def run_child(
        self, spec: AgentSpec, system: str, prompt: str, *, definition: AgentDefinition | None = None,
        depth: int | None = None, timeout_s: float | None = None,
    ) -> ChildRun:  # fmt: skip
        """Run `spec` on [system] + prompt with the tools `definition` allows (all the caller's when None),
        `depth` deep (default: this runtime's). Failures come back as a ChildRun with ok False; cancellation
        from outside propagates (after the child recorded it). On timeout the child is cancelled and recorded
        as failed with the reason."""
        if self.adjust_spec is not None:
            spec = self.adjust_spec(spec, definition)
        watch = _ChildWatch(spec.id, self.hooks.emit)
        hooks = dataclasses.replace(self.hooks, emit=watch.emit)
        tools = self.child_tools(spec.id, definition, depth=self.depth if depth is None else depth, hooks=hooks)
        history = [{"role": "system", "content": system}] if system else []
        started = time.perf_counter()
        turn = asyncio.ensure_future(run_agent(spec, history, prompt, hooks=hooks, tools=tools, policy=self.policy))
        try:
            done, _ = await asyncio.wait({turn}, timeout=timeout_s)
        except BaseException:
            turn.cancel()
            with contextlib.suppress(BaseException):
                await turn
            watch.record_end(self.hooks)
            raise
        if not done:
            watch.timeout_reason = f"timed out after {_seconds(timeout_s or 0)}; the delegated agent was cancelled"
            turn.cancel()
            await asyncio.wait({turn})  # the child records its end; a cancellation of ours still propagates
            if not turn.cancelled():
                turn.exception()  # retrieved, so asyncio does not warn about it
            watch.record_end(self.hooks)
            await tools.abort(grace_s=0.5)
            return watch.outcome(spec, started, ok=False, text="", error=watch.timeout_reason, timed_out=True)
        try:
            result = turn.result()
        except AgentFailed as failure:
            return watch.outcome(spec, started, ok=False, text="", error=failure.message)
        return watch.outcome(spec, started, ok=True, text=result.text)

    # --- delegate ------------------------------------------------------------------------------------------

    async def tool_handler(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """The `delegate` tool for the agent owning `ctx` (tools.ToolContext.delegate)."""
        result = await delegate(
            str(args.get("task") or ""), runtime=self, effort=args.get("effort"), agent=args.get("agent") or None,
            caller=ctx.agent_id or self.parent,
        )  # fmt: skip
        return result.tool_result()


async def delegate(
    task: str, *, runtime: SubagentRuntime, effort: str | None = None, agent: str | None = None,
    caller: str | None = None, timeout_s: float | None = None, label: str | None = None,
) -> DelegateResult:  # fmt: skip
    """Run `task` in a fresh child agent and return its final report (see the module docstring).

    `effort` (fast | balanced | smart, default balanced) picks model and thinking from the settings; `agent`
    names an agent definition whose prompt, tools and model the child takes. `caller` is the agent the child
    nests under (default: the runtime's parent). Never raises for a failed child; cancellation propagates.
    """
    settings = runtime.settings.delegate
    if not task.strip():
        return _refused("the task is empty; write the complete task for the helper", effort, agent)
    if effort is not None and effort not in EFFORTS:
        return _refused(f"unknown effort {effort!r}; use fast, balanced or smart", effort, agent)
    why_not = depth_refusal(runtime.depth, settings.max_depth)
    if why_not is not None:
        return _refused(why_not, effort, agent)
    definition = None
    if agent:
        try:
            definition = runtime.catalog.require(agent)
        except UnknownAgent as error:
            return _refused(str(error), effort, agent)
    caller = caller if caller is not None else runtime.parent
    child_id = runtime.new_id(f"{caller}~d" if caller else "delegate-")
    depth = runtime.depth + 1
    model, thinking, api_base, limit = runtime.choose_model(definition, effort)
    used_effort = effort or (definition.effort if definition else None) or DEFAULT_EFFORT
    what = f"{used_effort}, {definition.name}" if definition else used_effort
    spec = AgentSpec(
        id=child_id, role=DELEGATE_ROLE, model=model, thinking=thinking, api_base=api_base, context_limit=limit,
        phase=runtime.phase, parent=caller, label=label or f"delegate ({what}): {one_line(task, 60)}",
    )  # fmt: skip
    own_prompt = definition.prompt.strip() if definition is not None else ""
    system = f"{own_prompt or DELEGATE_SYSTEM.strip()}\n\n{REPORT_RULES}"
    run = await runtime.run_child(spec, system, task.strip(), definition=definition, depth=depth,
                                  timeout_s=settings.timeout_s if timeout_s is None else timeout_s)  # fmt: skip
    if not run.ok:
        message = f"delegated task failed: {run.error} ({run.stats()})"
        return DelegateResult(ok=False, text=f"Error: {message}", error=message, effort=used_effort,
                              agent=agent, child=run)  # fmt: skip
    report = run.text.strip() or EMPTY_REPORT
    shown, artifact = cut_output(runtime.tools, DELEGATE_ROLE, report, keep="head")
    header = f"[delegate {child_id}: {run.stats()}]"
    return DelegateResult(ok=True, text=f"{header}\n\n{shown}", report=run.text, effort=used_effort, agent=agent,
                          child=run, artifact=artifact)  # fmt: skip


def _refused(reason: str, effort: str | None, agent: str | None) -> DelegateResult:
    return DelegateResult(ok=False, text=f"Refused: {reason}", refused=True, error=reason, effort=effort, agent=agent)


def _seconds(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return counted(minutes, "minute")
    return f"{seconds:g} s"


class _ChildWatch:
    """Sits between a child and its parent's emit: counts the child's tool calls, model calls and usage (its
    own and its descendants'), and, once the child has timed out, records the cancellation as a failure."""

    def __init__(self, child_id: str, emit: Callable[..., Any]) -> None:
        self.child_id = child_id
        self._emit = emit
        self.timeout_reason: str | None = None
        self.finished = False
        self.tool_calls = 0
        self.failed_tool_calls = 0
        self.model_calls = 0
        self.usage = ZERO_USAGE

    def _mine(self, agent_id: str) -> bool:
        return agent_id == self.child_id or agent_id.startswith(self.child_id + "~")

    def emit(self, *events: ev.Event) -> Any:
        out: list[ev.Event] = []
        for event in events:
            if isinstance(event, ev.ToolFinished) and event.agent == self.child_id:
                self.tool_calls += 1
                if event.error:
                    self.failed_tool_calls += 1
            elif isinstance(event, ev.AgentUsage) and self._mine(event.agent):
                if event.agent == self.child_id:
                    self.model_calls += 1
                self.usage = self.usage + Usage(event.input, event.output, event.cache_read, event.cache_write,
                                                event.reasoning, event.cost, event.cost_known)  # fmt: skip
            elif isinstance(event, ev.AgentFinished) and event.id == self.child_id:
                self.finished = True
            if (isinstance(event, ev.AgentFinished) and self.timeout_reason is not None and self._mine(event.id)
                    and event.status in ("aborted", "interrupted")):  # fmt: skip
                error = (self.timeout_reason if event.id == self.child_id
                         else "cancelled: the delegated agent it ran under timed out")  # fmt: skip
                event = ev.AgentFinished(id=event.id, status="failed", error=error)
            out.append(event)
        return self._emit(*out)

    def record_end(self, hooks: AgentHooks) -> None:
        """Make sure a cancelled child's end is recorded: one cancelled before its loop began (while its model's
        window was looked up) has emitted agent.started but would otherwise never finish in the tree."""
        if self.finished:
            return
        status = hooks.cancel_status() if hooks.cancel_status is not None else "aborted"
        why = "stopped by the operator" if status == "aborted" else "the engine stopped during this turn"
        self.emit(ev.AgentFinished(id=self.child_id, status=status, error=why))  # type: ignore[arg-type]

    def outcome(self, spec: AgentSpec, started: float, *, ok: bool, text: str, error: str | None = None,
                timed_out: bool = False) -> ChildRun:  # fmt: skip
        return ChildRun(
            id=spec.id, model=spec.model, thinking=spec.thinking, ok=ok, text=text, error=error, timed_out=timed_out,
            duration_ms=(time.perf_counter() - started) * 1000, tool_calls=self.tool_calls,
            failed_tool_calls=self.failed_tool_calls, model_calls=self.model_calls, usage=self.usage,
        )  # fmt: skip
