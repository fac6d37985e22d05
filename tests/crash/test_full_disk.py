"""A disk that fills up during a run: one clear line, a consistent run directory, and a resume once there is room.

Two ways to fill it:

- In-process, exactly: the `os` that aw_tui/store/atomic.py and jsonl.py write through is replaced by one whose
  write() to a chosen file makes a short write (half the bytes, as when a disk fills mid-write) and then fails
  with ENOSPC, and after that fails every write, to any file, until the test gives the space back. Every write of
  the store goes through those two modules (event appends, control.jsonl, the analyst's session, and the atomic
  replaces of run.json, state.md, ledger.json, lease.json and the step reports), so the error travels the real
  code path from the failing os.write up to the command line.
- In a real process (the zygote's fork of `aw-tui demo`), with RLIMIT_FSIZE: the kernel itself cuts the write
  short and fails it with EFBIG ("File too large") for whichever file outgrows the limit first.

After the failure: `aw-tui` exits 1 with one line naming the file; events.jsonl holds whole lines only (the cut
batch was removed) with seq 1..n; the file being replaced keeps its old content and no temp file is left; the lease
is released; the derived files parse and `aw-tui rebuild` rebuilds them; and `aw-tui resume` finishes the run.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from aw_tui.engine import orchestrator
from aw_tui.store import atomic, jsonl
from aw_tui.store.run import open_run, rebuild
from tests.cli_kit import run_main
from tests.crash.kit import DEMO_ARGS, assert_seqs_whole, event_lines, one_line, only_run
from tests.engine.orchestration_kit import analyst, play, text_turn

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
STEPS = [(1, "analyst", "plan"), (2, "worker", "result"), (3, "analyst", "review")]


class FillingDisk:
    """The `os` module, except that write() fails once the disk is full (see the module docstring).

    The disk fills during write number `writes_before + 1` to the file named `target` (or to a temp file made
    for replacing it, `.<target>.XXXX.tmp`).
    """

    def __init__(self, target: str, writes_before: int) -> None:
        self.target = target
        self.writes_left = writes_before
        self.full = False
        self.failed_in: Path | None = None  # the file being written when the disk filled
        self.content_before: bytes | None = None  # what `target` held at that moment (None: it did not exist)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, NO_SPACE)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not self._is_target(path.name):
            return os.write(fd, data)
        if self.writes_left > 0:
            self.writes_left -= 1
            return os.write(fd, data)
        self.full = True
        self.failed_in = path.parent / self.target
        self.content_before = self.failed_in.read_bytes() if self.failed_in.exists() else None
        if self.failed_in == path:  # an append: what is there now includes none of this write
            self.content_before = path.read_bytes()
        return os.write(fd, bytes(data[: max(1, len(data) // 2)]))  # the disk takes what fits, then is full

    def free_space(self) -> None:
        self.full = False
        self.writes_left = 10**9

    def _is_target(self, name: str) -> bool:
        return name == self.target or (name.startswith(f".{self.target}.") and name.endswith(".tmp"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the demo's workspace copy goes under tmp_path
    return tmp_path


# (file, writes to it that succeed first): each fills the disk at a different kind of write.
FILLS = {
    "an event append": ("events.jsonl", 20),  # mid worker turn, in the middle of a batch
    "the ledger.json replace": ("ledger.json", 1),
    "a step report": ("0002_worker_result.md", 0),  # the worker's answer is in, its report cannot be written
    "the auto-approval in control.jsonl": ("control.jsonl", 0),  # the gate is open, its approval is lost
    "the analyst's session": ("analyst.jsonl", 1),  # the review turn's conversation cannot be saved
}


@pytest.mark.parametrize("fill", FILLS)
def test_a_disk_filling_up_stops_the_run_with_one_line_and_resume_finishes_it(fill, in_tmp, monkeypatch, capsys):
    target, writes_before = FILLS[fill]
    disk = FillingDisk(target, writes_before)
    monkeypatch.setattr(atomic, "os", disk)
    monkeypatch.setattr(jsonl, "os", disk)
    code, out, err = run_main(capsys, "demo", *DEMO_ARGS, "--runs-root", str(in_tmp / "runs"))

    run_dir = only_run(in_tmp / "runs")
    assert disk.failed_in is not None, f"the disk never filled: no write to {target} came"
    assert code == 1
    assert one_line(err) == f"aw-tui: {disk.failed_in}: {NO_SPACE}"
    assert "Traceback" not in out + err
    after_failure = disk.failed_in.read_bytes() if disk.failed_in.exists() else None
    assert after_failure == disk.content_before, f"{target} changed: a cut write was left in it"
    assert_consistent(run_dir)
    at_failure = open_run(run_dir, use_checkpoint=False).state
    if target == "0002_worker_result.md":  # the answer came, the step was never recorded: resume redoes the turn
        assert at_failure.agents["s0002-worker"].status == "done" and [s.step for s in at_failure.steps] == [1]
    if target == "control.jsonl":  # the gate is open and nobody will ever see its approval
        assert [g.kind for g in at_failure.open_gates] == ["dangerous_command"]

    disk.free_space()  # the operator makes room
    rebuilt = rebuild(run_dir)
    ledger = json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))
    assert ledger["total"] == rebuilt.ledger.total.to_json() == open_run(run_dir).state.ledger.total.to_json()

    code, out, err = run_main(capsys, "resume", str(run_dir), *DEMO_ARGS)
    assert code == 0, err
    assert_finished(run_dir)
    state = open_run(run_dir, use_checkpoint=False).state
    if target == "0002_worker_result.md":
        assert state.agents["s0002-worker"].status == "interrupted"
        assert "was interrupted" in (run_dir / "steps" / target).read_text(encoding="utf-8")
    if target == "control.jsonl":
        assert all(g.status == "approved" for g in state.gates.values() if g.kind == "dangerous_command")


@pytest.mark.parametrize("limit", [4000, 8000])
def test_a_file_size_limit_gives_the_kernels_error_in_one_line_and_resume_finishes_the_run(limit, zygote, tmp_path):
    demo = ["demo", *DEMO_ARGS, "--runs-root", str(tmp_path / "runs")]
    stopped = zygote.run(demo, tmp_path, fsize_limit=limit)
    run_dir = only_run(tmp_path / "runs")
    assert stopped.status == 1, str(stopped)
    match = re.fullmatch(rf"aw-tui: ({re.escape(str(run_dir))}/\S+): File too large", one_line(stopped.errors))
    assert match, str(stopped)
    assert "Traceback" not in stopped.output
    failed = Path(match.group(1))
    # The file really could not take the write: it is (or would have been) past the limit, and never beyond it.
    assert all(path.stat().st_size <= limit for path in run_dir.rglob("*") if path.is_file())
    assert_consistent(run_dir)
    assert failed.name in {p.name for p in run_dir.rglob("*")} | {"0001_analyst_plan.md", "0002_worker_result.md",
                                                                 "0003_analyst_review.md"}  # fmt: skip

    resumed = zygote.run(["resume", str(run_dir), *DEMO_ARGS], tmp_path)  # no limit now
    assert resumed.status == 0, str(resumed)
    assert_finished(run_dir)


class _FrozenMonotonic:
    """The orchestrator's `time` with a clock that never moves: every rewrite of the derived files that is not
    forced then waits for the timer, whatever the machine's speed."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def monotonic() -> float:
        return 1000.0


