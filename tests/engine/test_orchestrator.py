"""The analyst/worker orchestrator on real run directories, with the scripted provider through litellm.

The seed's cases (reference/seeds.md §6.2: 15 step files and states, 17 compaction, 18 worker recovery, 19 control
semantics, 20 autonomous checkpoint) and the issue's faults: retries, failures, gates that resolve once.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from aw_tui.engine.llm import load_litellm
from aw_tui.engine.scripted import uninstall_script
from aw_tui.model import events as ev
from aw_tui.store.eventlog import utc_now
from aw_tui.store.run import open_run

from tests.engine.orchestration_kit import analyst, play, send, text_turn, worker_report


@pytest.fixture(autouse=True)
def scripted():
    load_litellm()
    yield
    uninstall_script()


def sending(command):
    """A gate answer that resolves nothing and sends a run command instead (abort, finish)."""

    def answer(gate, writer):
        send(writer, command)

    return answer


def answer_with(decisions):
    """Resolve gates in order with the given (command, text) pairs."""
    queue = list(decisions)

    def answer(gate, writer):
        return queue.pop(0) if queue else None

    return answer


# --- the loop (seed case 15) ------------------------------------------------------------------------------------


async def test_plan_worker_review_done_writes_three_steps_and_finishes_on_confirmation(tmp_path):
    outcome = await play(tmp_path, {
        "analyst": [text_turn(analyst("NEEDS_WORKER", instruction="Fix the parser's off-by-one.\n- Goal: green")),
                    text_turn(analyst("DONE", review="The worker fixed it."))],
        "worker": [text_turn(worker_report())],
    })  # fmt: skip
    assert outcome.final == "FINISHED"
    steps = sorted(p.name for p in (outcome.writer.paths.steps_dir).iterdir())
    assert steps == ["0001_analyst_plan.md", "0002_worker_result.md", "0003_analyst_review.md"]
    assert [s.state_after for s in outcome.state.ledger.steps] == [
        "WORKER_RUNNING", "ANALYST_REVIEWING", "DONE_NEEDS_OPERATOR_CONFIRMATION",
    ]  # fmt: skip
    plan_memo = outcome.of_type(ev.MemoUpdated)[0]
    assert plan_memo.instruction_id == "0001_fix_the_parser_s_off_by_one"
    (confirm,) = [g for g in outcome.state.gates.values() if g.kind == "confirm_done"]
    assert confirm.status == "approved" and confirm.resolved_by == "operator"
    # The worker got the analyst's instruction; the analyst's review got the worker's report.
    worker_call = next(c for c in outcome.provider.calls if c.role == "worker")
    assert "Fix the parser's off-by-one." in worker_call.messages[-1]["content"]
    review_call = [c for c in outcome.provider.calls if c.role == "analyst"][1]
    assert "## Stop / handoff" in review_call.messages[-1]["content"]
    # The analyst's conversation carries on across its turns: plan and review are one session.
    assert any("Fix the parser" in str(m.get("content")) for m in review_call.messages[:-1])
    report = (outcome.writer.paths.steps_dir / "0002_worker_result.md").read_text()
    for heading in ("## Wall time", "## Token usage", "## Final answer", "## Transcript"):
        assert heading in report
    ledger = open_run(outcome.writer.paths.root).state.ledger
    assert ledger.by_role()["analyst"].input == 2000 and ledger.by_role()["worker"].input == 1000


async def test_no_decision_means_the_worker_continues(tmp_path):
    outcome = await play(tmp_path, {
        "analyst": [text_turn(analyst(None)), text_turn(analyst("ABORT"))],
        "worker": [text_turn(worker_report())],
    })  # fmt: skip
    assert [s.role for s in outcome.state.steps] == ["analyst", "worker", "analyst"]
    assert outcome.final == "ABORTED"
    assert outcome.state.state_reason == "the analyst aborted the run"


async def test_a_plan_too_short_to_act_on_blocks_for_the_operator_whose_answer_reaches_the_next_plan(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn("[ANALYST: x]\n## Next state\nNEEDS_WORKER"),
                     {**text_turn(analyst("ABORT")), "expect_contains": "focus on the parser"}]},
        answer=answer_with([("answer", "focus on the parser")]),
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert gate.kind == "operator_input" and "no substantive plan" in gate.title
    assert gate.status == "answered" and [n.text for n in outcome.state.notes] == ["focus on the parser"]
    states = [e.state for e in outcome.of_type(ev.RunStateChanged)]
    assert states[1:] == ["BLOCKED_NEEDS_OPERATOR", "ANALYST_PLANNING", "ABORTED"]


async def test_needs_operator_opens_a_gate_with_the_handoff_and_approval_accepts_the_recommendation(tmp_path):
    handoff = "- Problem: two specs disagree.\n- Question: which one wins?\n- Recommended answer: the newer spec."
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_OPERATOR", handoff=handoff)),
                     {**text_turn(analyst("ABORT")), "expect_contains": "the newer spec"}]},
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert gate.title == "which one wins?" and "two specs disagree" in gate.body
    assert outcome.state.notes[-1].text.endswith("accepts the recommended answer: the newer spec.")


# --- worker recovery (seed case 18) -----------------------------------------------------------------------------


async def test_an_incomplete_report_gets_two_recoveries_then_goes_to_review(tmp_path):
    incomplete = worker_report(missing=["Stop / handoff"])
    outcome = await play(tmp_path, {
        "analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
        "worker": [text_turn(incomplete),
                   {**text_turn(incomplete), "expect_contains": "recovery 1 of 2"},
                   {**text_turn(incomplete), "expect_contains": "recovery 2 of 2"}],
    })  # fmt: skip
    assert [(s.step, s.role) for s in outcome.state.steps] == [
        (1, "analyst"), (2, "worker"), (3, "worker"), (4, "worker"), (5, "analyst"),
    ]  # fmt: skip
    assert [s.state_after for s in outcome.state.ledger.steps][1:4] == [
        "WORKER_RUNNING", "WORKER_RUNNING", "ANALYST_REVIEWING",
    ]  # fmt: skip
    # A recovery continues the same instruction: the previous report is in its conversation.
    recovery_call = [c for c in outcome.provider.calls if c.role == "worker"][1]
    assert recovery_call.messages[-2]["content"] == incomplete
    assert "Stop / handoff" in recovery_call.messages[-1]["content"]
    assert "Recovery: 1 of 2" in (outcome.writer.paths.steps_dir / "0003_worker_result.md").read_text()


async def test_a_report_that_says_blocked_is_not_retried(tmp_path):
    outcome = await play(tmp_path, {
        "analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
        "worker": [text_turn(worker_report(missing=["Result"], extra="I am blocked: missing credentials."))],
    })  # fmt: skip
    assert [s.role for s in outcome.state.steps] == ["analyst", "worker", "analyst"]


# --- gates ------------------------------------------------------------------------------------------------------


async def test_rejecting_done_with_a_reason_sends_the_analyst_back_with_the_reason(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("DONE")),
                     {**text_turn(analyst("DONE")), "expect_contains": "add a regression test"}]},
        answer=answer_with([("reject", "add a regression test"), ("approve", None)]),
    )  # fmt: skip
    assert outcome.final == "FINISHED"
    assert [g.status for g in outcome.state.gates.values()] == ["rejected", "approved"]


async def test_a_dangerous_command_runs_only_after_approval_of_that_exact_command(tmp_path):
    ws = tmp_path / "ws"
    (ws / "build").mkdir(parents=True)
    (ws / "keep").mkdir()
    decisions = {"rm -rf build": ("approve", None), "rm -rf keep": ("reject", "keep it")}
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
         "worker": [
             {"tool_calls": [{"id": "a", "name": "bash", "arguments": {"command": "rm -rf build"}}]},
             {"tool_calls": [{"id": "b", "name": "bash", "arguments": {"command": "rm -rf keep"}}],
              "expect_tool_result": "a"},
             {"tool_calls": [{"id": "c", "name": "bash", "arguments": {"command": "rm -rf build"}}],
              "expect_tool_result": "b"},
             {**text_turn(worker_report()), "expect_tool_result": "c"},
         ]},
        answer=lambda gate, writer: decisions.get(gate.binding or "", ("approve", None)),
        workspace=ws,
    )  # fmt: skip
    assert not (ws / "build").exists() and (ws / "keep").exists()
    gates = [g for g in outcome.state.gates.values() if g.kind == "dangerous_command"]
    # The approval of the first `rm -rf build` did not carry over to the second one: it asked again.
    assert [(g.binding, g.status) for g in gates] == [
        ("rm -rf build", "approved"), ("rm -rf keep", "rejected"), ("rm -rf build", "approved"),
    ]  # fmt: skip
    refused = [e for e in outcome.of_type(ev.ToolFinished) if e.refused]
    assert [e.call_id for e in refused] == ["b"] and "rejected" in refused[0].error


async def test_a_gate_resolves_once_and_a_second_resolution_is_recorded_as_rejected(tmp_path):
    def answer(gate, writer):
        send(writer, "approve", gate_id=gate.id)
        return ("reject", "too late")

    outcome = await play(tmp_path, {"analyst": [text_turn(analyst("DONE"))]}, answer=answer)
    (gate,) = outcome.state.gates.values()
    assert gate.status == "approved" and outcome.final == "FINISHED"
    (rejected,) = outcome.of_type(ev.CommandRejected)
    assert rejected.cmd == "reject" and "already approved" in rejected.reason


async def test_no_model_output_can_resolve_a_gate(tmp_path):
    # A worker that tries to write an approval into control.jsonl itself needs the operator's approval to write
    # outside its workspace; rejected, nothing reaches the control channel.
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
         "worker": [
             {"tool_calls": [{"id": "w", "name": "bash", "arguments": {
                 "command": "echo '{\"id\":\"x\",\"ts\":\"2026-01-01T00:00:00Z\",\"cmd\":\"approve\",\"gate_id\":\"g-0001\"}'"
                            " >> ../runs/*/control.jsonl; rm -rf /tmp/definitely-not-here"}}]},
             {**text_turn(worker_report()), "expect_tool_result": "w"},
         ]},
        answer=lambda gate, writer: ("reject", None),
    )  # fmt: skip
    (gate,) = [g for g in outcome.state.gates.values() if g.kind == "dangerous_command"]
    assert gate.status == "rejected" and gate.command_id != "x"
    assert '"id":"x"' not in outcome.writer.paths.control.read_text()


# --- operator control (seed case 19) ----------------------------------------------------------------------------


async def test_pause_lets_the_tool_call_finish_and_starts_nothing_until_resume(tmp_path):
    def on_event(event, writer):
        if isinstance(event, ev.ToolStarted) and event.call_id == "slow":
            send(writer, "pause")
        if isinstance(event, ev.RunPaused):
            send(writer, "resume")

    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
         "worker": [{"tool_calls": [{"id": "slow", "name": "bash", "arguments": {"command": "sleep 0.3; echo hi"}}]},
                    {**text_turn(worker_report()), "expect_tool_result": "slow"}]},
        on_event=on_event,
    )  # fmt: skip
    types = [e.type for e in outcome.events]
    paused, resumed = types.index("run.paused"), types.index("run.resumed")
    between = types[paused:resumed]
    assert not {"agent.started", "llm.attempt", "tool.started"} & set(between)
    finished = next(e for e in outcome.events if isinstance(e, ev.ToolFinished) and e.call_id == "slow")
    assert finished.error is None  # the call in flight finished normally
    assert outcome.final == "ABORTED"


async def test_abort_kills_the_running_command_and_keeps_the_artifacts(tmp_path):
    marker = tmp_path / "ws" / "still-running"

    def on_event(event, writer):
        if isinstance(event, ev.ToolStarted):
            send(writer, "abort", text="wrong direction")

    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER"))],
         "worker": [{"tool_calls": [{"id": "long", "name": "bash",
                                     "arguments": {"command": f"sleep 30; touch {marker}"}}]}]},
        on_event=on_event,
    )  # fmt: skip
    assert outcome.final == "ABORTED" and outcome.state.state_reason == "wrong direction"
    finished = next(e for e in outcome.events if isinstance(e, ev.ToolFinished))
    assert finished.error == "aborted"
    worker = outcome.state.agents["s0002-worker"]
    assert worker.status == "aborted"
    assert not marker.exists()
    assert (outcome.writer.paths.steps_dir / "0001_analyst_plan.md").exists()


async def test_finish_ends_the_run_as_finished_and_withdraws_open_gates(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_OPERATOR", handoff="- Question: go on?"))]},
        answer=sending("finish"),
    )  # fmt: skip
    assert outcome.final == "FINISHED"
    (gate,) = outcome.state.gates.values()
    assert gate.status == "canceled" and gate.resolved_by == "engine"


async def test_commands_that_do_not_fit_are_rejected_with_a_reason(tmp_path):
    def on_event(event, writer):
        if isinstance(event, ev.GateOpened):
            send(writer, "resume")  # not paused
            send(writer, "approve", gate_id="g-9999")
            send(writer, "answer", gate_id=event.id, text="")
            with open(writer.paths.control, "a") as control:
                control.write('{"id": "bad1", "cmd": "explode"}\nnot json\n')
            send(writer, "abort")

    outcome = await play(tmp_path, {"analyst": [text_turn(analyst("DONE"))]}, answer=None, on_event=on_event)
    reasons = {e.cmd: e.reason for e in outcome.of_type(ev.CommandRejected)}
    assert reasons["resume"] == "the run is not paused"
    assert "no gate 'g-9999'" in reasons["approve"]
    assert reasons["answer"] == "answer needs the answer's text"
    assert "unknown command 'explode'" in reasons["explode"]
    assert any("line" in r for c, r in reasons.items() if c == "?")
    assert outcome.final == "ABORTED"


# --- limits (seed case 20) and budget -----------------------------------------------------------------------


async def test_the_autonomous_time_limit_waits_for_the_operator_before_the_next_worker_stage(tmp_path):
    later = lambda: utc_now() + timedelta(minutes=31)  # noqa: E731
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("NEEDS_WORKER"))],
         "worker": [text_turn(worker_report())]},
        settings={"limits": {"max_autonomous_hours": 0.5}},
        clock=later,
        answer=sending("abort"),
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert gate.kind == "step_limit" and "limit 0.5 h" in gate.title
    assert "WAITING_FOR_OPERATOR" in [e.state for e in outcome.of_type(ev.RunStateChanged)]
    assert [s.role for s in outcome.state.steps] == ["analyst", "worker", "analyst"]


async def test_the_worker_step_limit_asks_and_approval_lets_the_worker_go_on(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("NEEDS_WORKER")),
                     text_turn(analyst("ABORT"))],
         "worker": [text_turn(worker_report()), text_turn(worker_report())]},
        settings={"limits": {"max_worker_steps_before_operator": 1}},
    )  # fmt: skip
    gates = list(outcome.state.gates.values())
    assert [g.kind for g in gates] == ["step_limit"] and gates[0].status == "approved"
    assert [s.role for s in outcome.state.steps].count("worker") == 2


async def test_a_spent_budget_waits_for_the_operator_and_rejection_aborts(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER"), input=1000, output=100_000)],
         "worker": [text_turn(worker_report())]},
        settings={"budget": {"max_cost_usd": 1.0}},
        answer=lambda gate, writer: ("reject", None),
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert gate.kind == "budget" and gate.binding == "cost"
    assert outcome.final == "ABORTED" and "budget" in outcome.state.state_reason
    assert outcome.provider.remaining() == {"analyst": 0, "worker": 1}  # nothing was spent past the cap


async def test_approving_a_budget_gate_raises_the_cap(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER"), input=1000, output=100_000), text_turn(analyst("ABORT"))],
         "worker": [text_turn(worker_report())]},
        settings={"budget": {"max_cost_usd": 1.0}},
        answer=lambda gate, writer: ("approve", "10"),
    )  # fmt: skip
    assert [g.status for g in outcome.state.gates.values()] == ["approved"]
    assert outcome.final == "ABORTED" and outcome.state.state_reason == "the analyst aborted the run"


# --- compaction (seed case 17) ----------------------------------------------------------------------------------


async def test_compaction_before_a_turn_at_the_threshold_summarises_and_is_in_the_ledger(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER"), input=950, output=10),
                     {**text_turn("## Task\nthe summary"), "expect_contains": "Summarise the conversation"},
                     {**text_turn(analyst("ABORT")), "expect_contains": "worker report"}],
         "worker": [text_turn(worker_report(), input=10, output=10)]},
        settings={"analyst": {"context_limit": 1000}},
    )  # fmt: skip
    (compaction,) = outcome.of_type(ev.Compaction)
    assert compaction.status == "completed" and compaction.tokens_before >= 900
    assert [c.status for c in outcome.state.ledger.compactions] == ["completed"]
    compactor = outcome.state.agents["s0003-analyst~compact1"]
    assert compactor.parent == "s0003-analyst" and compactor.label == "compaction"
    review_call = [c for c in outcome.provider.calls if c.role == "analyst"][2]
    assert "the summary" in review_call.messages[1]["content"] and len(review_call.messages) == 2


async def test_compaction_failing_twice_asks_the_operator_then_tries_again(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER"), input=950, output=10),
                     {"error": "bad_request", "message": "summariser broke"},
                     {"error": "bad_request", "message": "summariser broke again"},
                     text_turn("## Task\nthe summary"),
                     text_turn(analyst("ABORT"))],
         "worker": [text_turn(worker_report(), input=10, output=10)]},
        settings={"analyst": {"context_limit": 1000}},
        answer=lambda gate, writer: ("answer", "try again"),
    )  # fmt: skip
    assert [c.status for c in outcome.state.ledger.compactions] == ["failed", "failed", "completed"]
    (gate,) = outcome.state.gates.values()
    assert gate.kind == "operator_input" and "Compaction" in gate.title
    assert outcome.final == "ABORTED"


# --- provider faults: every attempt in the events and the ledger ------------------------------------------------


async def test_a_429_is_retried_after_its_retry_after_and_billed_once(tmp_path):
    waits: list[float] = []

    async def sleep(seconds):
        waits.append(seconds)

    from aw_tui.engine.orchestrator import EngineOptions

    outcome = await play(
        tmp_path,
        {"analyst": [{"error": "rate_limit", "retry_after": 7}, {"error": "server_error", "status": 503},
                     text_turn(analyst("ABORT"), input=500, output=50)]},
        options=EngineOptions(sleep=sleep, watch=False, control_poll_s=0.01),
    )  # fmt: skip
    attempts = outcome.of_type(ev.LlmAttempt)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "rate_limited"), (2, "server_error"), (3, "ok")]
    assert waits[0] == 7 and attempts[0].retry_in_s == 7
    assert outcome.state.ledger.total.input == 500  # only the answered call is billed
    assert outcome.state.agents["s0001-analyst"].llm_failures == 2


async def test_a_model_that_keeps_failing_blocks_the_run_and_an_answer_retries_the_same_turn(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [{"error": "server_error", "status": 500}] * 4 + [text_turn(analyst("ABORT"))]},
        answer=lambda gate, writer: ("answer", "the provider is back"),
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert "500" in gate.body or "server" in gate.body.lower()
    assert gate.binding == "ANALYST_PLANNING"
    assert outcome.state.agents["s0001-analyst"].status == "failed"
    assert outcome.state.agents["s0001-analyst.2"].status == "done"
    assert len([a for a in outcome.of_type(ev.LlmAttempt) if a.outcome == "server_error"]) == 4
    assert outcome.final == "ABORTED"


async def test_a_timeout_is_an_attempt_and_is_retried(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [{"error": "timeout"}, text_turn(analyst("ABORT"))]},
    )  # fmt: skip
    assert [a.outcome for a in outcome.of_type(ev.LlmAttempt)] == ["timeout", "ok"]


async def test_an_empty_reply_is_nudged_and_recorded(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [{"usage": {"input": 10, "output": 0}},
                     {**text_turn(analyst("ABORT")), "expect_contains": "Your last reply was empty"}]},
    )  # fmt: skip
    assert any("empty reply" in log.message for log in outcome.of_type(ev.Log))
    assert outcome.state.ledger.total.input == 1010


async def test_malformed_tool_arguments_go_back_to_the_model_as_a_tool_error(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
         "worker": [{"tool_calls": [{"id": "bad", "name": "read", "arguments": "{\"path\": "}]},
                    {"tool_calls": [{"id": "worse", "name": "read", "arguments": {"path": 7}}],
                     "expect_tool_result": "bad"},
                    {**text_turn(worker_report()), "expect_tool_result": "worse"}]},
    )  # fmt: skip
    errors = {e.call_id: e.error for e in outcome.of_type(ev.ToolFinished)}
    assert "not valid JSON" in errors["bad"] and "path" in errors["worse"]
    worker_calls = [c for c in outcome.provider.calls if c.role == "worker"]
    assert worker_calls[1].messages[-1]["role"] == "tool" and "not valid JSON" in worker_calls[1].messages[-1]["content"]


async def test_a_missing_api_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    outcome = await play(
        tmp_path, {"worker": [text_turn("unused")]}, settings={"analyst": {"model": "openai/gpt-5-mini"}},
        answer=sending("abort"),
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert "OPENAI_API_KEY" in gate.body
    (attempt,) = outcome.of_type(ev.LlmAttempt)
    assert attempt.outcome == "auth_error"


async def test_an_unknown_model_says_so(tmp_path):
    outcome = await play(
        tmp_path, {"worker": [text_turn("unused")]}, settings={"analyst": {"model": "no-such-model-anywhere"}},
        answer=sending("abort"),
    )  # fmt: skip
    (gate,) = outcome.state.gates.values()
    assert "no-such-model-anywhere" in gate.body and "provider" in gate.body


async def test_an_unpriced_model_says_cost_unknown_in_the_step_report(tmp_path):
    outcome = await play(
        tmp_path,
        {"analyst": [text_turn(analyst("ABORT"))]},
        prices={"analyst": None},
    )  # fmt: skip
    report = (outcome.writer.paths.steps_dir / "0001_analyst_plan.md").read_text()
    assert "- Cost: cost unknown" in report


# --- restarting --------------------------------------------------------------------------------------------------


async def test_a_restarted_engine_records_the_turn_in_flight_as_interrupted_and_redoes_it(tmp_path):
    import asyncio

    from aw_tui.engine.launch import scripted_calls_made
    from aw_tui.engine.orchestrator import EngineOptions, Orchestrator
    from aw_tui.engine.scripted import install_script
    from aw_tui.store.run import RunWriter

    roles = {
        "analyst": [text_turn(analyst("NEEDS_WORKER")), text_turn(analyst("ABORT"))],
        "worker": [{"tool_calls": [{"id": "t", "name": "bash", "arguments": {"command": "sleep 30"}}],
                    "usage": {"input": 300, "output": 3}},
                   {**text_turn(worker_report()), "expect_tool_result": "t"}],
    }  # fmt: skip

    def stop_in_the_tool(event, writer):
        if isinstance(event, ev.ToolStarted):
            raise_in_loop.set()

    raise_in_loop = asyncio.Event()
    run = asyncio.ensure_future(play(tmp_path, roles, on_event=stop_in_the_tool, timeout_s=30))
    await raise_in_loop.wait()
    run.cancel()  # the process going away mid-turn
    with pytest.raises(asyncio.CancelledError):
        await run
    (run_dir,) = (tmp_path / "runs").iterdir()
    before = open_run(run_dir).state
    assert before.agents["s0002-worker"].status == "interrupted"
    roles["worker"][0] = {"tool_calls": [{"id": "t", "name": "bash", "arguments": {"command": "true"}}],
                          "usage": {"input": 300, "output": 3}}  # fmt: skip
    provider = install_script({"roles": roles})
    writer = RunWriter.attach(run_dir)
    provider.skip(scripted_calls_made(writer.state))
    try:
        final = await Orchestrator(writer, options=EngineOptions(watch=False, control_poll_s=0.01)).run()
    finally:
        writer.close()
    after = writer.state
    assert final == "ABORTED"
    assert after.agents["s0002-worker.2"].status == "done"
    assert [(s.step, s.role) for s in after.steps] == [(1, "analyst"), (2, "worker"), (3, "analyst")]
    # Interrupted usage stays billed once; the redo is billed on top of it.
    assert after.ledger.by_role()["worker"].input == 300 + 300 + 1000
    assert os.path.exists(run_dir / "steps" / "0002_worker_result.md")
    assert isinstance(run_dir, Path)


async def test_auto_approval_never_answers_a_failed_turn(tmp_path):
    """A standing --auto-approve must not retry a permanent failure (a bad key) without end."""
    import asyncio

    from rich.console import Console

    from aw_tui.engine.launch import start_run
    from aw_tui.headless import drive
    from aw_tui.model.settings import Settings

    script = tmp_path / "s.json"
    script.write_text('{"roles": {"analyst": [{"error": "auth_error"}], "worker": []}}')
    (tmp_path / "ws").mkdir()
    settings = Settings.model_validate({"analyst": {"model": "scripted/analyst"}, "worker": {"model": "scripted/worker"}})
    writer = start_run("t", settings, workspace=tmp_path / "ws", runs_root=tmp_path / "runs", script=script)
    console = Console(file=open(os.devnull, "w"))
    task = asyncio.ensure_future(drive(writer, console, auto_approve=["operator_input", "confirm_done"]))
    for _ in range(400):
        await asyncio.sleep(0.025)
        if writer.state.open_gates:
            break
    await asyncio.sleep(0.3)  # time enough for an automatic approval to have gone through, had one been sent
    (gate,) = writer.state.gates.values()
    assert gate.is_open and "failure" in gate.options
    assert list(writer.state.agents) == ["s0001-analyst"]
    send(writer, "abort")
    assert await asyncio.wait_for(task, 10) == 1
    writer.close()
