"""What the orchestrator tells its models. The facts of the seed's prompts (reference/seeds.md §1.5) in our words.

Pure string building: the orchestrator passes in the run's facts, these functions lay them out. The section
names come from `protocol`, so the parser and the prompts can never disagree about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aw_tui.engine.protocol import ANALYST_SECTIONS, WORKER_SECTIONS

NOTES_IN_PROMPT = 5

ANALYST_SYSTEM = """\
You are the ANALYST of a two-model coding run. A cheaper WORKER model does the hands-on work; you plan, review \
and decide. You may read the project with read-only tools, but you never change it yourself.

Rules:
- Begin every answer with a line `[ANALYST: {model}]`.
- Keep a plan for the whole task in mind, but hand the worker exactly ONE small, concrete, bounded stage at a \
time: what to do, which files and commands it may touch, when to stop, what result to expect and what to report.
- Stop for the operator (Next state: NEEDS_OPERATOR) when results contradict each other or look wrong, when the \
work would leave the task's scope or carry real risk, when credentials, network access or money are needed, when \
context or cost limits come close, or when a human must choose between trade-offs.
- Carry the worker's reported issues and lessons forward into the next instruction.
- Declare DONE only when the task's acceptance criteria are demonstrably met; the operator confirms it.
- In a final review, reflect on the run itself: tokens and time spent, slow or failed commands, what to do \
differently.
"""

WORKER_SYSTEM = """\
You are the WORKER of a two-model coding run. The analyst gives you one bounded instruction; you carry it out \
with your tools in the project workspace, then stop and report.

Rules:
- Begin every answer with a line `[WORKER: {model}]`.
- Do exactly the instruction you were given. Do not start a second task and do not widen the scope.
- Put scratch files and long logs under the artifacts directory, not in the project.
- Stop and report instead of guessing when a result is unexpected, credentials or network access are missing, \
the requirement is unclear, or a change would go beyond what was asked.
- Some shell commands (deleting trees, pushing, resetting, sudo ...) wait for the operator's approval. If one \
is refused, do not try to get around the refusal; report it.
- Always report friction: failed commands, slow steps, surprises.
"""

COMPACTOR_SYSTEM = """\
You compress the working memory of a long coding run so that it can continue in a fresh, short context. \
Nothing you leave out can be recovered, and nothing you add may be invented.
"""

COMPACTOR_INSTRUCTION = """\
Summarise the conversation above for yourself, to continue the same work after it is dropped. Keep, under \
these headings:

## Task
## Current state
## Confirmed facts
## Rejected hypotheses
## Active hypothesis and plan
## Done
## Open questions
## Latest instruction and its result (verbatim ids, exact commands, exact numbers)
## Validation and risks
## Important files, artifacts and paths

Be complete about facts, ids, paths and numbers; be brief about everything else.
"""


@dataclass(frozen=True)
class TurnFacts:
    """What every turn prompt shows, taken from the run's state."""

    step: int
    state: str
    task: str
    run_dir: str
    state_md: str
    ledger_json: str
    artifacts_dir: str
    workspace: str
    latest_report: str | None
    instruction_id: str | None
    last_completed_instruction: str | None
    notes: Sequence[str]
    tool_policy: str
    analyst_model: str
    worker_model: str
    analyst_thinking: str
    worker_thinking: str
    analyst_context_limit: int
    worker_context_limit: int
    max_autonomous_hours: float
    worker_steps_before_operator: int | None


def _common_block(facts: TurnFacts, header: str) -> str:
    notes = list(facts.notes)[-NOTES_IN_PROMPT:]
    note_lines = "\n".join(f"- {note}" for note in notes) if notes else "- (none)"
    steps_limit = (
        f"the operator checks in after {facts.worker_steps_before_operator} worker step(s)"
        if facts.worker_steps_before_operator else "no worker-step limit between operator check-ins"
    )  # fmt: skip
    return f"""\
{header}
Step: {facts.step}
State: {facts.state}

Run files:
- state: {facts.state_md}
- ledger: {facts.ledger_json}
- artifacts directory: {facts.artifacts_dir}
- latest step report: {facts.latest_report or "(none yet)"}
- project workspace: {facts.workspace}

Authorized instruction id: {facts.instruction_id or "(none)"}
Last completed instruction: {facts.last_completed_instruction or "(none)"}

Operator notes (latest last):
{note_lines}

Task:
{facts.task}

Constraints:
- worker tool policy: {facts.tool_policy}
- analyst {facts.analyst_model} (thinking {facts.analyst_thinking}, context limit {facts.analyst_context_limit:,} \
tokens); worker {facts.worker_model} (thinking {facts.worker_thinking}, context limit \
{facts.worker_context_limit:,} tokens)
- autonomous checkpoint: {facts.max_autonomous_hours:g} h; {steps_limit}
- no open-ended loops: every stage must end
- keep the context small: save raw outputs under the artifacts directory and refer to their paths
"""


def _sections_list(sections: Sequence[str]) -> str:
    return "\n".join(f"## {title}" for title in sections)


ANALYST_FORMAT = f"""\
Answer with exactly these sections, in this order:

{_sections_list(ANALYST_SECTIONS)}

Under `## Worker instruction` give: Goal; Files and commands allowed; Exact stop conditions; Expected result; \
What to report back. Write `None` there when no worker stage is needed.
Under `## Next state` write one of: NEEDS_WORKER, NEEDS_OPERATOR, DONE, ABORT.
Under `## Operator handoff`, when you need the operator, give: Problem; Question; Recommended answer. Otherwise \
write `None`.
"""


def analyst_plan_prompt(facts: TurnFacts) -> str:
    return (
        _common_block(facts, "[ANALYST MODE: plan]")
        + "\nPlan the next bounded worker stage for this task (or hand off to the operator).\n\n"
        + ANALYST_FORMAT
    )


def analyst_review_prompt(facts: TurnFacts, worker_report: str, worker_step: int) -> str:
    return (
        _common_block(facts, "[ANALYST REVIEW MODE]")
        + f"\nReview the worker's report of step {worker_step} below against the instruction you gave. Check its "
        "claims against the workspace where it matters. Then either give the next bounded stage, hand off to the "
        "operator, or declare DONE.\n\n"
        + f"----- worker report (step {worker_step}) -----\n{worker_report.strip()}\n----- end of report -----\n\n"
        + ANALYST_FORMAT
    )


WORKER_FORMAT = f"""\
Report with exactly these sections, in this order, and quote the instruction id exactly as shown:

{_sections_list(WORKER_SECTIONS)}
"""


def worker_prompt(facts: TurnFacts, instruction: str) -> str:
    return (
        _common_block(facts, "[WORKER MODE]")
        + f"\nInstruction id: {facts.instruction_id}\n\nYour instruction:\n\n{instruction.strip()}\n\n"
        + WORKER_FORMAT
    )


def worker_recovery_prompt(instruction_id: str | None, missing: Sequence[str], attempt: int, limit: int) -> str:
    listed = ", ".join(missing)
    return (
        f"[WORKER MODE: continue, recovery {attempt} of {limit}]\n"
        f"Your last report is incomplete: it lacks {listed}. Continue the SAME bounded instruction "
        f"({instruction_id or 'as given above'}); do not start anything new. Finish what is left, then report "
        f"again with every section.\n\n{WORKER_FORMAT}"
    )


def empty_reply_nudge(role: str) -> str:
    return (
        f"Your last reply was empty. Answer now, as the {role}, in the format asked for above."
    )
