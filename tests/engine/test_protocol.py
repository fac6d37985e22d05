"""The seed's portable cases for the analyst/worker text protocol (reference/seeds.md §6.2, cases 14, 15, 18)."""

import pytest

from aw_tui.engine.protocol import (
    instruction_id,
    missing_worker_sections,
    parse_next_state,
    section,
    substantive_length,
    worker_asks_for_operator,
)


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("## Next state\nDONE\n", "DONE"),
        ("## Next state\n**NEEDS_WORKER**\n## Operator handoff\nNone", "NEEDS_WORKER"),
        ("## Next state\nBLOCKED", "NEEDS_OPERATOR"),
        ("Next state: MORE_WORK", "NEEDS_WORKER"),
        ("## Next state\n- ABORT.", "ABORT"),
        ("## Next state\nOne of: NEEDS_WORKER / DONE", "NEEDS_WORKER"),
        ("## Next state\n\n> needs_operator\n", "NEEDS_OPERATOR"),
        ("### Next state:\n`DONE`", "DONE"),
        ("No decision anywhere", None),
        # The section ends at the next known heading: a DONE in the handoff is not the decision.
        ("## Next state\n(see below)\n## Operator handoff\nDONE when you approve", None),
    ],
)
def test_parse_next_state(text, decision):
    assert parse_next_state(text) == decision


COMPLETE_REPORT = "\n".join(
    f"## {title}\ntext"
    for title in (
        "Task understood", "Actions taken", "Result", "Validation", "Diff / artifacts",
        "Issues / risks / lessons", "Worker recommendation / next steps", "Stop / handoff",
    )
)  # fmt: skip


def test_worker_report_completeness():
    assert missing_worker_sections(COMPLETE_REPORT) == []
    incomplete = COMPLETE_REPORT.replace("## Stop / handoff\ntext", "")
    assert missing_worker_sections(incomplete) == ["Stop / handoff"]
    # A heading is a line of its own (optionally `##` and a colon); "Result: fine" on one line is prose.
    assert missing_worker_sections("## Result\nfine\nValidation:\nok\nStop / handoff: later") == [
        "Task understood", "Actions taken", "Diff / artifacts", "Issues / risks / lessons",
        "Worker recommendation / next steps", "Stop / handoff",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("I am blocked on credentials", True),
        ("This needs operator approval", True),
        ("Operator decision required", True),
        ("Missing credentials for the registry", True),
        ("I cannot continue without network", True),
        ("All tests pass.", False),
        ("The unblocked path works", False),
    ],
)
def test_worker_asks_for_operator(text, asks):
    assert worker_asks_for_operator(text) is asks


def test_instruction_id_and_sections():
    plan = "[ANALYST: m]\nStep: 0001\n## Worker instruction\n\nGoal: Fix the parser!\nFiles: x\n## Validation / Risks\nlow"
    assert instruction_id(1, plan) == "0001_goal_fix_the_parser"
    assert section(plan, "Worker instruction") == "Goal: Fix the parser!\nFiles: x"
    assert section(plan, "Hypothesis") == ""
    # The slug is already capped at 80 characters, so the 96-character cap only guards odd step numbers.
    assert len(instruction_id(12, "## Worker instruction\n" + "word " * 50)) == 5 + 80


def test_substantive_length_ignores_the_header():
    header = "[ANALYST: m]\nStep: 0001\nState: ANALYST_PLANNING\nTask: t\n"
    assert substantive_length(header + "x" * 79) == 79
    assert substantive_length(header + "x" * 80) == 80
