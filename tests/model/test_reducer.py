import copy
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from aw_tui.model import events as ev
from aw_tui.model.state import MalformedLine, RunState, fold, reduce, reduce_all

from .event_factory import T0, event_streams, stamp


def fold_one_by_one(events):
    state = RunState()
    for event in events:
        state = reduce(state, event)
    return state


@settings(max_examples=150, deadline=None)
@given(events=event_streams(), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_any_batching_equals_one_by_one(events, cuts):
    expected = fold_one_by_one(events)
    state = RunState()
    bounds = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    for start, end in zip(bounds, bounds[1:]):
        state = reduce_all(state, events[start:end])
    assert state == expected


@settings(max_examples=80, deadline=None)
@given(events=event_streams())
def test_reduce_never_changes_its_input(events):
    half = len(events) // 2
    before = fold(events[:half])
    snapshot = copy.deepcopy(before)
    reduce_all(before, events[half:])
    assert before == snapshot


@settings(max_examples=80, deadline=None)
@given(events=event_streams())
def test_replaying_an_overlap_changes_nothing(events):
    state = fold(events)
    assert reduce_all(state, events[len(events) // 2 :]) == state


def build(*events):
    return fold(stamp(list(events)))


def test_agents_nest_under_phases_and_parents():
    state = build(
        ev.RunCreated(run_id="r", task="t"),
        ev.PhaseStarted(id="p1", title="Step 1"),
        ev.PhaseStarted(id="p1a", title="Sub", parent="p1"),
        ev.AgentStarted(id="w", role="worker", model="m", phase="p1"),
        ev.AgentStarted(id="d", role="delegate", model="m2", phase="p1", parent="w"),
        ev.AgentStarted(id="loose", role="scout", model="m2"),
    )
    assert state.root_phases == ["p1"]
    assert state.phases["p1"].phases == ["p1a"]
    assert state.phases["p1"].agents == ["w"]
    assert state.agents["w"].children == ["d"]
    assert state.root_agents == ["loose"]
    assert state.problems == []


def test_agent_status_tokens_tools_and_elapsed():
    state = build(
        ev.AgentStarted(id="w", role="worker", model="m"),
        ev.ToolStarted(agent="w", call_id="1", tool="bash"),
        ev.ToolFinished(agent="w", call_id="1", tool="bash", duration_ms=250, error="exit 1"),
        ev.AgentUsage(agent="w", input=100, output=20, cache_read=5, reasoning=7, cost=0.01, context_tokens=1234),
        ev.AgentUsage(agent="w", input=50, output=10, cost=0.02),
        ev.AgentFinished(id="w", status="failed", error="gave up"),
    )
    agent = state.agents["w"]
    assert (agent.status, agent.tool_count, agent.tool_errors, agent.llm_calls) == ("failed", 1, 1, 2)
    assert agent.usage.input == 150 and agent.usage.reasoning == 7 and agent.context_tokens == 1234
    assert agent.usage.cost == 0.03
    assert agent.elapsed_ms(T0 + timedelta(days=1)) == 5000  # frozen at finish: seq 1 at +1 s, seq 6 at +6 s
    assert state.ledger.by_role()["worker"].input == 150


def test_step_report_makes_a_ledger_step_from_the_agent():
    state = build(
        ev.AgentStarted(id="w", role="worker", model="m2", thinking="low", step=2),
        ev.ToolFinished(agent="w", call_id="1", tool="bash", duration_ms=1500),
        ev.AgentUsage(agent="w", input=20_000, output=3000, cost=0.0123),
        ev.AgentFinished(id="w"),
        ev.StepReport(step=2, role="worker", phase="WORKER_RUN", path="steps/0002_worker_result.md", agent="w",
                      state_after="ANALYST_REVIEWING", context_window=128_000),
    )
    (step,) = state.ledger.steps
    assert (step.model, step.thinking_level, step.usage.input, step.tool_counts) == ("m2", "low", 20_000, {"bash": 1})
    assert step.wall_ms == 3000 and step.tool_ms == 1500 and step.llm_ms == 1500
    assert step.state_after == "ANALYST_REVIEWING"
    assert state.steps[0].path == "steps/0002_worker_result.md"


def test_gates_open_oldest_first_and_resolve_once():
    state = build(
        ev.GateOpened(id="g1", kind="operator_input", title="Which DB?"),
        ev.GateOpened(id="g2", kind="dangerous_command", title="rm -rf build", binding="rm -rf build"),
        ev.GateResolved(id="g1", decision="answered", text="Use SQLite", command_id="c1"),
        ev.GateResolved(id="g1", decision="rejected"),
    )
    assert [g.id for g in state.open_gates] == ["g2"]
    assert state.gates["g1"].status == "answered" and state.gates["g1"].text == "Use SQLite"
    assert state.notes[-1].text == "Use SQLite"
    assert "already answered" in state.problems[-1]


def test_state_pause_and_commands():
    state = build(
        ev.RunStateChanged(state="WORKER_RUNNING"),
        ev.RunPaused(command_id="c1"),
        ev.CommandAcknowledged(command_id="c1", cmd="pause"),
        ev.CommandRejected(command_id="c2", cmd="approve", reason="gate g9 does not exist"),
    )
    assert state.state == "WORKER_RUNNING" and state.paused
    assert state.commands == {"c1": ("acknowledged", ""), "c2": ("rejected", "gate g9 does not exist")}
    assert reduce(state, ev.RunResumed(seq=5, ts=T0)).paused is False


def test_malformed_unknown_duplicate_and_gap_are_counted_not_fatal():
    events = stamp([ev.RunCreated(run_id="r", task="t"), ev.UnknownEvent(type="future.thing")])
    state = reduce_all(RunState(), [*events, MalformedLine(3, 120, "invalid JSON"), events[0]])
    state = reduce(state, ev.Log(seq=7, ts=T0, message="late"))
    assert (state.malformed_lines, state.unknown_events, state.last_seq) == (1, 1, 7)
    assert state.problems == ["line 3: invalid JSON", "events 3..6 are missing (gap before seq 7)"]
    assert state.task == "t"


def test_references_to_unknown_ids_are_problems():
    state = build(
        ev.AgentUsage(agent="nobody", input=5),
        ev.AgentFinished(id="nobody"),
        ev.GateResolved(id="g0", decision="approved"),
    )
    assert state.ledger.by_role()["other"].input == 5
    assert len(state.problems) == 3


def test_a_turns_wait_for_its_own_gates_is_not_model_time():
    from aw_tui.model.codec import state_from_json, state_to_json

    state = build(
        ev.AgentStarted(id="w", role="worker", model="m2", step=2),  # +1 s
        ev.GateOpened(id="g1", kind="dangerous_command", title="rm -rf build", requested_by="w"),  # +2 s
        ev.GateOpened(id="g2", kind="operator_input", title="someone else's", requested_by="a"),  # +3 s
        ev.GateResolved(id="g2", decision="answered", text="x"),  # +4 s
        ev.GateResolved(id="g1", decision="approved"),  # +5 s: the worker waited 3 s
        ev.ToolFinished(agent="w", call_id="1", tool="bash", duration_ms=1000),  # +6 s
        ev.AgentFinished(id="w"),  # +7 s
        ev.StepReport(step=2, role="worker", phase="WORKER_RUN", path="steps/0002_worker_result.md", agent="w"),
    )
    (step,) = state.ledger.steps
    assert (step.wall_ms, step.tool_ms, step.operator_wait_ms, step.llm_ms) == (6000, 1000, 3000, 2000)
    assert step.to_json()["operator_wait_ms"] == 3000
    (restored,) = state_from_json(state_to_json(state)).ledger.steps  # the checkpoint keeps it
    assert restored.operator_wait_ms == 3000 and restored.llm_ms == 2000
