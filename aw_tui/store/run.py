"""One run directory: open it for reading, write it as the lease holder, rebuild its derived files.

Readers (`open_run`) replay events.jsonl through the reducer, or read an original-extension run (no events)
read-only. The writer (`RunWriter`) holds the lease, appends events, keeps its RunState current through the same
reducer and rewrites run.json, state.md and ledger.json atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aw_tui.model import events as ev
from aw_tui.model.legacy import LegacyLedgerRead, legacy_state
from aw_tui.model.state import RunState, reduce_all
from aw_tui.model.statemd import render_state_md
from aw_tui.model.codec import CodecError, state_from_json
from aw_tui.model.ledger import iso_or_none
from aw_tui.model.summary import snapshot_json
from aw_tui.store.atomic import atomic_write_text
from aw_tui.store.eventlog import Clock, EventReader, EventWriter, TailReset, utc_now
from aw_tui.store.layout import RunPaths, create_run_dir
from aw_tui.store.lease import LeaseHandle, LeaseStatus, acquire_lease, lease_status, read_lease

MAX_REPORT_BYTES = 8 * 1024 * 1024  # a step report larger than this is shown cut, never loaded whole


class RunError(Exception):
    """A run that cannot be opened or written; the message is one line for a user."""


class ReadOnlyRunError(RunError):
    pass


@dataclass
class OpenedRun:
    paths: RunPaths
    state: RunState
    legacy: bool
    reader: EventReader | None  # None for legacy runs: there is no event log to follow

    def refresh(self) -> bool:
        """Apply events appended since the last read. True when anything changed."""
        if self.reader is None:
            return False
        try:
            new = self.reader.read_new()
        except TailReset:
            # The log was replaced or cut under us: what we built from it no longer holds. Start over.
            self.reader.reset()
            self.state = reduce_all(RunState(), self.reader.read_new())
            return True
        if new:
            self.state = reduce_all(self.state, new)
        return bool(new)

    def lease_status(self, now: datetime | None = None) -> LeaseStatus:
        return lease_status(self.paths, now=now or utc_now())


def is_run_dir(path: Path) -> bool:
    """A directory aw-tui can open: ours (events.jsonl) or the original extension's (ledger.json/state.md)."""
    return any((path / name).is_file() for name in ("events.jsonl", "ledger.json", "state.md"))


