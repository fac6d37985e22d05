"""The run directory as a whole: writer and readers agree, bad inputs give clear messages, legacy runs stay
read-only, rebuild recreates the derived files, a full disk leaves a consistent log."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aw_tui
from aw_tui.model import events as ev
from aw_tui.model.state import RunState, reduce_all
from aw_tui.model.summary import summarize
from aw_tui.store import run as run_module
from aw_tui.store.eventlog import EventLogDamaged, EventReader
from aw_tui.store.layout import RunPaths
from aw_tui.store.lease import LeaseHeldError, lease_status
from aw_tui.store.run import (
    ReadOnlyRunError,
    RunError,
    RunWriter,
    list_step_files,
    open_run,
    read_step_report,
    rebuild,
)

from ..model.event_factory import event_streams

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
PROJECT_ROOT = str(Path(aw_tui.__file__).resolve().parents[1])


class StepClock:
    """Each reading is 1.5 s after the previous one: deterministic, and ts differ between batches."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1500)
        return self.now


def unstamped(event: ev.Event) -> ev.Event:
    """An event as the engine builds it: the writer stamps seq and ts."""
    return event.model_copy(update={"seq": 0, "ts": ev.EPOCH})


def new_run(root: Path, **kwargs) -> RunWriter:
    return RunWriter.create(root, task="fix the flaky test", clock=StepClock(), **kwargs)


def batches(items: list, cuts: list[int]) -> list[list]:
    bounds = sorted({c % (len(items) + 1) for c in cuts} | {0, len(items)})
    return [items[a:b] for a, b in zip(bounds, bounds[1:])]


