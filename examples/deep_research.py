"""Deep research: scope a question, research it from several angles, let skeptics vote on every claim, and write a
report from the claims that survive.

    aw-tui workflow run examples/deep_research.py --args '{"question": "...", "angles": 3}' --model openai/gpt-5-mini

The shape (with the defaults: 3 angles, 2 claims per angle, 3 votes per claim):

    Scope       1 agent     a plan: the question made precise, and one research angle per line of inquiry
    Research    3 + 3       a pipeline over the angles: investigate (notes, text) -> extract claims (a schema)
    Verify      6 x 3       every claim, three verifiers in parallel, each votes keep or drop with a reason
    Synthesize  1 agent     the report, written only from the claims a majority kept

    1 + 3 + 3 + 6 x 3 + 1 = 26 agent calls (the same shape as pi-loom's deep-research demo).

Every agent() call is journaled: run it again with `--resume RUN` and each call whose prompt and position did not
change comes from the journal instead of the model. Edit the synthesis prompt, resume, and only the last agent
runs again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

TITLE = "Deep research"  # the run's title (and its directory name); without it, the docstring's first line

# Declared up front, the phases show in the TUI's tree (as pending) before any agent starts.
PHASES = ["Scope", "Research", "Verify", "Synthesize"]

DEFAULT_QUESTION = "Is SQLite a good fit for a multi-writer web app?"
DEFAULT_ANGLES = 3
DEFAULT_CLAIMS_PER_ANGLE = 2
VOTES = 3  # an odd number, so a majority always exists


# --- what the agents return ----------------------------------------------------------------------------------
# A pydantic model as `schema=` makes the agent end by calling a `respond` tool whose parameters are the model's
# JSON schema; agent() then returns a validated instance. Arguments that do not validate go back to the model to
# fix (up to `retries` more tries); after that agent() returns None. Field descriptions reach the model: write
# them as instructions.


class Angle(BaseModel):
    title: str = Field(description="a short name for this line of inquiry, at most 5 words")
    focus: str = Field(description="what exactly to find out along this angle, in one or two sentences")


class Plan(BaseModel):
    question: str = Field(description="the question restated precisely, with its implicit assumptions made explicit")
    angles: list[Angle] = Field(description="independent angles that together answer the question")


class Claim(BaseModel):
    statement: str = Field(description="one checkable factual statement, self-contained")
    evidence: str = Field(description="the evidence or mechanism behind it, briefly")


class Claims(BaseModel):
    claims: list[Claim]


class Vote(BaseModel):
    vote: Literal["keep", "drop"] = Field(description="keep: the claim is correct and relevant; drop: it is not")
    reason: str = Field(description="one or two sentences: why")


# The three verifiers look for different failures, so the vote is adversarial rather than three copies of one
# opinion. (VOTES lenses: add one when you raise VOTES.)
LENSES = [
    "Check the facts: is the statement true as written, for current versions? Drop it if it is false or outdated.",
    "Hunt for counter-examples: is there a common case where it does not hold? Drop it if it overgeneralises.",
    "Check relevance and framing: does it bear on the question without overstating? Drop it if it misleads.",
]


def as_int(value: object, default: int, low: int, high: int) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))


async def workflow(wf, args):
    args = args or {}
    question = str(args.get("question") or DEFAULT_QUESTION)
    n_angles = as_int(args.get("angles"), DEFAULT_ANGLES, 1, 8)
    per_angle = as_int(args.get("claims_per_angle"), DEFAULT_CLAIMS_PER_ANGLE, 1, 5)

    # --- Scope: one agent turns the question into a plan -------------------------------------------------------
    wf.phase("Scope")
    plan = await wf.agent(
        f"Plan research on this question:\n\n{question}\n\n"
        f"Restate it precisely, then give exactly {n_angles} independent research angles that together answer it.",
        schema=Plan,
        label="scope",
    )
    if plan is None or not plan.angles:
        # None means every try failed (the reason is in the run's log); a workflow that raises ends FAILED.
        raise RuntimeError("the scope agent gave no usable plan")
    angles = plan.angles[:n_angles]  # models sometimes give more than asked
    wf.log(f"scope: {len(angles)} angle(s): " + "; ".join(a.title for a in angles))

    # --- Research: a pipeline over the angles ------------------------------------------------------------------
    # Each angle goes through both stages on its own: there is no barrier between stages, so the claims of a fast
    # angle are extracted while a slow one is still being investigated. A stage gets (previous, item, index):
    # the previous stage's result (the item itself for the first stage), the item, and its index.
    wf.phase("Research")

    async def investigate(_previous, angle, i):
        return await wf.agent(
            f"Research question: {plan.question}\n\nYour angle: {angle.title}. {angle.focus}\n\n"
            "Write concise research notes: the relevant facts, mechanisms, numbers and limits you know of, with "
            "where they come from (documentation, well-known benchmarks, common production experience).",
            label=f"research {i + 1}: {angle.title}",
        )

    async def extract(notes, angle, i):
        if notes is None:
            return []  # the investigation failed: this angle contributes no claims
        found = await wf.agent(
            f"From these research notes on '{angle.title}', extract the {per_angle} most important claims that bear "
            f"on the question: {plan.question}\n\nNotes:\n{notes}",
            schema=Claims,
            label=f"claims {i + 1}: {angle.title}",
        )
        return found.claims[:per_angle] if found is not None else []

    per_angle_claims = await wf.pipeline(angles, investigate, extract)
    # A failed item comes back as None; flatten what there is, numbering claims for the labels below.
    claims = [claim for found in per_angle_claims for claim in (found or [])]
    wf.log(f"research: {len(claims)} claim(s) to verify")

    # --- Verify: every claim, VOTES verifiers in parallel ------------------------------------------------------
    # parallel() is a barrier that keeps order and turns a failing thunk into None. Nesting is fine: the claims
    # run in parallel and each claim's votes run in parallel (a concurrency limit, 16 by default, caps the live
    # model calls). Thunks are lambdas with default arguments so each one captures its own claim and lens.
    wf.phase("Verify")

    async def verify(number, claim):
        votes = await wf.parallel([
            (lambda lens=lens, k=k: wf.agent(
                f"You are a skeptical reviewer. {lens}\n\nQuestion: {plan.question}\n\nClaim: {claim.statement}\n"
                f"Offered evidence: {claim.evidence}\n\nVote keep or drop, with your reason.",
                schema=Vote,
                label=f"verify C{number} vote {k + 1}",
            ))
            for k, lens in enumerate(LENSES[:VOTES])
        ])
        keeps = sum(1 for v in votes if v is not None and v.vote == "keep")
        counted = sum(1 for v in votes if v is not None)  # a failed vote counts as neither
        confirmed = keeps * 2 > counted if counted else False
        reasons = [v.reason for v in votes if v is not None and v.vote == "drop"]
        wf.log(f"C{number} {'confirmed' if confirmed else 'dropped'} ({keeps}/{counted} keep): {claim.statement}")
        return {"claim": claim, "confirmed": confirmed, "keeps": keeps, "votes": counted, "objections": reasons}

    verdicts = await wf.parallel([(lambda n=n, c=c: verify(n, c)) for n, c in enumerate(claims, 1)])
    verdicts = [v for v in verdicts if v is not None]
    confirmed = [v for v in verdicts if v["confirmed"]]
    dropped = [v for v in verdicts if not v["confirmed"]]
    wf.log(f"verify: {len(confirmed)} of {len(verdicts)} claim(s) confirmed")

    # --- Synthesize: one agent writes the report ---------------------------------------------------------------
    wf.phase("Synthesize")
    kept = "\n".join(f"- {v['claim'].statement} ({v['claim'].evidence}) [{v['keeps']}/{v['votes']} verifiers kept it]"
                     for v in confirmed) or "- (none survived verification)"
    rejected = "\n".join(f"- {v['claim'].statement} (objection: {v['objections'][0] if v['objections'] else '-'})"
                         for v in dropped) or "- (none)"
    report = await wf.agent(
        f"Write a short research report in Markdown answering: {plan.question}\n\n"
        f"Use only these verified claims:\n{kept}\n\n"
        f"These claims were rejected by the verifiers; do not rely on them, but mention a misconception when it is "
        f"common:\n{rejected}\n\n"
        "Start with a one-paragraph answer, then the supporting points, then when the answer changes.",
        label="synthesize",
    )
    if report is None:
        raise RuntimeError("the synthesis agent gave no report")
    # The workflow's return value is the run's result: printed at the end and saved in
    # artifacts/workflow_result.json.
    return report
