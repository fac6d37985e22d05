"""Runs written by the original pi-analyst-worker-orchestrator: ledger.json + state.md + steps/, no events.

`legacy_state` turns what the store read from such a directory into a read-only RunState, so the same views
show it. Nothing here raises on bad content: every oddity becomes a line in `state.problems`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aw_tui.model.events import EPOCH, MAX_COUNT, MAX_MS, StateName
from aw_tui.model.ledger import OTHER_ROLE, Ledger, LedgerCompaction, LedgerStep, Usage
from aw_tui.model.state import AgentNode, Memo, PhaseNode, RunState, StepRef
from aw_tui.model.statemd import parse_state_md

_STATES = set(StateName.__args__)  # type: ignore[attr-defined]
_STEP_FILE = re.compile(r"^(\d{4})_([a-z]+)_([a-z_]+)\.md$")
_PHASE_OF_FILE = {"analyst_plan": "ANALYST_PLAN", "worker_result": "WORKER_RUN", "analyst_review": "ANALYST_REVIEW"}
_PHASE_TITLE = {"ANALYST_PLAN": "Analyst plan", "WORKER_RUN": "Worker run", "ANALYST_REVIEW": "Analyst review"}


@dataclass(frozen=True, slots=True)
class LegacyLedgerRead:
    """What the store found in ledger.json: parsed JSON, or why it could not be parsed."""

    data: Any = None
    error: str | None = None
    missing: bool = False


def legacy_state(
    run_id: str,
    ledger: LegacyLedgerRead,
    state_md: str | None,
    step_files: list[str],
    problems: list[str] | None = None,
) -> RunState:
    state = RunState(run_id=run_id, read_only=True)
    state.problems = list(problems or [])
    _apply_ledger(state, ledger)
    if state_md is None:
        state.problems.append("state.md is missing; state taken from ledger.json")
    else:
        _apply_state_md(state, state_md)
    _apply_step_files(state, step_files)
    if state.last_event_at is None:
        finished = [s.finished_at for s in state.ledger.steps if s.finished_at is not None]
        state.last_event_at = max(finished) if finished else state.created_at
    return state


def _apply_ledger(state: RunState, read: LegacyLedgerRead) -> None:
    if read.missing:
        state.problems.append("ledger.json is missing")
        return
    if read.error is not None:
        state.problems.append(f"ledger.json could not be read: {read.error}")
        return
    data = read.data
    if isinstance(data, list):
        state.problems.append(f"ledger.json is a legacy array of {len(data)} entries; shown as legacy events")
        state.ledger = Ledger(legacy_events=data)
        return
    if not isinstance(data, dict):
        state.problems.append(f"ledger.json holds a {type(data).__name__}, not a ledger object")
        return
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    state.title = _str(data.get("task_title")) or _str(config.get("taskTitle"))
    state.task = _str(config.get("taskDescription")) or state.title
    state.workspace = _str(config.get("cwd"))
    state.created_at = _ts(data.get("started_at")) or _ts(config.get("startedAt"))
    state.settings = _settings_from_config(config)
    ledger = Ledger()
    raw_steps = _list_field(state, data, "steps")
    for index, raw in enumerate(raw_steps):
        step = _ledger_step(raw)
        if step is None:
            state.problems.append(f"ledger.json: step entry {index + 1} is not a step object; skipped")
            continue
        ledger.steps.append(step)
        ledger.add_usage(step.role, step.model, step.usage)
        _add_step_node(state, step)
    if not ledger.steps and isinstance(data.get("totals"), dict):
        # The seed's own fallback: no steps, so book each model's totals under role "other".
        for model, totals in data["totals"].items():
            if isinstance(totals, dict):
                ledger.add_usage(OTHER_ROLE, str(model), Usage.from_json(totals))
    for index, raw in enumerate(_list_field(state, data, "compactions")):
        if not isinstance(raw, dict):
            state.problems.append(f"ledger.json: compaction entry {index + 1} is not an object; skipped")
            continue
        ledger.compactions.append(
            LedgerCompaction(
                started_at=_ts(raw.get("started_at")),
                finished_at=_ts(raw.get("finished_at")),
                model=_str(raw.get("model")),
                phase=_str(raw.get("phase")),
                role=_str(raw.get("role")) or "analyst",
                wall_ms=_num(raw.get("wall_ms")),
                tokens_before=_opt_int(raw.get("tokens_before")),
                status=_str(raw.get("status")) or "completed",
                error=_str(raw.get("error")) or None,
            )
        )
    if isinstance(data.get("legacy_events"), list):
        ledger.legacy_events = data["legacy_events"]
    state.ledger = ledger


def _ledger_step(raw: Any) -> LedgerStep | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("step"), int):
        return None
    tool_ms_by_name = raw.get("tool_ms_by_name") if isinstance(raw.get("tool_ms_by_name"), dict) else {}
    tool_counts = raw.get("tool_counts") if isinstance(raw.get("tool_counts"), dict) else {}
    return LedgerStep(
        step=raw["step"],
        role=(_str(raw.get("role")) or OTHER_ROLE).lower(),
        phase=_str(raw.get("phase")),
        model=_str(raw.get("model")),
        thinking_level=_str(raw.get("thinking_level")),
        usage=Usage.from_json(raw),
        wall_ms=_num(raw.get("wall_ms")),
        tool_ms=_num(raw.get("tool_ms")),
        tool_ms_by_name={str(k): _num(v) for k, v in tool_ms_by_name.items()},
        tool_counts={str(k): int(_num(v)) for k, v in tool_counts.items()},
        tool_errors=int(_num(raw.get("tool_errors"))),
        state_after=_str(raw.get("state_after")) or None,
        started_at=_ts(raw.get("started_at")),
        finished_at=_ts(raw.get("finished_at")),
        artifact=_str(raw.get("artifact")) or None,
        context_tokens=_opt_int(raw.get("context_tokens")),
        context_window=_opt_int(raw.get("context_window")),
        external_ms=_num(raw.get("external_ms")),
    )


def _add_step_node(state: RunState, step: LedgerStep) -> None:
    """One phase per step with its agent under it, so the tree shows the run's turns."""
    phase_id = f"step-{step.step:04d}"
    title = f"{step.step:04d} {_PHASE_TITLE.get(step.phase, step.phase or 'Step')}"
    started = step.started_at or step.finished_at or EPOCH
    agent_id = f"{phase_id}-{step.role}"
    state.phases[phase_id] = PhaseNode(
        phase_id, title, None, "done", step.started_at, step.finished_at, agents=[agent_id]
    )
    state.root_phases.append(phase_id)
    state.agents[agent_id] = AgentNode(
        id=agent_id, role=step.role, model=step.model, thinking=step.thinking_level, phase=phase_id, parent=None,
        label=step.role, step=step.step, started_at=started, status="done", finished_at=step.finished_at,
        usage=step.usage, context_tokens=step.context_tokens, llm_calls=0,
        tool_count=sum(step.tool_counts.values()), tool_errors=step.tool_errors, tool_ms=step.tool_ms,
        tool_ms_by_name=dict(step.tool_ms_by_name), tool_counts=dict(step.tool_counts),
    )  # fmt: skip


