"""Pipelines and loops of named agents: `{previous}` and connectors, the 16k cut, the loop's prior-iteration
context (48k, oldest dropped), the judge's verdict and feedback, and the tree. The seed's portable cases are
reference/seeds.md §6.4 items 26-28."""

from __future__ import annotations

from pathlib import Path

import pytest

from aw_tui.engine.agentdefs import (
    AgentCatalog,
    AgentDefinition,
    UnknownAgent,
    load_agent_definitions,
)
from aw_tui.engine.chains import (
    LOOP_CONTEXT_LIMIT,
    PREVIOUS_LIMIT,
    Judge,
    PipelineStep,
    cut_marker,
    format_connector,
    judge_feedback,
    loop_prompt,
    parse_judge_verdict,
    prior_iterations,
    run_loop,
    run_pipeline,
    substitute_previous,
)
from aw_tui.engine.llm import load_litellm
from aw_tui.engine.scripted import install_script, uninstall_script
from aw_tui.model import events as ev
from tests.subagents.kit import make_runtime, priced, text


@pytest.fixture(autouse=True)
def scripted():
    load_litellm()
    yield
    uninstall_script()


def catalog(*definitions: AgentDefinition) -> AgentCatalog:
    base = load_agent_definitions(user_dir=Path("/nonexistent"))
    base.agents.update({d.name: d for d in definitions})
    return base


def agent(name: str, **fields) -> AgentDefinition:
    return AgentDefinition(name=name, description=name, prompt=f"You are {name}.", model=f"scripted/{name}",
                           tools=("read",), **fields)  # fmt: skip


def user_prompts(provider, role: str) -> list[str]:
    return [c.messages[-1]["content"] for c in provider.calls if c.role == role]


# --- pure helpers: the seed's cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("reply", ["YES", "I think YES, this is good", "**YES**", "# YES", "`YES`",
                                   "\n\nYES\nmore text", "yes", "Yes", "does NOT satisfy YES the criteria"])  # fmt: skip
def test_judge_says_yes(reply):
    # seeds.md §6.4 item 26 (the last one is the seed's documented false positive)
    assert parse_judge_verdict(reply) is True


@pytest.mark.parametrize("reply", ["NO, needs improvement", "YESTERDAY", "", "   ", "maybe later", "NO\nYES"])
def test_judge_says_no(reply):
    assert parse_judge_verdict(reply) is False


def test_judge_feedback_is_the_reply_without_its_verdict():
    assert judge_feedback("NO, needs improvement") == "needs improvement"
    assert judge_feedback("\n**NO**\nThe tests are missing.\nAdd them.") == "The tests are missing.\nAdd them."
    assert judge_feedback("NO") == ""
    assert judge_feedback("YES: good enough") == "good enough"


def test_substitute_previous():
    # seeds.md §6.4 item 27: substitutePlaceholders
    assert substitute_previous("Based on {previous}, do X", "found stuff") == "Based on found stuff, do X"
    assert substitute_previous("{previous} and {previous}", "data") == "data and data"
    assert substitute_previous("{previous}", "short") == "short"
    assert substitute_previous("no placeholder", "ignored") == "no placeholder"
    assert substitute_previous("{previous}", "x" * 20_000) == "x" * 16_000 + cut_marker(20_000, 16_000)
    assert "20,000 characters; only the first 16,000" in cut_marker(20_000, 16_000)
    assert substitute_previous("{previous}", "x" * PREVIOUS_LIMIT) == "x" * 16_000  # exactly the limit: no marker


def test_format_connector():
    # seeds.md §6.4 item 27: formatConnectorContext
    assert format_connector("raw output", "## Findings\n\n{output}") == "## Findings\n\nraw output"
    assert format_connector("raw output", None) == "raw output"
    assert format_connector("data", "{output} vs {output}") == "data vs data"


def test_prior_iterations_drop_the_oldest_beyond_48k():
    assert LOOP_CONTEXT_LIMIT == 48_000  # seeds.md §6.4 item 28
    outputs = ["a" * 20_000, "b" * 20_000, "c" * 20_000]
    block = prior_iterations(outputs)
    assert "--- Iteration 1 output ---" not in block and "a" * 100 not in block
    assert block.index("--- Iteration 2 output ---") < block.index("--- Iteration 3 output ---")  # oldest first
    assert block.startswith("(1 earlier iteration left out to stay within 48,000 characters)")
    assert prior_iterations(["x", "y"]) == "--- Iteration 1 output ---\nx\n\n--- Iteration 2 output ---\ny"
    assert prior_iterations([]) == ""


def test_an_oversized_newest_output_is_cut_rather_than_lost():
    block = prior_iterations(["a" * 10, "z" * 60_000])
    assert block.count("z") == LOOP_CONTEXT_LIMIT - len("--- Iteration 2 output ---\n")
    assert "[... cut: this output has" in block and "2 earlier iterations" not in block


