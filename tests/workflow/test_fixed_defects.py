"""The four pi-loom defects aw-tui fixes (reference/seeds.md §2.3-2.6), plus the deep-research demo's shape."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from aw_tui.engine.workflow import AgentRefused, BudgetExhausted

from .kit import error_turn, harness, peak_running, respond_turn, run, text_turn


# --- 1. journal keys from structural position ------------------------------------------------------------------


def _delays(order: list[str]) -> dict[str, list[dict]]:
    """Per-label scripted roles whose delays make the calls finish in `order` (first listed finishes first)."""
    roles: dict[str, list[dict]] = {}
    for rank, item in enumerate(order):
        roles[f"look:{item}"] = [text_turn(f"looked at {item}", delay=0.02 * rank)]
        roles[f"judge:{item}"] = [text_turn(f"judged {item}", delay=0.02 * (len(order) - rank))]
    return roles


async def _two_stage(wf):
    return await wf.pipeline(
        ["a", "b", "c"],
        lambda p, item, i: wf.agent(f"look at {item}", label=f"look:{item}"),
        lambda p, item, i: wf.agent(f"judge {p}", label=f"judge:{item}"),
    )


async def test_a_resume_hits_the_journal_whatever_order_the_calls_finished_in(tmp_path):
    journal = tmp_path / "journal.jsonl"
    first = harness(_delays(["a", "b", "c"]), journal=journal)
    expected = await run(first, _two_stage)
    first.wf.journal.close()
    assert first.model_calls == 6
    # The same workflow, the calls finishing in the opposite order this time: every call still hits.
    second = harness(_delays(["c", "b", "a"]), journal=journal)
    assert await run(second, _two_stage) == expected
    assert second.model_calls == 0 and second.wf.stats.cached_calls == 6


async def test_identical_calls_at_one_position_are_told_apart_by_occurrence(tmp_path):
    journal = tmp_path / "journal.jsonl"

    async def body(wf):
        return [await wf.agent("same"), await wf.agent("same")]

    first = harness({"workflow": [text_turn("one"), text_turn("two")]}, journal=journal)
    assert await run(first, body) == ["one", "two"]
    first.wf.journal.close()
    second = harness({"workflow": []}, journal=journal)
    assert await run(second, body) == ["one", "two"]
    assert second.wf.stats.cached_calls == 2


async def test_a_changed_call_misses_while_unchanged_ones_still_hit(tmp_path):
    journal = tmp_path / "journal.jsonl"
    first = harness({"workflow": [text_turn("A"), text_turn("B")]}, journal=journal)
    await run(first, lambda wf: wf.parallel([lambda: wf.agent("a"), lambda: wf.agent("b")]))
    first.wf.journal.close()
    second = harness({"workflow": [text_turn("B2")]}, journal=journal)
    result = await run(second, lambda wf: wf.parallel([lambda: wf.agent("a"), lambda: wf.agent("b, reworded")]))
    assert result == ["A", "B2"] and second.wf.stats.cached_calls == 1 and second.model_calls == 1


# --- 2. a schema is honoured when tools are given too ----------------------------------------------------------


class Verdict(BaseModel):
    verdict: str
    lines: int


async def test_an_agent_with_tools_and_a_schema_ends_by_calling_respond(tmp_path):
    (tmp_path / "notes.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "artifacts").mkdir()
    read = {"tool_calls": [{"id": "r1", "name": "read", "arguments": {"path": "notes.txt"}}],
            "usage": {"input": 50, "output": 5}}  # fmt: skip
    answer = respond_turn({"verdict": "fine", "lines": 3})
    answer["expect_tool_result"] = "r1"
    h = harness({"workflow": [read, answer]}, workspace=tmp_path, artifacts_dir=tmp_path / "artifacts")
    value = await run(h, lambda wf: wf.agent("count the lines of notes.txt", schema=Verdict, tools="read-only"))
    assert value == Verdict(verdict="fine", lines=3)
    first = h.provider.calls[0]
    assert "respond" in first.tools and "read" in first.tools and "bash" not in first.tools
    assert first.params["tool_choice"] == "required"  # some tool must be called: the turn ends only with respond
    assert [e.tool for e in h.events if e.type == "tool.finished"] == ["read"]


async def test_a_validation_failure_is_retried_then_gives_none_with_an_event_saying_why():
    bad = [respond_turn({"verdict": "fine", "lines": "many"}) for _ in range(3)]
    h = harness({"workflow": bad})
    assert await run(h, lambda wf: wf.agent("judge", schema=Verdict, retries=2)) is None
    assert h.model_calls == 3  # one answer and two retries, each told what was wrong
    state = h.state()
    (agent,) = state.agents.values()
    assert agent.status == "failed" and "no valid respond call after 3" in (agent.error or "")
    why = [e.message for e in h.events if e.type == "log" and "gave no result" in e.message]
    assert len(why) == 1 and "lines" in why[0]
    assert h.wf.stats.failed_calls == 1 and h.wf.stats.output_tokens == 30  # the refused answers were billed


async def test_a_provider_failure_and_a_bad_answer_share_the_tries():
    h = harness({"workflow": [error_turn(), respond_turn({"verdict": 1}), respond_turn({"verdict": "ok", "lines": 2})]})
    assert await run(h, lambda wf: wf.agent("judge", schema=Verdict, retries=2)) == Verdict(verdict="ok", lines=2)
    assert h.model_calls == 3


# --- 3. refused calls end as refused ----------------------------------------------------------------------------


async def test_refused_calls_show_as_refused_and_nothing_is_left_running():
    h = harness({"workflow": [text_turn(output=40)] * 10}, budget=50, concurrency=8, max_agents=6)
    result = await run(h, lambda wf: wf.parallel([(lambda i=i: wf.agent(f"task {i}")) for i in range(10)]))
    state = h.state()
    assert not state.running_agents
    refused = [a for a in state.agents.values() if a.status == "refused"]
    assert len(refused) == result.count(None) == h.wf.stats.refused_calls > 0
    assert {a.error.split(":")[0] for a in refused} <= {"agent cap reached", "token budget exhausted"}
    with pytest.raises(AgentRefused):
        await h.wf.agent("after the budget")
    h.wf.flush()
    assert h.state().agents[next(reversed(h.state().agents))].status == "refused"


# --- 4. the budget admits atomically ----------------------------------------------------------------------------


async def test_a_call_after_the_budget_is_spent_raises_budget_exhausted():
    h = harness({"workflow": [text_turn(output=60)]}, budget=50)
    assert await run(h, lambda wf: wf.agent("spend it")) == "x"
    with pytest.raises(BudgetExhausted, match="60 output tokens spent of 50"):
        await h.wf.agent("one more")
    h.wf.flush()
    assert [a.status for a in h.state().agents.values()] == ["done", "refused"]


@pytest.mark.parametrize("output", [30, 7])
async def test_parallel_agents_overshoot_the_budget_by_at_most_one_call(output):
    h = harness({"workflow": [text_turn(output=output, delay=0.005)] * 40}, budget=100, concurrency=16)
    await run(h, lambda wf: wf.parallel([(lambda i=i: wf.agent(f"task {i}")) for i in range(40)]))
    assert 100 <= h.wf.stats.output_tokens <= 100 + output
    assert h.wf.stats.refused_calls == 40 - h.model_calls
    assert peak_running(h.events) > 1  # admission still lets calls run side by side while they fit


async def test_without_a_budget_nothing_waits():
    h = harness({"workflow": [text_turn(delay=0.02)] * 16}, concurrency=16)
    await run(h, lambda wf: wf.parallel([(lambda i=i: wf.agent(f"task {i}")) for i in range(16)]))
    assert peak_running(h.events) == 16


# --- 5. an agent's tools follow the project's [tools] settings ----------------------------------------------------


async def test_an_agent_with_tools_follows_the_projects_dangerous_patterns(tmp_path, monkeypatch):
    """A command the project marks as needing approval is not run by a workflow agent (there is no operator to
    ask): the same rule as for the worker."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-user-config"))
    workspace, artifacts = tmp_path / "ws", tmp_path / "artifacts"
    (workspace / ".aw-tui").mkdir(parents=True)
    (workspace / ".aw-tui" / "config.toml").write_text("[tools]\ndangerous_patterns = ['deploy']\n")
    artifacts.mkdir()
    bash = {"tool_calls": [{"id": "b1", "name": "bash", "arguments": {"command": "echo deploy > deployed.txt"}}]}
    answer = text_turn("could not deploy")
    answer["expect_tool_result"] = "b1"
    h = harness({"workflow": [bash, answer]}, workspace=workspace, artifacts_dir=artifacts)
    assert await run(h, lambda wf: wf.agent("deploy it", tools="all-tools")) == "could not deploy"
    (finished,) = [e for e in h.events if e.type == "tool.finished"]
    assert finished.refused and "deploy" in (finished.error or "")
    assert not (workspace / "deployed.txt").exists()


