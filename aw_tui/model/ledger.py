"""The token/cost/time ledger: per-step entries, compactions and totals, with the seed's field names.

Totals are summed from every `agent.usage` event (so retries and interrupted turns are billed exactly once),
while steps are the finished turns recorded by `step.report`. The JSON written to ledger.json keeps the seed's
shape (`totals` keyed by model, `steps`, `compactions`) and adds totals by role and by (role, model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aw_tui.model.formatting import DASH, round_half_up, format_cost, format_duration, format_tokens, iso

ROLE_ORDER = {"analyst": 0, "worker": 1}
OTHER_ROLE = "other"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token and cost counts. Immutable: adding makes a new value, so states can share them safely."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cost: float = 0.0
    # False as soon as one contributing call had no price in the cost map.
    cost_known: bool = True

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.reasoning + other.reasoning,
            self.cost + other.cost,
            self.cost_known and other.cost_known,
        )

    @property
    def total_tokens(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def to_json(self) -> dict[str, Any]:
        return {
            "in": self.input,
            "out": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
            "reasoning": self.reasoning,
            "cost": self.cost,
            "cost_known": self.cost_known,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(
            input=_int(data.get("in", data.get("input"))),
            output=_int(data.get("out", data.get("output"))),
            cache_read=_int(data.get("cache_read", data.get("cacheRead"))),
            cache_write=_int(data.get("cache_write", data.get("cacheWrite"))),
            reasoning=_int(data.get("reasoning")),
            cost=_float(data.get("cost")),
            cost_known=bool(data.get("cost_known", True)),
        )


ZERO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class LedgerStep:
    """One finished turn, with the seed's LedgerStep fields plus reasoning tokens and the agent id."""

    step: int
    role: str
    phase: str
    model: str
    thinking_level: str
    usage: Usage
    wall_ms: float
    tool_ms: float
    tool_ms_by_name: dict[str, float]
    tool_counts: dict[str, int]
    tool_errors: int
    state_after: str | None
    started_at: datetime | None
    finished_at: datetime | None
    artifact: str | None
    context_tokens: int | None = None
    context_window: int | None = None
    agent: str | None = None
    external_ms: float = 0.0

    @property
    def llm_ms(self) -> float:
        # The seed's definition: wall time not spent in tools.
        return max(0.0, self.wall_ms - self.tool_ms)

    @property
    def context_percent(self) -> float | None:
        if not self.context_tokens or not self.context_window:
            return None
        return round(100 * self.context_tokens / self.context_window, 1)

    def to_json(self, cumulative_in: int = 0, cumulative_out: int = 0) -> dict[str, Any]:
        return {
            "in": self.usage.input,
            "out": self.usage.output,
            "cache_read": self.usage.cache_read,
            "cache_write": self.usage.cache_write,
            "reasoning": self.usage.reasoning,
            "cost": self.usage.cost,
            "cost_known": self.usage.cost_known,
            "wall_ms": round(self.wall_ms, 3),
            "llm_ms": round(self.llm_ms, 3),
            "tool_ms": round(self.tool_ms, 3),
            "external_ms": round(self.external_ms, 3),
            "tool_ms_by_name": {k: round(v, 3) for k, v in self.tool_ms_by_name.items()},
            "tool_counts": dict(self.tool_counts),
            "tool_errors": self.tool_errors,
            "step": self.step,
            "role": self.role.upper(),
            "phase": self.phase,
            "model": self.model,
            "thinking_level": self.thinking_level,
            "state_after": self.state_after,
            "cumulative_model_in": cumulative_in,
            "cumulative_model_out": cumulative_out,
            "context_tokens": self.context_tokens,
            "context_window": self.context_window,
            "context_percent": self.context_percent,
            "started_at": iso_or_none(self.started_at),
            "finished_at": iso_or_none(self.finished_at),
            "artifact": self.artifact,
            "agent": self.agent,
        }


