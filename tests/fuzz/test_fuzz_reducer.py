"""The reducer on any sequence of decoded events: whatever parse_event accepts from a hostile file, in any order
(a gate resolved before it opens, a step reported twice, events after the run ended, unknown agents and types,
repeated and skipped seqs), plus the malformed lines the reader reports between them.

Properties: reducing never raises; applying the events one by one, all at once or in any batches gives the same
state; the input state is never changed; every event is applied once at most (a repeated seq is not billed
twice) and every malformed line is counted; and everything the views, the CLI and the writer derive from the
state (state.md, run.json with its checkpoint, ledger.json, the tables, the command rules) takes it too.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aw_tui.model import events as ev
from aw_tui.model.codec import state_from_json, state_to_json
from aw_tui.model.commands import COMMAND_NAMES, judge_command, new_command
from aw_tui.model.describe import describe_event
from aw_tui.model.ledger import compare_ledgers, step_time_by_model, step_time_by_role, timing_summary, token_table_rows
from aw_tui.model.state import MAX_PROBLEMS, MalformedLine, RunState, reduce, reduce_all
from aw_tui.model.statemd import render_state_md
from aw_tui.model.summary import RunSummary, snapshot_json, summarize

from tests.fuzz.strategies import IDS, decoded_event_streams

FUZZ = settings(max_examples=80, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
NOW = datetime(2026, 4, 2, tzinfo=timezone.utc)


def one_by_one(events: list) -> RunState:
    state = RunState()
    for event in events:
        state = reduce(state, event)
    return state


@FUZZ
@given(events=decoded_event_streams(), cuts=st.lists(st.integers(0, 10**4), max_size=6))
def test_any_events_in_any_batches_reduce_to_the_same_state_without_raising(events, cuts):
    whole = reduce_all(RunState(), events)
    assert one_by_one(events) == whole

    state = RunState()
    bounds = sorted({cut % (len(events) + 1) for cut in cuts} | {0, len(events)})
    for start, end in zip(bounds, bounds[1:]):
        before = state
        frozen = copy.deepcopy(before)
        state = reduce_all(before, events[start:end])
        assert before == frozen  # pure: the batch did not touch the state it started from
    assert state == whole


@FUZZ
@given(events=decoded_event_streams())
def test_each_event_applies_once_and_each_bad_line_is_counted(events):
    state = reduce_all(RunState(), events)

    malformed = [e for e in events if isinstance(e, MalformedLine)]
    applied, last_seq = 0, 0
    for event in events:
        if not isinstance(event, MalformedLine) and event.seq > last_seq:  # a seq at or below the last is a repeat
            applied, last_seq = applied + 1, event.seq
    assert (state.events_applied, state.last_seq, state.malformed_lines) == (applied, last_seq, len(malformed))
    assert state.unknown_events <= applied and len(state.problems) <= MAX_PROBLEMS
    for problem in state.problems:
        assert problem and "\n" not in problem and "\r" not in problem, repr(problem)
    for line in malformed:
        named = any(p.startswith(f"line {line.line_no}: ") for p in state.problems)
        assert named or len(state.problems) == MAX_PROBLEMS, (line, state.problems)


@settings(FUZZ, max_examples=60)
@given(events=decoded_event_streams())
def test_everything_derived_from_any_state_is_built_without_raising(events):
    state = reduce_all(RunState(), events)

    text = render_state_md(state, run_dir="/runs/aw_x", now=NOW)
    assert text.startswith("# Analyst/Worker State\n")
    snapshot = snapshot_json(state, events_bytes=1, events_lines=len(events), lease=None)
    assert RunSummary.from_json(json.loads(json.dumps(snapshot["summary"]))) == summarize(state)
    checkpoint = json.loads(json.dumps(snapshot))["checkpoint"]["state"]  # as run.json stores it
    back = state_from_json(checkpoint)
    # NaN in a run's settings (only a foreign writer puts one there) is never equal to itself: compare as JSON.
    assert json.dumps(state_to_json(back)) == json.dumps(state_to_json(state))
    json.dumps(state.ledger.to_json({"task_id": state.run_id}))

    timing = timing_summary(state.ledger, state.created_at, state.last_event_at)
    timing.rows(), timing.tool_calls_line(), token_table_rows(state.ledger)
    step_time_by_role(state.ledger), step_time_by_model(state.ledger)
    for row in compare_ledgers([state.ledger, RunState().ledger], [1000.0, None]):
        row.formatted(0), row.formatted(1), row.ratio(1), row.best, row.worst
    for event in events:
        if not isinstance(event, MalformedLine):
            level, line = describe_event(event)  # the headless log's line for it
            assert level in ("info", "good", "warn", "bad", "quiet") and "\n" not in line and "\r" not in line

    for name in COMMAND_NAMES:
        for gate_id in (None, *IDS):
            reason = judge_command(state, new_command(name, gate_id=gate_id, text="why", now=NOW))
            assert reason is None or (reason and "\n" not in reason)


def test_the_fuzzed_streams_reach_the_cases_they_are_for():
    """The strategies must keep producing what the properties above are about; a strategy that drifted to only
    malformed lines would leave them passing on nothing."""
    seen: set[str] = set()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(events=decoded_event_streams())
    def look(events):
        state = reduce_all(RunState(), events)
        seen.update(type(e).__name__ for e in events)
        if any(p.startswith("gate.resolved for unknown gate") for p in state.problems):
            seen.add("gate resolved before it opened")
        if any("a second resolution is ignored" in p for p in state.problems):
            seen.add("gate resolved twice")
        if any(p.endswith("missing (gap before seq") or "(gap before seq" in p for p in state.problems):
            seen.add("seq gap")
        if len({e.seq for e in events if not isinstance(e, MalformedLine)}) < sum(
            not isinstance(e, MalformedLine) for e in events
        ):
            seen.add("repeated seq")
        ended = [i for i, e in enumerate(events) if isinstance(e, ev.RunStateChanged) and e.state in ev.TERMINAL_STATES]
        if ended and any(not isinstance(e, MalformedLine) for e in events[ended[0] + 1 :]):
            seen.add("events after the run ended")
        if any(p.startswith("usage for unknown agent") for p in state.problems):
            seen.add("usage of an unknown agent")
        if any(a.id in a.children for a in state.agents.values()):
            seen.add("agent that is its own parent")

    look()
    wanted = {
        "MalformedLine", "UnknownEvent", "RunCreated", "AgentStarted", "AgentUsage", "GateOpened", "GateResolved",
        "StepReport", "Compaction", "ToolFinished", "gate resolved before it opened", "gate resolved twice",
        "seq gap", "repeated seq", "events after the run ended", "usage of an unknown agent",
    }  # fmt: skip
    assert wanted <= seen, wanted - seen
