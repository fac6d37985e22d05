"""events.jsonl as events: reading (whole or tailed by byte offset) and appending with seq and ts stamped."""

from __future__ import annotations

from aw_tui.clock import utc_now  # noqa: F401 (re-exported: the store stamps events with it)

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from aw_tui.model.events import Event, EventError, event_to_json, parse_event
from aw_tui.model.state import MalformedLine, ReducerInput
from aw_tui.store.jsonl import JsonlAppender, JsonlRecord, JsonlTail, PartialLineRepair, TailReset

__all__ = ["EventLogDamaged", "EventReader", "EventWriter", "TailReset", "read_events", "utc_now"]

Clock = Callable[[], datetime]


class EventReader:
    """Tails events.jsonl: each call parses only the complete lines appended since the last one.

    Lines that are not valid events come back as MalformedLine so the reducer counts them. A partial last line
    (a writer mid-append, or a crash) is left for the next call. Raises TailReset when the file was replaced.
    """

    def __init__(self, path: Path | str, *, offset: int = 0, line_number: int = 0) -> None:
        self._tail = JsonlTail(path, offset=offset, line_number=line_number)

    @property
    def offset(self) -> int:
        return self._tail.offset

    @property
    def line_number(self) -> int:
        return self._tail.line_number

    def reset(self) -> None:
        self._tail.reset()

    def read_new(self) -> list[ReducerInput]:
        out: list[ReducerInput] = []
        for item in self._tail.read_new():
            if isinstance(item, JsonlRecord):
                try:
                    out.append(parse_event(item.value))
                except EventError as error:
                    out.append(MalformedLine(item.line_number, item.offset, str(error)))
            else:
                out.append(MalformedLine(item.line_number, item.offset, item.reason))
        return out


def read_events(path: Path | str) -> list[ReducerInput]:
    return EventReader(path).read_new()


class EventLogDamaged(OSError):
    """A failed append left part of its batch in events.jsonl; this writer can no longer stamp seqs safely."""


class EventWriter:
    """Appends events durably (one write per batch, then fsync), stamping seq without gaps and ts in UTC.

    Only the lease holder may use one. Opening it repairs a partial last line left by a crashed writer, keeping
    the torn bytes under artifacts/recovered/; `repair` says what was moved.
    """

    def __init__(self, path: Path, *, last_seq: int, recovered_dir: Path, clock: Clock = utc_now) -> None:
        self._path = Path(path)
        self._appender = JsonlAppender(path, recovered_dir=recovered_dir)
        self.repair: PartialLineRepair | None = self._appender.open()
        self.last_seq = last_seq
        self._clock = clock
        self._damaged = False

    def append(self, events: Iterable[Event]) -> list[Event]:
        if self._damaged:
            raise EventLogDamaged(
                f"{self._path}: an earlier failed write could not be cut back out of the file; "
                "attach the run again to continue from what is on disk"
            )
        ts = self._clock()
        stamped = [e.model_copy(update={"seq": self.last_seq + i, "ts": ts}) for i, e in enumerate(events, 1)]
        if not stamped:
            return []
        size_before = _size(self._path)
        try:
            self._appender.append([event_to_json(e) for e in stamped])
        except BaseException:
            # The appender cuts a failed batch back out. If even that failed, whole lines of the batch may be in
            # the file with seqs we are about to reuse, and readers would apply them and drop ours: stop writing.
            if size_before is None or _size(self._path) != size_before:
                self._damaged = True
            raise
        # Only after the write succeeded: a failed write (full disk) must not leave a gap in seq.
        self.last_seq = stamped[-1].seq
        return stamped

    def close(self) -> None:
        self._appender.close()


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