def open_run(path: Path | str, *, use_checkpoint: bool = True) -> OpenedRun:
    """Open a run for reading. Raises RunError when it is not a run or cannot be read at all.

    With `use_checkpoint`, a valid checkpoint in run.json is loaded and only the events after it are applied;
    the result equals a full replay (tests/store/test_checkpoint.py). Without it, every event is replayed.
    """
    paths = RunPaths.for_run_dir(Path(path))
    root = paths.root
    if not root.is_dir():
        raise RunError(f"{root}: no such run directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise RunError(f"{root}: permission denied (cannot read the run directory)")
    if paths.events.exists():
        checkpoint = _load_checkpoint(paths) if use_checkpoint else None
        state, reader = checkpoint or (RunState(), EventReader(paths.events))
        try:
            events = reader.read_new()
        except TailReset:
            state, reader = RunState(), EventReader(paths.events)  # the log was replaced under the checkpoint
            events = reader.read_new()
        except PermissionError:
            raise RunError(f"{paths.events}: permission denied") from None
        except OSError as error:
            raise RunError(f"{paths.events}: {error.strerror or error}") from None
        state = reduce_all(state, events)
        if not state.run_id:
            state.run_id = root.name
        return OpenedRun(paths, state, legacy=False, reader=reader)
    if paths.ledger_json.exists() or paths.state_md.exists():
        return OpenedRun(paths, read_legacy_run(paths), legacy=True, reader=None)
    raise RunError(f"{root}: not a run directory (no events.jsonl, ledger.json or state.md)")


_CHECKPOINT_TAIL_BYTES = 256 * 1024  # how far back to look for the checkpoint's last event line


def _load_checkpoint(paths: RunPaths) -> tuple[RunState, EventReader] | None:
    """The state in run.json and a reader positioned after the events it reflects, or None to replay.

    The checkpoint is trusted only if the line ending at its offset is the event with its last seq, so a log
    that was replaced, truncated or rewritten since is always replayed instead.
    """
    try:
        snapshot = json.loads(paths.run_json.read_bytes())
        offset = snapshot["events_bytes"]
        checkpoint = snapshot["checkpoint"]
        state = state_from_json(checkpoint["state"])
        lines = checkpoint["events_lines"]
        if not isinstance(offset, int) or not isinstance(lines, int) or offset < 0:
            return None
        if offset == 0:
            return (state, EventReader(paths.events)) if state.last_seq == 0 else None
        with open(paths.events, "rb") as file:
            start = max(0, offset - _CHECKPOINT_TAIL_BYTES)
            file.seek(start)
            head = file.read(offset - start)
    except (OSError, ValueError, KeyError, TypeError, RecursionError, CodecError):
        return None
    if len(head) != offset - start or not head.endswith(b"\n"):
        return None
    newline = head.rfind(b"\n", 0, len(head) - 1)
    if newline < 0 and start > 0:
        return None  # the last line is longer than we looked back: replay
    try:
        last = json.loads(head[newline + 1 : -1])
    except (ValueError, RecursionError):  # the last line may be any damaged line, "[[[[..." nested too deeply
        return None
    if not isinstance(last, dict) or last.get("seq") != state.last_seq:
        return None
    return state, EventReader(paths.events, offset=offset, line_number=lines)


def read_legacy_run(paths: RunPaths) -> RunState:
    """A run of the original extension, as a read-only RunState. Never writes to the directory."""
    problems: list[str] = []
    ledger = _read_legacy_ledger(paths.ledger_json)
    state_md: str | None = None
    try:
        state_md = paths.state_md.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        pass
    except OSError as error:
        problems.append(f"state.md could not be read: {error.strerror or error}")
        state_md = ""
    step_files, step_problems = list_step_files(paths)
    return legacy_state(paths.root.name, ledger, state_md, step_files, problems + step_problems)


def _read_legacy_ledger(path: Path) -> LegacyLedgerRead:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LegacyLedgerRead(missing=True)
    except OSError as error:
        return LegacyLedgerRead(error=error.strerror or str(error))
    try:
        return LegacyLedgerRead(data=json.loads(raw))
    except (ValueError, RecursionError) as error:
        return LegacyLedgerRead(error=f"not valid JSON ({str(error)[:120]})")


def list_step_files(paths: RunPaths) -> tuple[list[str], list[str]]:
    """Names of the step reports in steps/, and problems. A symlink leading outside the run is skipped."""
    names: list[str] = []
    problems: list[str] = []
    if paths.steps_dir.is_symlink() and not _inside(paths.root, paths.steps_dir):
        return names, ["steps/ is a symlink leading outside the run directory; not followed"]
    try:
        entries = list(os.scandir(paths.steps_dir))
    except FileNotFoundError:
        return names, problems
    except OSError as error:
        return names, [f"steps/ could not be listed: {error.strerror or error}"]
    for entry in entries:
        if not entry.name.endswith(".md"):
            continue
        if entry.is_symlink() and not _inside(paths.root, Path(entry.path)):
            problems.append(f"steps/{entry.name} is a symlink leading outside the run directory; not followed")
            continue
        names.append(entry.name)
    return sorted(names), problems


def read_step_report(paths: RunPaths, relative: str, *, limit: int = MAX_REPORT_BYTES) -> str:
    """The text of a step report named by a path relative to the run. Refuses anything resolving outside it."""
    if "\x00" in relative:  # no file has such a name; the os functions below would raise ValueError on it
        raise RunError(f"{relative!r}: not a file name (it holds a NUL byte); not read")
    candidate = paths.root / relative
    if not _inside(paths.root, candidate):
        raise RunError(f"{relative}: leads outside the run directory; not read")
    try:
        with open(candidate, "rb") as file:
            data = file.read(limit + 1)
    except FileNotFoundError:
        raise RunError(f"{relative}: the step report is missing") from None
    except OSError as error:
        raise RunError(f"{relative}: {error.strerror or error}") from None
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n\n[report cut at {limit:,} bytes; open the file for the rest]\n"
    return text


def _inside(root: Path, candidate: Path) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    return real == real_root or real.startswith(real_root + os.sep)


# --- writing ----------------------------------------------------------------------------------------------


class RunWriter:
    """The one writer of a run: holds the lease, appends events and keeps the derived files current."""

    def __init__(
        self, paths: RunPaths, lease: LeaseHandle, state: RunState, clock: Clock, *, events_lines: int = 0
    ) -> None:
        self.paths = paths
        # Complete lines in events.jsonl, kept for the checkpoint so a reader resuming there numbers lines right.
        self._events_lines = events_lines
        self.lease = lease
        self.state = state
        self._clock = clock
        # Opening repairs a torn last line, which writes too: a failure names events.jsonl (JsonlAppender).
        self._log = EventWriter(paths.events, last_seq=state.last_seq, recovered_dir=paths.recovered_dir, clock=clock)
        self._events_bytes = _size(paths.events)
        if self._log.repair is not None:
            repair = self._log.repair
            try:
                self.emit(
                    ev.Log(
                        level="warning",
                        message=f"repaired events.jsonl: a partial last line of {repair.size} bytes at offset "
                        f"{repair.offset} (left by a crash) was moved to {repair.saved_to}",
                    )
                )
            except BaseException:
                self._log.close()  # the caller releases the lease; nothing else would close this descriptor
                raise

    @classmethod
    def create(
        cls,
        root: Path | str,
        *,
        task: str,
        title: str | None = None,
        workspace: str = "",
        settings: dict[str, Any] | None = None,
        kind: str = "analyst_worker",
        clock: Clock = utc_now,
    ) -> RunWriter:
        """A new run directory `aw_<local time>_<slug>` under root, leased, with its run.created event."""
        now = clock()
        run_dir = create_run_dir(Path(root), title or task, now.astimezone())
        paths = RunPaths.for_run_dir(run_dir)
        lease = acquire_lease(paths, now=now)
        try:
            writer = cls(paths, lease, RunState(), clock)
        except BaseException:
            lease.release()
            raise
        try:
            writer.emit(
                ev.RunCreated(
                    run_id=run_dir.name, task=task, title=title or task, workspace=workspace, kind=kind,  # type: ignore[arg-type]
                    settings=settings or {},
                )
            )
        except BaseException:
            # A full disk on the first event must not leave the run leased (shown live) until this process exits.
            writer._log.close()
            lease.release()
            raise
        return writer

    @classmethod
    def attach(cls, path: Path | str, *, clock: Clock = utc_now) -> RunWriter:
        """Take over an existing run (resume, rebuild). Refused while another process holds its lease."""
        # The writer replays every event rather than trusting a checkpoint: what it writes next derives from this.
        opened = open_run(path, use_checkpoint=False)
        if opened.legacy:
            raise ReadOnlyRunError(
                f"{opened.paths.root.name} was written by the original extension and is read-only"
            )
        lease = acquire_lease(opened.paths, now=clock())
        try:
            # Re-read under the lease: the previous writer may have appended after our first read.
            opened.refresh()
            assert opened.reader is not None
            return cls(opened.paths, lease, opened.state, clock, events_lines=opened.reader.line_number)
        except BaseException:
            lease.release()
            raise

    def emit(self, *events: ev.Event) -> list[ev.Event]:
        """Append events (stamped with seq and ts) and fold them into `state`. Returns the stamped events.

        A failed write (a full disk) raises an OSError naming events.jsonl; nothing of the batch is applied.
        """
        stamped = self._log.append(events)
        self._events_lines += len(stamped)
        self.state = reduce_all(self.state, stamped)
        self._events_bytes = _size(self.paths.events)
        return stamped

    def write_derived(self) -> None:
        """Rewrite run.json, state.md and ledger.json from the state, each atomically."""
        write_derived_files(
            self.paths, self.state, events_bytes=self._events_bytes, events_lines=self._events_lines, now=self._clock()
        )

    def heartbeat(self) -> None:
        self.lease.heartbeat(self._clock())

    def close(self) -> None:
        try:
            self.write_derived()
        finally:
            self._log.close()
            self.lease.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_derived_files(
    paths: RunPaths, state: RunState, *, events_bytes: int, events_lines: int, now: datetime
) -> None:
    lease = read_lease(paths)
    snapshot = snapshot_json(
        state, events_bytes=events_bytes, events_lines=events_lines, lease=lease.to_json() if lease else None
    )
    # Compact: the checkpoint of a long run is large, and people read state.md, not run.json.
    atomic_write_text(paths.run_json, json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False) + "\n")
    atomic_write_text(paths.state_md, render_state_md(state, run_dir=str(paths.root), now=now))
    header = {
        "task_id": state.run_id,
        "task_title": state.title,
        "artifact_dir": str(paths.root),
        "started_at": iso_or_none(state.created_at),
        "config": seed_config(state),
    }
    ledger = state.ledger.to_json(header)
    ledger["interrupted"] = interrupted_spending(state)
    atomic_write_text(paths.ledger_json, json.dumps(ledger, indent=2, ensure_ascii=False) + "\n")