async def test_a_derived_file_failing_on_the_timer_ends_the_run_with_its_error_and_no_trace(tmp_path, monkeypatch, caplog):
    """The rewrite that waits for a timer has no caller: its error must still end the run, not be logged by asyncio
    as "Exception in callback" while the run goes on."""
    monkeypatch.setattr(orchestrator, "DERIVED_INTERVAL_S", 0.05)
    monkeypatch.setattr(orchestrator, "time", _FrozenMonotonic())
    disk = FillingDisk("run.json", 1)  # the first rewrite is forced (at start), the second waits for the timer
    monkeypatch.setattr(atomic, "os", disk)
    monkeypatch.setattr(jsonl, "os", disk)
    roles = {
        "analyst": [text_turn(analyst("NEEDS_WORKER"))],
        "worker": [{"tool_calls": [{"id": "t", "name": "bash", "arguments": {"command": "sleep 30"}}],
                    "usage": {"input": 300, "output": 3}}],
    }  # fmt: skip
    with pytest.raises(OSError) as raised:
        await play(tmp_path, roles, timeout_s=20)  # the timeout only guards against a hang
    assert (raised.value.errno, Path(raised.value.filename)) == (errno.ENOSPC, disk.failed_in)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    disk.free_space()
    run_dir = only_run(tmp_path / "runs")
    assert_consistent(run_dir)
    assert run_dir.joinpath("run.json").read_bytes() == disk.content_before


def assert_consistent(run_dir: Path) -> None:
    """What a failed write may leave: whole event lines, derived files old or new but whole, no temp files."""
    lines = event_lines(run_dir)  # every line whole JSON, the file ends in a newline
    assert_seqs_whole(lines)
    for name in ("run.json", "ledger.json"):
        if (run_dir / name).exists():
            json.loads((run_dir / name).read_text(encoding="utf-8"))
    leftovers = [p.relative_to(run_dir) for p in run_dir.rglob(".*.tmp")]
    assert leftovers == [], f"temp files left behind: {leftovers}"
    assert not (run_dir / "lease.json").exists(), "the lease was not released"
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.malformed_lines == 0 and not state.problems, state.problems
    assert not state.is_terminal  # the run stopped; it did not end


def assert_finished(run_dir: Path) -> None:
    lines = event_lines(run_dir)
    assert_seqs_whole(lines)
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.state == "FINISHED"
    assert [(s.step, s.role, s.phase) for s in state.steps] == STEPS
    assert sorted(p.name for p in (run_dir / "steps").iterdir()) == [
        "0001_analyst_plan.md", "0002_worker_result.md", "0003_analyst_review.md"]  # fmt: skip
    interrupted = {a.id for a in state.agents.values() if a.status == "interrupted"}
    assert not interrupted & {s.agent for s in state.steps}
    ledger = json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))
    assert {entry["agent"] for entry in ledger["interrupted"]} == interrupted
    for field in ("in", "out", "cache_read", "cache_write"):
        recorded = sum(s[field] for s in ledger["steps"]) + sum(e[field] for e in ledger["interrupted"])
        assert recorded == ledger["total"][field], f"ledger.json {field} does not add up"
    assert not (run_dir / "lease.json").exists()
