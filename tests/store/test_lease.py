from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import aw_tui
from aw_tui.store.layout import RunPaths
from aw_tui.store.lease import (
    Lease,
    LeaseHeldError,
    acquire_lease,
    lease_status,
    read_lease,
)

NOW = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
REPO_ROOT = Path(aw_tui.__file__).resolve().parent.parent

HOLD_LEASE_SCRIPT = """
import sys, time
from datetime import datetime, timezone
from aw_tui.store.layout import RunPaths
from aw_tui.store.lease import acquire_lease

handle = acquire_lease(RunPaths.for_run_dir(sys.argv[1]), now=datetime.now(timezone.utc))
print("acquired", flush=True)
time.sleep(120)
"""


@pytest.fixture
def paths(tmp_path: Path) -> RunPaths:
    run_dir = tmp_path / "aw_20250304_050607_task"
    run_dir.mkdir()
    return RunPaths.for_run_dir(run_dir)


@pytest.fixture
def holder_process(paths: RunPaths) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lease until the test kills it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE_SCRIPT, str(paths.root)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "acquired"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# --- the Lease record ----------------------------------------------------------------------------


def test_lease_round_trips_through_json_at_millisecond_precision() -> None:
    lease = Lease(pid=42, host="box", started_at=NOW, heartbeat_at=NOW + timedelta(seconds=3))
    data = lease.to_json()
    assert data == {
        "pid": 42,
        "host": "box",
        "started_at": "2025-03-04T05:06:07.123Z",
        "heartbeat_at": "2025-03-04T05:06:10.123Z",
    }
    assert Lease.from_json(json.loads(json.dumps(data))) == lease


def test_lease_normalises_other_time_zones_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    lease = Lease(pid=1, host="h", started_at=NOW.astimezone(paris), heartbeat_at=NOW)
    assert lease.started_at.tzinfo == timezone.utc
    assert lease.started_at == NOW.replace(microsecond=123000)


def test_naive_datetimes_are_refused(paths: RunPaths) -> None:
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        Lease(pid=1, host="h", started_at=naive, heartbeat_at=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        acquire_lease(paths, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        lease_status(paths, now=naive)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"pid": 1}',
        b'{"pid": "1", "host": "h", "started_at": "2025-01-01T00:00:00Z", '
        b'"heartbeat_at": "2025-01-01T00:00:00Z"}',
        b'{"pid": 1, "host": "h", "started_at": "yesterday", "heartbeat_at": "2025-01-01T00:00:00Z"}',
        b'{"pid": 1, "host": "h", "started_at": 5, "heartbeat_at": "2025-01-01T00:00:00Z"}',
    ],
)
def test_read_lease_tolerates_garbage(paths: RunPaths, content: bytes) -> None:
    paths.lease_json.write_bytes(content)
    assert read_lease(paths) is None


def test_read_lease_of_a_run_without_one(paths: RunPaths) -> None:
    assert read_lease(paths) is None
    assert lease_status(paths, now=NOW) == "none"


# --- acquiring in this process -------------------------------------------------------------------


def test_acquire_heartbeat_release(paths: RunPaths) -> None:
    with acquire_lease(paths, now=NOW) as handle:
        assert handle.held
        assert handle.previous is None
        assert read_lease(paths) == handle.lease
        assert handle.lease.pid == os.getpid()
        assert handle.lease.host == socket.gethostname()
        assert lease_status(paths, now=NOW) == "live"

        later = NOW + timedelta(seconds=5)
        beat = handle.heartbeat(later)
        assert read_lease(paths) == beat
        assert beat.started_at == handle.lease.started_at == NOW.replace(microsecond=123000)
        assert beat.heartbeat_at == later.replace(microsecond=123000)

    assert not handle.held
    assert not paths.lease_json.exists()
    assert paths.lease_lock.exists()  # never deleted: see the module docstring
    assert lease_status(paths, now=NOW) == "none"
    handle.release()  # idempotent
    with pytest.raises(RuntimeError, match="already released"):
        handle.heartbeat(NOW)


def test_a_second_handle_in_the_same_process_is_refused(paths: RunPaths) -> None:
    with acquire_lease(paths, now=NOW):
        with pytest.raises(LeaseHeldError, match=f"pid {os.getpid()} "):
            acquire_lease(paths, now=NOW + timedelta(seconds=3))


