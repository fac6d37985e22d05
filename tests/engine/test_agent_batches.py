"""How a turn's events are batched (each batch is one fsync'd append to events.jsonl).

A final answer's attempt and usage go in one batch with agent.finished: nothing waits between them. When the
reply leads to a tool call, the usage is written before the call, which may wait (a paused run, an approval)."""

from __future__ import annotations

import asyncio

import pytest

from aw_tui.engine import llm
from aw_tui.engine.agent import AgentHooks, AgentSpec, run_agent
from aw_tui.engine.scripted import install_script
from aw_tui.engine.tools import ToolContext
from aw_tui.model import events as ev

SPEC = AgentSpec(id="s0002-worker", role="worker", model="scripted/worker")


def kinds(batches: list[tuple[ev.Event, ...]]) -> list[list[str]]:
    return [[type(event).__name__ for event in batch] for batch in batches]


async def test_a_final_answer_is_written_with_its_usage_in_one_batch():
    install_script({"roles": {"worker": [{"text": "All done."}]}})
    batches: list[tuple[ev.Event, ...]] = []
    result = await run_agent(SPEC, [], "Do the task.", hooks=AgentHooks(emit=lambda *events: batches.append(events)))
    assert result.text == "All done."
    assert kinds(batches) == [["AgentStarted"], ["LlmAttempt", "AgentUsage", "AgentFinished"]]


async def test_the_usage_is_on_record_before_a_tool_call_waits(tmp_path):
    install_script({"roles": {"worker": [
        {"tool_calls": [{"id": "c0", "name": "bash", "arguments": {"command": "true"}}]},
        {"text": "Done.", "expect_tool_result": "c0"},
    ]}})  # fmt: skip
    batches: list[tuple[ev.Event, ...]] = []
    seen_at_wait: list[list[list[str]]] = []
    release = asyncio.Event()

    async def paused() -> None:  # the run is paused just before the tool runs
        seen_at_wait.append(kinds(batches))
        release.set()

    hooks = AgentHooks(emit=lambda *events: batches.append(events), before_tool_call=paused)
    (tmp_path / "run").mkdir()
    tools = ToolContext(workspace=tmp_path, artifacts_dir=tmp_path / "run")
    await run_agent(SPEC, [], "Do the task.", hooks=hooks, tools=tools)
    assert release.is_set()
    assert seen_at_wait == [[["AgentStarted"], ["LlmAttempt", "AgentUsage"]]]
    assert kinds(batches)[-1] == ["LlmAttempt", "AgentUsage", "AgentFinished"]


async def test_a_turn_that_fails_after_a_good_call_still_records_its_usage(monkeypatch):
    """An unexpected error after the call (a bug, say) must not lose what the call cost."""
    install_script({"roles": {"worker": [{"text": "All done."}]}})

    class Broken(Exception):
        pass

    def broken(self) -> bool:
        raise Broken

    monkeypatch.setattr(llm.Completion, "is_empty", property(broken))
    batches: list[tuple[ev.Event, ...]] = []
    with pytest.raises(Broken):
        await run_agent(SPEC, [], "Do the task.", hooks=AgentHooks(emit=lambda *events: batches.append(events)))
    assert kinds(batches) == [["AgentStarted"], ["LlmAttempt", "AgentUsage"]]