def test_loop_prompt_carries_outputs_and_feedback():
    assert loop_prompt("Write it.", [], None) == "Write it."
    prompt = loop_prompt("Write it.", ["draft one"], "Add a title.")
    assert prompt.startswith("Write it.\n\n## Prior iterations\n\n--- Iteration 1 output ---\ndraft one")
    assert "## Judge's feedback on iteration 1\n\nAdd a title." in prompt
    assert "act on the feedback" in prompt


# --- pipeline ---------------------------------------------------------------------------------------------------


async def test_pipeline_hands_each_output_on_through_connectors(tmp_path):
    provider = install_script(priced({"a": [text("A found things")], "b": [text("B built on it")],
                                      "c": [text("C checked it")]}))  # fmt: skip
    cat = catalog(agent("a"), agent("b", connector="## From before\n\n{output}"), agent("c"))
    runtime, recorder = make_runtime(tmp_path, catalog=cat)
    result = await run_pipeline([
        PipelineStep("a"),
        {"agent": "b", "task": "Task: {task}\nUse this: {previous}"},  # the agent's connector applies
        PipelineStep("c", task="Check: {previous}", connector="<<{output}>>"),  # the step's connector wins
    ], "make a thing", runtime=runtime)  # fmt: skip
    assert result.ok and result.final_output == "C checked it" and result.stopped_at is None
    assert user_prompts(provider, "a") == ["make a thing"]
    assert user_prompts(provider, "b") == ["Task: make a thing\nUse this: ## From before\n\nA found things"]
    assert user_prompts(provider, "c") == ["Check: <<B built on it>>"]
    assert provider.calls[0].messages[0] == {"role": "system", "content": "You are a."}
    assert provider.calls[0].tools == ["read"]
    # One phase with the three agents inside it, done; the ledger bills each agent under its name.
    state = recorder.state
    (phase,) = state.phases.values()
    assert phase.title == "pipeline: a → b → c" and phase.status == "done"
    assert phase.agents == [f"{result.phase}.1-a", f"{result.phase}.2-b", f"{result.phase}.3-c"]
    assert all(state.agents[i].parent is None and state.agents[i].status == "done" for i in phase.agents)
    assert set(state.ledger.by_role()) == {"a", "b", "c"}
    # seeds.md §6.4 item 28: usage accumulates over the steps
    assert result.usage.input == 300 and result.usage.output == 30 and result.model_calls == 3


async def test_a_step_without_a_task_gets_the_task_and_the_previous_output(tmp_path):
    provider = install_script(priced({"a": [text("first")], "b": [text("second")]}))
    runtime, _ = make_runtime(tmp_path, catalog=catalog(agent("a"), agent("b")))
    await run_pipeline(["a", "b"], "the job", runtime=runtime)
    assert user_prompts(provider, "b") == ["the job\n\n## Output of the previous step\n\nfirst"]


async def test_previous_output_is_cut_at_16k_with_a_marker(tmp_path):
    provider = install_script(priced({"a": [text("p" * 20_000)], "b": [text("ok")]}))
    runtime, _ = make_runtime(tmp_path, catalog=catalog(agent("a"), agent("b")))
    await run_pipeline(["a", PipelineStep("b", task="{previous}")], "t", runtime=runtime)
    (prompt,) = user_prompts(provider, "b")
    assert prompt == "p" * 16_000 + cut_marker(20_000, 16_000)


async def test_the_pipeline_stops_at_the_first_failing_step(tmp_path):
    provider = install_script(priced({"a": [text("fine")], "b": [{"error": "auth_error", "message": "bad key"}],
                                      "c": [text("never")]}))  # fmt: skip
    runtime, recorder = make_runtime(tmp_path, catalog=catalog(agent("a"), agent("b"), agent("c")))
    result = await run_pipeline(["a", "b", "c"], "t", runtime=runtime)
    assert not result.ok and result.stopped_at == 1 and len(result.steps) == 2
    assert result.final_output.startswith("Pipeline failed at step 2 of 3 (agent: b).\nError: ")
    assert "bad key" in result.error
    assert "c" not in {c.role for c in provider.calls}
    assert recorder.of_type(ev.PhaseFinished)[0].status == "failed"


async def test_unknown_agents_are_refused_before_anything_runs(tmp_path):
    provider = install_script(priced({"a": [text("never")]}))
    runtime, recorder = make_runtime(tmp_path, catalog=catalog(agent("a")))
    with pytest.raises(UnknownAgent, match="unknown agent in pipeline 'nonexistent'; available agents: a, "):
        await run_pipeline(["a", "nonexistent"], "t", runtime=runtime)
    assert provider.calls == [] and recorder.events == []
    with pytest.raises(ValueError, match="at least one step"):
        await run_pipeline([], "t", runtime=runtime)


async def test_definitions_with_tiers_use_the_delegate_efforts(tmp_path):
    provider = install_script(priced({"fast": [text("scouted")], "smart": [text("reviewed")]}))
    runtime, recorder = make_runtime(tmp_path)
    result = await run_pipeline(["scout", "reviewer"], "look at the parser", runtime=runtime)
    assert result.ok
    assert [(c.role, c.reasoning_effort) for c in provider.calls] == [("fast", "low"), ("smart", "high")]
    assert provider.calls[1].messages[-1]["content"].endswith("## The work to review\n\nscouted")
    assert [s.role for s in recorder.of_type(ev.AgentStarted)] == ["scout", "reviewer"]


