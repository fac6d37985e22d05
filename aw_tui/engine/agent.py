"""One agent turn: the tool-calling loop, with its events, its context accounting and compaction.

`run_agent(spec, history, prompt, ...)` sends the conversation to the model, runs the tool calls it asks for
(each through `tools.run_tool`, so bad arguments and refusals go back to the model as tool results, never as a
crash), and repeats until the model answers without tool calls. Everything it does is an event, handed to
`hooks.emit`: agent.started/finished, llm.attempt, agent.usage, tool.started/finished, compaction.

Before every model call the loop asks `hooks.before_model_call()` (the orchestrator waits there while the run is
paused or its budget is spent) and checks the context: at 0.9 x min(configured limit, model window) it compacts
the conversation first. A failed compaction is tried once more; after that `hooks.compaction_failed()` asks
the operator, and the loop tries again when they answer.

With `respond=RespondTool(...)` the turn has a schema-forced ending: a `respond` tool whose parameters are the
schema is offered next to the agent's own tools, tool choice is forced (to `respond` alone, or to "some tool" when
there are others), and the turn ends only when the model calls `respond` with arguments the validator accepts.
Rejected arguments, and replies that end without calling it, go back to the model; after `max_invalid` of them
the turn fails (kind "schema").
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aw_tui.engine import llm
from aw_tui.engine.prompts import COMPACTOR_INSTRUCTION, COMPACTOR_SYSTEM, empty_reply_nudge
from aw_tui.engine.tools import ToolContext, ToolResult, openai_tool_specs, run_tool
from aw_tui.model import events as ev
from aw_tui.model.formatting import one_line
from aw_tui.model.ledger import ZERO_USAGE, Usage, compaction_threshold
from aw_tui.model.stepreport import render_transcript

EMPTY_REPLY_NUDGES = 2
MAX_MODEL_CALLS_PER_TURN = 200  # a runaway tool loop ends the turn instead of spending forever
_CHARS_PER_TOKEN = 4  # a rough estimate for messages the provider has not counted yet


@dataclass(frozen=True)
class AgentSpec:
    id: str
    role: str
    model: str
    thinking: str = "off"
    api_base: str | None = None
    context_limit: int | None = None
    phase: str | None = None
    parent: str | None = None
    label: str = ""
    step: int | None = None


@dataclass
class AgentHooks:
    """How a turn talks to its orchestrator. Only `emit` is required."""

    emit: Callable[..., Any]
    before_model_call: Callable[[], Awaitable[None]] | None = None
    before_tool_call: Callable[[], Awaitable[None]] | None = None
    # Called after compaction failed twice, with the last error; returns when the operator has answered.
    compaction_failed: Callable[[str], Awaitable[None]] | None = None
    # The status a turn stopped by cancellation is recorded with: "aborted" when the operator stopped the run,
    # "interrupted" when the process is going away and the turn will be redone.
    cancel_status: Callable[[], str] | None = None
    clock: Callable[[], datetime] | None = None
    # Seconds spent so far waiting for the operator (approvals); taken out of tool durations, which measure work.
    operator_wait_s: Callable[[], float] | None = None
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


RESPOND_TOOL = "respond"
RESPOND_DESCRIPTION = (
    "Give your final answer as one structured object matching the parameters. Call this exactly once, with the "
    "complete answer, when the work is done; the call ends your turn."
)
# A provider that refuses a forced tool choice together with thinking says so in a 400; the call is then made
# unforced (the ending is still checked: a reply without `respond` goes back to the model).
_FORCED_CHOICE_REFUSED = re.compile(r"tool.?choice", re.IGNORECASE)
_FORCED_CHOICE_REASON = re.compile(r"thinking|forces? tool|may not|not supported|unsupported", re.IGNORECASE)


@dataclass
class RespondTool:
    """A schema-forced ending for a turn (see the module docstring).

    `validate(arguments)` returns the structured value or raises ValueError (pydantic's ValidationError is one)
    whose message goes back to the model. `rejections` collects, in order, why each answer was refused: the
    caller reads how many tries the turn used and why the last one failed.
    """

    parameters: dict[str, Any]
    validate: Callable[[Any], Any]
    max_invalid: int = 2
    description: str = RESPOND_DESCRIPTION
    rejections: list[str] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": RESPOND_TOOL, "description": self.description, "parameters": self.parameters}}  # fmt: skip


def forced_tool_choice(only_respond: bool) -> Any:
    """The OpenAI-form tool choice litellm translates per provider (Anthropic: {"type": "tool", "name": ...})."""
    return {"type": "function", "function": {"name": RESPOND_TOOL}} if only_respond else "required"


@dataclass
class AgentResult:
    text: str  # the final answer
    history: list[dict[str, Any]]  # the conversation to carry on with (compacted if it was)
    turn_messages: list[dict[str, Any]]  # what this turn added, its prompt included (for the transcript)
    usage: Usage = ZERO_USAGE
    context_tokens: int = 0
    context_window: int | None = None
    compactions: int = 0
    structured: Any = None  # what `respond` returned, for a turn run with a RespondTool


class AgentFailed(Exception):
    """The turn could not finish (the model call failed for good, or it kept answering nothing). agent.finished
    with status "failed" has already been emitted; `message` is one line for the operator."""

    def __init__(self, message: str, *, kind: str = "other", usage: Usage = ZERO_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.usage = usage


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(json.dumps(message, ensure_ascii=False, default=str)) for message in messages) // _CHARS_PER_TOKEN


_windows: dict[str, int | None] = {}


async def model_window(model: str) -> int | None:
    if model not in _windows:
        _windows[model] = await asyncio.to_thread(llm.context_window, model)
    return _windows[model]


@dataclass
class _Turn:
    spec: AgentSpec
    hooks: AgentHooks
    policy: llm.RetryPolicy
    usage: Usage = ZERO_USAGE
    compactions: int = 0
    # Tokens the provider counted at the last call (prompt + completion) and how many messages that covered.
    counted_tokens: int = 0
    counted_messages: int = 0
    pending_calls: dict[str, float] = field(default_factory=dict)
    # The turn's own successful call (its attempt and usage), written in one batch with what the reply leads to
    # when that follows with no wait in between: every batch costs an fsync. `flush` writes it on its own.
    held: list[ev.Event] = field(default_factory=list)

    def emit(self, *events: ev.Event) -> None:
        if self.held:
            events = (*self.held, *events)
            self.held = []
        self.hooks.emit(*events)

    def flush(self) -> None:
        if self.held:
            self.emit()

    async def attempt_reported(self, agent_id: str, attempt: llm.Attempt) -> None:
        events: list[ev.Event] = [
            ev.LlmAttempt(
                agent=agent_id, attempt=attempt.number, model=attempt.model, outcome=attempt.outcome,
                duration_ms=attempt.duration_ms, error=attempt.error, retry_in_s=attempt.retry_in_s,
            )  # fmt: skip
        ]
        if attempt.usage is not None:
            u = attempt.usage
            context = u.input + u.cache_read + u.cache_write + u.output
            events.append(
                ev.AgentUsage(
                    agent=agent_id, input=u.input, output=u.output, cache_read=u.cache_read,
                    cache_write=u.cache_write, reasoning=u.reasoning, cost=u.cost, cost_known=u.cost_known,
                    context_tokens=context, attempt=attempt.number,
                )  # fmt: skip
            )
            if agent_id == self.spec.id:
                self.usage = self.usage + u
        if agent_id == self.spec.id and attempt.outcome == "ok":
            self.held.extend(events)
        else:
            self.emit(*events)

    def context_estimate(self, messages: Sequence[Mapping[str, Any]]) -> int:
        return self.counted_tokens + estimate_tokens(messages[self.counted_messages :])


async def run_agent(
    spec: AgentSpec,
    history: Sequence[Mapping[str, Any]],
    prompt: str,
    *,
    hooks: AgentHooks,
    tools: ToolContext | None = None,
    policy: llm.RetryPolicy = llm.RetryPolicy(),
    context_tokens: int = 0,
    respond: RespondTool | None = None,
) -> AgentResult:
    """Run one turn of `spec` on `history` + the user `prompt`. Raises AgentFailed or CancelledError (after
    emitting agent.finished with status failed or aborted). With `respond`, the turn ends with a validated call
    of the `respond` tool and `AgentResult.structured` holds its value."""
    turn = _Turn(spec, hooks, policy)
    messages: list[dict[str, Any]] = [dict(m) for m in history]
    # The caller's context count covers the history it hands in; only the new prompt is estimated.
    turn.counted_tokens, turn.counted_messages = (context_tokens, len(messages)) if context_tokens else (0, 0)
    messages.append({"role": "user", "content": prompt})
    # The context decides: its policy, an agent definition's tool list, and delegate where it is wired.
    tool_specs = openai_tool_specs(tools.offered_tools()) if tools is not None else []
    extra_params: dict[str, Any] | None = None
    if respond is not None:
        extra_params = {"tool_choice": forced_tool_choice(only_respond=not tool_specs)}
        tool_specs = [*tool_specs, respond.spec()]
    turn.emit(
        ev.AgentStarted(
            id=spec.id, role=spec.role, model=spec.model, thinking=spec.thinking, phase=spec.phase,
            parent=spec.parent, label=spec.label, step=spec.step,
        )  # fmt: skip
    )
    empty_replies = 0
    transcript: list[dict[str, Any]] = [messages[-1]]
    try:
        # Inside the try: a turn cancelled while the window is looked up still records how it ended.
        window = await model_window(spec.model)
        threshold = compaction_threshold(spec.context_limit, window)
        for _ in range(MAX_MODEL_CALLS_PER_TURN):
            if hooks.before_model_call is not None:
                await hooks.before_model_call()
            if threshold is not None and turn.context_estimate(messages) >= threshold:
                messages = await _compact(turn, messages, turn.context_estimate(messages))
            try:
                completion = await llm.complete(
                    messages, model=spec.model, tools=tool_specs or None, thinking=spec.thinking,
                    api_base=spec.api_base, policy=policy,
                    on_attempt=lambda attempt: turn.attempt_reported(spec.id, attempt), sleep=hooks.sleep,
                    extra_params=extra_params,
                )  # fmt: skip
            except llm.LlmError as error:
                if extra_params and _forced_choice_refused(error):
                    extra_params = None  # the provider will not force a tool here; the ending is still checked
                    turn.emit(ev.Log(level="warning", agent=spec.id,
                                     message=f"{spec.model} refused a forced tool choice; asking unforced"))  # fmt: skip
                    continue
                raise AgentFailed(error.message, kind=error.kind, usage=turn.usage) from error
            if completion.tool_calls or respond is not None or completion.is_empty:
                turn.flush()  # what comes next may wait (a paused run, an approval): the usage is written now
            reply = dict(completion.message)
            messages.append(reply)
            transcript.append(reply)
            u = completion.usage
            turn.counted_tokens = u.input + u.cache_read + u.cache_write + u.output
            turn.counted_messages = len(messages)
            if completion.tool_calls:
                for call in completion.tool_calls:
                    if respond is not None and call.get("name") == RESPOND_TOOL:
                        accepted, result_message = _respond_call(turn, call, respond)
                        if accepted is not _REJECTED:
                            report = call.get("arguments_json") or "{}"
                            turn.emit(ev.AgentFinished(id=spec.id, status="done", report=report))
                            return AgentResult(
                                text=report, history=messages, turn_messages=transcript, usage=turn.usage,
                                context_tokens=turn.context_estimate(messages), context_window=window,
                                compactions=turn.compactions, structured=accepted,
                            )  # fmt: skip
                    else:
                        result_message = await _run_tool_call(turn, call, tools)
                    messages.append(result_message)
                    transcript.append(result_message)
                continue
            if respond is not None:
                # Ending without `respond` is an invalid answer: say so and let the model try again.
                why = "the reply ended without calling the respond tool"
                _reject(turn, respond, why, completion.content)
                nudge = {"role": "user", "content": (
                    f"Your reply did not call the `{RESPOND_TOOL}` tool. Finish by calling `{RESPOND_TOOL}` exactly "
                    "once with the complete answer as its arguments.")}  # fmt: skip
                messages.append(nudge)
                transcript.append(nudge)
                continue
            if completion.is_empty:
                empty_replies += 1
                turn.emit(ev.Log(level="warning", agent=spec.id,
                                 message=f"{spec.model} returned an empty reply ({empty_replies} in this turn)"))  # fmt: skip
                if empty_replies > EMPTY_REPLY_NUDGES:
                    raise AgentFailed(
                        f"{spec.model} returned an empty reply {empty_replies} times in a row", kind="empty_reply",
                        usage=turn.usage,
                    )
                nudge = {"role": "user", "content": empty_reply_nudge(spec.role)}
                messages.append(nudge)
                transcript.append(nudge)
                continue
            text = completion.content
            turn.emit(ev.AgentFinished(id=spec.id, status="done", report=text))
            return AgentResult(
                text=text, history=messages, turn_messages=transcript, usage=turn.usage,
                context_tokens=turn.context_estimate(messages), context_window=window, compactions=turn.compactions,
            )  # fmt: skip
        raise AgentFailed(
            f"the turn made {MAX_MODEL_CALLS_PER_TURN} model calls without finishing; stopped as a runaway loop",
            kind="runaway", usage=turn.usage,
        )  # fmt: skip
    except AgentFailed as failure:
        turn.emit(ev.AgentFinished(id=spec.id, status="failed", error=failure.message))
        raise
    except asyncio.CancelledError:
        turn.emit(_cancelled(spec.id, hooks))
        raise
    finally:
        turn.flush()  # an unexpected error still leaves the call's usage on record


_REJECTED = object()


def _reject(turn: _Turn, respond: RespondTool, why: str, text: str = "") -> None:
    """Count one invalid answer; past the allowance the turn fails with kind "schema"."""
    respond.rejections.append(why)
    shown = f" (text was: {one_line(text, 200)})" if text.strip() else ""
    turn.emit(ev.Log(level="warning", agent=turn.spec.id,
                     message=f"answer {len(respond.rejections)} refused: {one_line(why, 300)}{shown}"))  # fmt: skip
    if len(respond.rejections) > respond.max_invalid:
        raise AgentFailed(
            f"no valid {RESPOND_TOOL} call after {len(respond.rejections)} answer(s); the last: {one_line(why, 300)}",
            kind="schema", usage=turn.usage,
        )


def _respond_call(turn: _Turn, call: Mapping[str, str], respond: RespondTool) -> tuple[Any, dict[str, Any]]:
    """(the validated value, or _REJECTED) and the tool result that goes back to the model when rejected."""
    call_id = call.get("id") or f"call_{time.monotonic_ns()}"
    raw = call.get("arguments_json") or "{}"
    try:
        arguments = json.loads(raw)
    except ValueError as error:
        why = f"the {RESPOND_TOOL} arguments are not valid JSON ({error})"
    else:
        try:
            return respond.validate(arguments), {}
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            why = f"the {RESPOND_TOOL} arguments do not match the schema: {_validation_summary(error)}"
    _reject(turn, respond, why)
    content = f"Error: {why}. Call {RESPOND_TOOL} again with corrected arguments."
    return _REJECTED, {"role": "tool", "tool_call_id": call_id, "name": RESPOND_TOOL, "content": content}


def _validation_summary(error: ValueError, limit: int = 3) -> str:
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return one_line(str(error), 300)
    parts = []
    items = errors(include_url=False)
    for item in items[:limit]:
        where = ".".join(str(part) for part in item.get("loc", ())) or "(the object)"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    if len(items) > limit:
        parts.append(f"and {len(items) - limit} more")
    return "; ".join(parts)


def _forced_choice_refused(error: llm.LlmError) -> bool:
    return (error.kind == "bad_request" and bool(_FORCED_CHOICE_REFUSED.search(error.message))
            and bool(_FORCED_CHOICE_REASON.search(error.message)))  # fmt: skip


def _cancelled(agent_id: str, hooks: AgentHooks) -> ev.AgentFinished:
    status = hooks.cancel_status() if hooks.cancel_status is not None else "aborted"
    why = "stopped by the operator" if status == "aborted" else "the engine stopped during this turn; it is redone"
    return ev.AgentFinished(id=agent_id, status=status, error=why)  # type: ignore[arg-type]


async def _run_tool_call(turn: _Turn, call: Mapping[str, str], tools: ToolContext | None) -> dict[str, Any]:
    spec, hooks = turn.spec, turn.hooks
    call_id = call.get("id") or f"call_{time.monotonic_ns()}"
    name = call.get("name") or ""
    arguments = call.get("arguments_json") or "{}"
    if hooks.before_tool_call is not None:
        await hooks.before_tool_call()
    turn.emit(ev.ToolStarted(agent=spec.id, call_id=call_id, tool=name, summary=_summary(name, arguments)))
    started = time.perf_counter()
    waited_before = hooks.operator_wait_s() if hooks.operator_wait_s is not None else 0.0

    def working_ms() -> float:
        waited = (hooks.operator_wait_s() if hooks.operator_wait_s is not None else 0.0) - waited_before
        return max(0.0, (time.perf_counter() - started - waited) * 1000)

    try:
        if tools is None:
            result = ToolResult.refusal(f"this agent has no tools; {name!r} was not run")
        else:
            result = await run_tool(name, arguments, tools)
    except asyncio.CancelledError:
        turn.emit(ev.ToolFinished(agent=spec.id, call_id=call_id, tool=name, duration_ms=working_ms(),
                                  error="aborted"))  # fmt: skip
        raise
    for level, message in result.log:  # e.g. how the worker's shell is confined, said at a run's first bash call
        turn.emit(ev.Log(level=level, agent=spec.id, message=message))  # type: ignore[arg-type]
    turn.emit(
        ev.ToolFinished(
            agent=spec.id, call_id=call_id, tool=name, duration_ms=working_ms(), error=result.error,
            refused=result.refused,
        )  # fmt: skip
    )
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": result.content}


def _summary(name: str, arguments: str, limit: int = 120) -> str:
    """A one-line description of a tool call for the tree and the headless log."""
    try:
        args = json.loads(arguments)
    except ValueError:
        return f"{name} (arguments are not valid JSON)"
    if not isinstance(args, dict):
        return name
    key = next((k for k in ("command", "path", "pattern") if isinstance(args.get(k), str)), None)
    return one_line(f"{name} {args[key]}" if key else name, limit)


# --- compaction ------------------------------------------------------------------------------------------------


async def _compact(turn: _Turn, messages: list[dict[str, Any]], tokens_before: int) -> list[dict[str, Any]]:
    """The conversation replaced by a summary. Retried once; then the operator is asked, and it goes again."""
    while True:
        error = ""
        for _ in range(2):
            try:
                return await _compact_once(turn, messages, tokens_before)
            except AgentFailed as failure:
                error = failure.message
        if turn.hooks.compaction_failed is None:
            raise AgentFailed(f"compaction failed twice: {error}", kind="compaction", usage=turn.usage)
        await turn.hooks.compaction_failed(error)


async def _compact_once(turn: _Turn, messages: list[dict[str, Any]], tokens_before: int) -> list[dict[str, Any]]:
    spec = turn.spec
    turn.compactions += 1
    compactor_id = f"{spec.id}~compact{turn.compactions}"
    system = messages[0] if messages and messages[0].get("role") == "system" else None
    body = messages[1:] if system else messages
    # A fresh prompt at the end stays verbatim: the summary is of what came before it.
    keep = [body[-1]] if body and body[-1].get("role") == "user" else []
    to_summarise = body[: len(body) - len(keep)]
    request = [
        {"role": "system", "content": COMPACTOR_SYSTEM},
        {"role": "user", "content": f"{render_transcript(to_summarise)}\n\n-----\n\n{COMPACTOR_INSTRUCTION}"},
    ]
    turn.emit(
        ev.AgentStarted(id=compactor_id, role=spec.role, model=spec.model, thinking="off", phase=spec.phase,
                        parent=spec.id, label="compaction", step=spec.step)  # fmt: skip
    )
    started = time.perf_counter()
    try:
        completion = await llm.complete(
            request, model=spec.model, thinking="off", api_base=spec.api_base, policy=turn.policy,
            on_attempt=lambda attempt: turn.attempt_reported(compactor_id, attempt), sleep=turn.hooks.sleep,
        )  # fmt: skip
        summary = completion.content.strip()
        if not summary:
            raise llm.LlmError("other", f"{spec.model}: the compaction summary came back empty")
    except llm.LlmError as error:
        duration = (time.perf_counter() - started) * 1000
        turn.emit(
            ev.AgentFinished(id=compactor_id, status="failed", error=error.message),
            ev.Compaction(agent=compactor_id, role=spec.role, model=spec.model, phase=spec.phase or "",
                          tokens_before=tokens_before, status="failed", duration_ms=duration, error=error.message),
        )  # fmt: skip
        raise AgentFailed(error.message, kind=error.kind) from error
    except asyncio.CancelledError:
        turn.emit(_cancelled(compactor_id, turn.hooks))
        raise
    duration = (time.perf_counter() - started) * 1000
    turn.emit(
        ev.AgentFinished(id=compactor_id, status="done", report=summary),
        ev.Compaction(agent=compactor_id, role=spec.role, model=spec.model, phase=spec.phase or "",
                      tokens_before=tokens_before, status="completed", duration_ms=duration),
    )  # fmt: skip
    carried = {"role": "user", "content": f"[Earlier context was compacted. Summary of it:]\n\n{summary}"}
    if not keep:
        carried["content"] += "\n\n[Continue the current instruction from here.]"
    compacted = ([system] if system else []) + [carried]
    if keep:
        # Two user messages in a row are refused by some providers: fold the prompt into the summary message.
        carried["content"] += "\n\n-----\n\n" + str(keep[0].get("content") or "")
    turn.counted_tokens, turn.counted_messages = 0, 0
    return compacted
