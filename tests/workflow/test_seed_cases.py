"""pi-loom's portable test cases (reference/seeds.md §6.1), translated to aw-tui's workflow API.

The seed's fake model becomes the scripted provider: each agent plays the script role named like its label (or the
shared "workflow" role), so the same code path as a real model runs, through litellm.
"""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel

from aw_tui.engine.agent import forced_tool_choice
from aw_tui.engine.journal import Journal, journal_key
from aw_tui.engine.workflow import AgentCapReached, Budget, BudgetExhausted, extract_phases

from .kit import error_turn, harness, peak_running, respond_turn, run, text_turn


# 1. parallel over a fake model with output 10
async def test_parallel_returns_every_result_in_order_and_counts_calls_and_tokens():
    h = harness({"workflow": [text_turn("x", output=10)] * 3})
    result = await run(h, lambda wf: wf.parallel([lambda: wf.agent("a"), lambda: wf.agent("b"),
                                                  lambda: wf.agent("c")]))  # fmt: skip
    assert result == ["x", "x", "x"]
    assert h.wf.stats.agent_calls == 3
    assert h.wf.stats.output_tokens == 30


# 2. the event order of phase, log, agent
async def test_phase_log_and_agent_events_come_in_order_and_the_agent_names_its_phase():
    h = harness({"workflow": [text_turn()]})

    async def body(wf):
        wf.phase("Find")
        wf.log("starting")
        return await wf.agent("find bugs")

    await run(h, body)
    assert h.types("phase.started", "log", "agent.started", "agent.finished") == [
        "phase.started", "log", "agent.started", "agent.finished"]  # fmt: skip
    phase = next(e for e in h.events if e.type == "phase.started")
    started = next(e for e in h.events if e.type == "agent.started")
    assert phase.title == "Find" and started.phase == phase.id
    assert h.state().phases[phase.id].agents == [started.id]


# 3. budget 50, calls spending 40, concurrency 1 (and, fixed here, any concurrency)
@pytest.mark.parametrize("concurrency", [1, 16])
async def test_budget_stops_calls_once_spent_and_overshoots_by_at_most_one_call(concurrency):
    h = harness({"workflow": [text_turn("x", output=40)] * 3}, budget=50, concurrency=concurrency)
    result = await run(h, lambda wf: wf.parallel([lambda: wf.agent("a"), lambda: wf.agent("b"),
                                                  lambda: wf.agent("c")]))  # fmt: skip
    assert result[0] == "x"
    assert None in result
    assert h.wf.stats.output_tokens <= 80
    assert h.wf.budget.spent() == h.wf.stats.output_tokens


# 4. resume from the journal
async def test_a_second_run_with_the_same_journal_answers_every_call_from_it(tmp_path):
    journal = tmp_path / "journal.jsonl"
    roles = {"workflow": [text_turn("computed")] * 2}

    def body(wf):
        return wf.parallel([lambda: wf.agent("a"), lambda: wf.agent("b")])

    first = harness(roles, journal=journal)
    assert await run(first, body) == ["computed", "computed"]
    assert first.model_calls == 2 and first.wf.stats.cached_calls == 0
    first.wf.journal.close()

    second = harness(roles, journal=journal)
    assert await run(second, body) == ["computed", "computed"]
    assert second.model_calls == 0  # the model is not asked again: 2 calls in all
    assert second.wf.stats.cached_calls == 2 and second.wf.stats.agent_calls == 2


# 5. retries
async def test_a_model_that_always_fails_gives_none_after_three_tries_and_no_usage():
    h = harness({"workflow": [error_turn()] * 3})
    assert await run(h, lambda wf: wf.agent("p", retries=2)) is None
    assert h.model_calls == 3
    assert h.wf.stats.output_tokens == 0 and h.wf.stats.failed_calls == 1 and h.wf.stats.agent_calls == 1


async def test_a_model_that_fails_once_recovers_on_the_second_try():
    h = harness({"workflow": [error_turn(), text_turn("recovered")]})
    assert await run(h, lambda wf: wf.agent("p", retries=2)) == "recovered"
    assert h.model_calls == 2
    assert h.wf.stats.failed_calls == 0


# 6. structured output
class Scored(BaseModel):
    result: str
    score: float


async def test_a_valid_respond_call_gives_a_validated_instance_and_its_usage():
    h = harness({"workflow": [respond_turn({"result": "ok", "score": 0.9}, output=42)]})
    value = await run(h, lambda wf: wf.agent("score it", schema=Scored))
    assert value == Scored(result="ok", score=0.9)
    assert h.wf.stats.output_tokens == 42
    call = h.provider.calls[0]
    assert call.tools == ["respond"] and call.params["tool_choice"] == forced_tool_choice(only_respond=True)


async def test_arguments_that_break_the_schema_go_back_to_the_model_and_are_retried():
    h = harness({"workflow": [respond_turn({"score": "high"}), respond_turn({"result": "ok", "score": 1})]})
    assert await run(h, lambda wf: wf.agent("score it", schema=Scored)) == Scored(result="ok", score=1.0)
    second = h.provider.calls[1]
    fed_back = second.messages[-1]
    assert fed_back["role"] == "tool" and "do not match the schema" in fed_back["content"]
    assert "score" in fed_back["content"]