def _apply_state_md(state: RunState, text: str) -> None:
    header, sections = parse_state_md(text)
    current = header.get("Current state", "")
    if current in _STATES:
        state.state = current
    elif current:
        state.problems.append(f"state.md: unknown state {current!r}")
    state.paused = header.get("Paused", "No").strip().lower() in ("yes", "true")
    state.title = header.get("Task") or state.title
    state.task = sections.get("Global task description") or state.task or state.title
    updated = _ts(header.get("Updated"))
    if updated is not None:
        state.last_event_at = updated
    state.created_at = state.created_at or _ts(header.get("Started"))
    for role in ("analyst", "worker"):
        label = role.capitalize()
        role_settings = state.settings.setdefault(role, {})
        if header.get(f"{label} model"):
            role_settings["model"] = header[f"{label} model"]
        if header.get(f"{label} thinking"):
            role_settings["thinking"] = header[f"{label} thinking"]
    state.memo = Memo(
        hypothesis=sections.get("Current hypothesis") or None,
        next_action=sections.get("Next action") or None,
        operator_expected=sections.get("Operator expected?") or None,
        done=_list_items(sections.get("Done", "")),
        open_questions=_list_items(sections.get("Open questions", "")),
    )


def _apply_step_files(state: RunState, step_files: list[str]) -> None:
    for name in sorted(step_files):
        match = _STEP_FILE.match(name)
        if not match:
            continue
        number, role, phase = int(match.group(1)), match.group(2), f"{match.group(2)}_{match.group(3)}"
        state.steps.append(
            StepRef(number, role, _PHASE_OF_FILE.get(phase, phase.upper()), f"steps/{name}", None, EPOCH)
        )


def _settings_from_config(config: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for role in ("analyst", "worker"):
        entry = {
            "model": config.get(f"{role}Model"),
            "thinking": config.get(f"{role}ThinkingLevel"),
            "context_limit": config.get(f"{role}ContextLimitTokens"),
        }
        settings[role] = {k: v for k, v in entry.items() if v is not None}
    if config.get("toolPolicy"):
        settings["tool_policy"] = config["toolPolicy"]
    if config.get("maxAutonomousHours") is not None:
        settings["limits"] = {"max_autonomous_hours": config["maxAutonomousHours"]}
    return settings


def _list_items(body: str) -> tuple[str, ...]:
    items = [line.strip()[2:].strip() for line in body.splitlines() if line.strip().startswith(("- ", "* "))]
    placeholders = {"Nothing recorded yet.", "None recorded yet.", "None yet.", "None."}
    return tuple(item for item in items if item not in placeholders)


def _list_field(state: RunState, data: dict[str, Any], name: str) -> list[Any]:
    """data[name] when it is a list; [] when it is missing or null, and a problem when it is something else."""
    value = data.get(name)
    if isinstance(value, list):
        return value
    if value is not None:
        state.problems.append(f"ledger.json: {name!r} is a {_JSON_TYPE.get(type(value), 'value')}, not a list; ignored")
    return []


_JSON_TYPE = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean"}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _num(value: Any) -> float:
    """A time or a tally: 0 unless a number from 0 to MAX_MS (the seed writes no NaN, Infinity or negative time,
    and a larger one would make the sums infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if 0 <= value <= MAX_MS else 0.0  # NaN fails the comparison too


def _opt_int(value: Any) -> int | None:
    """A token count, None unless a number from 0 to MAX_COUNT."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_COUNT:
        return None  # NaN fails the comparison too
    return int(value)


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