def interrupted_spending(state: RunState) -> list[dict[str, Any]]:
    """What turns cut off by a crash or kill spent before they were redone: in the totals, in no step.

    With these, ledger.json adds up: the totals are the steps plus these entries (plus what sub-agents spent, which
    is booked under their own role), and a reader can tell a redone turn's first try from a turn counted twice.
    """
    return [
        {"agent": agent.id, "step": agent.step, "role": agent.role.upper(), "model": agent.model,
         **agent.usage.to_json(), "llm_calls": agent.llm_calls}
        for agent in state.agents.values() if agent.status == "interrupted"
    ]  # fmt: skip


def seed_config(state: RunState) -> dict[str, Any]:
    """Our settings, plus the seed's AwConfig names for tools that read the original ledger.json."""
    config: dict[str, Any] = dict(state.settings)
    for role in ("analyst", "worker"):
        role_settings = state.settings.get(role)
        if isinstance(role_settings, dict):
            for ours, theirs in (("model", "Model"), ("thinking", "ThinkingLevel"), ("context_limit", "ContextLimitTokens")):
                if ours in role_settings:
                    config[f"{role}{theirs}"] = role_settings[ours]
    config.update(cwd=state.workspace, taskTitle=state.title, taskDescription=state.task, taskId=state.run_id)
    return config


def rebuild(path: Path | str, *, clock: Clock = utc_now) -> RunState:
    """Rewrite the derived files from events.jsonl alone. Takes the lease, so never races a live writer."""
    writer = RunWriter.attach(path, clock=clock)
    writer.close()
    return writer.state


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
