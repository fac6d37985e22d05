"""Archiving a run, and the one-line description of every event type."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from aw_tui.engine.orchestrator import archive_run
from aw_tui.model import events as ev
from aw_tui.model.describe import describe_event
from aw_tui.store.run import RunWriter

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def test_archive_copies_the_run_into_a_numbered_folder_per_day(tmp_path):
    first = RunWriter.create(tmp_path / "runs", task="first")
    second = RunWriter.create(tmp_path / "runs", task="second")
    try:
        one = archive_run(first.paths.root, None, NOW)
        two = archive_run(second.paths.root, None, NOW)
    finally:
        first.close()
        second.close()
    day = NOW.astimezone().strftime("%Y/%m/%d")
    assert one == tmp_path / "runs" / "archive" / day / f"001_{first.paths.root.name}"
    assert two.name == f"002_{second.paths.root.name}"
    assert (one / "events.jsonl").read_bytes() == (first.paths.root / "events.jsonl").read_bytes()
    assert not (one / ".lease.lock").exists()
    assert first.paths.root.exists()  # a copy, not a move


def test_archive_refuses_an_existing_destination(tmp_path):
    writer = RunWriter.create(tmp_path / "runs", task="t")
    writer.close()
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        archive_run(writer.paths.root, str(tmp_path / "taken"), NOW)


SAMPLES = [
    ev.RunCreated(run_id="r", task="t"),
    ev.RunStateChanged(state="FINISHED", reason="done"),
    ev.RunPaused(), ev.RunResumed(), ev.MemoUpdated(next_action="x"),
    ev.PhaseStarted(id="p", title="P"), ev.PhaseFinished(id="p"), ev.PhaseDeclared(id="q", title="Q"),
    ev.WorkflowStats(agent_calls=3, cached_calls=1, output_tokens=30),
    ev.AgentStarted(id="a", role="worker", model="m"), ev.AgentFinished(id="a", status="failed", error="boom"),
    ev.AgentUsage(agent="a", input=10, output=2, cost=0.0, cost_known=False),
    ev.ToolStarted(agent="a", call_id="c", tool="bash", summary="bash ls"),
    ev.ToolFinished(agent="a", call_id="c", tool="bash", refused=True, error="outside"),
    ev.LlmAttempt(agent="a", attempt=1, model="m", outcome="rate_limited", error="slow down", retry_in_s=2.0),
    ev.StepReport(step=1, role="worker", phase="result", path="steps/0001_worker_result.md"),
    ev.Compaction(status="failed", error="x"),
    ev.GateOpened(id="g", kind="budget", title="Budget"), ev.GateResolved(id="g", decision="approved"),
    ev.OperatorNoted(text="hi"), ev.CommandAcknowledged(command_id="c", cmd="pause"),
    ev.CommandRejected(command_id="c", cmd="pause", reason="already paused"), ev.Log(message="m"),
]  # fmt: skip


def test_every_event_type_has_a_description():
    assert {type(e) for e in SAMPLES} == set(ev.KNOWN_EVENT_CLASSES)
    lines = dict((type(e).__name__, describe_event(e)) for e in SAMPLES)
    assert lines["AgentUsage"] == ("quiet", "a used 10 in, 2 out, cost unknown")
    assert lines["ToolFinished"] == ("warn", "a bash refused: outside")
    assert lines["LlmAttempt"] == ("warn", "a model call 1 rate_limited: slow down; retrying in 2.0 s")
    assert lines["RunStateChanged"] == ("good", "state FINISHED: done")
    assert describe_event(ev.UnknownEvent(type="future.thing"))[1].startswith("future.thing")
