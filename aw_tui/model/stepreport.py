"""The step report: `steps/NNNN_<role>_<phase>.md`, one per finished turn, written for a human and for the analyst.

Header lines, wall time, token usage, the final answer (what the next reader must act on) and the transcript of
the turn, each cut to a size a reader can take in. Pure: the engine hands in what happened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aw_tui.model.formatting import format_cost, format_duration, format_tokens, iso
from aw_tui.model.ledger import Usage

FINAL_ANSWER_MAX_CHARS = 18_000
TRANSCRIPT_MAX_CHARS = 24_000
TOOL_RESULT_MAX_CHARS = 2_000  # per tool result inside the transcript; the model saw more


@dataclass(frozen=True)
class StepReportData:
    step: int
    role: str
    phase: str  # plan | result | review
    model: str
    thinking: str
    started_at: datetime
    finished_at: datetime
    usage: Usage
    final_answer: str
    transcript: Sequence[Mapping[str, Any]]
    state_after: str
    instruction_id: str | None = None
    agent_id: str | None = None
    tool_ms_by_name: Mapping[str, float] = field(default_factory=dict)
    tool_errors: int = 0
    recovery: str | None = None  # e.g. "1 of 2: the report lacked Validation, Stop / handoff"
    note: str | None = None  # anything the engine wants the reader to know (an interrupted earlier try ...)


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with a visible marker saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated {len(text) - limit:,} characters]"


def render_step_report(data: StepReportData) -> str:
    wall_ms = max(0.0, (data.finished_at - data.started_at).total_seconds() * 1000)
    lines = [
        f"# Step {data.step:04d}: {data.role} {data.phase}",
        "",
        f"- Role: {data.role}",
        f"- Phase: {data.phase}",
        f"- Step: {data.step}",
        f"- Model: {data.model}",
        f"- Thinking level: {data.thinking}",
        f"- Authorized instruction id: {data.instruction_id or 'none'}",
    ]
    if data.agent_id:
        lines.append(f"- Agent: {data.agent_id}")
    if data.recovery:
        lines.append(f"- Recovery: {data.recovery}")
    lines += [
        f"- Started: {iso(data.started_at)}",
        f"- Finished: {iso(data.finished_at)}",
        f"- State after: {data.state_after}",
    ]
    if data.note:
        lines += ["", f"> {data.note}"]
    wall = f"{format_duration(wall_ms)} in all"
    if data.tool_ms_by_name:
        tool_ms = sum(data.tool_ms_by_name.values())
        by_tool = ", ".join(
            f"{name} {format_duration(ms)}" for name, ms in sorted(data.tool_ms_by_name.items(), key=lambda kv: -kv[1])
        )
        wall += f"; tools {format_duration(tool_ms)} ({by_tool})"
    if data.tool_errors:
        wall += f"; {data.tool_errors} tool call(s) failed"
    lines += ["", "## Wall time", "", wall]
    u = data.usage
    lines += [
        "",
        "## Token usage",
        "",
        f"- Input: {format_tokens(u.input)}",
        f"- Output: {format_tokens(u.output)}",
        f"- Cache read: {format_tokens(u.cache_read)}",
        f"- Cache write: {format_tokens(u.cache_write)}",
        f"- Reasoning: {format_tokens(u.reasoning)}",
        f"- Cost: {format_cost(u.cost, u.cost_known)}",
        "",
        "## Final answer",
        "",
        cut(data.final_answer.strip(), FINAL_ANSWER_MAX_CHARS) or "(none)",
        "",
        "## Transcript",
        "",
        cut(render_transcript(data.transcript), TRANSCRIPT_MAX_CHARS),
        "",
    ]
    return "\n".join(lines)


def render_transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """The turn's messages as readable text: prompts, replies, tool calls and (cut) tool results."""
    parts: list[str] = []
    for message in messages:
        role = message.get("role", "?")
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        if role == "tool":
            name = message.get("name") or "tool"
            parts.append(f"### tool result: {name} ({message.get('tool_call_id', '')})\n\n"
                         f"{cut(content, TOOL_RESULT_MAX_CHARS)}")  # fmt: skip
            continue
        block = f"### {role}\n\n{content}".rstrip()
        for call in message.get("tool_calls") or []:
            name = call.get("name") or (call.get("function") or {}).get("name", "?")
            arguments = call.get("arguments_json") or (call.get("function") or {}).get("arguments", "")
            block += f"\n\n-> {name}({arguments})"
        parts.append(block)
    return "\n\n".join(parts)
