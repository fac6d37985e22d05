"""The delegate tool and function: isolated child context, effort mapping, the report and its cut, timeout,
depth limit, the ledger and the tree; the seed's portable cases (reference/seeds.md §6.5, items 31-33, and the
depth check of §6.4 item 29). All offline: the scripted provider plays every model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from aw_tui.engine.delegate import DELEGATE_ROLE, delegate, depth_refusal
from aw_tui.engine.llm import load_litellm
from aw_tui.engine.scripted import install_script, uninstall_script
from aw_tui.engine.tools import ToolContext, run_tool
from aw_tui.model import events as ev
from aw_tui.store.run import open_run
from tests.engine.orchestration_kit import analyst, play, send, worker_report
from tests.subagents.kit import call, make_runtime, make_settings, priced, text


@pytest.fixture(autouse=True)
def scripted():
    load_litellm()
    yield
    uninstall_script()


EFFORT_MODELS = {"fast_model": "scripted/fast", "balanced_model": "scripted/balanced", "smart_model": "scripted/smart"}


# --- through the analyst/worker loop: the worker calls delegate ---------------------------------------------------


async def test_the_worker_delegates_and_gets_only_the_childs_report(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text("the answer is 42\n")
    outcome = await play(tmp_path, {
        "analyst": [text(analyst("NEEDS_WORKER", instruction="Find the answer in the notes.")),
                    text(analyst("DONE", review="Found."))],
        "worker": [
            call("delegate", {"task": "Read notes.txt and report the answer.", "effort": "fast"}, "d-1"),
            {"expect_tool_result": "d-1", "expect_contains": "the answer is 42 (from notes.txt:1)",
             "text": worker_report(), "usage": {"input": 100, "output": 10}},
        ],
        "fast": [call("read", {"path": "notes.txt"}, input=10, output=5, cache_read=2, cache_write=1),
                 text("Task: find the answer\nResult: the answer is 42 (from notes.txt:1)", input=30, output=7)],
    }, settings={"delegate": EFFORT_MODELS}, prices={"fast": {"input": 1.0, "output": 2.0}})  # fmt: skip
    assert outcome.final == "FINISHED"
    provider = outcome.provider
    worker_calls = [c for c in provider.calls if c.role == "worker"]
    assert "delegate" in worker_calls[0].tools
    # Isolated context: the child sees a system prompt and its task, nothing of the worker's conversation.
    child_calls = [c for c in provider.calls if c.role == "fast"]
    first = child_calls[0].messages
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[1]["content"] == "Read notes.txt and report the answer."
    assert "Find the answer in the notes." not in str(first)
    assert child_calls[0].reasoning_effort == "low"  # fast -> low thinking
    # The worker got one result: the header line and the child's final report, not its transcript.
    result = next(m for m in worker_calls[1].messages if m.get("role") == "tool")
    header, _, report = result["content"].partition("\n\n")
    assert header.startswith("[delegate s0002-worker~d1: scripted/fast · ")
    assert "· 1 tool call · 55 tokens · $" in header
    assert report == "Task: find the answer\nResult: the answer is 42 (from notes.txt:1)"
    assert "the answer is 42\n" not in result["content"]  # the file's content stayed in the child's context

    # The tree nests the child under the worker; the ledger bills it under its own role.
    state = open_run(outcome.writer.paths.root).state
    child = state.agents["s0002-worker~d1"]
    assert (child.role, child.parent, child.model, child.thinking, child.status) == (
        DELEGATE_ROLE, "s0002-worker", "scripted/fast", "low", "done")
    assert state.agents["s0002-worker"].children == ["s0002-worker~d1"]
    by_role = state.ledger.by_role()
    assert by_role["delegate"].input == 40 and by_role["delegate"].output == 12
    assert by_role["worker"].input == 200
    assert (outcome.writer.paths.root / "ledger.json").read_text().count('"delegate"') >= 1


async def test_a_named_agent_in_a_run_and_a_skipped_definition_reported_as_a_log_event(tmp_path):
    agents = tmp_path / "ws" / ".aw-tui" / "agents"
    agents.mkdir(parents=True)
    (agents / "broken.md").write_text("---\nname: broken\n")
    outcome = await play(tmp_path, {
        "analyst": [text(analyst("NEEDS_WORKER")), text(analyst("DONE"))],
        "worker": [call("delegate", {"task": "Map the tests.", "agent": "scout"}, "d-1"),
                   {"expect_tool_result": "d-1", "text": worker_report()}],
        "fast": [text("Task: map\nResult: tests/ holds them")],
    }, settings={"delegate": EFFORT_MODELS})  # fmt: skip
    assert outcome.final == "FINISHED"
    child_call = next(c for c in outcome.provider.calls if c.role == "fast")
    assert child_call.tools == ["read", "grep", "find", "ls"]
    (warning,) = [e for e in outcome.of_type(ev.Log) if "agent definition" in e.message]
    assert warning.level == "warning"
    assert warning.message == f"agent definition {agents / 'broken.md'}: the frontmatter is not closed by a line " \
                              "`---`; skipped"


async def test_aborting_the_run_stops_a_running_child(tmp_path):
    def abort_when_the_child_starts(event, writer):
        if isinstance(event, ev.AgentStarted) and event.role == DELEGATE_ROLE:
            send(writer, "abort")

    started = time.monotonic()
    outcome = await play(tmp_path, {
        "analyst": [text(analyst("NEEDS_WORKER"))],
        "worker": [call("delegate", {"task": "Take forever."}, "d-1")],
        "balanced": [{"text": "never", "delay_s": 30}],
    }, settings={"delegate": EFFORT_MODELS}, on_event=abort_when_the_child_starts)  # fmt: skip
    assert outcome.final == "ABORTED" and time.monotonic() - started < 10
    child = outcome.state.agents["s0002-worker~d1"]
    assert child.status == "aborted" and outcome.state.agents["s0002-worker"].status == "aborted"


async def test_a_read_only_policy_offers_no_delegate(tmp_path):
    outcome = await play(tmp_path, {
        "analyst": [text(analyst("NEEDS_WORKER")), text(analyst("DONE"))],
        "worker": [text(worker_report())],
    }, settings={"tools": {"policy": "read-only"}})  # fmt: skip
    worker_call = next(c for c in outcome.provider.calls if c.role == "worker")
    assert worker_call.tools == ["read", "grep", "find", "ls"]


# --- the function ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("effort", "model", "level"), [
    ("fast", "scripted/fast", "low"), ("balanced", "scripted/balanced", "medium"), ("smart", "scripted/smart", "high"),
    (None, "scripted/balanced", "medium"),
])  # fmt: skip
async def test_effort_picks_model_and_thinking(tmp_path, effort, model, level):
    # seeds.md §6.5 item 31: thinkingForEffort; the model comes from the settings
    role = model.split("/")[1]
    provider = install_script(priced({role: [text("done")]}))
    runtime, recorder = make_runtime(tmp_path)
    result = await delegate("do it", runtime=runtime, effort=effort)
    assert result.ok and result.effort == (effort or "balanced")
    (started,) = recorder.of_type(ev.AgentStarted)
    assert (started.model, started.thinking, started.role) == (model, level, DELEGATE_ROLE)
    assert provider.calls[0].reasoning_effort == level


async def test_efforts_default_to_the_worker_and_analyst_models(tmp_path):
    provider = install_script({"roles": {"analyst": [text("deep")], "worker": [text("quick")]}})
    runtime, recorder = make_runtime(tmp_path, settings=make_settings())
    assert (await delegate("think hard", runtime=runtime, effort="smart")).ok
    assert (await delegate("look quickly", runtime=runtime, effort="fast")).ok
    assert [c.role for c in provider.calls] == ["analyst", "worker"]
    assert [(s.model, s.thinking) for s in recorder.of_type(ev.AgentStarted)] == [
        ("scripted/analyst", "high"), ("scripted/worker", "low")]


async def test_usage_tool_calls_and_report(tmp_path):
    # seeds.md §6.5 item 33: one read call, its usage summed, the final report returned
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "a.txt").write_text("x\n")
    install_script({"roles": {"fast": [
        call("read", {"path": "a.txt"}, input=10, output=5, cache_read=2, cache_write=1),
        call("read", {"path": "missing.txt"}),
        text("child final report", input=0, output=0),
    ]}, "prices": {"fast": {"input": 1000.0, "output": 2000.0}}})  # fmt: skip
    runtime, _ = make_runtime(tmp_path, parent="boss")
    result = await delegate("read a.txt", runtime=runtime, effort="fast")
    child = result.child
    assert result.ok and result.report == "child final report"
    assert (child.tool_calls, child.failed_tool_calls, child.model_calls, child.timed_out) == (2, 1, 3, False)
    assert (child.usage.input, child.usage.output, child.usage.cache_read, child.usage.cache_write) == (110, 15, 2, 1)
    assert child.usage.cost == pytest.approx((110 * 1000 + 15 * 2000) / 1e6)
    header = result.text.split("\n\n")[0]
    assert header == f"[delegate boss~d1: {child.stats()}]"
    assert "2 tool calls (1 failed)" in header and "128 tokens" in header and "$0.140" in header
    assert result.text.endswith("\n\nchild final report")


async def test_a_long_report_is_cut_with_the_full_text_saved(tmp_path):
    # seeds.md §6.5 item 32: 3000 lines -> cut, the path given, the file holds everything
    long_report = "line\n" * 3000
    install_script({"roles": {"balanced": [text(long_report)]}})
    runtime, _ = make_runtime(tmp_path)
    result = await delegate("write a lot", runtime=runtime)
    assert result.ok and result.truncated
    artifact = Path(result.artifact)
    assert artifact.parent == tmp_path / "run" / "artifacts" and artifact.name.startswith("delegate_")
    assert artifact.read_text() == long_report.strip()
    assert "[output cut: 3,000 lines" in result.text and str(artifact) in result.text
    assert result.text.count("line\n") == 2000
    assert result.tool_result().artifact == str(artifact)


async def test_a_big_report_is_cut_by_size_too(tmp_path):
    install_script({"roles": {"balanced": [text(("y" * 999 + "\n") * 80)]}})  # 80 KB in 80 lines
    runtime, _ = make_runtime(tmp_path)
    result = await delegate("write wide", runtime=runtime)
    assert result.truncated and len(result.text.encode()) < 52_000


async def test_a_failing_child_is_an_error_result(tmp_path):
    # seeds.md §6.5 item 33: a child that fails -> "Delegated task failed: <why> (<model> · ..."
    install_script({"roles": {"balanced": [{"error": "auth_error", "message": "child exploded"}]}})
    runtime, recorder = make_runtime(tmp_path, parent="boss")
    result = await delegate("x", runtime=runtime)
    assert not result.ok and not result.refused
    assert result.text.startswith("Error: delegated task failed: ")
    assert "child exploded" in result.text and "(scripted/balanced · " in result.text
    tool = result.tool_result()
    assert tool.error and tool.content == result.text and not tool.refused
    assert recorder.state.agents["boss~d1"].status == "failed"


async def test_a_child_past_its_timeout_is_cancelled_and_recorded_as_failed(tmp_path):
    install_script({"roles": {"balanced": [{"text": "too late", "delay_s": 30}]}})
    runtime, recorder = make_runtime(tmp_path, parent="boss")
    started = time.monotonic()
    result = await delegate("slow thing", runtime=runtime, timeout_s=0.3)
    assert time.monotonic() - started < 5
    assert not result.ok and result.child.timed_out
    assert "timed out after 0.3 s" in result.error and "timed out" in result.child.stats()
    finished = [e for e in recorder.of_type(ev.AgentFinished) if e.id == "boss~d1"]
    assert len(finished) == 1
    assert finished[0].status == "failed" and "timed out after 0.3 s" in finished[0].error
    assert recorder.state.agents["boss~d1"].status == "failed"


async def test_a_child_cancelled_before_its_loop_began_is_still_recorded(tmp_path, monkeypatch):
    # Cancelled while its model's context window is looked up: agent.started is out, the loop has not begun.
    async def slow_window(model):
        await asyncio.sleep(30)

    monkeypatch.setattr("aw_tui.engine.agent.model_window", slow_window)
    install_script({"roles": {"balanced": [text("never")]}})
    runtime, recorder = make_runtime(tmp_path, parent="boss")
    result = await delegate("x", runtime=runtime, timeout_s=0.1)
    assert result.child.timed_out
    (finished,) = recorder.of_type(ev.AgentFinished)
    assert (finished.id, finished.status) == ("boss~d1", "failed") and "timed out" in finished.error
    task = asyncio.ensure_future(delegate("y", runtime=runtime))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(e.id, e.status) for e in recorder.of_type(ev.AgentFinished)][1:] == [("boss~d2", "aborted")]


def test_the_default_timeout_is_fifteen_minutes():
    assert make_settings().delegate.timeout_s == 15 * 60


# --- depth ------------------------------------------------------------------------------------------------------


def test_depth_check():
    # seeds.md §6.4 item 29: checkDepth(7, 8) allowed, checkDepth(8, 8) blocked with "9 > 8"
    assert depth_refusal(7, 8) is None
    message = depth_refusal(8, 8)
    assert "9 > 8" in message and "recursion loop" in message and "delegate.max_depth" in message
    assert depth_refusal(0, 0) is not None


async def test_past_the_depth_limit_the_tool_refuses_and_nothing_runs(tmp_path):
    provider = install_script({"roles": {"balanced": [text("never")]}})
    runtime, recorder = make_runtime(tmp_path, depth=2, parent="deep")
    result = await delegate("again", runtime=runtime)
    assert result.refused and "3 > 2" in result.error
    assert provider.calls == [] and recorder.events == []
    assert result.tool_result().refused


async def test_a_child_may_delegate_until_the_limit(tmp_path):
    # max_depth 2: the worker's child (depth 1) delegates to a grandchild (depth 2), which is refused.
    provider = install_script({"roles": {
        "fast": [call("delegate", {"task": "grandchild task", "effort": "smart"}, "g1"),
                 {"expect_tool_result": "g1", "text": "child done, with the grandchild's help"}],
        "smart": [call("delegate", {"task": "one more level"}, "g2"),
                  {"expect_tool_result": "g2", "expect_contains": "depth limit", "text": "grandchild done"}],
    }})  # fmt: skip
    runtime, recorder = make_runtime(tmp_path, parent="worker")
    result = await delegate("child task", runtime=runtime, effort="fast")
    assert result.ok and result.report == "child done, with the grandchild's help"
    state = recorder.state
    assert state.agents["worker~d1"].children == ["worker~d1~d1"]
    assert state.agents["worker~d1~d1"].parent == "worker~d1"
    refused = [e for e in recorder.of_type(ev.ToolFinished) if e.agent == "worker~d1~d1"]
    assert [(e.tool, e.refused) for e in refused] == [("delegate", True)]
    # The child's usage covers its grandchild's too (100 tokens each billed); its tool count only its own calls.
    assert result.child.tool_calls == 1 and result.child.usage.input == 2 * 100
    assert result.child.model_calls == 2
    grandchild_prompt = next(c for c in provider.calls if c.role == "smart").messages
    assert [m["content"] for m in grandchild_prompt if m["role"] == "user"] == ["grandchild task"]


# --- agent definitions and refusals --------------------------------------------------------------------------------


async def test_a_named_agent_brings_its_prompt_tools_and_tier(tmp_path):
    provider = install_script({"roles": {"fast": [text("scouted")]}})
    runtime, recorder = make_runtime(tmp_path)
    result = await delegate("map the repo", runtime=runtime, agent="scout")
    assert result.ok and result.effort == "fast"
    first = provider.calls[0]
    assert first.tools == ["read", "grep", "find", "ls"]  # seeds.md §6.5 item 31: the child's own tool list
    assert first.messages[0]["content"].startswith("You are a scout.")
    assert "scout" in recorder.of_type(ev.AgentStarted)[0].label


async def test_an_explicit_effort_overrides_a_definitions_tier(tmp_path):
    provider = install_script(priced({"smart": [text("deep scouting")]}))
    runtime, _ = make_runtime(tmp_path)
    assert (await delegate("map the repo", runtime=runtime, agent="scout", effort="smart")).ok
    assert provider.calls[0].reasoning_effort == "high"


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"task": "  "}, "the task is empty"),
    ({"task": "x", "effort": "max"}, "unknown effort 'max'"),
    ({"task": "x", "agent": "ghost"}, "unknown agent 'ghost'; available agents: reviewer, scout, worker"),
])  # fmt: skip
async def test_bad_calls_are_refused_before_anything_runs(tmp_path, kwargs, reason):
    provider = install_script({"roles": {"balanced": [text("never")]}})
    runtime, _ = make_runtime(tmp_path)
    task = kwargs.pop("task")
    result = await delegate(task, runtime=runtime, **kwargs)
    assert result.refused and reason in result.error and provider.calls == []


async def test_the_tool_is_offered_only_where_a_handler_is_wired(tmp_path):
    plain = ToolContext(workspace=tmp_path, artifacts_dir=tmp_path / "a")
    assert "delegate" not in [t.name for t in plain.offered_tools()]
    refused = await run_tool("delegate", {"task": "x"}, plain)
    assert refused.refused
    runtime, _ = make_runtime(tmp_path)
    wired = ToolContext(workspace=tmp_path, artifacts_dir=tmp_path / "a", delegate=runtime.tool_handler)
    assert [t.name for t in wired.offered_tools()][-1] == "delegate"
    narrowed = ToolContext(workspace=tmp_path, artifacts_dir=tmp_path / "a", delegate=runtime.tool_handler,
                           allowed_tools=("read", "ls"))  # fmt: skip
    assert [t.name for t in narrowed.offered_tools()] == ["read", "ls"]
    outside = await run_tool("bash", {"command": "true"}, narrowed)
    assert outside.refused and "this agent's tool list" in outside.error


async def test_the_tool_handler_nests_the_child_under_the_calling_agent(tmp_path):
    install_script({"roles": {"fast": [text("ok")]}})
    runtime, recorder = make_runtime(tmp_path)
    ctx = runtime.child_tools("caller", None, depth=0)
    result = await run_tool("delegate", '{"task": "help me", "effort": "fast"}', ctx)
    assert result.error is None and result.content.startswith("[delegate caller~d1: scripted/fast")
    (started,) = recorder.of_type(ev.AgentStarted)
    assert (started.id, started.parent) == ("caller~d1", "caller")