def tree(root: Path) -> dict[str, object]:
    """Every entry under root: file bytes, symlink targets, directories; for "nothing was written" checks."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = ("symlink", os.readlink(path))
            elif path.is_dir():
                out[key] = "dir"
            else:
                out[key] = path.read_bytes()
    return out


def append_raw(path: Path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def raw_event(seq: int, type_: str, **fields: object) -> bytes:
    return json.dumps({"seq": seq, "ts": "2026-04-01T13:00:00Z", "type": type_, **fields}).encode() + b"\n"


def events_fd(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").endswith("events.jsonl")
    except OSError:
        return False


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- 1. the writer's state is what every reader rebuilds ---------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_streams(max_size=40), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_reopening_a_run_gives_the_writers_live_state(events: list, cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as root:
        writer = new_run(Path(root))
        try:
            for batch in batches([unstamped(e) for e in events[1:]], cuts):
                writer.emit(*batch)
            assert open_run(writer.paths.root).state == writer.state
        finally:
            writer.close()
        reopened = open_run(writer.paths.root)
        assert reopened.state == writer.state
        assert reopened.state.last_seq == len(events)  # created + the rest, no gaps
        assert not reopened.legacy


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_streams(max_size=40), cuts=st.lists(st.integers(0, 200), max_size=6), data=st.data())
def test_a_tailing_reader_ends_with_the_writers_state(events: list, cuts: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as root:
        writer = new_run(Path(root))
        try:
            reader = EventReader(writer.paths.events)
            opened = open_run(writer.paths.root)  # the reader a UI holds: it refreshes
            tailed = RunState()
            for batch in batches([unstamped(e) for e in events[1:]], cuts):
                writer.emit(*batch)
                if data.draw(st.booleans(), label="read now"):
                    tailed = reduce_all(tailed, reader.read_new())
                if data.draw(st.booleans(), label="refresh now"):
                    opened.refresh()
            tailed = reduce_all(tailed, reader.read_new())
            opened.refresh()
            assert tailed == writer.state
            assert opened.state == writer.state
            assert reader.read_new() == []
            assert opened.refresh() is False
        finally:
            writer.close()


def test_attach_continues_the_seq_and_readers_follow(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.emit(ev.RunStateChanged(state="ANALYST_PLANNING"))
    writer.close()
    opened = open_run(writer.paths.root)

    again = RunWriter.attach(writer.paths.root, clock=StepClock())
    [stamped] = again.emit(ev.RunPaused(reason="operator"))
    assert stamped.seq == 3
    assert opened.refresh() is True
    assert opened.state == again.state
    assert opened.state.paused
    again.close()


def test_attach_rereads_the_events_appended_before_it_got_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = new_run(tmp_path)
    writer.close()
    real_acquire = run_module.acquire_lease

    def acquire_after_a_last_append(paths: RunPaths, *, now: datetime):
        # The previous writer's final append lands between attach's first read and its lease.
        append_raw(paths.events, raw_event(2, "run.state", state="WORKER_RUNNING"))
        return real_acquire(paths, now=now)

    monkeypatch.setattr(run_module, "acquire_lease", acquire_after_a_last_append)
    again = RunWriter.attach(writer.paths.root, clock=StepClock())
    assert again.state.state == "WORKER_RUNNING"
    [paused] = again.emit(ev.RunPaused())
    assert paused.seq == 3  # not a second seq 2, which readers would drop
    again.close()
    assert open_run(writer.paths.root).state == again.state


def test_a_second_writer_is_refused_while_the_first_holds_the_lease(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    try:
        with pytest.raises(LeaseHeldError, match=f"pid {os.getpid()}"):
            RunWriter.attach(writer.paths.root)
        with pytest.raises(LeaseHeldError):
            rebuild(writer.paths.root)
    finally:
        writer.close()
    RunWriter.attach(writer.paths.root).close()


# --- 2. bad inputs: a clear message, and the rest of the run still opens ----------------------------------


def test_malformed_lines_are_counted_and_named_by_line_number(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.close()
    events = writer.paths.events
    append_raw(events, b"this is not json\n")  # line 2
    append_raw(events, b"[1, 2, 3]\n")  # line 3
    append_raw(events, raw_event(2, "run.state", state="WORKER_RUNNING"))  # line 4: still applies

    state = open_run(writer.paths.root).state
    assert state.malformed_lines == 2
    assert "line 2: invalid JSON at column 1: Expecting value" in state.problems
    assert "line 3: not a JSON object (got array)" in state.problems
    assert state.state == "WORKER_RUNNING"
    assert state.last_seq == 2


def test_an_event_with_a_bad_field_is_malformed_and_the_reason_names_the_field(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.close()
    append_raw(writer.paths.events, raw_event(2, "run.state", state="NOPE"))  # line 2
    append_raw(writer.paths.events, raw_event(3, "agent.usage", agent="a", input=-5))  # line 3
    append_raw(writer.paths.events, raw_event(4, "run.paused"))

    state = open_run(writer.paths.root).state
    assert state.malformed_lines == 2
    bad_state = next(p for p in state.problems if p.startswith("line 2:"))
    assert bad_state.startswith("line 2: run.state: state: Input should be 'IDLE'")
    bad_usage = next(p for p in state.problems if p.startswith("line 3:"))
    assert bad_usage.startswith("line 3: agent.usage: input:")
    assert state.state == "IDLE"  # the bad state was not applied
    assert state.paused  # what follows still applies


def test_an_unknown_event_type_is_kept_in_the_file_and_counted(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.close()
    future = raw_event(2, "future.thing", payload={"x": 1})
    append_raw(writer.paths.events, future)

    state = open_run(writer.paths.root).state
    assert state.unknown_events == 1
    assert state.malformed_lines == 0
    assert state.last_seq == 2

    again = RunWriter.attach(writer.paths.root, clock=StepClock())
    [paused] = again.emit(ev.RunPaused())
    again.close()
    assert paused.seq == 3
    lines = writer.paths.events.read_bytes().splitlines(keepends=True)
    assert future in lines  # never dropped or rewritten
    assert open_run(writer.paths.root).state.unknown_events == 1


def test_a_truncated_last_line_is_skipped_then_repaired_by_the_next_writer(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.emit(ev.RunStateChanged(state="WORKER_RUNNING"))
    writer.close()
    paths = writer.paths
    whole = paths.events.read_bytes()
    torn = b'{"seq":3,"ts":"2026-04-01T13:00:00Z","type":"run.pau'
    append_raw(paths.events, torn)

    opened = open_run(paths.root)
    assert opened.state.malformed_lines == 0
    assert opened.state.problems == []
    assert opened.state.last_seq == 2
    assert opened.state.state == "WORKER_RUNNING"

    again = RunWriter.attach(paths.root, clock=StepClock())
    [warning] = again.state.logs
    assert warning.level == "warning"
    assert warning.seq == 3
    assert warning.message.startswith(f"repaired events.jsonl: a partial last line of {len(torn)} bytes")
    [saved] = paths.recovered_dir.iterdir()
    assert saved.read_bytes() == torn
    assert str(saved) in warning.message
    again.emit(ev.RunPaused())
    again.close()

    data = paths.events.read_bytes()
    assert data.startswith(whole)
    assert torn not in data
    assert data.endswith(b"\n")
    after = open_run(paths.root).state
    assert after == again.state
    assert (after.malformed_lines, after.problems, after.last_seq, after.paused) == (0, [], 4, True)
    # A reader that was open before the repair carries on: the repair cut the file back to its offset.
    opened.refresh()
    assert opened.state == after


def test_a_line_over_10_mib_is_malformed_and_the_events_after_it_still_apply(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.close()
    huge = b'{"seq":2,"type":"log","message":"' + b"x" * (10 * 1024 * 1024 + 10) + b'"}\n'
    append_raw(writer.paths.events, huge)  # line 2
    append_raw(writer.paths.events, raw_event(2, "run.state", state="ANALYST_REVIEWING"))

    state = open_run(writer.paths.root).state
    assert state.malformed_lines == 1
    assert state.problems == [f"line 2: line of {len(huge) - 1} bytes exceeds the 10 MiB limit"]
    assert state.state == "ANALYST_REVIEWING"
    assert state.last_seq == 2
    assert state.logs == []


@pytest.mark.parametrize(
    ("ledger", "problem"),
    [
        (b'[{"step": 1, "role": "ANALYST"}, {"x": 2}]', "ledger.json is a legacy array of 2 entries; shown as legacy events"),
        (b'{"task_id": "t", "steps": [', "ledger.json could not be read: not valid JSON ("),
        (b"\xff\xfe garbage \x00", "ledger.json could not be read: not valid JSON ("),
        (b'"just a string"', "ledger.json holds a str, not a ledger object"),
    ],
    ids=["array", "truncated-json", "binary-garbage", "string"],
)
def test_a_bad_legacy_ledger_is_reported_and_never_written(tmp_path: Path, ledger: bytes, problem: str) -> None:
    run = tmp_path / "aw_20260401_120000_old"
    (run / "steps").mkdir(parents=True)
    (run / "ledger.json").write_bytes(ledger)
    (run / "state.md").write_text("# Analyst/Worker State\n\nTask: old\nCurrent state: ANALYST_REVIEWING\n")
    (run / "steps" / "0001_analyst_plan.md").write_text("plan\n")
    before = tree(run)

    opened = open_run(run)
    assert opened.legacy and opened.state.read_only
    assert any(p.startswith(problem) for p in opened.state.problems), opened.state.problems
    assert opened.state.state == "ANALYST_REVIEWING"  # state.md still read
    assert [s.path for s in opened.state.steps] == ["steps/0001_analyst_plan.md"]
    assert opened.refresh() is False
    with pytest.raises(ReadOnlyRunError, match="written by the original extension and is read-only"):
        RunWriter.attach(run)
    with pytest.raises(ReadOnlyRunError):
        rebuild(run)
    assert tree(run) == before  # byte for byte, and no lease or lock file appeared


def test_a_legacy_run_without_state_md_says_so_and_uses_the_ledger(tmp_path: Path) -> None:
    run = tmp_path / "aw_20260401_120000_old"
    write_seed_run(run)
    (run / "state.md").unlink()

    state = open_run(run).state
    assert "state.md is missing; state taken from ledger.json" in state.problems
    assert state.title == "Fix the flaky test"
    assert state.state == "IDLE"
    assert not state.paused
    assert set(state.ledger.by_role()) == {"analyst", "worker"}


def test_a_symlink_out_of_steps_is_listed_in_problems_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("SECRET")
    run = tmp_path / "aw_20260401_120000_old"
    write_seed_run(run)
    os.symlink(outside / "secret.md", run / "steps" / "0004_worker_result.md")
    os.symlink("../../outside/secret.md", run / "steps" / "0005_analyst_review.md")
    (run / "artifacts").mkdir()
    (run / "artifacts" / "inside.md").write_text("inside")
    os.symlink("../artifacts/inside.md", run / "steps" / "0006_worker_result.md")  # stays inside: fine
    paths = RunPaths.for_run_dir(run)

    names, problems = list_step_files(paths)
    assert "0004_worker_result.md" not in names and "0005_analyst_review.md" not in names
    assert "0006_worker_result.md" in names
    assert problems == [
        "steps/0004_worker_result.md is a symlink leading outside the run directory; not followed",
        "steps/0005_analyst_review.md is a symlink leading outside the run directory; not followed",
    ]
    state = open_run(run).state
    assert set(problems) <= set(state.problems)
    assert [s.step for s in state.steps] == [1, 2, 3, 6]

    for relative in (
        "steps/0004_worker_result.md",
        "steps/0005_analyst_review.md",
        "../outside/secret.md",
        "steps/../../outside/secret.md",
        str(outside / "secret.md"),
    ):
        with pytest.raises(RunError, match="leads outside the run directory; not read"):
            read_step_report(paths, relative)
    assert read_step_report(paths, "steps/0006_worker_result.md") == "inside"
    with pytest.raises(RunError, match="the step report is missing"):
        read_step_report(paths, "steps/0099_worker_result.md")


def test_a_steps_directory_that_is_a_symlink_outside_is_not_listed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0001_analyst_plan.md").write_text("SECRET")
    run = tmp_path / "aw_20260401_120000_old"
    run.mkdir()
    (run / "state.md").write_text("# Analyst/Worker State\n\nTask: old\nCurrent state: IDLE\n")
    os.symlink(outside, run / "steps")

    names, problems = list_step_files(RunPaths.for_run_dir(run))
    assert names == []
    assert problems == ["steps/ is a symlink leading outside the run directory; not followed"]
    assert open_run(run).state.steps == []
    with pytest.raises(RunError, match="leads outside"):
        read_step_report(RunPaths.for_run_dir(run), "steps/0001_analyst_plan.md")


def test_read_step_report_cuts_a_huge_report(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    writer.close()
    (writer.paths.steps_dir / "0001_worker_result.md").write_bytes(b"a" * 3000)
    text = read_step_report(writer.paths, "steps/0001_worker_result.md", limit=1024)
    assert text.startswith("a" * 1024) and "[report cut at" in text
    assert "a" * 1025 not in text


def test_open_run_says_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        open_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match=r"not a run directory \(no events.jsonl, ledger.json or state.md\)"):
        open_run(tmp_path / "empty")


_OPEN_AS_NOBODY = r"""
import json, os, sys
from aw_tui.store.run import RunError, open_run
# Drop privileges only after importing: the interpreter and its stdlib live under /root (mode 0700), so
# subprocess.run(..., user="nobody") could not even start it.
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
results = []
for path in sys.argv[1:]:
    try:
        state = open_run(path).state
        results.append({"opened": True, "problems": state.problems})
    except RunError as error:
        results.append({"error": type(error).__name__, "message": str(error)})
