"""state.md: the human-readable state of a run, with the seed's header lines and sections.

The seed writes `Key: value` lines under `# Analyst/Worker State`, then `##` sections; the legacy reader
(store/legacy.py) parses the same shape back, so both directions live next to each other here.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from aw_tui.model.formatting import format_cost, format_tokens, iso, one_line
from aw_tui.model.state import RunState

STATE_TITLE = "# Analyst/Worker State"
NOTES_SHOWN = 8  # the seed shows the last 8 operator notes


def render_state_md(state: RunState, *, run_dir: str, now: datetime | None = None) -> str:
    settings = state.settings
    analyst = _role_settings(settings, "analyst")
    worker = _role_settings(settings, "worker")
    limits = settings.get("limits", {}) if isinstance(settings.get("limits"), dict) else {}
    last_step = state.steps[-1].step if state.steps else 0
    total = state.ledger.total
    hours = limits.get("max_autonomous_hours", 24)
    header = [
        ("Task", state.title or state.task),
        ("Task ID", state.run_id),
        ("Current state", state.state),
        ("Paused", "Yes" if state.paused else "No"),
        ("Analyst model", analyst.get("model", "not recorded")),
        ("Analyst thinking", analyst.get("thinking", "not recorded")),
        ("Worker model", worker.get("model", "not recorded")),
        ("Worker thinking", worker.get("thinking", "not recorded")),
        ("Started", iso(state.created_at)),
        ("Updated", iso(now or state.last_event_at)),
        ("Last step", str(last_step)),
        ("Artifact dir", run_dir),
        ("Ledger", f"{run_dir}/ledger.json"),
        ("Tool policy", str(settings.get("tool_policy", "all-tools"))),
        ("Autonomous runtime checkpoint", _hours(hours)),
        ("Tokens", f"{format_tokens(total.input)} in, {format_tokens(total.output)} out"),
        ("Cost", format_cost(total.cost, total.cost_known)),
        ("Open gates", str(len(state.open_gates))),
    ]
    memo = state.memo
    lines = [STATE_TITLE, ""]
    lines += [f"{key}: {value}" for key, value in header]
    if state.state_reason:
        lines.append(f"State reason: {one_line(state.state_reason)}")
    sections: list[tuple[str, str]] = [
        ("Global task description", state.task or state.title or "—"),
        (
            "Current authorized worker instruction",
            f"Instruction id: {memo.instruction_id or 'none'}" + (f"\n\n{memo.instruction}" if memo.instruction else ""),
        ),
        ("Current hypothesis", memo.hypothesis or "TBD by analyst."),
        ("Done", _bullets(memo.done, "Nothing recorded yet.")),
        ("Open questions", _bullets(memo.open_questions, "None recorded yet.")),
        ("Next action", memo.next_action or _default_next_action(state)),
        ("Operator expected?", memo.operator_expected or ("Yes: a gate is open." if state.open_gates else "No.")),
        ("Open gates", _bullets([f"{g.id} ({g.kind}): {one_line(g.title)}" for g in state.open_gates], "None.")),
        (
            "Operator notes / decisions",
            "\n\n".join(f"### {iso(n.ts)}\n{n.text}" for n in state.notes[-NOTES_SHOWN:]) or "None yet.",
        ),
        ("Latest artifacts", _bullets([s.path for s in state.steps[-3:]], "None yet.")),
    ]
    if state.malformed_lines or state.problems:
        sections.append(("Problems reading events", _bullets(state.problems[-10:], "None.")))
    for title, body in sections:
        lines += ["", f"## {title}", body]
    return "\n".join(lines) + "\n"


def _role_settings(settings: dict[str, Any], role: str) -> dict[str, Any]:
    value = settings.get(role)
    return value if isinstance(value, dict) else {}


def _default_next_action(state: RunState) -> str:
    if state.is_terminal:
        return "None: the run has ended."
    if state.open_gates:
        return "Resolve the open gate."
    return "The engine continues automatically."


def _bullets(items: Any, empty: str) -> str:
    items = [str(item) for item in items]
    return "\n".join(f"- {item}" for item in items) if items else f"- {empty}"


def _hours(hours: Any) -> str:
    try:
        value = float(hours)
    except (TypeError, ValueError, OverflowError):
        return str(hours)
    if not math.isfinite(value):
        return str(hours)
    return f"{int(value)}h" if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".") + "h"


# --- reading a state.md back (runs of the original extension) -----------------------------------------

_HEADER_LINE = re.compile(r"^(?:[-*]\s+)?(?:\*\*)?([A-Za-z][A-Za-z ?/()-]*?)(?:\*\*)?:\s*(.*)$")


def parse_state_md(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(header fields, sections) of a state.md. Tolerant: unknown lines are ignored, nothing raises."""
    header: dict[str, str] = {}
    sections: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            if current is not None:
                sections[current] = "\n".join(body).strip()
            current, body = line[3:].strip(), []
            continue
        if current is not None:
            body.append(line)
            continue
        match = _HEADER_LINE.match(line.strip())
        if match:
            header.setdefault(match.group(1).strip(), match.group(2).strip())
    if current is not None:
        sections[current] = "\n".join(body).strip()
    return header, sections