async def test_a_chain_nests_its_phase_under_the_runtimes_phase(tmp_path):
    install_script(priced({"a": [text("x")]}))
    runtime, recorder = make_runtime(tmp_path, catalog=catalog(agent("a")), phase="outer")
    recorder.emit(ev.PhaseStarted(id="outer", title="outer"))
    result = await run_pipeline(["a"], "t", runtime=runtime, title="just a")
    state = recorder.state
    assert state.phases["outer"].phases == [result.phase]
    assert state.phases[result.phase].title == "just a" and state.phases[result.phase].agents == [f"{result.phase}.1-a"]


# --- loop -------------------------------------------------------------------------------------------------------


async def test_a_loop_without_judge_runs_every_iteration_with_prior_outputs(tmp_path):
    provider = install_script(priced({"w": [text("draft 1"), text("draft 2"), text("draft 3")]}))
    runtime, recorder = make_runtime(tmp_path, catalog=catalog(agent("w")))
    result = await run_loop("w", "Write a haiku.", 3, runtime=runtime)
    assert result.ok and result.stopped_because == "max_iterations" and result.final_output == "draft 3"
    prompts = user_prompts(provider, "w")
    assert prompts[0] == "Write a haiku."
    assert "--- Iteration 1 output ---\ndraft 1\n\n--- Iteration 2 output ---\ndraft 2" in prompts[2]
    assert "feedback" not in prompts[2]
    (phase,) = recorder.state.phases.values()
    assert phase.status == "done" and len(phase.agents) == 3


async def test_judge_yes_stops_the_loop_and_no_feedback_reaches_the_next_iteration(tmp_path):
    provider = install_script(priced({
        "w": [text("draft 1"), text("draft 2"), text("never")],
        "j": [text("NO - the second line does not scan.\nFix the syllables."), text("**YES**\nGood.")],
    }))  # fmt: skip
    runtime, recorder = make_runtime(tmp_path, catalog=catalog(agent("w"), agent("j")))
    result = await run_loop("w", "Write a haiku.", 3, judge=Judge("j", "Five, seven, five."), runtime=runtime)
    assert result.ok and result.stopped_because == "judge_satisfied" and result.final_output == "draft 2"
    assert [it.verdict for it in result.iterations] == [False, True]
    second = user_prompts(provider, "w")[1]
    assert "## Judge's feedback on iteration 1\n\nthe second line does not scan.\nFix the syllables." in second
    judge_prompt = user_prompts(provider, "j")[0]
    assert "## Criteria\n\nFive, seven, five." in judge_prompt and "## Output to judge\n\ndraft 1" in judge_prompt
    assert result.usage.input == 400 and result.model_calls == 4  # the judge's usage counts
    labels = [s.label for s in recorder.of_type(ev.AgentStarted)]
    assert labels == ["w (iteration 1 of 3)", "judge j (iteration 1)", "w (iteration 2 of 3)", "judge j (iteration 2)"]


async def test_a_judge_that_never_agrees_ends_at_max_iterations(tmp_path):
    install_script(priced({"w": [text("a"), text("b")], "j": [text("NO\nmore"), text("NO\nstill more")]}))
    runtime, _ = make_runtime(tmp_path, catalog=catalog(agent("w"), agent("j")))
    result = await run_loop("w", "t", 2, judge="j", runtime=runtime)
    assert result.stopped_because == "max_iterations" and result.final_output == "b"
    assert [it.feedback for it in result.iterations] == ["more", "still more"]


async def test_the_loop_context_drops_the_oldest_output_beyond_48k(tmp_path):
    provider = install_script(priced({"w": [text("a" * 20_000), text("b" * 20_000), text("c" * 20_000), text("d")]}))
    runtime, _ = make_runtime(tmp_path, catalog=catalog(agent("w")))
    await run_loop("w", "grow", 4, runtime=runtime)
    fourth = user_prompts(provider, "w")[3]
    assert "a" * 50 not in fourth and "b" * 20_000 in fourth and "c" * 20_000 in fourth
    assert "(1 earlier iteration left out" in fourth


async def test_a_failing_iteration_ends_the_loop_with_an_error(tmp_path):
    install_script(priced({"w": [text("ok"), {"error": "bad_request", "message": "broken"}]}))
    runtime, recorder = make_runtime(tmp_path, catalog=catalog(agent("w")))
    result = await run_loop("w", "t", 3, runtime=runtime)
    assert not result.ok and result.stopped_because == "error"
    assert result.final_output.startswith("Loop failed at iteration 2 (agent: w).\nError: ")
    assert recorder.of_type(ev.PhaseFinished)[0].status == "failed"


async def test_loop_arguments_are_checked(tmp_path):
    runtime, _ = make_runtime(tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        await run_loop("worker", "t", 0, runtime=runtime)
    with pytest.raises(UnknownAgent, match="unknown agent in loop 'ghost'"):
        await run_loop("worker", "t", 2, judge="ghost", runtime=runtime)