print(json.dumps(results))
"""


def test_unreadable_runs_give_a_permission_denied_message() -> None:
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="aw_perm_"))  # outside pytest's 0700 tmp root
    try:
        os.chmod(base, 0o755)
        closed_dir = new_run(base / "a")
        closed_dir.close()
        closed_file = new_run(base / "b")
        closed_file.close()
        legacy = base / "c" / "aw_20260401_120000_old"
        write_seed_run(legacy)
        for directory in (base / "a", base / "b", base / "c"):
            os.chmod(directory, 0o755)

        if os.geteuid() == 0:
            os.chmod(closed_dir.paths.root, 0o700)  # owned by root: nobody may not enter it
            os.chmod(closed_file.paths.events, 0o600)
            os.chmod(legacy / "ledger.json", 0o600)
            result = subprocess.run(
                [sys.executable, "-c", _OPEN_AS_NOBODY, str(closed_dir.paths.root), str(closed_file.paths.root),
                 str(legacy)],
                capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": PROJECT_ROOT},
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            no_dir, no_events, no_ledger = json.loads(result.stdout)
        else:
            os.chmod(closed_dir.paths.root, 0o000)
            os.chmod(closed_file.paths.events, 0o000)
            os.chmod(legacy / "ledger.json", 0o000)
            if os.access(closed_dir.paths.root, os.R_OK):
                pytest.skip("chmod 000 does not stop this user reading (a filesystem without permissions?)")
            results = []
            for path in (closed_dir.paths.root, closed_file.paths.root, legacy):
                try:
                    results.append({"opened": True, "problems": open_run(path).state.problems})
                except RunError as error:
                    results.append({"error": type(error).__name__, "message": str(error)})
            no_dir, no_events, no_ledger = results

        assert no_dir == {
            "error": "RunError",
            "message": f"{closed_dir.paths.root}: permission denied (cannot read the run directory)",
        }
        assert no_events == {"error": "RunError", "message": f"{closed_file.paths.events}: permission denied"}
        assert no_ledger["opened"] is True  # the rest of a legacy run still opens
        assert "ledger.json could not be read: Permission denied" in no_ledger["problems"]
    finally:
        for dirpath, _, filenames in os.walk(base):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(Path(dirpath, name), 0o644)
        shutil.rmtree(base, ignore_errors=True)


# --- 3. a run written by the original extension ------------------------------------------------------------

SEED_LEDGER = {
    "task_id": "20260401_fix_the_flaky_test",
    "task_title": "Fix the flaky test",
    "artifact_dir": "/home/u/proj/tmp/aw_20260401_120000_fix_the_flaky_test",
    "started_at": "2026-04-01T12:00:00.000Z",
    "config": {
        "cwd": "/home/u/proj",
        "taskTitle": "Fix the flaky test",
        "taskDescription": "test_parse fails one run in five; find out why and fix it.",
        "taskSlug": "fix_the_flaky_test",
        "taskId": "20260401_fix_the_flaky_test",
        "analystModel": "anthropic/claude-opus-4-5",
        "analystThinkingLevel": "high",
        "workerModel": "openai/gpt-5-mini",
        "workerThinkingLevel": "low",
        "analystContextLimitTokens": 128000,
        "workerContextLimitTokens": 128000,
        "toolPolicy": "all-tools",
        "maxWorkerStepsBeforeOperator": 6,
        "maxAutonomousHours": 24,
        "artifactDir": "/home/u/proj/tmp/aw_20260401_120000_fix_the_flaky_test",
        "artifactPolicy": "archive",
        "startedAt": "2026-04-01T12:00:00.000Z",
    },
    "totals": {
        "anthropic/claude-opus-4-5": {"in": 3000, "out": 700, "cache_read": 100, "cache_write": 0, "cost": 0.5},
        "openai/gpt-5-mini": {"in": 20000, "out": 3000, "cache_read": 5000, "cache_write": 10, "cost": 0.0123},
    },
    "steps": [
        {
            "in": 1000, "out": 200, "cache_read": 100, "cache_write": 0, "cost": 0.2,
            "wall_ms": 30000, "llm_ms": 30000, "tool_ms": 0, "external_ms": 0, "tool_ms_by_name": {},
            "tool_counts": {}, "tool_errors": 0, "step": 1, "role": "ANALYST", "phase": "ANALYST_PLAN",
            "model": "anthropic/claude-opus-4-5", "thinking_level": "high", "state_after": "WORKER_RUNNING",
            "cumulative_model_in": 1000, "cumulative_model_out": 200, "context_tokens": 1100,
            "context_window": 128000, "context_percent": 0.9, "started_at": "2026-04-01T12:00:01.000Z",
            "finished_at": "2026-04-01T12:00:31.000Z", "artifact": "steps/0001_analyst_plan.md",
        },
        {
            "in": 20000, "out": 3000, "cache_read": 5000, "cache_write": 10, "cost": 0.0123,
            "wall_ms": 120000, "llm_ms": 118500, "tool_ms": 1500, "external_ms": 0,
            "tool_ms_by_name": {"bash": 1200, "read": 300}, "tool_counts": {"bash": 3, "read": 2}, "tool_errors": 1,
            "step": 2, "role": "WORKER", "phase": "WORKER_RUN", "model": "openai/gpt-5-mini",
            "thinking_level": "low", "state_after": "ANALYST_REVIEWING", "cumulative_model_in": 20000,
            "cumulative_model_out": 3000, "context_tokens": None, "context_window": None, "context_percent": None,
            "started_at": "2026-04-01T12:00:32.000Z", "finished_at": "2026-04-01T12:02:32.000Z",
            "artifact": "steps/0002_worker_result.md",
        },
        {
            "in": 2000, "out": 500, "cache_read": 0, "cache_write": 0, "cost": 0.3,
            "wall_ms": 40000, "llm_ms": 40000, "tool_ms": 0, "external_ms": 0, "tool_ms_by_name": {},
            "tool_counts": {}, "tool_errors": 0, "step": 3, "role": "ANALYST", "phase": "ANALYST_REVIEW",
            "model": "anthropic/claude-opus-4-5", "thinking_level": "high", "state_after": "WORKER_RUNNING",
            "cumulative_model_in": 3000, "cumulative_model_out": 700, "context_tokens": 2000,
            "context_window": 128000, "context_percent": 1.6, "started_at": "2026-04-01T12:02:33.000Z",
            "finished_at": "2026-04-01T12:03:13.000Z", "artifact": "steps/0003_analyst_review.md",
        },
    ],  # fmt: skip
    "compactions": [
        {
            "started_at": "2026-04-01T12:01:00.000Z", "finished_at": "2026-04-01T12:01:04.200Z",
            "model": "openai/gpt-5-mini", "phase": "WORKER_RUN", "wall_ms": 4200, "tokens_before": 115200,
            "status": "completed",
        },
    ],  # fmt: skip
}

SEED_STATE_MD = """# Analyst/Worker State

