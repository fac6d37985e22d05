from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aw_tui.model import events as ev
from aw_tui.model.state import MalformedLine
from aw_tui.store.eventlog import EventReader, EventWriter, TailReset, read_events

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)


def writer_at(tmp_path: Path, last_seq: int = 0) -> EventWriter:
    ticks = iter(range(1, 1000))
    return EventWriter(
        tmp_path / "events.jsonl",
        last_seq=last_seq,
        recovered_dir=tmp_path / "artifacts" / "recovered",
        clock=lambda: T0 + timedelta(seconds=next(ticks)),
    )


def test_the_writer_stamps_consecutive_seqs_and_one_ts_per_batch(tmp_path: Path) -> None:
    log = writer_at(tmp_path, last_seq=41)
    first = log.append([ev.RunPaused(), ev.RunResumed()])
    second = log.append([ev.Log(message="hi")])
    assert [e.seq for e in first + second] == [42, 43, 44]
    assert {e.ts for e in first} == {T0 + timedelta(seconds=1)}
    assert second[0].ts == T0 + timedelta(seconds=2)
    assert log.append([]) == [] and log.last_seq == 44
    log.close()

    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [list(json.loads(line))[:3] for line in lines] == [["seq", "ts", "type"]] * 3
    assert read_events(tmp_path / "events.jsonl") == first + second


def test_the_reader_leaves_a_half_written_line_for_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line = json.dumps({"seq": 1, "ts": "2026-04-01T12:00:00Z", "type": "run.paused"}).encode() + b"\n"
    path.write_bytes(line[:20])
    reader = EventReader(path)
    assert reader.read_new() == []
    assert reader.offset == 0
    with open(path, "ab") as file:
        file.write(line[20:])
    [event] = reader.read_new()
    assert isinstance(event, ev.RunPaused) and event.seq == 1
    assert reader.offset == len(line)


def test_the_reader_turns_bad_lines_into_malformed_lines_with_their_number(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"seq":1,"ts":"2026-04-01T12:00:00Z","type":"run.paused"}\n'
        "\n"
        "{oops\n"
        '{"seq":2,"ts":"2026-04-01T12:00:00Z","type":"phase.started","id":"p"}\n'
        '{"seq":3,"type":"run.resumed"}\n'
        '{"seq":0,"ts":"2026-04-01T12:00:00Z","type":"run.resumed"}\n'
        '{"seq":4,"ts":"2026-04-01T12:00:00Z"}\n'
        '{"seq":5,"ts":"2026-04-01T12:00:00Z","type":"brand.new","anything":[1]}\n'
    )
    items = EventReader(path).read_new()
    assert isinstance(items[0], ev.RunPaused)
    malformed = [item for item in items if isinstance(item, MalformedLine)]
    assert [(m.line_no, m.reason) for m in malformed] == [
        (3, "invalid JSON at column 2: Expecting property name enclosed in double quotes"),
        (4, "phase.started: title: Field required"),
        (6, "run.resumed: 'seq' must be a positive integer"),
        (7, "no 'type' field"),
    ]
    # A missing ts falls back to the epoch rather than rejecting the line.
    assert any(isinstance(item, ev.RunResumed) and item.seq == 3 for item in items)
    unknown = items[-1]
    assert isinstance(unknown, ev.UnknownEvent) and unknown.type == "brand.new"


def test_the_reader_notices_a_replaced_file(tmp_path: Path) -> None:
    log = writer_at(tmp_path)
    log.append([ev.RunPaused()])
    log.close()
    reader = EventReader(tmp_path / "events.jsonl")
    assert len(reader.read_new()) == 1
    replacement = tmp_path / "other.jsonl"
    replacement.write_text('{"seq":1,"ts":"2026-04-01T12:00:00Z","type":"run.resumed"}\n' * 3)
    replacement.replace(tmp_path / "events.jsonl")
    with pytest.raises(TailReset, match="replaced"):
        reader.read_new()
    reader.reset()
    assert len(reader.read_new()) == 3
