"""The token/cost/time ledger: per-step entries, compactions and totals, with the seed's field names.

Totals are summed from every `agent.usage` event (so retries and interrupted turns are billed exactly once),
while steps are the finished turns recorded by `step.report`. The JSON written to ledger.json keeps the seed's
shape (`totals` keyed by model, `steps`, `compactions`) and adds totals by role and by (role, model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aw_tui.model.events import MAX_COST, MAX_COUNT
from aw_tui.model.formatting import DASH, counted, format_cost, format_duration, format_tokens, iso, round_half_up

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
    operator_wait_ms: float = 0.0  # the turn's own gates open (a dangerous command waiting for approval)

    @property
    def llm_ms(self) -> float:
        # The seed's definition, wall time not spent in tools, less the time the turn waited for the operator:
        # a gate answered after five minutes is not five minutes of model time.
        return max(0.0, self.wall_ms - self.tool_ms - self.operator_wait_ms)

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
            "operator_wait_ms": round(self.operator_wait_ms, 3),
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
        runs = counted(self.compactions, "run")
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


# --- time by role and model, operator wait ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepTime:
    """How many finished turns a group (a role, a model) took and how long they ran."""

    steps: int = 0
    wall_ms: float = 0.0
    llm_ms: float = 0.0
    tool_ms: float = 0.0
    external_ms: float = 0.0

    def __add__(self, other: StepTime) -> StepTime:
        return StepTime(
            self.steps + other.steps,
            self.wall_ms + other.wall_ms,
            self.llm_ms + other.llm_ms,
            self.tool_ms + other.tool_ms,
            self.external_ms + other.external_ms,
        )

    @property
    def average_wall_ms(self) -> float:
        return self.wall_ms / self.steps if self.steps else 0.0


def _step_time(step: LedgerStep) -> StepTime:
    return StepTime(1, step.wall_ms, step.llm_ms, step.tool_ms, step.external_ms)


def step_time_total(ledger: Ledger) -> StepTime:
    total = StepTime()
    for step in ledger.steps:
        total = total + _step_time(step)
    return total


def step_time_by_role(ledger: Ledger) -> dict[str, StepTime]:
    """Steps and time per role (lower case), analyst first, then worker, then the rest by name."""
    out: dict[str, StepTime] = {}
    for step in ledger.steps:
        role = step.role.lower()
        out[role] = out.get(role, StepTime()) + _step_time(step)
    return dict(sorted(out.items(), key=lambda item: role_sort_key(item[0])))


def step_time_by_model(ledger: Ledger) -> dict[str, StepTime]:
    """Steps and time per model, by model name."""
    out: dict[str, StepTime] = {}
    for step in ledger.steps:
        out[step.model] = out.get(step.model, StepTime()) + _step_time(step)
    return dict(sorted(out.items()))


def operator_wait_ms(waits: Any, until: datetime | None) -> float:
    """Time the run spent with at least one gate open: `waits` are (opened_at, resolved_at or None) pairs.

    Gates open at the same time count once (the operator waits once), and a gate still open counts until
    `until`, the run's end or now; with `until` unknown an open gate adds nothing.
    """
    spans: list[tuple[datetime, datetime]] = []
    for opened, resolved in waits:
        end = resolved if resolved is not None else until
        if end is None:
            continue
        if until is not None:
            end = min(end, until)
        if end > opened:
            spans.append((opened, end))
    spans.sort()
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in spans:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds() * 1000
        current = (start, end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds() * 1000
    return total


# --- comparing runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One measure across several runs. Lower is better for every measure (cost, tokens, steps, time)."""

    key: str
    label: str
    kind: str  # "cost" | "tokens" | "count" | "ms": how to format the values
    # One per run, in the runs' order; None where the run has nothing to count (a role it never used).
    values: tuple[float | None, ...]
    cost_known: tuple[bool, ...] = ()

    def _known(self) -> list[float]:
        return [value for value in self.values if value is not None]

    def _differs(self) -> bool:
        known = self._known()
        return len(known) >= 2 and not _same(min(known), max(known))

    @property
    def best(self) -> frozenset[int]:
        """Indexes of the lowest value; empty when the runs do not differ here."""
        if not self._differs():
            return frozenset()
        low = min(self._known())
        return frozenset(i for i, value in enumerate(self.values) if value is not None and _same(value, low))

    @property
    def worst(self) -> frozenset[int]:
        if not self._differs():
            return frozenset()
        high = max(self._known())
        return frozenset(i for i, value in enumerate(self.values) if value is not None and _same(value, high))

    def ratio(self, index: int) -> float | None:
        """The value relative to the first run's; None when either is missing or the first is zero."""
        base, value = self.values[0], self.values[index]
        if base is None or value is None or base <= 0:
            return None
        return value / base

    def formatted(self, index: int) -> str:
        value = self.values[index]
        if value is None:
            return DASH
        if self.kind == "cost":
            return format_cost(value, self.cost_known[index] if self.cost_known else True)
        if self.kind == "tokens":
            return format_tokens(value)
        if self.kind == "ms":
            return format_duration(value) if value > 0 else DASH
        return str(int(value))


