"""wf.delegate, wf.chain and wf.loop: subagents driven by a workflow, offline on the scripted provider.

One workflow (a delegate to the built-in scout, a scout -> reviewer chain, and a loop of a project-defined drafter
judged by the reviewer, whose NO feedback must reach the second draft) runs through `aw-tui workflow run` in a
subprocess and in-process; its tree and ledger are read back with open_run, and a --resume answers every call
from the journal. Then the rules one by one on a bare Workflow: budget, cap, concurrency, pause, refusals,
failures, the journal, the scripted role mapping."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aw_tui
from aw_tui.engine.journal import Journal
from aw_tui.engine.scripted import install_script
from aw_tui.engine.workflow import (
    JOURNAL_FILE,
    RESULT_FILE,
    Workflow,
    WorkflowError,
    WorkflowRunner,
    install_workflow_script,
    load_workflow_file,
    start_workflow_run,
    subagent_settings,
    workflow_settings,
)  # fmt: skip
from aw_tui.model import events as ev
from aw_tui.model.settings import Settings
from aw_tui.model.state import fold
from aw_tui.store.run import open_run

from .kit import ONE_TRY, peak_running

REPO_ROOT = str(Path(aw_tui.__file__).resolve().parents[1])

FLOW = '''"""Subagents in a workflow."""

PHASES = ["Scout", "Review", "Polish"]


async def workflow(wf, args):
    wf.phase("Scout")
    found = await wf.delegate("Find the entry point of the project.", agent="scout", label="probe")
    wf.phase("Review")
    reviewed = await wf.chain(["scout", {"agent": "reviewer", "task": "Review what the scout found:\\n{previous}"}],
                              "Check the entry point.")
    wf.phase("Polish")
    final = await wf.loop("drafter", "Write a summary of the project.", max_iterations=3, judge="reviewer",
                          title="polish")
    return {"found": found, "reviewed": reviewed, "final": final}
'''

DRAFTER = """---
name: drafter
description: Writes short drafts
tools: read
model: $fast
---
You write short drafts.
"""

FEEDBACK = "add the line counts"


def turn(text: str, output: int, **extra: Any) -> dict[str, Any]:
    return {"text": text, "usage": {"input": 100, "output": output}, **extra}


def flow_script() -> dict[str, Any]:
    roles = {
        "probe": [turn("Entry point: main.py:1", 10)],
        "scout": [turn("main.py calls run()", 11)],
        "reviewer": [turn("The entry point is fine.", 12)],
        "polish:drafter": [turn("draft one", 13),
                           # fails loudly (and the loop with it) unless the judge's feedback is in this prompt
                           turn("draft two, with line counts", 14, expect_contains=FEEDBACK)],
        "polish:reviewer": [turn(f"NO\n{FEEDBACK}", 5), turn("YES", 6)],
    }  # fmt: skip
    return {"roles": roles, "prices": {role: {"input": 1.0, "output": 2.0} for role in roles}}


EXPECTED_RESULT = {"found": "Entry point: main.py:1", "reviewed": "The entry point is fine.",
                   "final": "draft two, with line counts"}  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    workspace = tmp_path / "ws"
    agents = workspace / ".aw-tui" / "agents"
    agents.mkdir(parents=True)
    (agents / "drafter.md").write_text(DRAFTER)
    (agents / "broken.md").write_text("---\nname: broken\n")  # never closed: reported once, skipped
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "script.json").write_text(json.dumps(flow_script()))
    return {"dir": tmp_path, "workspace": workspace, "workflow": tmp_path / "flow.py",
            "script": tmp_path / "script.json", "runs": tmp_path / "runs"}  # fmt: skip


def only_run(runs: Path) -> Path:
    found = [p for p in runs.iterdir() if p.name.startswith("aw_")]
    assert len(found) == 1, found
    return found[0]


def events_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def assert_tree_and_ledger(run_dir: Path, *, resumed: bool = False) -> None:
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.state == "FINISHED"
    phases = {p.title: p for p in state.phases.values()}
    agents = list(state.agents.values())
    # The delegate: a child under the Scout phase, billed as "delegate", on the script role of its label.
    (child,) = [a for a in agents if a.role == "delegate"]
    assert child.phase == phases["Scout"].id and child.parent is None and child.label == "probe"
    assert child.model == "scripted/probe" and child.status == "done"
    # The chain: its own phase inside Review, one agent a step, each billed under its agent's name.
    (pipeline,) = [p for p in state.phases.values() if p.parent == phases["Review"].id]
    assert pipeline.status == "done"
    assert [(state.agents[a].role, state.agents[a].model) for a in pipeline.agents] == [
        ("scout", "scripted/scout"), ("reviewer", "scripted/reviewer")]  # fmt: skip
    # The loop: titled "polish", inside Polish; two drafts and two verdicts, on the title-qualified roles.
    (loop,) = [p for p in state.phases.values() if p.parent == phases["Polish"].id]
    assert loop.title == "polish" and loop.status == "done"
    assert [state.agents[a].role for a in loop.agents] == ["drafter", "reviewer", "drafter", "reviewer"]
    assert {state.agents[a].model for a in loop.agents} == {"scripted/polish:drafter", "scripted/polish:reviewer"}
    assert all(a.status == "done" for a in agents) and len(agents) == 7
    by_role = state.ledger.by_role()
    assert {role: usage.output for role, usage in by_role.items()} == {
        "delegate": 10, "scout": 11, "reviewer": 12 + 5 + 6, "drafter": 13 + 14}  # fmt: skip
    assert by_role["delegate"].cost_known and by_role["delegate"].cost > 0
    stats = state.workflow_stats  # of the last execution: a resume spends nothing
    assert stats["agent_calls"] == 3 and stats["failed_calls"] == 0
    assert (stats["cached_calls"], stats["output_tokens"]) == ((3, 0) if resumed else (0, 71))
    # The malformed definition is reported with its path, once.
    broken = [log.message for log in state.logs if "broken.md" in log.message]
    assert len(broken) == 1 and "skipped" in broken[0], broken


# --- through `aw-tui workflow run` (a subprocess), then --resume -------------------------------------------------


def _env(config_home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO_ROOT, "XDG_CONFIG_HOME": str(config_home),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # fmt: skip


def _aw_tui(project: dict[str, Path], config_home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aw_tui", "workflow", "run", *argv], cwd=project["dir"], check=False,
                          env=_env(config_home), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_delegate_chain_and_loop_run_offline_and_resume_from_the_journal(project, isolated_config):
    first = _aw_tui(project, isolated_config, "flow.py", "--model", "scripted", "--script", "script.json",
                    "--workspace", "ws", "--runs-root", "runs")  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[-1] != ""  # the result is printed
    run_dir = only_run(project["runs"])
    assert json.loads((run_dir / "artifacts" / RESULT_FILE).read_text())["result"] == EXPECTED_RESULT
    assert_tree_and_ledger(run_dir)
    assert len(Journal(run_dir / "artifacts" / JOURNAL_FILE)) == 3
    calls_before = sum(1 for e in events_of(run_dir) if e["type"] == "llm.attempt")
    assert calls_before == 7

    again = _aw_tui(project, isolated_config, "flow.py", "--resume", str(run_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "FINISHED: 3 agent call(s) (3 from the journal)" in again.stdout
    events = events_of(run_dir)
    resumed_at = next(i for i, e in enumerate(events) if e["type"] == "run.state" and
                      e.get("reason", "").startswith("resumed flow.py"))  # fmt: skip
    resumed_part = events[resumed_at:]
    assert not [e for e in resumed_part if e["type"] in ("llm.attempt", "agent.usage", "agent.started")]
    assert json.loads((run_dir / "artifacts" / RESULT_FILE).read_text())["result"] == EXPECTED_RESULT
    assert_tree_and_ledger(run_dir, resumed=True)  # nothing billed twice, the problem still logged once


# --- in-process ------------------------------------------------------------------------------------------------


def _run_in_process(project: dict[str, Path]) -> tuple[Any, Path, Any]:
    loaded = load_workflow_file(project["workflow"])
    writer = start_workflow_run(loaded, None, runs_root=project["runs"], model="scripted", script=project["script"],
                                workspace=project["workspace"])  # fmt: skip
    try:
        assert install_workflow_script(writer, workflow_settings(writer), str(project["script"]))
        provider = install_script(project["script"])  # the same script again, to read the prompts it was sent
        roles = frozenset(provider.script.roles)
        outcome = asyncio.run(WorkflowRunner(writer, loaded, None, scripted_roles=roles, policy=ONE_TRY).run())
    finally:
        writer.close()
    return outcome, writer.paths.root, provider


def test_in_process_the_judge_feedback_reaches_the_next_iteration(project):
    outcome, run_dir, provider = _run_in_process(project)
    assert outcome.state == "FINISHED", outcome.reason
    assert outcome.result == EXPECTED_RESULT
    assert_tree_and_ledger(run_dir)
    drafts = [c.messages[-1]["content"] for c in provider.calls if c.role == "polish:drafter"]
    assert len(drafts) == 2
    assert FEEDBACK not in drafts[0] and "Iteration 1 output" not in drafts[0]
    assert FEEDBACK in drafts[1] and "draft one" in drafts[1]
    # The chain handed the scout's output to the reviewer through {previous}.
    (review,) = [c.messages[-1]["content"] for c in provider.calls if c.role == "reviewer"]
    assert review == "Review what the scout found:\n## The work to review\n\nmain.py calls run()"  # its connector
    # The delegate ran the scout's definition (its prompt as the system prompt) with the report rules.
    (probe,) = [c for c in provider.calls if c.role == "probe"]
    assert probe.messages[0]["content"].startswith("You are a scout.")


# --- the rules, on a bare Workflow -----------------------------------------------------------------------------


class Bare:
    """A Workflow with a workspace on scripted models, its events collected."""

    def __init__(self, tmp_path: Path, roles: dict[str, list[dict[str, Any]]], **options: Any) -> None:
        self.provider = install_script({"roles": roles})
        self.events: list[ev.Event] = []
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        options.setdefault("model", "scripted")
        options.setdefault("settings", Settings())
        self.wf = Workflow(emit=lambda *batch: self.events.extend(batch), workspace=workspace,
                           artifacts_dir=tmp_path / "artifacts", scripted_roles=set(roles), policy=ONE_TRY,
                           **options)  # fmt: skip

    def state(self):
        self.wf.flush()
        return fold([e.model_copy(update={"seq": i}) for i, e in enumerate(self.events, 1)])

    def logs(self) -> list[str]:
        self.wf.flush()
        return [e.message for e in self.events if isinstance(e, ev.Log)]


def test_the_scripted_role_of_a_delegate_is_its_label_then_its_agent_then_delegate_then_workflow(tmp_path):
    bare = Bare(tmp_path, {"labelled": [turn("a", 1)], "scout": [turn("b", 1)], "delegate": [turn("c", 1)],
                           "workflow": []})  # fmt: skip

    async def body() -> list[Any]:
        wf = bare.wf
        return [await wf.delegate("one", label="labelled", agent="scout"), await wf.delegate("two", agent="scout"),
                await wf.delegate("three")]  # fmt: skip

    assert asyncio.run(body()) == ["a", "b", "c"]
    assert [a.model for a in bare.state().agents.values()] == ["scripted/labelled", "scripted/scout",
                                                              "scripted/delegate"]  # fmt: skip


def test_a_failed_delegate_gives_none_and_a_log_saying_why(tmp_path):
    bare = Bare(tmp_path, {"delegate": [{"error": "bad_request", "message": "the provider said no"}]})
    assert asyncio.run(bare.wf.delegate("do it")) is None
    assert any("gave no result" in m and "the provider said no" in m for m in bare.logs()), bare.logs()
    assert bare.wf.stats.failed_calls == 1 and len(bare.wf.journal) == 0
    assert [a.status for a in bare.state().agents.values()] == ["failed"]


def test_unknown_agents_and_efforts_are_refused_with_none_and_a_log(tmp_path):
    bare = Bare(tmp_path, {"workflow": []})

    async def body() -> list[Any]:
        wf = bare.wf
        return [await wf.delegate("x", agent="nobody"), await wf.delegate("x", effort="huge"),
                await wf.chain(["scout", "ghost"], "x"), await wf.loop("scout", "x", judge="nobody")]  # fmt: skip

    assert asyncio.run(body()) == [None] * 4
    logs = bare.logs()
    assert sum("refused" in m for m in logs) == 4
    assert any("'ghost'" in m and "available agents" in m for m in logs), logs
    assert not bare.provider.calls and bare.wf.stats.refused_calls == 4


def test_a_failing_chain_step_or_loop_iteration_gives_none(tmp_path):
    bare = Bare(tmp_path, {"scout": [turn("found", 1)], "reviewer": [{"error": "bad_request"}],
                           "worker": [{"error": "bad_request"}]})  # fmt: skip

    async def body() -> list[Any]:
        return [await bare.wf.chain(["scout", "reviewer"], "x"), await bare.wf.loop("worker", "x")]

    assert asyncio.run(body()) == [None, None]
    logs = bare.logs()
    assert any("wf.chain" in m and "step 2 of 2" in m for m in logs), logs
    assert any("wf.loop" in m and "iteration 1" in m for m in logs), logs
    assert bare.wf.stats.failed_calls == 2


def test_the_budget_counts_their_output_and_refuses_once_spent(tmp_path):
    bare = Bare(tmp_path, {"delegate": [turn("a", 30), turn("b", 30)], "scout": [turn("c", 30)]}, budget=50)

    async def body() -> list[Any]:
        wf = bare.wf
        first = await wf.delegate("one")
        second = await wf.delegate("two")  # the lone call is admitted while anything is left
        return [first, second, await wf.chain(["scout"], "three"), wf.budget.spent()]

    assert asyncio.run(body()) == ["a", "b", None, 60]
    refused = [a for a in bare.state().agents.values() if a.status == "refused"]
    assert len(refused) == 1 and refused[0].role == "chain"
    assert any("token budget exhausted" in m for m in bare.logs())
    assert len(bare.provider.calls) == 2


def test_the_runaway_cap_counts_every_agent_they_run(tmp_path):
    bare = Bare(tmp_path, {"scout": [turn("a", 1)], "reviewer": [turn("b", 1)], "delegate": [turn("c", 1)]},
                max_agents=2)  # fmt: skip

    async def body() -> list[Any]:
        return [await bare.wf.chain(["scout", "reviewer"], "x"), await bare.wf.delegate("y")]

    assert asyncio.run(body()) == ["b", None]
    assert any("agent cap reached" in m for m in bare.logs())
    assert bare.wf.started_calls == 2


@pytest.mark.parametrize("concurrency", [1, 3])
def test_they_respect_the_concurrency_limit(tmp_path, concurrency):
    roles = {f"d{i}": [turn(f"r{i}", 1, delay_s=0.15)] for i in range(3)}
    bare = Bare(tmp_path, roles, concurrency=concurrency)

    async def body() -> list[Any]:
        return await bare.wf.parallel([lambda i=i: bare.wf.delegate(f"task {i}", label=f"d{i}") for i in range(3)])

    assert asyncio.run(body()) == ["r0", "r1", "r2"]
    bare.wf.flush()
    assert peak_running(bare.events) == concurrency


def test_a_paused_workflow_starts_no_subagent_model_call_until_resumed(tmp_path):
    bare = Bare(tmp_path, {"delegate": [turn("done", 1)]})

    async def body() -> Any:
        bare.wf.paused = True
        task = asyncio.ensure_future(bare.wf.delegate("wait for me"))
        await asyncio.sleep(0.2)
        assert not bare.provider.calls and not task.done()
        bare.wf.paused = False
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(body()) == "done"


def test_a_second_execution_answers_from_the_journal_and_a_changed_definition_runs_again(tmp_path):
    journal = tmp_path / "journal.jsonl"
    roles = {"delegate": [turn("first", 5)], "scout": [turn("scouted", 5)]}
    first = Bare(tmp_path, roles, journal=Journal(journal))

    async def body(wf: Workflow) -> list[Any]:
        wf.phase("Only")
        return [await wf.delegate("report"), await wf.chain(["scout"], "look")]

    assert asyncio.run(body(first.wf)) == ["first", "scouted"]
    first.wf.journal.close()
    second = Bare(tmp_path, {"delegate": [], "scout": []}, journal=Journal(journal))
    assert asyncio.run(body(second.wf)) == ["first", "scouted"]
    assert not second.provider.calls
    assert second.wf.stats.cached_calls == 2 and second.wf.budget.spent() == 10
    # Not in this tree before: one agent stands for each cached call.
    assert [(a.role, a.status) for a in second.state().agents.values()] == [("delegate", "done"), ("chain", "done")]
    second.wf.journal.close()
    # A project definition named scout replaces the built-in one: the chain is a different call now.
    agents = tmp_path / "ws" / ".aw-tui" / "agents"
    agents.mkdir(parents=True)
    (agents / "scout.md").write_text("---\nname: scout\ndescription: mine\n---\nYou are my scout.\n")
    third = Bare(tmp_path, {"delegate": [], "scout": [turn("rescouted", 5)]}, journal=Journal(journal))
    assert asyncio.run(body(third.wf)) == ["first", "rescouted"]
    assert third.provider.calls[0].messages[0]["content"].startswith("You are my scout.")
    third.wf.journal.close()


def test_without_a_workspace_they_say_so(tmp_path):
    install_script({"roles": {"workflow": []}})
    wf = Workflow(emit=lambda *batch: None, model="scripted")
    with pytest.raises(WorkflowError, match="need a workspace"):
        asyncio.run(wf.delegate("x"))


def test_a_workflow_model_becomes_every_effort_left_unset():
    base = Settings.model_validate({"delegate": {"smart_model": "anthropic/claude-opus-4-1"}})
    settings = subagent_settings(base, "openai/gpt-5-mini")
    assert (settings.delegate.fast_model, settings.delegate.balanced_model, settings.delegate.smart_model) == (
        "openai/gpt-5-mini", "openai/gpt-5-mini", "anthropic/claude-opus-4-1")  # fmt: skip
    assert subagent_settings(base, None) is base


def test_abort_stops_a_delegate_in_flight_and_the_run_ends_aborted(project):
    from aw_tui.model.commands import new_command
    from aw_tui.store.control import send_command

    project["workflow"].write_text('async def workflow(wf, args):\n    return await wf.delegate("take your time")\n')
    project["script"].write_text(json.dumps({"roles": {"delegate": [turn("too late", 1, delay_s=30)]}}))
    loaded = load_workflow_file(project["workflow"])
    writer = start_workflow_run(loaded, None, runs_root=project["runs"], model="scripted", script=project["script"],
                                workspace=project["workspace"])  # fmt: skip
    roles = install_workflow_script(writer, workflow_settings(writer), str(project["script"]))

    def listen(events):
        if any(e.type == "agent.started" for e in events):
            send_command(writer.paths, new_command("abort", text="enough", source="test"))

    runner = WorkflowRunner(writer, loaded, None, listeners=[listen], scripted_roles=roles, control_poll_s=0.02)
    try:
        outcome = asyncio.run(asyncio.wait_for(runner.run(), 15))
    finally:
        writer.close()
    assert outcome.state == "ABORTED" and outcome.reason == "enough"
    state = open_run(writer.paths.root, use_checkpoint=False).state
    assert [(a.role, a.status) for a in state.agents.values()] == [("delegate", "aborted")]
    assert len(Journal(writer.paths.root / "artifacts" / JOURNAL_FILE)) == 0