Task: Fix the flaky test
Task ID: 20260401_fix_the_flaky_test
Current state: WORKER_RUNNING
Paused: Yes
Analyst model: anthropic/claude-opus-4-5
Analyst thinking: high
Worker model: openai/gpt-5-mini
Worker thinking: low
Operator model before workflow: anthropic/claude-sonnet-4-5
Operator thinking before workflow: medium
Started: 2026-04-01T12:00:00.000Z
Updated: 2026-04-01T12:03:14.000Z
Last step: 3
Artifact dir: /home/u/proj/tmp/aw_20260401_120000_fix_the_flaky_test
Ledger: /home/u/proj/tmp/aw_20260401_120000_fix_the_flaky_test/ledger.json
Tool policy: all-tools
Archive policy: archive
Autonomous runtime checkpoint: 24h
Autonomous runtime started: 2026-04-01T12:00:00.000Z
Autonomous worker steps since operator: 1

## Current authorized worker instruction
Instruction id: step-0003
Last completed worker instruction id: step-0001
Last completed worker step: 2

## Operator notes / decisions
### 2026-04-01T12:02:40.000Z
Use the real database, not a mock.

## Next action
WORKER: apply the fix and rerun test_parse 20 times.

## Operator expected?
No.

## Latest artifacts
- steps/0003_analyst_review.md