@dataclass(frozen=True, slots=True)
class LedgerCompaction:
    started_at: datetime | None
    finished_at: datetime | None
    model: str
    phase: str
    role: str
    wall_ms: float
    tokens_before: int | None
    status: str  # "completed" | "failed"
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "started_at": iso_or_none(self.started_at),
            "finished_at": iso_or_none(self.finished_at),
            "model": self.model,
            "phase": self.phase,
            "role": self.role.upper(),
            "wall_ms": round(self.wall_ms, 3),
            "tokens_before": self.tokens_before,
            "status": self.status,
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass(slots=True)
class Ledger:
    """Steps, compactions and usage keyed by (role, model). Totals by model or role are sums of that key."""

    steps: list[LedgerStep] = field(default_factory=list)
    compactions: list[LedgerCompaction] = field(default_factory=list)
    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    # Set by the legacy reader: the original ledger's `legacy_events`, kept for display, never rewritten.
    legacy_events: list[Any] | None = None

    def clone(self) -> Ledger:
        legacy = None if self.legacy_events is None else list(self.legacy_events)
        return Ledger(list(self.steps), list(self.compactions), dict(self.usage), legacy)

    def add_usage(self, role: str, model: str, usage: Usage) -> None:
        key = (role, model)
        self.usage[key] = self.usage.get(key, ZERO_USAGE) + usage

    @property
    def total(self) -> Usage:
        return sum_usage(self.usage.values())

    def by_model(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for (_, model), usage in self.usage.items():
            out[model] = out.get(model, ZERO_USAGE) + usage
        return out

    def by_role(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for (role, _), usage in self.usage.items():
            out[role] = out.get(role, ZERO_USAGE) + usage
        return dict(sorted(out.items(), key=lambda item: role_sort_key(item[0])))

    def by_role_model(self) -> list[tuple[str, str, Usage]]:
        rows = [(role, model, usage) for (role, model), usage in self.usage.items()]
        rows.sort(key=lambda row: (role_sort_key(row[0]), row[1]))
        return rows

    def to_json(self, header: dict[str, Any]) -> dict[str, Any]:
        """ledger.json: the seed's layout (header fields, totals by model, steps, compactions) plus our totals."""
        cumulative: dict[str, tuple[int, int]] = {}
        steps_json = []
        for step in self.steps:
            prev_in, prev_out = cumulative.get(step.model, (0, 0))
            now_in, now_out = prev_in + step.usage.input, prev_out + step.usage.output
            cumulative[step.model] = (now_in, now_out)
            steps_json.append(step.to_json(now_in, now_out))
        data = dict(header)
        data["totals"] = {model: _seed_totals(u) for model, u in sorted(self.by_model().items())}
        data["totals_by_role"] = {role: u.to_json() for role, u in self.by_role().items()}
        data["totals_by_role_model"] = [
            {"role": role, "model": model, **u.to_json()} for role, model, u in self.by_role_model()
        ]
        data["total"] = self.total.to_json()
        data["steps"] = steps_json
        data["compactions"] = [c.to_json() for c in self.compactions]
        if self.legacy_events is not None:
            data["legacy_events"] = self.legacy_events
        return data


def _seed_totals(usage: Usage) -> dict[str, Any]:
    return {
        "in": usage.input,
        "out": usage.output,
        "cache_read": usage.cache_read,
        "cache_write": usage.cache_write,
        "cost": usage.cost,
        "reasoning": usage.reasoning,
        "cost_known": usage.cost_known,
    }


# The engine compacts a conversation before a call once its context reaches this share of the effective limit.
COMPACTION_RATIO = 0.9


def compaction_threshold(context_limit: int | None, window: int | None) -> int | None:
    """0.9 x the smaller of the configured limit and the model's window (either may be unknown)."""
    known = [value for value in (context_limit, window) if value]
    if not known:
        return None
    return int(COMPACTION_RATIO * min(known))


def sum_usage(usages: Any) -> Usage:
    total = ZERO_USAGE
    for usage in usages:
        total = total + usage
    return total


def role_sort_key(role: str) -> tuple[int, str]:
    """Analyst first, then worker, then every other role by name (the seed's table order)."""
    return (ROLE_ORDER.get(role.lower(), 2), role.lower())


def role_label(role: str) -> str:
    return role[:1].upper() + role[1:].lower() if role else "Other"


# --- tables -----------------------------------------------------------------------------------------------

TOKEN_TABLE_HEADER = ("Role", "Model", "In", "Out", "Cache read", "Cache write", "Cost")


def token_table_rows(ledger: Ledger) -> list[tuple[str, ...]]:
    """Rows (role, model, in, out, cache read, cache write, cost) grouped by (role, model) and a Total row."""
    rows = [_usage_row(role_label(role), model, usage) for role, model, usage in ledger.by_role_model()]
    rows.append(_usage_row("Total", "", ledger.total))
    return rows


def _usage_row(role: str, model: str, usage: Usage) -> tuple[str, ...]:
    return (
        role,
        model,
        format_tokens(usage.input),
        format_tokens(usage.output),
        format_tokens(usage.cache_read),
        format_tokens(usage.cache_write),
        format_cost(usage.cost, usage.cost_known),
    )


# The seed's tool-time categories, by exact tool name.
_TOOL_CATEGORY_BY_NAME = {
    **dict.fromkeys(("web_search", "code_search", "fetch_content", "get_search_content"), "Web/search"),
    "bash": "Shell/commands",
    **dict.fromkeys(("read", "ls", "grep", "find"), "File reads/search"),
    **dict.fromkeys(("edit", "write"), "File edits/writes"),
}


def tool_category(tool_name: str) -> str:
    name = tool_name.lower()
    if name.startswith("pdf_"):
        return "PDF tools"
    return _TOOL_CATEGORY_BY_NAME.get(name, "Other tools")


@dataclass(frozen=True, slots=True)
class TimingSummary:
    end_to_end_ms: float
    llm_ms_by_role: dict[str, float]
    tool_ms_by_category: dict[str, float]  # largest first
    compaction_ms: float
    compactions: int
    failed_compactions: int
    tool_counts: dict[str, int]  # most used first
    tool_errors: int

    def rows(self) -> list[tuple[str, str, str]]:
        """(activity, time, share of end-to-end), as the seed's timing table."""
        total = self.end_to_end_ms
        rows = [("End-to-end", format_duration(total), "100%")]
        for role, ms in self.llm_ms_by_role.items():
            if ms > 0:
                rows.append((_LLM_LABEL.get(role, f"{role_label(role)} LLM"), format_duration(ms), share(ms, total)))
        for category, ms in self.tool_ms_by_category.items():
            if ms > 0:
                rows.append((category, format_duration(ms), share(ms, total)))
        runs = f"{self.compactions} run{'' if self.compactions == 1 else 's'}"
        failed = f", {self.failed_compactions} failed" if self.failed_compactions else ""
        time = format_duration(self.compaction_ms) if self.compaction_ms > 0 else DASH
        rows.append((f"Compaction ({runs}{failed})", time, share(self.compaction_ms, total)))
        return rows

    def tool_calls_line(self) -> str:
        """`bash×3, read×2; tool errors: 1`, or empty when no tool ran."""
        calls = ", ".join(f"{name}×{count}" for name, count in list(self.tool_counts.items())[:8])
        if calls and self.tool_errors:
            calls += f"; tool errors: {self.tool_errors}"
        return calls


_LLM_LABEL = {"analyst": "Analyst LLM/review", "worker": "Worker LLM/implementation"}


def share(ms: float, total: float) -> str:
    if ms <= 0 or total <= 0:
        return "0%"
    percent = ms / total * 100
    if percent < 1:
        return "<1%"
    return f"{round_half_up(percent)}%"


def timing_summary(ledger: Ledger, started_at: datetime | None, ended_at: datetime | None) -> TimingSummary:
    """End-to-end time, LLM time per role, tool time per category, compaction time and tool call counts."""
    llm: dict[str, float] = {}
    tools: dict[str, float] = {}
    counts: dict[str, int] = {}
    errors = 0
    for step in ledger.steps:
        role = step.role.lower()
        llm[role] = llm.get(role, 0.0) + step.llm_ms
        errors += step.tool_errors
        for tool, ms in step.tool_ms_by_name.items():
            category = tool_category(tool)
            tools[category] = tools.get(category, 0.0) + ms
        for tool, count in step.tool_counts.items():
            counts[tool] = counts.get(tool, 0) + count
    end_to_end = 0.0
    if started_at is not None and ended_at is not None:
        end_to_end = max(0.0, (ended_at - started_at).total_seconds() * 1000)
    return TimingSummary(
        end_to_end_ms=end_to_end,
        llm_ms_by_role=dict(sorted(llm.items(), key=lambda item: role_sort_key(item[0]))),
        tool_ms_by_category=dict(sorted(tools.items(), key=lambda item: -item[1])),
        compaction_ms=sum(c.wall_ms for c in ledger.compactions),
        compactions=len(ledger.compactions),
        failed_compactions=sum(1 for c in ledger.compactions if c.status == "failed"),
        tool_counts=dict(sorted(counts.items(), key=lambda item: -item[1])),
        tool_errors=errors,
    )


def iso_or_none(ts: datetime | None) -> str | None:
    return None if ts is None else iso(ts, timespec="milliseconds")


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number and number >= 0 else 0.0  # drop NaN and negatives
