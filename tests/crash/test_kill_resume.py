"""kill -9 at twenty seeded points of the offline demo, then `aw-tui resume`: the run ends as if never killed.

Each case runs `aw-tui demo --headless --auto-approve all` as a real process and SIGKILLs it when events.jsonl
reaches a line number drawn by random.Random(seed), in one of three ways (seed % 3):

- exact     the process kills itself right after the append that reaches that line (zygote.py), so the case
            crashes at precisely that point: between two writes of a turn, with a gate open and its approval
            not yet sent, after a turn's answer and before its step report...
- torn      it dies in the middle of that append: the batch's earlier lines land whole, the line itself only in
            part (a write cut short, as by a kill during a multi-page write or a power cut)
- external  this test polls the file and kills the process from outside when it has that many lines; where the
            kill lands is up to the scheduler, as for a real operator's kill -9

Then `aw-tui resume RUN --headless --auto-approve all` must finish the run, and the run must MATCH an
uninterrupted run of the same script (the reference, a real `python -m aw_tui demo`):

- final state FINISHED, no open gate, the same memo, the same approved (kind, command) gates;
- the same steps (number, role, phase, model, state after, usage) in the state and in ledger.json, each once;
- the same step files in steps/ with the same header, token usage and final answer; a redone turn's file says
  that an earlier try was interrupted, and only a redone turn's file says so;
- ledger totals by (role, model) equal the reference's plus exactly what the interrupted tries spent, and
  ledger.json lists those tries under "interrupted": nothing counted twice, nothing lost;
- the interrupted tries are precisely the turns that had started and had no step report when the kill came, each
  recorded with an agent.finished "interrupted" event;
- the same number of model calls outside the interrupted tries, and the same analyst conversation (a redone turn's
  messages are in it once);
- events.jsonl holds whole JSON lines with seq 1..n (a torn line was moved to artifacts/recovered/ and logged),
  ledger.json and run.json agree with the events, and the lease was released;
- the demo's project ends fixed as in the reference.

Six named points (NAMED_POINTS) add the places where a kill once broke the resume, found by event in the
reference run so that they stay put if the demo script changes.

Time: importing litellm takes seconds, so the `aw-tui` processes are forked from a zygote that has loaded it
(zygote.py), and the cases run two at a time (a module fixture; each test reports its own case).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aw_tui.engine.orchestrator import AnalystSession
from aw_tui.model.ledger import ZERO_USAGE, Usage
from aw_tui.model.state import RunState
from aw_tui.store.run import open_run, rebuild
from tests.crash.kit import (
    DEMO_ARGS,
    Zygote,
    assert_seqs_whole,
    complete_lines,
    event_lines,
    one_line,
    only_run,
    start_real_demo,
)

CASES = 20
MODES = ("exact", "torn", "external")
LANES = 2  # cases run side by side: the VM this suite has to fit has two cores


@dataclass
class Reference:
    run_dir: Path
    state: RunState
    events: list[dict[str, Any]]
    usage_events: Counter[str]

    @property
    def lines(self) -> int:
        return len(self.events)

    def line_of(self, nth: int = 1, **fields: Any) -> int:
        """The line number of the nth event with these fields (type="step.report", role="worker", ...)."""
        found = [number for number, event in enumerate(self.events, 1)
                 if all(event.get(key) == value for key, value in fields.items())]  # fmt: skip
        assert len(found) >= nth, f"the reference run has no event {fields} (#{nth})"
        return found[nth - 1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, zygote) -> Reference:
    """One uninterrupted demo, by a real `python -m aw_tui` (started while the zygote loads, on the other core)."""
    home = tmp_path_factory.mktemp("reference")
    process, log = start_real_demo(home)
    try:
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text(encoding="utf-8", errors="replace")
    assert status == 0, f"the reference demo failed ({status}):\n{output}"
    run_dir = only_run(home / "runs")
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.state == "FINISHED"
    lines = event_lines(run_dir)
    return Reference(run_dir, state, lines, _usage_events(lines, set()))


@dataclass(frozen=True)
class KillPoint:
    mode: str
    at_line: int
    cut: float  # torn: the share of the line's bytes that reach the file

    def describe(self) -> str:
        return f"{self.mode} kill at line {self.at_line}" + (f" ({self.cut:.0%} of it written)" if self.mode == "torn" else "")


def kill_point(seed: int, reference_lines: int) -> KillPoint:
    rng = random.Random(seed)
    # From line 2: a run whose very first line is torn was never created (its own test below). Up to the line
    # before the last: after the last one there is nothing left to resume (external kills may still land there).
    return KillPoint(MODES[seed % len(MODES)], rng.randint(2, reference_lines - 1), rng.uniform(0.05, 0.95))


# Points where a kill once broke the resume, found by line in the reference run (so they follow the demo script).
NAMED_POINTS = {
    # The analyst answered; its step report was never written. The turn is redone, not skipped.
    "after the analyst's answer, before its step report": ("exact", {"type": "agent.finished"}, 0.0),
    # The engine dies with the command gate open, before --auto-approve sent the approval.
    "with the command gate open, before the approval": ("exact", {"type": "gate.opened", "kind": "dangerous_command"}, 0.0),
    "with the done gate open, before the approval": ("exact", {"type": "gate.opened", "kind": "confirm_done"}, 0.0),
    # Commits torn after their step report: the decision that went with it must not be lost.
    "plan commit torn after the step report": ("torn", {"type": "memo.updated"}, 0.5),
    "worker commit torn after the step report": ("torn", {"type": "run.state", "state": "ANALYST_REVIEWING"}, 0.5),
    "review commit torn before the done gate": ("torn", {"type": "gate.opened", "kind": "confirm_done"}, 0.5),
}


@pytest.fixture(scope="module")
def kill_cases(request, tmp_path_factory, zygote, reference) -> dict[str, BaseException | None]:
    """Every selected case, killed and resumed two at a time (one per core; the cases are independent), each
    with what it raised, for its own test to report."""
    selected = {item.callspec.params.get("seed", item.callspec.params.get("name"))
                for item in request.session.items if item.module is request.module and hasattr(item, "callspec")}  # fmt: skip
    points = {f"seed {seed}": kill_point(seed, reference.lines) for seed in range(CASES) if seed in selected}
    for name, (mode, fields, cut) in NAMED_POINTS.items():
        if name in selected:
            points[name] = KillPoint(mode, reference.line_of(**fields), cut)

    def play(case: str) -> BaseException | None:
        try:
            home = tmp_path_factory.mktemp("kill")
            kill_and_resume(points[case], zygote, reference, home, context=case)
        except BaseException as failure:  # noqa: BLE001 - handed to the case's test
            return failure
        return None

    with ThreadPoolExecutor(max_workers=LANES) as lanes:
        return dict(zip(points, lanes.map(play, points)))


@pytest.mark.parametrize("seed", range(CASES))
def test_a_run_killed_at_a_seeded_point_resumes_to_the_same_outcome(seed, kill_cases):
    failure = kill_cases[f"seed {seed}"]
    if failure is not None:
        raise failure


@pytest.mark.parametrize("name", NAMED_POINTS)
def test_a_run_killed_at_a_named_point_resumes_to_the_same_outcome(name, kill_cases):
    failure = kill_cases[name]
    if failure is not None:
        raise failure


def kill_and_resume(point: KillPoint, zygote: Zygote, reference: Reference, tmp_path: Path, *, context: str) -> None:
    demo = ["demo", *DEMO_ARGS, "--runs-root", str(tmp_path / "runs")]
    if point.mode == "external":
        killed = zygote.run_until(demo, tmp_path, lambda: _lines_so_far(tmp_path / "runs") >= point.at_line)
    else:
        killed = zygote.run(demo, tmp_path, kill={"at_line": point.at_line, "torn": point.mode == "torn",
                                                  "cut": point.cut})  # fmt: skip
    context = f"{context}: {point.describe()}"
    run_dir = only_run(tmp_path / "runs")
    if killed.status != -9:
        # Only an external kill can come too late; the run then simply finished.
        assert point.mode == "external" and killed.status == 0, f"{context}: the demo ended: {killed}"
    if point.mode == "torn":
        assert not (run_dir / "events.jsonl").read_bytes().endswith(b"\n"), f"{context}: the kill left no torn line"

    at_kill = open_run(run_dir, use_checkpoint=False).state  # a reader takes the torn file as it is
    turns_started = {a.id for a in at_kill.agents.values() if a.parent is None}
    interrupted_expected = turns_started - {ref.agent for ref in at_kill.steps}

    resumed = zygote.run(["resume", str(run_dir), *DEMO_ARGS], tmp_path)
    if at_kill.is_terminal:
        assert resumed.status == 1 and "has ended (FINISHED)" in one_line(resumed.errors), f"{context}: {resumed}"
        rebuild(run_dir)  # a process killed after its last event left its derived files a step behind
    else:
        assert resumed.status == 0, f"{context}: resume failed: {resumed}"
        assert "Traceback" not in resumed.output + resumed.errors, f"{context}: {resumed}"
    assert_same_outcome(run_dir, reference, interrupted_expected, torn=point.mode == "torn", context=context)


def test_a_run_whose_first_line_was_torn_is_not_resumed_with_made_up_settings(zygote, tmp_path):
    """Without run.created there is no task and no settings: resume must say so, not run default models."""
    demo = ["demo", *DEMO_ARGS, "--runs-root", str(tmp_path / "runs")]
    killed = zygote.run(demo, tmp_path, kill={"at_line": 1, "torn": True, "cut": 0.5})
    assert killed.status == -9
    run_dir = only_run(tmp_path / "runs")
    resumed = zygote.run(["resume", str(run_dir), *DEMO_ARGS], tmp_path)
    assert resumed.status == 1, str(resumed)
    assert one_line(resumed.errors).endswith("the run's first event (run.created) is missing, so there is nothing "
                                             "to continue; start the run again")  # fmt: skip
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.agents == {} and state.ledger.total == ZERO_USAGE  # no model was called
    assert [line["type"] for line in event_lines(run_dir)] == ["log"]  # the repair note, nothing else
    assert not (run_dir / "lease.json").exists()


# --- what "the same outcome" means -------------------------------------------------------------------------------


def assert_same_outcome(
    run_dir: Path, reference: Reference, interrupted_expected: set[str], *, torn: bool, context: str
) -> None:
    ref = reference.state
    lines = event_lines(run_dir)
    assert_seqs_whole(lines)
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.malformed_lines == 0 and not state.problems, f"{context}: {state.problems}"

    # Final state.
    assert state.state == "FINISHED", context
    assert state.open_gates == [], context
    assert state.memo == ref.memo, context
    assert _approved_gates(state) == _approved_gates(ref), context

    # The interrupted tries: exactly the turns cut off, recorded as such.
    interrupted = {a.id for a in state.agents.values() if a.status == "interrupted"}
    assert interrupted == interrupted_expected, context
    finished_as_interrupted = {line["id"] for line in lines
                               if line["type"] == "agent.finished" and line["status"] == "interrupted"}  # fmt: skip
    assert finished_as_interrupted == interrupted, context
    if interrupted:
        assert any("resumed after an interruption" in log.message for log in state.logs), context

    # Steps, each once, as in the reference.
    assert _steps(state) == _steps(ref), context
    assert [s.agent for s in state.steps] == [s.agent for s in state.ledger.steps], context
    assert not set(s.agent for s in state.steps) & interrupted, context

    # Ledger: the reference's totals plus what the interrupted tries spent, nothing else.
    spent_by_interrupted: dict[tuple[str, str], Usage] = {}
    for agent_id in interrupted:
        agent = state.agents[agent_id]
        key = (agent.role, agent.model)
        spent_by_interrupted[key] = spent_by_interrupted.get(key, ZERO_USAGE) + agent.usage
    assert set(state.ledger.usage) == set(ref.ledger.usage), context
    for key, usage in state.ledger.usage.items():
        expected = ref.ledger.usage[key] + spent_by_interrupted.get(key, ZERO_USAGE)
        assert _tokens(usage) == _tokens(expected), f"{context}: {key}"
        assert usage.cost == pytest.approx(expected.cost, rel=1e-9, abs=1e-12), f"{context}: {key}"
    assert _usage_events(lines, interrupted) == reference.usage_events, f"{context}: model calls counted twice or lost"
    assert _calls_by_role(state, interrupted) == _calls_by_role(ref, set()), context

    # ledger.json and run.json agree with the events.
    ledger = json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))
    assert ledger["total"] == state.ledger.total.to_json(), context
    assert [(s["step"], s["in"], s["out"]) for s in ledger["steps"]] == \
        [(s.step, s.usage.input, s.usage.output) for s in ref.ledger.steps], context  # fmt: skip
    assert {entry["agent"] for entry in ledger["interrupted"]} == interrupted, context
    for field in ("in", "out", "cache_read", "cache_write"):
        recorded = sum(s[field] for s in ledger["steps"]) + sum(e[field] for e in ledger["interrupted"])
        assert recorded == ledger["total"][field], f"{context}: ledger.json {field} does not add up"
    run_json = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert run_json["events_bytes"] == (run_dir / "events.jsonl").stat().st_size, f"{context}: run.json is stale"
    from_checkpoint = open_run(run_dir).state  # run.json's checkpoint plus the events after it
    assert (from_checkpoint.state, from_checkpoint.ledger.total) == (state.state, state.ledger.total), context
    assert not (run_dir / "lease.json").exists(), f"{context}: the lease was not released"

    # Step files: the same files, saying the same; redone turns say so.
    names = sorted(p.name for p in (run_dir / "steps").iterdir())
    assert names == sorted(p.name for p in (reference.run_dir / "steps").iterdir()), context
    redone_steps = {state.agents[a].step for a in interrupted if state.agents[a].parent is None}
    for name in names:
        facts = _step_file_facts((run_dir / "steps" / name).read_text(encoding="utf-8"))
        ref_facts = _step_file_facts((reference.run_dir / "steps" / name).read_text(encoding="utf-8"))
        note = facts.pop("note")
        assert ref_facts.pop("note") is None
        assert facts == ref_facts, f"{context}: {name}"
        step = int(name[:4])
        if step in redone_steps:
            assert note is not None and "was interrupted" in note, f"{context}: {name} does not say it is a redo"
        else:
            assert note is None, f"{context}: {name}: {note}"

    # The analyst's conversation holds each turn once.
    assert _analyst_conversation(run_dir, state) == _analyst_conversation(reference.run_dir, ref), context

    # A torn line was set aside and logged, not dropped silently.
    if torn:
        recovered = list((run_dir / "artifacts" / "recovered").glob("events.jsonl.partial.*"))
        assert len(recovered) == 1 and recovered[0].stat().st_size > 0, context
        assert any("repaired events.jsonl" in log.message for log in state.logs), context

    # The project ends as the reference's did.
    workspace, ref_workspace = Path(state.workspace), Path(ref.workspace)
    assert (workspace / "shop" / "pricing.py").read_text() == (ref_workspace / "shop" / "pricing.py").read_text()
    assert not (workspace / "build").exists(), context


def _lines_so_far(runs_root: Path) -> int:
    return sum(complete_lines(path) for path in runs_root.glob("aw_*/events.jsonl"))


def _usage_events(lines: list[dict[str, Any]], leave_out: set[str]) -> Counter[str]:
    """agent.usage events (one per model call) by role, outside the given agents."""
    roles = {line["id"]: line["role"] for line in lines if line["type"] == "agent.started"}
    return Counter(roles[line["agent"]] for line in lines if line["type"] == "agent.usage" and line["agent"] not in leave_out)


def _calls_by_role(state: RunState, leave_out: set[str]) -> Counter[str]:
    calls: Counter[str] = Counter()
    for agent in state.agents.values():
        if agent.id not in leave_out:
            calls[agent.role] += agent.llm_calls
    return calls


def _tokens(usage: Usage) -> tuple[int, ...]:
    return usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning


def _steps(state: RunState) -> list[tuple[Any, ...]]:
    return [(s.step, s.role, s.phase, s.model, s.thinking_level, s.state_after, _tokens(s.usage), s.usage.cost,
             s.artifact) for s in state.ledger.steps]  # fmt: skip


def _approved_gates(state: RunState) -> set[tuple[str, str | None]]:
    return {(g.kind, g.binding) for g in state.gates.values() if g.status == "approved"}


def _step_file_facts(text: str) -> dict[str, Any]:
    """What a step report says, without what differs between two runs of one script (times, agent ids, paths)."""
    facts: dict[str, Any] = {"note": None}
    section = None
    sections: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
            sections[section] = []
        elif section is not None:
            sections[section].append(line)
        elif line.startswith("- ") and ": " in line:
            key, value = line[2:].split(": ", 1)
            if key not in ("Started", "Finished", "Agent"):
                facts[key] = value
        elif line.startswith("> "):
            facts["note"] = line[2:]
    facts["usage"] = sections.get("Token usage")
    facts["final answer"] = "\n".join(sections.get("Final answer", [])).strip()
    return facts


def _analyst_conversation(run_dir: Path, state: RunState) -> list[tuple[str, Any]]:
    history, _ = AnalystSession(run_dir / "artifacts" / "sessions" / "analyst.jsonl").load(state, "system")
    # Prompts name the run's paths; the replies are the script's, and their number is what would double.
    return [(m["role"], m.get("content") if m["role"] == "assistant" else None) for m in history]