## Current hypothesis
The fixture shares one temp dir between parallel workers.

## Done
- Reproduced the failure (1 in 5).
- Found the shared temp dir.

## Open questions
- Does CI run the tests in parallel?

## Global task description
test_parse fails one run in five; find out why and fix it.
"""


def write_seed_run(run: Path) -> None:
    (run / "steps").mkdir(parents=True)
    (run / "ledger.json").write_text(json.dumps(SEED_LEDGER, indent=2))
    (run / "state.md").write_text(SEED_STATE_MD)
    for name, body in (
        ("0001_analyst_plan.md", "# Analyst/Worker Step Report\n\nRole: ANALYST\nPhase: ANALYST_PLAN\n"),
        ("0002_worker_result.md", "# Analyst/Worker Step Report\n\nRole: WORKER\nPhase: WORKER_RUN\n"),
        ("0003_analyst_review.md", "# Analyst/Worker Step Report\n\nRole: ANALYST\nPhase: ANALYST_REVIEW\n"),
    ):
        (run / "steps" / name).write_text(body)


def test_a_seed_run_opens_read_only_with_its_state_ledger_steps_and_memo(tmp_path: Path) -> None:
    run = tmp_path / "aw_20260401_120000_fix_the_flaky_test"
    write_seed_run(run)
    before = tree(run)

    opened = open_run(run)
    state = opened.state
    assert opened.legacy and opened.reader is None
    assert state.read_only
    assert state.problems == []
    assert state.run_id == run.name
    assert (state.title, state.task) == (
        "Fix the flaky test",
        "test_parse fails one run in five; find out why and fix it.",
    )
    assert state.workspace == "/home/u/proj"
    assert (state.state, state.paused) == ("WORKER_RUNNING", True)
    assert state.created_at == datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
    assert state.last_event_at == datetime(2026, 4, 1, 12, 3, 14, tzinfo=timezone.utc)
    assert state.settings["analyst"] == {"model": "anthropic/claude-opus-4-5", "thinking": "high", "context_limit": 128000}
    assert state.settings["worker"]["model"] == "openai/gpt-5-mini"

    by_role = state.ledger.by_role()
    assert list(by_role) == ["analyst", "worker"]
    analyst, worker = by_role["analyst"], by_role["worker"]
    assert (analyst.input, analyst.output, analyst.cache_read, analyst.cache_write) == (3000, 700, 100, 0)
    assert analyst.cost == pytest.approx(0.5)
    assert (worker.input, worker.output, worker.cache_read, worker.cache_write) == (20000, 3000, 5000, 10)
    assert worker.cost == pytest.approx(0.0123)
    assert {model: u.input for model, u in state.ledger.by_model().items()} == {
        "anthropic/claude-opus-4-5": 3000,
        "openai/gpt-5-mini": 20000,
    }
    assert [(s.step, s.role, s.phase, s.state_after) for s in state.ledger.steps] == [
        (1, "analyst", "ANALYST_PLAN", "WORKER_RUNNING"),
        (2, "worker", "WORKER_RUN", "ANALYST_REVIEWING"),
        (3, "analyst", "ANALYST_REVIEW", "WORKER_RUNNING"),
    ]
    assert state.ledger.steps[1].tool_counts == {"bash": 3, "read": 2}
    assert state.ledger.steps[1].tool_errors == 1
    [compaction] = state.ledger.compactions
    assert (compaction.status, compaction.tokens_before, compaction.wall_ms) == ("completed", 115200, 4200)

    assert [(s.step, s.role, s.phase, s.path) for s in state.steps] == [
        (1, "analyst", "ANALYST_PLAN", "steps/0001_analyst_plan.md"),
        (2, "worker", "WORKER_RUN", "steps/0002_worker_result.md"),
        (3, "analyst", "ANALYST_REVIEW", "steps/0003_analyst_review.md"),
    ]
    assert "Role: WORKER" in read_step_report(opened.paths, "steps/0002_worker_result.md")
    assert len(state.agents) == 3 and all(a.status == "done" for a in state.agents.values())

    memo = state.memo
    assert memo.hypothesis == "The fixture shares one temp dir between parallel workers."
    assert memo.next_action == "WORKER: apply the fix and rerun test_parse 20 times."
    assert memo.operator_expected == "No."
    assert memo.done == ("Reproduced the failure (1 in 5).", "Found the shared temp dir.")
    assert memo.open_questions == ("Does CI run the tests in parallel?",)

    summary = summarize(state)
    assert summary.read_only and summary.state == "WORKER_RUNNING" and summary.paused
    assert opened.lease_status() == "none"
    assert opened.refresh() is False
    with pytest.raises(ReadOnlyRunError):
        RunWriter.attach(run)
    assert tree(run) == before


# --- 4. rebuild ---------------------------------------------------------------------------------------------


def busy_run(root: Path) -> RunWriter:
    """A writer with one full analyst/worker turn, a compaction, an open gate and a memo."""
    writer = new_run(root, settings={"analyst": {"model": "m-big", "thinking": "high"}, "worker": {"model": "m-small"}})
    writer.emit(
        ev.RunStateChanged(state="WORKER_RUNNING"),
        ev.PhaseStarted(id="step-0001", title="0001 Worker run"),
        ev.AgentStarted(id="w1", role="worker", model="m-small", thinking="low", phase="step-0001", step=1),
    )
    writer.emit(  # each emit is 1.5 s later on the StepClock: the turn takes 3 s
        ev.ToolStarted(agent="w1", call_id="c1", tool="bash"),
        ev.ToolFinished(agent="w1", call_id="c1", tool="bash", duration_ms=250.5),
    )
    writer.emit(
        ev.AgentUsage(agent="w1", input=1200, output=300, cache_read=50, cache_write=5, cost=0.0042),
        ev.AgentFinished(id="w1", report="steps/0001_worker_result.md"),
        ev.StepReport(step=1, role="worker", phase="WORKER_RUN", path="steps/0001_worker_result.md", agent="w1",
                      state_after="ANALYST_REVIEWING", context_tokens=1250, context_window=128000),
        ev.PhaseFinished(id="step-0001"),
        ev.Compaction(agent="w1", role="worker", model="m-small", phase="WORKER_RUN", tokens_before=115200,
                      status="completed", duration_ms=4000),
        ev.MemoUpdated(hypothesis="the cache is stale", done=["reproduced"]),
        ev.GateOpened(id="g1", kind="confirm_done", title="Done?"),
    )  # fmt: skip
    return writer


def test_rebuild_recreates_the_derived_files_from_the_events(tmp_path: Path) -> None:
    writer = busy_run(tmp_path)
    writer.close()
    paths = writer.paths
    ledger_before = json.loads(paths.ledger_json.read_text())
    for derived in (paths.run_json, paths.state_md, paths.ledger_json):
        derived.unlink()

    state = rebuild(paths.root, clock=StepClock())

    assert state == writer.state
    run_json = json.loads(paths.run_json.read_text())
    assert run_json["summary"] == summarize(open_run(paths.root).state).to_json()
    assert run_json["events_bytes"] == paths.events.stat().st_size
    assert json.loads(paths.ledger_json.read_text()) == ledger_before
    state_md = paths.state_md.read_text()
    assert state_md.startswith("# Analyst/Worker State\n")
    assert "Current state: WORKER_RUNNING\n" in state_md
    assert "## Current hypothesis\nthe cache is stale\n" in state_md
    assert lease_status(paths, now=datetime.now(timezone.utc)) == "none"  # rebuild let go of the lease


_HOLD_LEASE = r"""
import sys, time
from aw_tui.store.run import RunWriter
writer = RunWriter.attach(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


def test_rebuild_is_refused_while_a_live_process_holds_the_lease_and_works_once_it_is_killed(
    tmp_path: Path,
) -> None:
    writer = busy_run(tmp_path)
    writer.close()
    paths = writer.paths
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LEASE, str(paths.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": PROJECT_ROOT},
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n", holder.stderr.read() if holder.stderr else ""
        paths.ledger_json.unlink()
        with pytest.raises(LeaseHeldError, match=f"is being written by pid {holder.pid} on host "):
            rebuild(paths.root)
        assert not paths.ledger_json.exists()  # nothing was written
        assert open_run(paths.root).lease_status() == "live"

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert open_run(paths.root).lease_status() == "orphaned"
        state = rebuild(paths.root, clock=StepClock())
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()
    assert state == open_run(paths.root).state
    assert paths.ledger_json.exists()
    assert lease_status(paths, now=datetime.now(timezone.utc)) == "none"


# --- 5. a failing disk -------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing_call", ["fsync", "write", "short-write-then-write"])
def test_a_full_disk_during_emit_leaves_no_partial_line_and_no_seq_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: str
) -> None:
    writer = busy_run(tmp_path)
    events_before = writer.paths.events.read_bytes()
    state_before = writer.state
    real_write, real_fsync = os.write, os.fsync
    writes: list[int] = []

    def write(fd: int, data: bytes) -> int:
        if events_fd(fd):
            writes.append(fd)
            if failing_call == "short-write-then-write" and len(writes) == 1:
                return real_write(fd, bytes(data)[: len(data) // 2])  # half the batch, mid-line
            if failing_call != "fsync":
                raise ENOSPC
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        if failing_call == "fsync" and events_fd(fd):
            raise ENOSPC
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        patch.setattr(os, "fsync", fsync)
        with pytest.raises(OSError) as raised:
            writer.emit(ev.RunPaused(), ev.Log(message="x" * 5000), ev.RunResumed())
    assert raised.value.errno == errno.ENOSPC
    assert writes  # the patch really hit the events file

    assert writer.paths.events.read_bytes() == events_before  # no partial line, nothing of the batch
    assert writer.state is state_before
    [paused] = writer.emit(ev.RunPaused(reason="disk freed"))
    assert paused.seq == state_before.last_seq + 1
    writer.close()

    reopened = open_run(writer.paths.root).state
    assert reopened == writer.state
    assert reopened.problems == [] and reopened.malformed_lines == 0
    assert reopened.paused and reopened.logs == []


def test_a_failed_write_that_cannot_be_cut_back_stops_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full disk, then the truncate that would undo the half-written batch fails too (EIO). One whole line of the
    batch stays in the file with the next seq: going on would give a second event that seq, which every reader
    drops. The writer must refuse, and a writer attached afresh continues from what is on disk."""
    writer = busy_run(tmp_path)
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if events_fd(fd):
            first_line = bytes(data).index(b"\n") + 1
            real_write(fd, bytes(data)[: first_line + 10])
            raise ENOSPC
        return real_write(fd, data)

    def ftruncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        patch.setattr(os, "ftruncate", ftruncate)
        with pytest.raises(OSError, match="No space left"):
            writer.emit(ev.Log(message="A"), ev.Log(message="B"))
    with pytest.raises(EventLogDamaged, match="attach the run again"):
        writer.emit(ev.Log(message="C"))
    writer.close()

    again = RunWriter.attach(writer.paths.root, clock=StepClock())
    messages = [log.message for log in again.state.logs]
    assert messages[0] == "A"  # the line that did reach the disk counts
    assert messages[1].startswith("repaired events.jsonl: a partial last line")  # B's torn half was moved
    again.emit(ev.Log(message="C"))
    again.close()
    reopened = open_run(writer.paths.root).state
    assert reopened == again.state
    assert [log.message for log in reopened.logs][-1] == "C"
    assert reopened.problems == []


def test_a_failed_write_that_wrote_nothing_does_not_stop_the_writer(tmp_path: Path) -> None:
    writer = new_run(tmp_path)
    with pytest.raises(UnicodeEncodeError):
        writer.emit(ev.Log(message="lone surrogate \ud800"))
    [log] = writer.emit(ev.Log(message="fine"))
    assert log.seq == 2
    writer.close()
    assert open_run(writer.paths.root).state == writer.state


def test_a_full_disk_on_the_first_event_does_not_leave_the_new_run_leased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if events_fd(fd):
            raise ENOSPC
        return real_write(fd, data)

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        with pytest.raises(OSError, match="No space left"):
            new_run(tmp_path)
    [run_dir] = tmp_path.iterdir()
    paths = RunPaths.for_run_dir(run_dir)
    assert lease_status(paths, now=datetime.now(timezone.utc)) == "none"
    writer = RunWriter.attach(run_dir, clock=StepClock())  # not refused: the lease was let go
    assert writer.state.last_seq == 0
    writer.close()


# --- 6. derived files ----------------------------------------------------------------------------------------


def test_derived_files_are_replaced_atomically_leaving_no_temp_files(tmp_path: Path) -> None:
    writer = busy_run(tmp_path)
    paths = writer.paths
    writer.write_derived()
    inodes = {p.name: p.stat().st_ino for p in (paths.run_json, paths.state_md, paths.ledger_json)}
    writer.emit(ev.RunStateChanged(state="ANALYST_REVIEWING"))
    writer.write_derived()
    # A rename puts a new inode in place; rewriting in place would keep the old one (and show readers half a file).
    assert all(p.stat().st_ino != inodes[p.name] for p in (paths.run_json, paths.state_md, paths.ledger_json))
    assert [n for n in os.listdir(paths.root) if n.endswith(".tmp")] == []
    assert json.loads(paths.run_json.read_text())["summary"]["state"] == "ANALYST_REVIEWING"
    writer.close()
    assert [n for n in os.listdir(paths.root) if n.endswith(".tmp")] == []


def test_a_failing_derived_write_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = busy_run(tmp_path)
    paths = writer.paths
    writer.write_derived()
    old = paths.run_json.read_bytes()
    writer.emit(ev.RunStateChanged(state="ANALYST_REVIEWING"))
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise ENOSPC
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", fsync)
        with pytest.raises(OSError, match="No space left"):
            writer.write_derived()
    assert paths.run_json.read_bytes() == old
    assert [n for n in os.listdir(paths.root) if n.endswith(".tmp")] == []
    writer.close()


SEED_STEP_FIELDS = {
    "in", "out", "cache_read", "cache_write", "cost", "wall_ms", "llm_ms", "tool_ms", "external_ms",
    "tool_ms_by_name", "tool_counts", "tool_errors", "step", "role", "phase", "model", "thinking_level",
    "state_after", "cumulative_model_in", "cumulative_model_out", "context_tokens", "context_window",
    "context_percent", "started_at", "finished_at", "artifact",
}  # fmt: skip
SEED_COMPACTION_FIELDS = {"started_at", "finished_at", "model", "phase", "wall_ms", "tokens_before", "status"}


def test_ledger_json_has_the_seeds_shape(tmp_path: Path) -> None:
    writer = busy_run(tmp_path)
    writer.close()
    ledger = json.loads(writer.paths.ledger_json.read_text())

    assert {"task_id", "task_title", "artifact_dir", "started_at", "config", "totals", "steps", "compactions"} <= set(ledger)
    assert ledger["task_id"] == writer.paths.root.name
    assert ledger["task_title"] == "fix the flaky test"
    assert ledger["artifact_dir"] == str(writer.paths.root)
    assert ledger["started_at"].endswith("Z")
    assert datetime.fromisoformat(ledger["started_at"].replace("Z", "+00:00")) == writer.state.created_at
    assert isinstance(ledger["config"], dict)
    assert set(ledger["totals"]) == {"m-small"}  # keyed by model, not by role
    assert {"in", "out", "cache_read", "cache_write", "cost"} <= set(ledger["totals"]["m-small"])
    assert (ledger["totals"]["m-small"]["in"], ledger["totals"]["m-small"]["out"]) == (1200, 300)
    [step] = ledger["steps"]
    assert SEED_STEP_FIELDS <= set(step)
    assert (step["step"], step["role"], step["phase"], step["model"]) == (1, "WORKER", "WORKER_RUN", "m-small")
    assert (step["in"], step["out"], step["cache_read"], step["cache_write"]) == (1200, 300, 50, 5)
    assert step["tool_counts"] == {"bash": 1}
    assert step["tool_ms"] == 250.5
    assert step["wall_ms"] == 3000
    assert step["llm_ms"] == step["wall_ms"] - step["tool_ms"]
    assert (step["cumulative_model_in"], step["cumulative_model_out"]) == (1200, 300)
    assert step["state_after"] == "ANALYST_REVIEWING"
    assert step["artifact"] == "steps/0001_worker_result.md"
    [compaction] = ledger["compactions"]
    assert SEED_COMPACTION_FIELDS <= set(compaction)
    assert (compaction["status"], compaction["tokens_before"], compaction["wall_ms"]) == ("completed", 115200, 4000)

    # What we write, the legacy reader (the seed's format) reads back with the same totals.
    reread = open_run(_as_legacy_copy(writer.paths.root, tmp_path / "copy")).state
    assert reread.ledger.by_model() == writer.state.ledger.by_model()


def _as_legacy_copy(run_dir: Path, target: Path) -> Path:
    """The run without its events: what the original extension would have left."""
    shutil.copytree(run_dir, target)
    (target / "events.jsonl").unlink()
    return target


def test_a_summary_sums_the_roles_other_than_the_named_ones_into_one_cost():
    from aw_tui.model.summary import RoleCost, RunSummary

    summary = RunSummary(run_id="r", title="t", state="RUNNING", paused=False, created_at=None, last_event_at=None,
                         open_gates=0, last_seq=0, problems=0,
                         costs={"analyst": RoleCost(1.0, True, 10), "worker": RoleCost(0.5, True, 20),
                                "scout": RoleCost(0.25, True, 30), "workflow": RoleCost(0.125, False, 40)})  # fmt: skip
    assert summary.cost_except("analyst", "worker") == RoleCost(0.375, False, 70)
    assert summary.cost_except("analyst", "worker", "scout", "workflow") is None
    assert summary.total_cost == RoleCost(1.875, False, 100)