# --- the deep-research demo (§2.9, §6.1 case 10) --------------------------------------------------------------


class Claims(BaseModel):
    claims: list[str]


class Vote(BaseModel):
    refuted: bool


class Report(BaseModel):
    summary: str
    findings: list[str]


ANGLES, CLAIMS_PER_ANGLE, VOTES = 3, 2, 3


def _research_script() -> dict[str, list[dict]]:
    roles = {"scope": [text_turn("three angles", output=40)],
             "synthesize": [respond_turn({"summary": "Synthesized answer.", "findings": ["finding A", "finding B"]},
                                         output=50)]}  # fmt: skip
    for a in range(ANGLES):
        roles[f"investigate:{a}"] = [text_turn(f"notes on angle {a}", output=60)]
        roles[f"extract:{a}"] = [respond_turn({"claims": [f"claim {a}.{c}" for c in range(CLAIMS_PER_ANGLE)]},
                                              output=30)]  # fmt: skip
        for c in range(CLAIMS_PER_ANGLE):
            for v in range(VOTES):
                # Claim-major votes, the first of each claim refuting: every claim survives (refutes < 2).
                roles[f"vote:{a}.{c}:{v}"] = [respond_turn({"refuted": v == 0}, output=15)]
    return roles


async def deep_research(wf, args=None):
    wf.phases(["Scope", "Research", "Verify", "Synthesize"])
    wf.phase("Scope")
    scope = await wf.agent("Scope the question.", label="scope")
    wf.phase("Research")
    extracted = await wf.pipeline(
        list(range(ANGLES)),
        lambda p, a, i: wf.agent(f"Investigate angle {a} of: {scope}", label=f"investigate:{a}"),
        lambda notes, a, i: wf.agent(f"Extract claims from: {notes}", label=f"extract:{a}", schema=Claims),
    )
    claims = [claim for found in extracted if found for claim in found.claims]
    wf.phase("Verify")

    async def verify(claim: str) -> bool:
        key = claim.split(" ")[1]
        votes = await wf.parallel([(lambda v=v: wf.agent(f"Try to refute: {claim}", label=f"vote:{key}:{v}",
                                                         schema=Vote)) for v in range(VOTES)])  # fmt: skip
        return sum(1 for vote in votes if vote and vote.refuted) < 2

    survived = await wf.parallel([(lambda c=c: verify(c)) for c in claims])
    confirmed = [c for c, ok in zip(claims, survived) if ok]
    wf.phase("Synthesize")
    report = await wf.agent(f"Write the report on: {confirmed}", label="synthesize", schema=Report)
    return {"confirmed": len(confirmed), "report": report}


async def test_the_deep_research_demo_has_26_agents_and_the_derived_totals(tmp_path):
    journal = tmp_path / "journal.jsonl"
    h = harness(_research_script(), journal=journal, concurrency=8, budget=1_000_000)
    result = await run(h, deep_research)
    h.wf.journal.close()
    stats = h.wf.stats
    assert stats.agent_calls == 26 == 1 + ANGLES + ANGLES + ANGLES * CLAIMS_PER_ANGLE * VOTES + 1
    assert stats.output_tokens == 630 and stats.total_tokens == 1930 and stats.cached_calls == 0
    assert result["confirmed"] == 6
    assert result["report"] == Report(summary="Synthesized answer.", findings=["finding A", "finding B"])
    state = h.state()
    titles = [state.phases[p].title for p in state.root_phases]
    assert titles == ["Scope", "Research", "Verify", "Synthesize"]
    assert len(state.phases[state.root_phases[2]].agents) == 18
    assert state.ledger.by_role()["workflow"].output == 630

    again = harness(_research_script(), journal=journal, concurrency=8)
    assert await run(again, deep_research) == result
    assert again.wf.stats.cached_calls == 26 and again.model_calls == 0