def test_acquire_waits_out_a_readers_probe(paths: RunPaths) -> None:
    # A reader's lease_status() holds a shared lock for an instant; acquire must not mistake it
    # for a writer.
    paths.lease_lock.touch()
    probe_fd = os.open(paths.lease_lock, os.O_RDONLY)
    fcntl.flock(probe_fd, fcntl.LOCK_SH)
    releaser = threading.Timer(0.05, os.close, args=(probe_fd,))
    releaser.start()
    try:
        with acquire_lease(paths, now=NOW) as handle:
            assert handle.held
    finally:
        releaser.join()


# --- other processes -----------------------------------------------------------------------------


def test_a_lease_held_by_another_process_is_refused_clearly(
    paths: RunPaths, holder_process: subprocess.Popen[str]
) -> None:
    holder = read_lease(paths)
    assert holder is not None and holder.pid == holder_process.pid
    assert lease_status(paths, now=datetime.now(timezone.utc)) == "live"

    with pytest.raises(LeaseHeldError) as refused:
        acquire_lease(paths, now=holder.heartbeat_at + timedelta(seconds=3))
    assert str(refused.value) == (
        f"run aw_20250304_050607_task is being written by pid {holder_process.pid} on host "
        f"{socket.gethostname()} (heartbeat 3 s ago); stop it first or open the run read-only"
    )
    assert refused.value.holder == holder
    assert read_lease(paths) == holder  # the refused attempt changed nothing


def test_a_killed_writer_leaves_an_orphaned_lease_that_can_be_taken_over(
    paths: RunPaths, holder_process: subprocess.Popen[str]
) -> None:
    os.kill(holder_process.pid, signal.SIGKILL)
    holder_process.wait(timeout=10)
    # Fresh heartbeat, but nobody holds the lock: the kernel released it with the process.
    now = datetime.now(timezone.utc)
    assert lease_status(paths, now=now) == "orphaned"

    with acquire_lease(paths, now=now) as handle:
        assert handle.previous is not None and handle.previous.pid == holder_process.pid
        assert handle.lease.pid == os.getpid()
        assert lease_status(paths, now=now) == "live"


def test_a_garbage_lease_file_without_a_holder_is_orphaned(paths: RunPaths) -> None:
    paths.lease_lock.touch()
    paths.lease_json.write_text("{garbage")
    assert lease_status(paths, now=NOW) == "orphaned"
    with acquire_lease(paths, now=NOW) as handle:
        assert handle.previous is None


# --- when the lock cannot be probed: judge by the heartbeat --------------------------------------


def _write_lease(paths: RunPaths, *, pid: int, host: str, heartbeat_at: datetime) -> None:
    lease = Lease(pid=pid, host=host, started_at=heartbeat_at, heartbeat_at=heartbeat_at)
    paths.lease_json.write_text(json.dumps(lease.to_json()))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_without_a_lock_file_a_fresh_heartbeat_is_live(paths: RunPaths) -> None:
    _write_lease(paths, pid=_dead_pid(), host="elsewhere", heartbeat_at=NOW)
    assert not paths.lease_lock.exists()
    assert lease_status(paths, now=NOW + timedelta(seconds=10)) == "live"


def test_without_a_lock_file_a_stale_heartbeat_of_a_dead_pid_is_orphaned(paths: RunPaths) -> None:
    _write_lease(paths, pid=_dead_pid(), host=socket.gethostname(), heartbeat_at=NOW)
    assert lease_status(paths, now=NOW + timedelta(seconds=16)) == "orphaned"
    assert lease_status(paths, now=NOW + timedelta(seconds=16), stale_after_s=30) == "live"


def test_without_a_lock_file_a_stale_heartbeat_of_a_live_local_pid_is_live(paths: RunPaths) -> None:
    _write_lease(paths, pid=os.getpid(), host=socket.gethostname(), heartbeat_at=NOW)
    assert lease_status(paths, now=NOW + timedelta(minutes=5)) == "live"


def test_without_a_lock_file_a_stale_heartbeat_from_another_host_is_orphaned(paths: RunPaths) -> None:
    _write_lease(paths, pid=os.getpid(), host="not-" + socket.gethostname(), heartbeat_at=NOW)
    assert lease_status(paths, now=NOW + timedelta(minutes=5)) == "orphaned"


def test_message_for_a_holder_without_a_readable_lease(paths: RunPaths) -> None:
    with acquire_lease(paths, now=NOW):
        paths.lease_json.write_text("garbage")
        with pytest.raises(LeaseHeldError, match=re.escape("by another process (its lease.json")):
            acquire_lease(paths, now=NOW)
