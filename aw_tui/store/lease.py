"""The single-writer lease of a run.

The lease IS an flock(LOCK_EX) on `<run>/.lease.lock`, held by the writer for its whole life. The
kernel drops it when the process dies, even on SIGKILL, so "lease.json present but lock free" is
a reliable sign of a dead writer. `lease.json` only says who holds it (pid, host, times); the
holder rewrites it atomically on acquire and on every heartbeat and deletes it on release.

Caveats for callers:
- flock belongs to the open file description. A second open() of the lock file, even in the same
  process, conflicts with the holder (so a same-process probe correctly sees "live"). But a child
  made by os.fork() (multiprocessing's "fork" start method) shares the holder's descriptor and
  keeps the lock alive after the writer dies; don't fork after acquiring. subprocess is fine: the
  descriptor is close-on-exec.
- `.lease.lock` is never deleted: unlinking a lock file lets two processes lock different inodes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

from aw_tui.store.atomic import atomic_write_text, fsync_directory
from aw_tui.store.layout import RunPaths

LeaseStatus = Literal["live", "orphaned", "none"]
DEFAULT_STALE_AFTER_S = 15.0
# A reader's probe holds the lock for microseconds; an acquire that collides with one retries
# for this long before concluding that a real writer holds the lease.
_ACQUIRE_RETRY_S = 0.2
_ACQUIRE_RETRY_INTERVAL_S = 0.005


def _to_utc_milliseconds(moment: datetime, field_name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{field_name} must be timezone-aware, got {moment!r}")
    # Millisecond precision, like the seed's toISOString(), so to_json/from_json round-trips.
    utc = moment.astimezone(timezone.utc)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(value: object, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"lease {field_name} must be an ISO timestamp string, got {value!r}")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Lease:
    """Who writes a run. Datetimes are UTC, at millisecond precision."""

    pid: int
    host: str
    started_at: datetime
    heartbeat_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "started_at", _to_utc_milliseconds(self.started_at, "started_at"))
        object.__setattr__(
            self, "heartbeat_at", _to_utc_milliseconds(self.heartbeat_at, "heartbeat_at")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "started_at": _iso(self.started_at),
            "heartbeat_at": _iso(self.heartbeat_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lease:
        """Raises ValueError (or KeyError/TypeError) on a malformed dict."""
        pid, host = data["pid"], data["host"]
        if type(pid) is not int or not isinstance(host, str):
            raise ValueError(f"lease pid must be an int and host a string, got {pid!r}, {host!r}")
        return cls(
            pid=pid,
            host=host,
            started_at=_parse_iso(data["started_at"], "started_at"),
            heartbeat_at=_parse_iso(data["heartbeat_at"], "heartbeat_at"),
        )

    def heartbeat_age_s(self, now: datetime) -> float:
        return (now - self.heartbeat_at).total_seconds()


class LeaseHeldError(RuntimeError):
    """Another process (or another handle in this one) holds the run's lease."""

    def __init__(self, paths: RunPaths, holder: Lease | None, now: datetime) -> None:
        self.run_dir = paths.root
        self.holder = holder
        if holder is None:
            who = "another process (its lease.json is missing or unreadable)"
        else:
            age = _describe_age(holder.heartbeat_age_s(now))
            who = f"pid {holder.pid} on host {holder.host} (heartbeat {age} ago)"
        super().__init__(
            f"run {paths.run_name} is being written by {who}; stop it first or open the run read-only"
        )


def _describe_age(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


class LeaseHandle:
    """The held lease. Keep it for the writer's whole life; release() (or leave the with-block)
    when the run stops."""

    def __init__(self, paths: RunPaths, lock_fd: int, lease: Lease, previous: Lease | None) -> None:
        self.paths = paths
        self.lease = lease
        # The lease of the dead writer this one took over, for the caller to log; None if fresh.
        self.previous = previous
        self._lock_fd: int | None = lock_fd

    @property
    def held(self) -> bool:
        return self._lock_fd is not None

    def heartbeat(self, now: datetime) -> Lease:
        """Rewrite lease.json with heartbeat_at = now; returns the new lease."""
        if self._lock_fd is None:
            raise RuntimeError(f"the lease of run {self.paths.run_name} was already released")
        lease = replace(self.lease, heartbeat_at=now)
        _write_lease_json(self.paths, lease)
        self.lease = lease
        return lease

    def release(self) -> None:
        """Delete lease.json, then unlock. Idempotent."""
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        try:
            # Deleted while still locked, so no reader ever sees "lock free + lease.json" = orphaned.
            self.paths.lease_json.unlink(missing_ok=True)
            fsync_directory(self.paths.root)
        finally:
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> LeaseHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def acquire_lease(paths: RunPaths, *, now: datetime) -> LeaseHandle:
    """Take the run's lease or raise LeaseHeldError naming the holder.

    Succeeds over an orphaned lease (its writer died); the old lease is in `handle.previous`.
    """
    _require_aware(now)
    lock_fd = os.open(paths.lease_lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock_exclusively(lock_fd):
            raise LeaseHeldError(paths, read_lease(paths), now)
        previous = read_lease(paths)
        lease = Lease(pid=os.getpid(), host=socket.gethostname(), started_at=now, heartbeat_at=now)
        _write_lease_json(paths, lease)
    except BaseException:
        os.close(lock_fd)
        raise
    return LeaseHandle(paths, lock_fd, lease, previous)


def _lock_exclusively(fd: int) -> bool:
    deadline = time.monotonic() + _ACQUIRE_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_ACQUIRE_RETRY_INTERVAL_S)


def _write_lease_json(paths: RunPaths, lease: Lease) -> None:
    atomic_write_text(paths.lease_json, json.dumps(lease.to_json(), indent=2) + "\n")


def read_lease(paths: RunPaths) -> Lease | None:
    """The lease in lease.json, or None if it is missing or garbage. Never raises."""
    try:
        data = json.loads(paths.lease_json.read_bytes())
        return Lease.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None


def lease_status(
    paths: RunPaths, *, now: datetime, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> LeaseStatus:
    """For readers: is someone writing this run?

    - "live": the lock is held right now (a writer is alive, even a hung one), or, when the lock
      cannot be probed (no lock file, no permission, a filesystem without flock), lease.json's
      heartbeat is fresh or its pid is still alive on this host.
    - "orphaned": lease.json exists but nobody holds the lock (a killed writer), or, unprobeable,
      the heartbeat is older than stale_after_s and the pid is not alive on this host (or
      lease.json is unreadable).
    - "none": no lease.json and no holder: the run was released cleanly or never leased.
    """
    _require_aware(now)
    lock_held = _probe_lock(paths)
    if lock_held:
        return "live"
    if not os.path.exists(paths.lease_json):  # False on any error: a reader must not raise here
        return "none"
    if lock_held is False:
        return "orphaned"
    lease = read_lease(paths)
    if lease is None:
        return "orphaned"
    if lease.heartbeat_age_s(now) <= stale_after_s:
        return "live"
    if lease.host == socket.gethostname() and _pid_alive(lease.pid):
        return "live"
    return "orphaned"


def _probe_lock(paths: RunPaths) -> bool | None:
    """True if a writer holds the lock, False if free, None if it cannot be probed.

    Probes with a shared lock so that readers probing at the same time don't see each other as
    writers; only a writer's exclusive lock makes the probe fail.
    """
    try:
        fd = os.open(paths.lease_lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError as error:
        return error.errno != errno.ESRCH
    return True