def _same(a: float, b: float) -> bool:
    # Costs are sums of floats: 0.1 + 0.02 and 0.12 are the same amount, not a difference to highlight.
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def format_ratio(ratio: float) -> str:
    """`×1.8`: a value relative to a baseline, with more digits the closer it is to zero."""
    if ratio >= 10:
        return f"×{round_half_up(ratio)}"
    if ratio >= 0.995:
        return f"×{ratio:.1f}"
    if ratio >= 0.01:
        return f"×{ratio:.2f}"
    return "×0" if ratio <= 0 else "×<0.01"


_TOKEN_MEASURES = (("in", "Tokens in", "input"), ("out", "Tokens out", "output"),
                   ("cache_read", "Cache read", "cache_read"), ("cache_write", "Cache write", "cache_write"))  # fmt: skip


def compare_ledgers(ledgers: list[Ledger], end_to_end_ms: list[float | None] | None = None) -> list[ComparisonRow]:
    """Rows comparing runs' ledgers: cost, tokens in/out/cache, steps and step wall time, each in total and
    by role (every role any run used), and end-to-end time when given. Cache write rows appear only if any
    run wrote to a cache."""
    roles = sorted({role.lower() for ledger in ledgers for role in ledger.by_role()}
                   | {step.role.lower() for ledger in ledgers for step in ledger.steps}, key=role_sort_key)  # fmt: skip
    usage_by_role = [_lower_roles(ledger) for ledger in ledgers]
    time_by_role = [step_time_by_role(ledger) for ledger in ledgers]
    totals = [ledger.total for ledger in ledgers]
    rows: list[ComparisonRow] = []

    def used(index: int, role: str) -> bool:
        return role in usage_by_role[index] or role in time_by_role[index]

    rows.append(ComparisonRow("cost", "Cost", "cost", tuple(t.cost for t in totals),
                              tuple(t.cost_known for t in totals)))  # fmt: skip
    for role in roles:
        usages = [by_role.get(role, ZERO_USAGE) for by_role in usage_by_role]
        rows.append(ComparisonRow(
            f"cost:{role}", f"Cost · {role_label(role)}", "cost",
            tuple(u.cost if used(i, role) else None for i, u in enumerate(usages)), tuple(u.cost_known for u in usages),
        ))  # fmt: skip
    for key, label, attribute in _TOKEN_MEASURES:
        if key == "cache_write" and not any(t.cache_write for t in totals):
            continue
        rows.append(ComparisonRow(key, label, "tokens", tuple(getattr(t, attribute) for t in totals)))
        for role in roles:
            values = tuple(getattr(usage_by_role[i].get(role, ZERO_USAGE), attribute) if used(i, role) else None
                           for i in range(len(ledgers)))  # fmt: skip
            rows.append(ComparisonRow(f"{key}:{role}", f"{label} · {role_label(role)}", "tokens", values))
    rows.append(ComparisonRow("tokens", "Tokens, all", "tokens", tuple(t.total_tokens for t in totals)))
    step_totals = [step_time_total(ledger) for ledger in ledgers]
    rows.append(ComparisonRow("steps", "Steps", "count", tuple(t.steps for t in step_totals)))
    for role in roles:
        values = tuple(by_role.get(role, StepTime()).steps if used(i, role) else None
                       for i, by_role in enumerate(time_by_role))  # fmt: skip
        rows.append(ComparisonRow(f"steps:{role}", f"Steps · {role_label(role)}", "count", values))
    rows.append(ComparisonRow("wall", "Step wall time", "ms", tuple(t.wall_ms for t in step_totals)))
    for role in roles:
        values = tuple(by_role.get(role, StepTime()).wall_ms if used(i, role) else None
                       for i, by_role in enumerate(time_by_role))  # fmt: skip
        rows.append(ComparisonRow(f"wall:{role}", f"Step wall time · {role_label(role)}", "ms", values))
    if end_to_end_ms is not None:
        rows.append(ComparisonRow("end_to_end", "End-to-end", "ms", tuple(end_to_end_ms)))
    return rows


def _lower_roles(ledger: Ledger) -> dict[str, Usage]:
    # by_role() keys are as recorded; runs of the original extension and ours may differ in case.
    out: dict[str, Usage] = {}
    for role, usage in ledger.by_role().items():
        out[role.lower()] = out.get(role.lower(), ZERO_USAGE) + usage
    return out


def iso_or_none(ts: datetime | None) -> str | None:
    return None if ts is None else iso(ts, timespec="milliseconds")


def _int(value: Any) -> int:
    """A token count read from a ledger: 0 for anything that is not one (negative, beyond MAX_COUNT, not a number)."""
    try:
        number = int(value or 0)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float (JSON's Infinity)
        return 0
    return number if 0 <= number <= MAX_COUNT else 0


def _float(value: Any) -> float:
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        return 0.0
    return number if math.isfinite(number) and 0 <= number <= MAX_COST else 0.0  # drop NaN, infinities, negatives
