"""Smaller promises of the wf API: phases declared and explicit, labels, tools, argument checks, pausing."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from aw_tui.engine.workflow import WorkflowError, default_label, tool_policy

from .kit import harness, run, text_turn


async def test_declared_phases_are_pending_then_active_done_or_skipped():
    h = harness({"workflow": [text_turn()] * 2})

    async def body(wf):
        wf.phases(["Scope", "Build", "Ship"])
        wf.phase("Scope")
        await wf.agent("scope it")
        wf.phase("Build")
        await wf.agent("build it")

    await run(h, body)
    state = h.state()
    assert [(state.phases[p].title, state.phases[p].status) for p in state.root_phases] == [
        ("Scope", "done"), ("Build", "active"), ("Ship", "pending")]  # fmt: skip
    h.wf.finish_phases(ok=True)
    state = h.state()
    assert [state.phases[p].status for p in state.root_phases] == ["done", "done", "skipped"]


async def test_an_explicit_phase_puts_the_agent_there_without_moving_the_current_phase():
    h = harness({"workflow": [text_turn()]})

    async def body(wf):
        wf.phase("Main")
        await wf.agent("side job", phase="Side")
        return wf.current_phase

    assert await run(h, body) == "Main"
    state = h.state()
    (agent,) = state.agents.values()
    assert state.phases[agent.phase].title == "Side"


async def test_labels_default_to_the_prompts_first_line_and_show_in_the_tree():
    assert default_label("\n  Inspect the parser\nthen more") == "Inspect the parser"
    assert len(default_label("x" * 200)) == 60
    h = harness({"workflow": [text_turn()] * 2})
    await run(h, lambda wf: wf.parallel([lambda: wf.agent("first task\nwith detail"),
                                         lambda: wf.agent("second", label="named")]))  # fmt: skip
    assert sorted(a.label for a in h.state().agents.values()) == ["first task", "named"]


def test_tools_take_a_policy_name():
    assert tool_policy(None) is None and tool_policy(False) is None and tool_policy("no-tools") is None
    assert tool_policy(True) == "read-only" and tool_policy("all-tools") == "all-tools"
    with pytest.raises(ValueError, match="tool policy"):
        tool_policy(["read"])


async def test_bad_arguments_raise_before_anything_runs():
    h = harness({"workflow": []})
    with pytest.raises(ValueError, match="non-empty prompt"):
        await h.wf.agent("  ")
    with pytest.raises(TypeError, match="pydantic model class"):
        await h.wf.agent("p", schema=dict)
    with pytest.raises(ValueError, match="retries"):
        await h.wf.agent("p", retries=-1)
    no_model = harness({"workflow": []}, model=None)
    with pytest.raises(WorkflowError, match="needs a model"):
        await no_model.wf.agent("p")
    with pytest.raises(WorkflowError, match="need a workspace"):
        await h.wf.agent("p", tools=True)
    assert h.model_calls == 0 and not h.types("agent.started")


class Point(BaseModel):
    x: int


async def test_a_journal_entry_is_only_used_for_the_same_kind_of_answer(tmp_path):
    journal = tmp_path / "journal.jsonl"
    first = harness({"workflow": [text_turn("plain")]}, journal=journal)
    await run(first, lambda wf: wf.agent("p"))
    first.wf.journal.close()
    # The same prompt with a schema is another call (the schema is part of the key).
    second = harness({"workflow": [{"tool_calls": [{"name": "respond", "arguments": {"x": 1}}]}]}, journal=journal)
    assert await run(second, lambda wf: wf.agent("p", schema=Point)) == Point(x=1)
    assert second.wf.stats.cached_calls == 0


async def test_while_paused_no_model_call_starts():
    h = harness({"workflow": [text_turn("later")]})
    h.wf.paused = True
    task = asyncio.create_task(h.wf.agent("wait for it"))
    await asyncio.sleep(0.2)
    assert h.model_calls == 0 and not task.done()
    h.wf.paused = False
    assert await task == "later"


async def test_log_goes_to_the_run_as_an_info_line():
    h = harness({"workflow": []})
    h.wf.log({"found": 3})
    h.wf.flush()
    assert [(e.level, e.message) for e in h.events] == [("info", "{'found': 3}")]


async def test_titles_with_the_same_slug_get_their_own_phases():
    h = harness({"workflow": [text_turn()] * 2})

    async def body(wf):
        await wf.agent("one", phase="Build & test")
        await wf.agent("two", phase="build test")

    await run(h, body)
    state = h.state()
    assert sorted(p.title for p in state.phases.values()) == ["Build & test", "build test"]
    assert all(len(p.agents) == 1 for p in state.phases.values())


async def test_an_unexpected_error_inside_an_agent_still_ends_it_and_parallel_gives_none(monkeypatch):
    from aw_tui.engine import workflow as module
    from aw_tui.model import events as ev

    async def broken(spec, history, prompt, *, hooks, **kwargs):
        hooks.emit(ev.AgentStarted(id=spec.id, role=spec.role, model=spec.model, phase=spec.phase, label=spec.label))
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr(module, "run_agent", broken)
    h = harness({"workflow": []})
    assert await run(h, lambda wf: wf.parallel([lambda: wf.agent("p")])) == [None]
    (agent,) = h.state().agents.values()
    assert agent.status == "failed" and agent.error == "RuntimeError: a bug in the loop"
    assert any("parallel item 0 failed" in e.message for e in h.events if e.type == "log")


async def test_an_unknown_thinking_level_is_refused_up_front():
    h = harness({"workflow": []})
    with pytest.raises(ValueError, match="thinking="):
        await h.wf.agent("p", thinking="maximal")
