"""The text protocol between the orchestrator and its models: what the analyst and the worker must write, and
how their answers are read. Pure functions, no I/O; the seed's rules (reference/seeds.md §1.4) in our words.
"""

from __future__ import annotations

import re
from typing import Literal

from aw_tui.store.layout import slugify

Decision = Literal["NEEDS_WORKER", "NEEDS_OPERATOR", "DONE", "ABORT"]

ANALYST_SECTIONS = (
    "Diagnosis / Review",
    "Hypothesis",
    "Worker instruction",
    "Validation / Risks",
    "Operational memory",
    "Next state",
    "Operator handoff",
)
WORKER_SECTIONS = (
    "Task understood",
    "Actions taken",
    "Result",
    "Validation",
    "Diff / artifacts",
    "Issues / risks / lessons",
    "Worker recommendation / next steps",
    "Stop / handoff",
)
# An analyst answer shorter than this (after its header lines) gives the worker nothing to act on.
MIN_SUBSTANTIVE_ANALYST_CHARS = 80
INSTRUCTION_ID_MAX = 96

_TOKENS: tuple[tuple[str, Decision], ...] = (
    ("NEEDS_WORKER", "NEEDS_WORKER"),
    ("MORE_WORK", "NEEDS_WORKER"),
    ("NEEDS_OPERATOR", "NEEDS_OPERATOR"),
    ("BLOCKED", "NEEDS_OPERATOR"),
    ("DONE", "DONE"),
    ("ABORT", "ABORT"),
)
_TOKEN_RE = re.compile(r"\b(" + "|".join(token for token, _ in _TOKENS) + r")\b", re.IGNORECASE)
_DECISION_OF = {token: decision for token, decision in _TOKENS}
_OTHER_HEADINGS = "|".join(re.escape(h) for h in ANALYST_SECTIONS if h != "Next state")
_NEXT_STATE_SECTION = re.compile(
    r"(?:^|\n)[ \t]*(?:#{1,3}[ \t]*)?Next state[ \t]*:?[ \t]*\n(?P<body>.*?)"
    r"(?=\n[ \t]*(?:#{1,3}[ \t]*)?(?:" + _OTHER_HEADINGS + r")[ \t]*:?[ \t]*\n|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_INLINE_NEXT_STATE = re.compile(r"Next state[ \t]*:[ \t]*(?P<value>[^\n]*)", re.IGNORECASE)
_STRIP_CHARS = " \t>*_\\#-:`"


def parse_next_state(text: str) -> Decision | None:
    """The analyst's decision: the leftmost known token on the first line of its `Next state` section that has
    one, else an inline `Next state: X`. None when there is neither (the orchestrator then continues with the
    worker)."""
    section = _NEXT_STATE_SECTION.search(text)
    if section:
        for line in section.group("body").splitlines():
            match = _TOKEN_RE.search(line.strip(_STRIP_CHARS))
            if match:
                return _DECISION_OF[match.group(1).upper()]
    inline = _INLINE_NEXT_STATE.search(text)
    if inline:
        match = _TOKEN_RE.search(inline.group("value"))
        if match:
            return _DECISION_OF[match.group(1).upper()]
    return None


def _heading_re(title: str) -> re.Pattern[str]:
    return re.compile(r"(?:^|\n)[ \t]*(?:#{1,3}[ \t]*)?" + re.escape(title) + r"[ \t]*:?[ \t]*(?:\n|$)", re.IGNORECASE)


_WORKER_HEADINGS = tuple(_heading_re(title) for title in WORKER_SECTIONS)


def missing_worker_sections(report: str) -> list[str]:
    """The worker report's required headings that are absent; an empty list means the report is complete."""
    return [title for title, pattern in zip(WORKER_SECTIONS, _WORKER_HEADINGS) if not pattern.search(report)]


_NEEDS_OPERATOR = re.compile(
    r"\b(?:awaiting|needs?|requires?)\s+operator\b|\boperator\s+(?:decision|authorization|approval|required)\b"
    r"|\bmissing credentials\b|\bcannot continue\b|\bblocked\b",
    re.IGNORECASE,
)


def worker_asks_for_operator(report: str) -> bool:
    """True when the worker says it cannot go on without the operator; then no automatic retry is made."""
    return bool(_NEEDS_OPERATOR.search(report))


def section(text: str, title: str) -> str:
    """The body of a `## title` (or `title:`) section, up to the next known heading; empty when absent."""
    start = _heading_re(title).search(text)
    if not start:
        return ""
    rest = text[start.end() :]
    headings = "|".join(re.escape(h) for h in (*ANALYST_SECTIONS, *WORKER_SECTIONS) if h.lower() != title.lower())
    end = re.search(r"\n[ \t]*(?:#{1,3}[ \t]*)?(?:" + headings + r")[ \t]*:?[ \t]*(?:\n|$)", rest, re.IGNORECASE)
    return (rest[: end.start()] if end else rest).strip()


def substantive_length(text: str) -> int:
    """Characters of an analyst answer once its `[ANALYST: ...]` header lines are dropped."""
    lines = text.strip().splitlines()
    while lines and (lines[0].startswith("[ANALYST") or re.match(r"^(Step|State|Task):", lines[0])):
        lines.pop(0)
    return len("\n".join(lines).strip())


def instruction_id(step: int, analyst_text: str) -> str:
    """`<step4>_<slug of the first non-empty line of the Worker instruction>`, cut to 96 characters."""
    body = section(analyst_text, "Worker instruction")
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return f"{step:04d}_{slugify(first)}"[:INSTRUCTION_ID_MAX]
