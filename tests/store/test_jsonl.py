from __future__ import annotations

import json
import math
import multiprocessing
import os
import tracemalloc
from pathlib import Path

import pytest

from aw_tui.store import jsonl
from aw_tui.store.jsonl import (
    MAX_LINE_BYTES,
    JsonlAppender,
    JsonlRecord,
    JsonlTail,
    MalformedLine,
    TailReset,
    append_lines,
    encode_line,
    read_all,
)


def _values(items: list) -> list[dict]:
    assert all(isinstance(item, JsonlRecord) for item in items), items
    return [item.value for item in items]


# --- appending -----------------------------------------------------------------------------------


def test_lines_are_compact_utf8_json_objects(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with JsonlAppender(path) as appender:
        assert appender.append([{"seq": 1, "text": "日本 ü"}, {"seq": 2}]) == 0
        second_offset = appender.append(['{"seq": 3}'])
    assert path.read_bytes() == '{"seq":1,"text":"日本 ü"}\n{"seq":2}\n{"seq": 3}\n'.encode()
    assert second_offset == len('{"seq":1,"text":"日本 ü"}\n{"seq":2}\n'.encode())
    assert _values(read_all(path)) == [{"seq": 1, "text": "日本 ü"}, {"seq": 2}, {"seq": 3}]
    assert encode_line({"a": "ü", "b": [1, 2]}) == '{"a":"ü","b":[1,2]}\n'.encode()


@pytest.mark.parametrize(
    ("bad_item", "error"),
    [
        ([1, 2], TypeError),
        ({"cost": math.nan}, ValueError),
        ('{"a":\n1}', ValueError),
        ("[1]", ValueError),
        ({"text": "\ud800"}, UnicodeEncodeError),
    ],
)
def test_a_bad_item_writes_nothing_from_its_batch(tmp_path: Path, bad_item: object, error: type) -> None:
    path = tmp_path / "events.jsonl"
    with JsonlAppender(path) as appender:
        appender.append([{"seq": 1}])
        with pytest.raises(error):
            appender.append([{"seq": 2}, bad_item])  # type: ignore[list-item]
    assert path.read_bytes() == b'{"seq":1}\n'


def test_creating_the_file_fsyncs_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(jsonl, "fsync_directory", synced.append)
    path = tmp_path / "control.jsonl"
    append_lines(path, [{"id": "a"}])
    append_lines(path, [{"id": "b"}])
    assert synced == [tmp_path]


def test_a_failed_fsync_cuts_the_batch_back_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    appender = JsonlAppender(path)
    appender.open()
    appender.append([{"seq": 1}])

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(jsonl.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        appender.append([{"seq": 2}])
    monkeypatch.undo()
    appender.close()
    assert path.read_bytes() == b'{"seq":1}\n'


def _append_from_process(path: str, writer: int, batches: int) -> None:
    padding = "x" * 4000  # long lines make a torn or interleaved write likely if locking broke
    with JsonlAppender(path) as appender:
        for batch in range(batches):
            appender.append(
                [{"writer": writer, "batch": batch, "part": part, "pad": padding} for part in range(3)]
            )


def test_concurrent_appenders_in_several_processes_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "control.jsonl"
    writers, batches = 4, 150
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_append_from_process, args=(str(path), writer, batches))
        for writer in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    values = _values(read_all(path))
    assert len(values) == writers * batches * 3
    for writer in range(writers):
        mine = [(value["batch"], value["part"]) for value in values if value["writer"] == writer]
        assert mine == [(batch, part) for batch in range(batches) for part in range(3)]
    # Each batch's lines are adjacent: one write per batch.
    for index in range(0, len(values), 3):
        batch = values[index : index + 3]
        assert {(value["writer"], value["batch"]) for value in batch} == {
            (batch[0]["writer"], batch[0]["batch"])
        }
        assert [value["part"] for value in batch] == [0, 1, 2]


# --- crash repair --------------------------------------------------------------------------------


def test_opening_repairs_a_torn_last_line_and_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = b'{"seq":1}\n{"seq":2}\n'
    torn = b'{"seq":3,"text":"half'
    path.write_bytes(good + torn)

    with JsonlAppender(path) as appender:
        repair = appender.open()  # idempotent: the with-block already opened and repaired
        assert repair is None
        [repair] = appender.repairs
        assert repair.offset == len(good)
        assert repair.size == len(torn)
        assert repair.saved_to == tmp_path / "artifacts" / "recovered" / f"events.jsonl.partial.{len(good)}"
        assert repair.saved_to.read_bytes() == torn
        assert path.read_bytes() == good
        appender.append([{"seq": 3}])

    assert _values(read_all(path)) == [{"seq": 1}, {"seq": 2}, {"seq": 3}]


def test_a_file_that_is_one_torn_line_is_cut_to_empty(tmp_path: Path) -> None:
    path = tmp_path / "control.jsonl"
    path.write_bytes(b'{"id":"a"')
    recovered = tmp_path / "elsewhere"
    repairs = append_lines(path, [{"id": "b"}], recovered_dir=recovered)
    assert [(repair.offset, repair.size) for repair in repairs] == [(0, 9)]
    assert (recovered / "control.jsonl.partial.0").read_bytes() == b'{"id":"a"'
    assert path.read_bytes() == b'{"id":"b"}\n'


def test_a_second_tear_at_the_same_offset_does_not_overwrite_the_first(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"first tear")
    append_lines(path, [])
    path.write_bytes(b"second tear")
    [repair] = append_lines(path, [])
    recovered = tmp_path / "artifacts" / "recovered"
    assert (recovered / "events.jsonl.partial.0").read_bytes() == b"first tear"
    assert repair.saved_to == recovered / "events.jsonl.partial.0.2"
    assert repair.saved_to.read_bytes() == b"second tear"


def test_a_tear_by_another_writer_is_repaired_before_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "control.jsonl"
    with JsonlAppender(path) as appender:
        appender.append([{"id": "a"}])
        with open(path, "ab") as crashed_writer:
            crashed_writer.write(b'{"id":"b","cm')
        appender.append([{"id": "c"}])
        assert [repair.offset for repair in appender.repairs] == [len(b'{"id":"a"}\n')]
    assert _values(read_all(path)) == [{"id": "a"}, {"id": "c"}]


def test_a_long_torn_line_is_found_by_scanning_backwards(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    torn = b'{"blob":"' + b"z" * 300_000
    path.write_bytes(b'{"seq":1}\n' + torn)
    [repair] = append_lines(path, [])
    assert repair.offset == 10
    assert repair.saved_to.read_bytes() == torn


# --- tailing -------------------------------------------------------------------------------------


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_all(tmp_path / "nope.jsonl") == []
    assert JsonlTail(tmp_path / "nope.jsonl").read_new() == []


def test_tail_follows_many_appends_and_a_line_written_in_two_halves(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = JsonlTail(path)
    seen: list[JsonlRecord] = []
    with JsonlAppender(path) as appender:
        for seq in range(1, 51):
            appender.append([{"seq": seq}])
            if seq % 7 == 0:
                seen += tail.read_new()

    with open(path, "ab") as raw:
        raw.write(b'{"seq":51,"te')
        raw.flush()
        seen += tail.read_new()
        offset_before_half = tail.offset
        assert tail.read_new() == []
        raw.write(b'xt":"end"}\n')
        raw.flush()
        seen += tail.read_new()

    assert [record.value["seq"] for record in seen] == list(range(1, 52))
    assert [record.line_number for record in seen] == list(range(1, 52))
    assert seen[-1].offset == offset_before_half
    assert seen[-1].value == {"seq": 51, "text": "end"}
    content = path.read_bytes()
    for record in seen:
        line_end = content.index(b"\n", record.offset)
        assert json.loads(content[record.offset : line_end]) == record.value
    assert tail.offset == len(content)
    assert tail.line_number == 51


def test_malformed_lines_are_reported_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        b'{"seq":1}',
        b"",
        b"   \t",
        b'{"seq": oops}',
        b"[1,2]",
        b"42",
        b"null",
        b'{"text":"\xff\xfe"}',
        b'{"seq":2}\r',
        b"[" * 100_000 + b"]" * 100_000,
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = read_all(path)

    assert [type(item).__name__ for item in items] == [
        "JsonlRecord",
        "MalformedLine",
        "MalformedLine",
        "MalformedLine",
        "MalformedLine",
        "MalformedLine",
        "JsonlRecord",
        "MalformedLine",
    ]
    assert [item.line_number for item in items] == [1, 4, 5, 6, 7, 8, 9, 10]
    malformed = [item for item in items if isinstance(item, MalformedLine)]
    assert malformed[0].reason == "invalid JSON at column 9: Expecting value"
    assert [item.reason for item in malformed[1:4]] == [
        "not a JSON object (got array)",
        "not a JSON object (got number)",
        "not a JSON object (got null)",
    ]
    assert malformed[4].reason == "invalid UTF-8 at byte 9"
    assert malformed[4].size == len(lines[7])
    assert malformed[4].offset == sum(len(line) + 1 for line in lines[:7])
    assert malformed[5].reason == "JSON nested too deeply"


def test_line_numbers_stay_right_across_calls_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n\n')
    tail = JsonlTail(path)
    assert [item.line_number for item in tail.read_new()] == [1]
    with open(path, "ab") as raw:
        raw.write(b'\n{"a":2}\n')
    [item] = tail.read_new()
    assert (item.line_number, item.offset) == (4, 10)


def test_a_tail_resumes_from_a_saved_position(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_lines(path, [{"seq": 1}, {"seq": 2}])
    first = JsonlTail(path)
    first.read_new()
    append_lines(path, [{"seq": 3}])
    resumed = JsonlTail(path, offset=first.offset, line_number=first.line_number)
    [item] = resumed.read_new()
    assert (item.value, item.line_number) == ({"seq": 3}, 3)


def test_a_line_over_the_limit_is_streamed_past_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    huge_size = MAX_LINE_BYTES + 1_000_000
    with open(path, "wb") as raw:
        raw.write(b'{"seq":1}\n')
        raw.write(b'{"blob":"' + b"a" * (huge_size - 11) + b'"}')  # unfinished at first
    tail = JsonlTail(path)
    assert _values(tail.read_new()) == [{"seq": 1}]
    assert tail.offset == 10  # the huge partial line is not consumed

    with open(path, "ab") as raw:
        raw.write(b'\n{"seq":2}\n')
    tracemalloc.start()
    try:
        items = tail.read_new()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(items) == 2
    oversize, after = items
    assert isinstance(oversize, MalformedLine)
    assert (oversize.offset, oversize.line_number, oversize.size) == (10, 2, huge_size)
    assert oversize.reason == f"line of {huge_size} bytes exceeds the 10 MiB limit"
    assert isinstance(after, JsonlRecord) and after.value == {"seq": 2} and after.line_number == 3
    # Never the whole 11 MB line: at most the limit plus a couple of read chunks.
    assert peak < MAX_LINE_BYTES + 3 * 1024 * 1024


def test_a_line_of_exactly_the_limit_is_still_decoded(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line = b'{"blob":"' + b"b" * (MAX_LINE_BYTES - 11) + b'"}'
    assert len(line) == MAX_LINE_BYTES
    path.write_bytes(line + b"\n")
    [item] = read_all(path)
    assert isinstance(item, JsonlRecord)
    assert len(item.value["blob"]) == MAX_LINE_BYTES - 11


def test_shrinking_below_the_offset_raises_tail_reset(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_lines(path, [{"seq": 1}, {"seq": 2}])
    tail = JsonlTail(path)
    tail.read_new()
    with open(path, "r+b") as raw:
        raw.truncate(5)
    with pytest.raises(TailReset, match="shrank"):
        tail.read_new()
    assert tail.offset == 20  # untouched until the caller resets
    tail.reset()
    assert [type(item) for item in tail.read_new()] == []  # 5 bytes, no complete line


def test_a_replaced_file_raises_tail_reset(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_lines(path, [{"seq": 1}])
    tail = JsonlTail(path)
    tail.read_new()
    replacement = tmp_path / "new.jsonl"
    append_lines(replacement, [{"seq": 10}, {"seq": 11}, {"seq": 12}])
    os.replace(replacement, path)
    with pytest.raises(TailReset, match="replaced"):
        tail.read_new()
    tail.reset()
    assert [item.value["seq"] for item in tail.read_new()] == [10, 11, 12]


def test_a_rewrite_in_place_raises_tail_reset(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_lines(path, [{"seq": 1}])
    tail = JsonlTail(path)
    tail.read_new()
    with open(path, "r+b") as raw:  # same inode, new content that is longer
        raw.write(b'{"seq":100}\n{"seq":101}\n')
    with pytest.raises(TailReset, match="not a newline"):
        tail.read_new()


def test_a_file_deleted_after_reading_raises_tail_reset(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_lines(path, [{"seq": 1}])
    tail = JsonlTail(path)
    tail.read_new()
    path.unlink()
    with pytest.raises(TailReset, match="disappeared"):
        tail.read_new()


def test_tailing_reads_only_the_new_bytes(tmp_path: Path) -> None:
    """O(new bytes): after a read, the old lines are never read again. Scribbling over them (same length, so
    the offset stays valid) must go unnoticed by the next read, which sees only the appended lines."""
    path = tmp_path / "events.jsonl"
    append_lines(path, [{"seq": seq, "type": "x"} for seq in range(1000)])
    tail = JsonlTail(path)
    assert len(tail.read_new()) == 1000
    old_size = path.stat().st_size
    with open(path, "r+b") as file:
        file.write(b"#" * (old_size - 1))  # everything read so far, but its final newline
    append_lines(path, [{"seq": seq, "type": "x"} for seq in range(1000, 1010)])
    new = tail.read_new()
    assert [item.value["seq"] for item in new] == list(range(1000, 1010))
