"""Finding runs under one or more roots, newest first, and resolving a RUN argument to a directory.

Listing reads each run's run.json summary when it is current (its recorded size of events.jsonl matches the
file), so a thousand runs list quickly; otherwise, or when run.json is damaged, it replays the events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from aw_tui.model.summary import RunSummary, summarize
from aw_tui.store.eventlog import utc_now
from aw_tui.store.layout import RUN_DIR_PREFIX, RunPaths
from aw_tui.store.lease import lease_status
from aw_tui.store.run import RunError, is_run_dir, open_run

Liveness = Literal["live", "orphaned", "ended", "read-only", "unreadable"]


@dataclass(frozen=True, slots=True)
class RunListing:
    path: Path
    summary: RunSummary | None  # None when the run could not be read; `error` says why
    liveness: Liveness
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sort_key(self) -> tuple[float, str]:
        created = self.summary.created_at if self.summary else None
        return (created.timestamp() if created else 0.0, self.name)


def discover_runs(roots: Iterable[Path | str], *, now: datetime | None = None) -> list[RunListing]:
    """Every run directly under each root (missing roots are skipped), newest first."""
    now = now or utc_now()
    listings: list[RunListing] = []
    seen: set[str] = set()
    for root in roots:
        for path in _candidate_dirs(Path(root)):
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            listings.append(list_run(path, now=now))
    listings.sort(key=lambda listing: listing.sort_key, reverse=True)
    return listings


def _candidate_dirs(root: Path) -> list[Path]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError:
        return []
    out = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        # Our runs and the original extension's share the aw_ prefix; anything else must look like a run.
        if entry.name.startswith(RUN_DIR_PREFIX) or _safe_is_run_dir(path):
            out.append(path)
    return out


def _safe_is_run_dir(path: Path) -> bool:
    try:
        return is_run_dir(path)
    except OSError:
        return False


def list_run(path: Path, *, now: datetime) -> RunListing:
    paths = RunPaths.for_run_dir(path)
    summary = _fresh_snapshot_summary(paths)
    legacy = False
    if summary is None:
        try:
            opened = open_run(path)
        except RunError as error:
            # The row already names the run; say what inside it failed.
            reason = str(error).replace(f"{path}{os.sep}", "").replace(f"{path}: ", "")
            return RunListing(path, None, "unreadable", reason)
        summary, legacy = summarize(opened.state), opened.legacy
    if legacy or summary.read_only:
        return RunListing(path, summary, "read-only")
    status = lease_status(paths, now=now)
    if status == "live":
        return RunListing(path, summary, "live")
    if summary.state in ("FINISHED", "ABORTED", "FAILED"):
        return RunListing(path, summary, "ended")
    return RunListing(path, summary, "orphaned")


def _fresh_snapshot_summary(paths: RunPaths) -> RunSummary | None:
    """run.json's summary if it reflects all of events.jsonl; None means: replay the events."""
    try:
        events_size = paths.events.stat().st_size
        snapshot = json.loads(paths.run_json.read_bytes())
        if not isinstance(snapshot, dict) or snapshot.get("events_bytes") != events_size:
            return None
        return RunSummary.from_json(snapshot["summary"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # a hand-edited or damaged run.json
        return None


class RunNotFound(RunError):
    pass


def resolve_run(ref: str, roots: Iterable[Path | str]) -> Path:
    """RUN as the CLI takes it: a path to a run directory, or a unique prefix of a run's name under the roots."""
    as_path = Path(ref).expanduser()
    if as_path.is_dir():
        if not _safe_is_run_dir(as_path) and not as_path.name.startswith(RUN_DIR_PREFIX):
            raise RunNotFound(f"{ref}: not a run directory (no events.jsonl, ledger.json or state.md)")
        return as_path
    roots = [Path(r) for r in roots]
    names: dict[str, Path] = {}
    for root in roots:
        for path in _candidate_dirs(root):
            names.setdefault(path.name, path)
    if ref in names:
        return names[ref]
    matches = sorted(name for name in names if name.startswith(ref))
    if len(matches) == 1:
        return names[matches[0]]
    where = ", ".join(str(r) for r in roots) or "no roots"
    if not matches:
        raise RunNotFound(f"no run matches {ref!r} under {where}")
    shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
    raise RunNotFound(f"{ref!r} matches {len(matches)} runs ({shown}); give more of the name")
