"""Foundation figures: reducer throughput, opening a large run, tailing appended events.

    python benchmarks/store_bench.py [--events 100000] [--repeat 5]

Targets (issue 2): reduce >= 200,000 events/s; open a 100,000-event run <= 1 s; tail 1,000 appended events
<= 10 ms. Each figure is the median of --repeat runs, printed as a table and returned by measure().
Opening is measured as users meet it (run.json's checkpoint plus the events written after it) and, for
comparison, as a full replay of every event, which is what happens when run.json is missing or stale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aw_tui.model import events as ev  # noqa: E402
from aw_tui.model.events import event_to_json  # noqa: E402
from aw_tui.model.state import RunState, reduce_all  # noqa: E402
from aw_tui.store.eventlog import EventReader  # noqa: E402
from aw_tui.store.jsonl import JsonlAppender  # noqa: E402
from aw_tui.store.layout import RunPaths  # noqa: E402
from aw_tui.store.run import open_run, write_derived_files  # noqa: E402
from kit import add_json_option, report  # noqa: E402 (benchmarks/ is on sys.path when run as a script)


def realistic_events(count: int, start_seq: int = 1) -> list[ev.Event]:
    """A run's worth of events in the proportions a real run has: per turn, a phase, an agent, several model
    calls and tool calls, a step report; now and then a gate and a log line."""
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out: list[ev.Event] = []
    if start_seq == 1:
        out.append(ev.RunCreated(run_id="bench", task="benchmark", settings={"analyst": {"model": "m1"}}))
    turn = start_seq
    while len(out) < count:
        role = "analyst" if turn % 2 else "worker"
        phase, agent = f"p{turn}", f"a{turn}"
        out += [ev.PhaseStarted(id=phase, title=f"Step {turn}"),
                ev.AgentStarted(id=agent, role=role, model=f"{role}-model", phase=phase, step=turn)]  # fmt: skip
        for call in range(3):
            out.append(ev.AgentUsage(agent=agent, input=4000 + call, output=300, cache_read=1000, cost=0.002))
            out += [ev.ToolStarted(agent=agent, call_id=f"{agent}-{call}", tool="bash", summary="pytest -q"),
                    ev.ToolFinished(agent=agent, call_id=f"{agent}-{call}", tool="bash", duration_ms=120.5)]  # fmt: skip
        out += [ev.AgentFinished(id=agent, report=f"steps/{turn:04d}.md"),
                ev.StepReport(step=turn, role=role, phase="WORKER_RUN", path=f"steps/{turn:04d}.md", agent=agent),
                ev.PhaseFinished(id=phase)]  # fmt: skip
        if turn % 10 == 0:
            out += [ev.GateOpened(id=f"g{turn}", kind="operator_input", title="question?"),
                    ev.GateResolved(id=f"g{turn}", decision="answered", text="answer"),
                    ev.Log(message=f"turn {turn} done")]  # fmt: skip
        turn += 1
    out = out[:count]
    return [e.model_copy(update={"seq": start_seq + i, "ts": t0 + timedelta(seconds=i)}) for i, e in enumerate(out)]


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(n_events: int = 100_000, repeat: int = 5) -> list[dict]:
    events = realistic_events(n_events)
    reduce_s = _median_seconds(lambda: reduce_all(RunState(), events), repeat)

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "aw_bench"
        run.mkdir()
        lines = "".join(json.dumps(event_to_json(e), separators=(",", ":")) + "\n" for e in events)
        (run / "events.jsonl").write_text(lines, encoding="utf-8")
        size = (run / "events.jsonl").stat().st_size
        size_mb = size / 1e6
        replay_s = _median_seconds(lambda: open_run(run, use_checkpoint=False), repeat)
        # As a writer leaves it: a checkpoint in run.json, then 1,000 events appended after it.
        head = events[:-1000]
        write_derived_files(RunPaths.for_run_dir(run), reduce_all(RunState(), head),
                            events_bytes=len("".join(lines.splitlines(keepends=True)[:-1000]).encode()),
                            events_lines=len(head), now=events[-1].ts)  # fmt: skip
        open_s = _median_seconds(lambda: open_run(run), repeat)
        assert open_run(run).state == open_run(run, use_checkpoint=False).state

        # Tail: a reader that has read everything, then a writer appends 1,000 events in one batch.
        tail_read, tail_reduce = [], []
        reader = EventReader(run / "events.jsonl")
        state = reduce_all(RunState(), reader.read_new())
        next_seq = n_events + 1
        with JsonlAppender(run / "events.jsonl") as appender:
            for _ in range(repeat):
                batch = realistic_events(1000, start_seq=next_seq)
                next_seq += 1000
                appender.append([event_to_json(e) for e in batch])
                started = time.perf_counter()
                new = reader.read_new()
                read_done = time.perf_counter()
                state = reduce_all(state, new)
                tail_read.append(read_done - started)
                tail_reduce.append(time.perf_counter() - started)
                assert len(new) == 1000 and state.last_seq == next_seq - 1

    return [
        {"figure": "reduce throughput", "value": n_events / reduce_s, "unit": "events/s", "target": 200_000,
         "met": n_events / reduce_s >= 200_000},
        {"figure": f"open a {n_events:,}-event run ({size_mb:.1f} MB), checkpoint + 1,000 newer events",
         "value": open_s * 1000, "unit": "ms", "target": 1000, "met": open_s <= 1.0},
        {"figure": f"open a {n_events:,}-event run, full replay (no run.json)", "value": replay_s * 1000,
         "unit": "ms", "target": None, "met": None},
        {"figure": "tail 1,000 appended events (read+parse)", "value": statistics.median(tail_read) * 1000,
         "unit": "ms", "target": 10, "met": statistics.median(tail_read) <= 0.010},
        {"figure": "tail 1,000 appended events (read+parse+reduce)", "value": statistics.median(tail_reduce) * 1000,
         "unit": "ms", "target": None, "met": None},
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    add_json_option(parser)
    args = parser.parse_args()
    return report(measure(args.events, args.repeat), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