async def test_a_text_reply_to_a_schema_call_is_refused_as_not_calling_respond():
    h = harness({"workflow": [text_turn("here is my answer"), respond_turn({"result": "ok", "score": 0.5})]})
    assert await run(h, lambda wf: wf.agent("score it", schema=Scored)) == Scored(result="ok", score=0.5)
    logs = [e.message for e in h.events if e.type == "log"]
    assert any("without calling the respond tool" in m for m in logs)


def test_the_forced_choice_is_the_openai_form_that_litellm_turns_into_anthropics():
    from aw_tui.engine.llm import load_litellm

    load_litellm()
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig

    choice = forced_tool_choice(only_respond=True)
    assert choice == {"type": "function", "function": {"name": "respond"}}
    assert AnthropicConfig()._map_tool_choice(choice, parallel_tool_use=None) == {"type": "tool", "name": "respond"}


# 7. journal keys and a corrupt journal
def test_journal_keys_ignore_key_order_and_change_with_position_and_prompt():
    position = {"phase": "X", "label": "p", "path": []}
    assert journal_key(position, "p", {"schema": 1, "phase": "X"}, None) == journal_key(
        position, "p", {"phase": "X", "schema": 1}, None)  # fmt: skip
    assert journal_key(position, "p", {}, None) != journal_key({**position, "path": ["p1"]}, "p", {}, None)
    assert journal_key(position, "p", {}, None) != journal_key(position, "q", {}, None)
    assert journal_key(position, "p", {}, None) != journal_key(position, "p", {}, None, occurrence=1)


def test_a_corrupt_journal_loads_as_empty_without_raising(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"\x00\xffnot json\n{\"key\": 3}\n[1, 2]\n{\"half\": ")
    journal = Journal(path)
    assert len(journal) == 0 and journal.skipped_lines == 3


# 8. the pool, and pipeline
async def test_calls_past_the_agent_cap_are_refused():
    h = harness({"workflow": [text_turn()] * 5}, concurrency=2, max_agents=3)
    result = await run(h, lambda wf: wf.parallel([(lambda i=i: wf.agent(f"task {i}")) for i in range(5)]))
    assert result.count(None) == 2 and h.wf.stats.refused_calls == 2
    refusals = [e.error for e in h.events if e.type == "agent.finished" and e.status == "refused"]
    assert len(refusals) == 2 and all("cap reached" in r for r in refusals)
    with pytest.raises(AgentCapReached, match="cap reached"):
        await h.wf.agent("one more")


async def test_no_more_than_the_concurrency_limit_run_at_once():
    h = harness({"workflow": [text_turn(delay=0.01)] * 20}, concurrency=3)
    await run(h, lambda wf: wf.parallel([(lambda i=i: wf.agent(f"task {i}")) for i in range(20)]))
    assert h.wf.started_calls == 20 and h.model_calls == 20
    assert peak_running(h.events) <= 3


async def test_pipeline_has_no_barrier_between_stages():
    h = harness({"one:slow": [text_turn("s1", delay=0.4)], "two:slow": [text_turn("s2")],
                 "one:fast": [text_turn("f1")], "two:fast": [text_turn("f2")]})  # fmt: skip
    finished: list[str] = []

    async def stage(number, previous, item, index):
        out = await h.wf.agent(f"stage {number} of {item} after {previous}", label=f"{number}:{item}")
        finished.append(f"{number}:{item}")
        return out

    result = await run(h, lambda wf: wf.pipeline(
        ["slow", "fast"], lambda p, i, n: stage("one", p, i, n), lambda p, i, n: stage("two", p, i, n)))  # fmt: skip
    assert result == ["s2", "f2"]
    assert finished.index("two:fast") < finished.index("one:slow")


async def test_pipeline_stages_get_previous_item_and_index():
    h = harness({"workflow": []})
    seen = []

    def second(previous, item, index):
        seen.append((previous, item, index))
        return previous + "2"

    result = await run(h, lambda wf: wf.pipeline(["x", "y"], lambda p, i, n: p + "1", second))
    assert result == ["x12", "y12"]
    assert seen[0] == ("x1", "x", 0)


async def test_a_throwing_stage_drops_its_item_and_skips_its_later_stages():
    h = harness({"workflow": []})
    later = []

    def first(previous, item, index):
        if item == "bad":
            raise ValueError("no")
        return "GOOD"

    result = await run(h, lambda wf: wf.pipeline(["ok", "bad"], first, lambda p, i, n: later.append(i) or p))
    assert result == ["GOOD", None]
    assert later == ["ok"]
    assert any("pipeline item 1 at stage 1 failed" in e.message for e in h.events if e.type == "log")


# 9. the budget tracker
def test_budget_arithmetic():
    budget = Budget(100)
    budget.add(30)
    budget.add(20)
    assert budget.spent() == 50 and budget.remaining() == 50
    spent = Budget(50)
    spent.add(50)
    with pytest.raises(BudgetExhausted, match="budget exhausted"):
        spent.check()
    almost = Budget(50)
    almost.add(49)
    almost.check()
    assert almost.remaining() == 1
    assert Budget(None).remaining() == math.inf


# 11. phases declared in a file's source
def test_extract_phases_takes_literal_titles_in_source_order_once():
    source = '''
async def workflow(wf, args):
    wf.phase("Discover")
    for x in args:
        wf.phase(f"dynamic {x}")
    wf.phase("Detail")
    wf.phase("Discover")
    wf.phase("Summarize")
'''
    assert extract_phases(source) == ["Discover", "Detail", "Summarize"]
    assert extract_phases("def broken(:\n") == []
