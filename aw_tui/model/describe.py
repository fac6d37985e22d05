"""One line of plain text per event, for the headless log and the TUI's event pane.

`describe_event(event)` gives (level, text): level is "info", "good", "warn", "bad" or "quiet" so a front end can
colour it without knowing event types. Pure, no I/O.
"""

from __future__ import annotations

from aw_tui.model import events as ev
from aw_tui.model.formatting import format_cost, format_duration, format_tokens, one_line
from aw_tui.model.ledger import Usage


def _clip(text: str, limit: int = 100) -> str:
    return one_line(text, limit)


def describe_event(event: ev.Event) -> tuple[str, str]:
    level, text = _describe(event)
    # One line whatever the event holds: ids, titles and tool names come from the log and may hold line breaks.
    return level, one_line(text)


def _describe(event: ev.Event) -> tuple[str, str]:
    e = event
    if isinstance(e, ev.RunCreated):
        return "info", f"run {e.run_id} created: {_clip(e.title or e.task)}"
    if isinstance(e, ev.RunStateChanged):
        level = {"FINISHED": "good", "ABORTED": "bad", "FAILED": "bad"}.get(e.state, "info")
        if e.state in ("BLOCKED_NEEDS_OPERATOR", "WAITING_FOR_OPERATOR", "DONE_NEEDS_OPERATOR_CONFIRMATION"):
            level = "warn"
        return level, f"state {e.state}" + (f": {_clip(e.reason)}" if e.reason else "")
    if isinstance(e, ev.RunPaused):
        return "warn", "PAUSED" + (f": {_clip(e.reason)}" if e.reason else "")
    if isinstance(e, ev.RunResumed):
        return "info", "resumed" + (f": {_clip(e.reason)}" if e.reason else "")
    if isinstance(e, ev.MemoUpdated):
        return "quiet", "memo updated" + (f": next {_clip(e.next_action, 80)}" if e.next_action else "")
    if isinstance(e, ev.PhaseStarted):
        return "info", f"phase {e.title} started"
    if isinstance(e, ev.PhaseDeclared):
        return "quiet", f"phase {e.title} declared"
    if isinstance(e, ev.PhaseFinished):
        return "info", f"phase {e.title or e.id} {e.status}"
    if isinstance(e, ev.AgentStarted):
        label = f" ({_clip(e.label, 60)})" if e.label else ""
        return "info", f"{e.id} started: {e.role} on {e.model}{label}"
    if isinstance(e, ev.AgentFinished):
        level = {"done": "good", "failed": "bad", "aborted": "bad", "interrupted": "warn", "refused": "warn"}.get(
            e.status, "info"
        )
        return level, f"{e.id} {e.status}" + (f": {_clip(e.error)}" if e.error else "")
    if isinstance(e, ev.AgentUsage):
        usage = Usage(e.input, e.output, e.cache_read, e.cache_write, e.reasoning, e.cost, e.cost_known)
        cache = f", cache {format_tokens(e.cache_read)}" if e.cache_read else ""
        return "quiet", (f"{e.agent} used {format_tokens(e.input)} in, {format_tokens(e.output)} out{cache}, "
                         f"{format_cost(usage.cost, usage.cost_known)}")  # fmt: skip
    if isinstance(e, ev.ToolStarted):
        return "quiet", f"{e.agent} → {_clip(e.summary or e.tool)}"
    if isinstance(e, ev.ToolFinished):
        took = format_duration(e.duration_ms)
        if e.refused:
            return "warn", f"{e.agent} {e.tool} refused: {_clip(e.error or '')}"
        if e.error:
            return "warn", f"{e.agent} {e.tool} failed after {took}: {_clip(e.error)}"
        return "quiet", f"{e.agent} {e.tool} ok ({took})"
    if isinstance(e, ev.LlmAttempt):
        if e.outcome == "ok":
            return "quiet", f"{e.agent} model call ok ({format_duration(e.duration_ms)})"
        retry = f"; retrying in {e.retry_in_s:.1f} s" if e.retry_in_s is not None else "; giving up"
        return "warn", f"{e.agent} model call {e.attempt} {e.outcome}: {_clip(e.error or '', 80)}{retry}"
    if isinstance(e, ev.StepReport):
        return "info", f"step {e.step} ({e.role} {e.phase}) written to {e.path}"
    if isinstance(e, ev.Compaction):
        level = "info" if e.status == "completed" else "warn"
        before = f" at {format_tokens(e.tokens_before)} tokens" if e.tokens_before else ""
        return level, f"{e.role} context compaction {e.status}{before}" + (f": {_clip(e.error)}" if e.error else "")
    if isinstance(e, ev.GateOpened):
        return "warn", f"GATE {e.id} {e.kind}: {_clip(e.title)}"
    if isinstance(e, ev.GateResolved):
        text = f": {_clip(e.text, 80)}" if e.text else ""
        return ("quiet" if e.decision == "canceled" else "info"), f"gate {e.id} {e.decision} by {e.resolved_by}{text}"
    if isinstance(e, ev.OperatorNoted):
        return "info", f"operator note: {_clip(e.text)}"
    if isinstance(e, ev.CommandAcknowledged):
        return "quiet", f"command {e.cmd} ({e.command_id}) acknowledged"
    if isinstance(e, ev.CommandRejected):
        return "warn", f"command {e.cmd} ({e.command_id}) rejected: {_clip(e.reason)}"
    if isinstance(e, ev.WorkflowStats):
        cached = f" ({e.cached_calls} from the journal)" if e.cached_calls else ""
        refused = f", {e.refused_calls} refused" if e.refused_calls else ""
        failed = f", {e.failed_calls} gave no result" if e.failed_calls else ""
        return "info", (f"workflow: {e.agent_calls} agent call(s){cached}{refused}{failed}, "
                        f"{format_tokens(e.output_tokens)} output tokens, {format_tokens(e.total_tokens)} in all, "
                        f"{format_cost(e.cost, e.cost_known)}")  # fmt: skip
    if isinstance(e, ev.Log):
        level = {"error": "bad", "warning": "warn", "debug": "quiet"}.get(e.level, "info")
        return level, _clip(e.message, 160)
    return "quiet", f"{getattr(e, 'type', '?')} (an event this version does not know)"
