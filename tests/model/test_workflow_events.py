"""The events a workflow run adds: phase.declared (pending phases), workflow.stats, and WORKFLOW_RUNNING.

Includes pi-loom's panel reducer cases (reference/seeds.md §6.1 case 12) as RunState sees them.
"""

from __future__ import annotations

import json
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from aw_tui.model import events as ev
from aw_tui.model.codec import state_from_json, state_to_json
from aw_tui.model.describe import describe_event
from aw_tui.model.state import fold

from .event_factory import T0, event_streams, stamp


def build(*events):
    return fold(stamp(list(events)))


def test_declared_phases_are_pending_until_they_start_and_then_done_in_turn():
    declared = [ev.PhaseDeclared(id="scope", title="Scope"), ev.PhaseDeclared(id="search", title="Search")]
    state = build(*declared)
    assert [(p.title, p.status, p.started_at) for p in state.phases.values()] == [
        ("Scope", "pending", None), ("Search", "pending", None)]  # fmt: skip
    state = build(*declared, ev.PhaseStarted(id="scope", title="Scope"))
    assert state.phases["scope"].status == "active" and state.phases["scope"].started_at is not None
    assert state.phases["search"].status == "pending"
    state = build(*declared, ev.PhaseStarted(id="scope", title="Scope"), ev.PhaseFinished(id="scope"),
                  ev.PhaseStarted(id="search", title="Search"))  # fmt: skip
    assert (state.phases["scope"].status, state.phases["search"].status) == ("done", "active")
    assert state.root_phases == ["scope", "search"]


def test_an_undeclared_phase_is_added_once_and_a_second_declaration_changes_nothing():
    state = build(ev.PhaseStarted(id="extra", title="Extra"), ev.PhaseStarted(id="extra", title="Extra"),
                  ev.PhaseDeclared(id="extra", title="Extra"))  # fmt: skip
    assert state.root_phases == ["extra"] and state.phases["extra"].status == "active"


def test_agents_under_a_phase_with_elapsed_tokens_and_tools():
    events = stamp([
        ev.PhaseDeclared(id="p", title="Work"), ev.PhaseStarted(id="p", title="Work"),
        ev.AgentStarted(id="a", role="workflow", model="m", phase="p", label="inspect:x"),
        ev.AgentUsage(agent="a", input=50, output=1200),
        *[ev.ToolFinished(agent="a", call_id=f"c{i}", tool="read") for i in range(3)],
        ev.AgentFinished(id="a", status="done"),
        ev.AgentStarted(id="b", role="workflow", model="m", phase="p", label="inspect:y"),
        ev.AgentFinished(id="b", status="failed", error="no"),
        ev.AgentStarted(id="c", role="workflow", model="m", phase="p", label="inspect:z"),
        ev.AgentStarted(id="d", role="workflow", model="m", phase="p", label="refused one"),
        ev.AgentFinished(id="d", status="refused", error="token budget exhausted"),
    ])
    events[7] = events[7].model_copy(update={"ts": events[2].ts + timedelta(seconds=5)})  # a finished 5 s in
    state = fold(events)
    a = state.agents["a"]
    assert a.elapsed_ms(T0) == 5000 and a.usage.output == 1200 and a.tool_count == 3 and a.status == "done"
    assert [state.agents[x].status for x in state.phases["p"].agents] == ["done", "failed", "running", "refused"]
    assert state.ledger.by_role()["workflow"].output == 1200


def test_workflow_stats_land_in_the_state_and_a_workflow_run_has_its_own_state():
    stats = ev.WorkflowStats(agent_calls=26, cached_calls=26, output_tokens=630, total_tokens=1930, cost=0.5)
    state = build(ev.RunCreated(run_id="r", task="t", kind="workflow"),
                  ev.RunStateChanged(state="WORKFLOW_RUNNING"), stats)  # fmt: skip
    assert state.kind == "workflow" and state.state == "WORKFLOW_RUNNING" and not state.is_terminal
    assert state.workflow_stats["agent_calls"] == 26 and state.workflow_stats["output_tokens"] == 630
    level, text = describe_event(stats)
    assert level == "info" and "26 agent call(s) (26 from the journal)" in text and "630 output tokens" in text


def test_old_lines_read_as_before_and_new_fields_default():
    old = {"seq": 1, "ts": "2026-01-01T00:00:00Z", "type": "phase.started", "id": "p", "title": "T"}
    assert ev.parse_event(old) == ev.PhaseStarted(seq=1, ts=ev.parse_event(old).ts, id="p", title="T")
    minimal = ev.parse_event({"seq": 2, "ts": "2026-01-01T00:00:00Z", "type": "workflow.stats"})
    assert isinstance(minimal, ev.WorkflowStats) and minimal.agent_calls == 0 and minimal.cost_known


_workflow_events = st.lists(st.one_of(
    st.builds(ev.PhaseDeclared, id=st.sampled_from(["p0", "p1", "w1"]), title=st.sampled_from(["A", "B"])),
    st.builds(ev.WorkflowStats, agent_calls=st.integers(0, 50), cached_calls=st.integers(0, 50),
              output_tokens=st.integers(0, 9000), cost=st.sampled_from([0.0, 0.25]), cost_known=st.booleans()),
    st.just(ev.RunStateChanged(state="WORKFLOW_RUNNING")),
), max_size=8)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(events=event_streams(max_size=30), extra=_workflow_events, at=st.integers(0, 30))
def test_checkpoints_with_workflow_events_round_trip(events, extra, at):
    mixed = [e.model_copy(update={"seq": 0}) for e in events]
    mixed[at:at] = extra
    state = fold(stamp(mixed))
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state
