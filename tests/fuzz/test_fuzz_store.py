"""The store's readers on hostile file content: events.jsonl, control.jsonl and a seed's ledger.json.

Properties: a reader never raises on content (only on a file it cannot read at all, as RunError or TailReset);
every complete line that is not blank comes back exactly once, as a record or as a malformed line whose reason
is one readable line; reading a growing file piece by piece gives what one read gives; a run opens with every bad
line counted and named in its problems; and writing to a damaged file (a command, a rebuild) loses no byte.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aw_tui.model import events as ev
from aw_tui.model.codec import state_to_json
from aw_tui.model.commands import COMMAND_NAMES, Command, new_command
from aw_tui.model.ledger import compare_ledgers, timing_summary, token_table_rows
from aw_tui.model.state import MAX_PROBLEMS, MalformedLine
from aw_tui.model.summary import summarize
from aw_tui.store import jsonl
from aw_tui.store.control import BadCommand, read_commands, send_command
from aw_tui.store.eventlog import EventReader
from aw_tui.store.jsonl import JsonlRecord, JsonlTail
from aw_tui.store.layout import RunPaths
from aw_tui.store.run import open_run, rebuild

from tests.fuzz.strategies import control_file_bytes, events_file_bytes, ledger_documents, ledger_file_bytes

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
RUN_NAME = "aw_20260401_120000_fuzzed"

# (read chunk, line limit): the real sizes, and small ones so that lines straddle chunks and go over the limit
# in examples of a few hundred bytes. The reader assumes a chunk is never larger than the limit, as the real
# sizes are.
READ_SIZES = st.sampled_from([(jsonl._READ_CHUNK_BYTES, jsonl.MAX_LINE_BYTES), (7, 64), (64, 2048)])


@contextmanager
def read_sizes(sizes: tuple[int, int]):
    chunk, limit = sizes
    with mock.patch.object(jsonl, "_READ_CHUNK_BYTES", chunk), mock.patch.object(jsonl, "MAX_LINE_BYTES", limit):
        yield


@contextmanager
def run_dir():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / RUN_NAME
        path.mkdir()
        yield path


def expected_lines(content: bytes, limit: int) -> list[tuple]:
    """What a tail must report for `content`, worked out line by line without the tail's chunking: (kind,
    offset, line number, size, value) per complete line that is not blank."""
    out = []
    offset = 0
    lines = content.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):  # the last piece has no newline yet: not a line
        if len(line) > limit:
            out.append(("malformed", offset, number, len(line), None))
        elif line.strip(b" \t\r\n\x0b\x0c"):
            value = _json_object(line)
            if value is None:
                out.append(("malformed", offset, number, len(line), None))
            else:
                out.append(("record", offset, number, len(line), canonical(value)))
        offset += len(line) + 1
    return out


def _json_object(line: bytes) -> dict | None:
    try:
        value = json.loads(line.decode("utf-8"))
        # A lone surrogate ("\ud800") decodes, but is no text: it must be reported, not handed on.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def canonical(value: object) -> str:
    return json.dumps(value)  # NaN-safe equality: NaN != NaN, but "NaN" == "NaN"


def reported(items: list) -> list[tuple]:
    return [
        ("record", item.offset, item.line_number, None, canonical(item.value)) if isinstance(item, JsonlRecord)
        else ("malformed", item.offset, item.line_number, item.size, None)
        for item in items
    ]  # fmt: skip


def without_sizes(lines: list[tuple]) -> list[tuple]:
    return [(kind, offset, number, value) for kind, offset, number, _size, value in lines]


def assert_readable_reason(reason: str) -> None:
    assert reason and reason.strip() == reason and "\n" not in reason and "\r" not in reason, repr(reason)


# --- jsonl --------------------------------------------------------------------------------------------------------


@FUZZ
@given(content=events_file_bytes(), sizes=READ_SIZES)
def test_a_tail_reports_each_complete_line_once_and_leaves_the_partial_one(content, sizes):
    with run_dir() as run, read_sizes(sizes):
        path = run / "events.jsonl"
        path.write_bytes(content)
        tail = JsonlTail(path)
        items = tail.read_new()

        expected = expected_lines(content, sizes[1])
        assert without_sizes(reported(items)) == without_sizes(expected)
        for item, (kind, *_rest, size, _value) in zip(items, expected):
            if kind == "malformed":
                assert item.size == size
                assert_readable_reason(item.reason)
        complete = content.rfind(b"\n") + 1
        assert (tail.offset, tail.line_number) == (complete, content.count(b"\n"))
        assert tail.read_new() == []  # the partial last line stays unread until it ends


@FUZZ
@given(content=events_file_bytes(), cuts=st.lists(st.integers(0, 10**6), max_size=6), sizes=READ_SIZES)
def test_reading_a_growing_file_piece_by_piece_gives_what_one_read_gives(content, cuts, sizes):
    with run_dir() as run, read_sizes(sizes):
        path = run / "events.jsonl"
        path.write_bytes(b"")
        tail = JsonlTail(path)
        pieces: list = []
        bounds = sorted({cut % (len(content) + 1) for cut in cuts} | {0, len(content)})
        for start, end in zip(bounds, bounds[1:]):
            with open(path, "ab") as handle:
                handle.write(content[start:end])  # a writer appending, perhaps stopping mid-line
            pieces += tail.read_new()
        assert reported(pieces) == reported(JsonlTail(path).read_new())


# --- events.jsonl -------------------------------------------------------------------------------------------------


@FUZZ
@given(content=events_file_bytes(), sizes=READ_SIZES)
def test_every_bad_event_line_becomes_a_malformed_line_that_says_why(content, sizes):
    with run_dir() as run, read_sizes(sizes):
        path = run / "events.jsonl"
        path.write_bytes(content)
        lines = JsonlTail(path).read_new()
        events = EventReader(path).read_new()

    assert len(events) == len(lines)
    for line, event in zip(lines, events):
        if isinstance(event, MalformedLine):
            assert (event.line_no, event.offset) == (line.line_number, line.offset)
            assert_readable_reason(event.reason)
            if isinstance(line, JsonlRecord):
                _assert_not_an_event(line.value)
        else:
            assert isinstance(line, JsonlRecord)
            assert event == ev.parse_event(line.value) and event.seq >= 1


def _assert_not_an_event(value: dict) -> None:
    try:
        ev.parse_event(value)
    except ev.EventError:
        return
    raise AssertionError(f"a valid event was reported malformed: {value!r:.200}")


@FUZZ
@given(content=events_file_bytes())
def test_a_run_opens_with_every_bad_line_counted_and_named(content):
    with run_dir() as run:
        (run / "events.jsonl").write_bytes(content)
        opened = open_run(run)
        bad = [e for e in EventReader(run / "events.jsonl").read_new() if isinstance(e, MalformedLine)]

    state = opened.state
    assert not opened.legacy and state.run_id  # a run with no run.created is named after its directory
    assert state.malformed_lines == len(bad)
    for line in bad:
        named = any(problem.startswith(f"line {line.line_no}: ") for problem in state.problems)
        assert named or len(state.problems) == MAX_PROBLEMS, (line, state.problems)
    for problem in state.problems:
        assert_readable_reason(problem)


@settings(FUZZ, max_examples=25)
@given(content=events_file_bytes())
def test_a_rebuild_of_a_damaged_log_keeps_every_byte_and_reopens_the_same(content):
    with run_dir() as run:
        events = run / "events.jsonl"
        events.write_bytes(content)
        complete = content[: content.rfind(b"\n") + 1]
        torn = content[len(complete) :]

        state = rebuild(run)  # takes the lease, repairs a torn last line, rewrites run.json, state.md, ledger.json

        after = events.read_bytes()
        assert after.startswith(complete)  # no complete line touched, the repair's log event appended after them
        recovered = list((run / "artifacts" / "recovered").glob("events.jsonl.partial.*"))
        assert [p.read_bytes() for p in recovered] == ([torn] if torn else [])
        from_checkpoint = open_run(run).state
        replayed = open_run(run, use_checkpoint=False).state
    assert canonical(state_to_json(from_checkpoint)) == canonical(state_to_json(replayed))
    assert canonical(state_to_json(replayed)) == canonical(state_to_json(state))


# --- control.jsonl ------------------------------------------------------------------------------------------------


@FUZZ
@given(content=control_file_bytes(), sizes=READ_SIZES)
def test_every_bad_command_line_comes_back_as_a_bad_command_naming_its_line(content, sizes):
    with run_dir() as run, read_sizes(sizes):
        (run / "control.jsonl").write_bytes(content)
        lines = JsonlTail(run / "control.jsonl").read_new()
        commands = read_commands(run)

    assert len(commands) == len(lines)
    for line, command in zip(lines, commands):
        if isinstance(command, BadCommand):
            assert command.line_number == line.line_number
            assert command.reason.startswith(f"line {line.line_number}: ")
            assert_readable_reason(command.reason)
        else:
            assert isinstance(command, Command) and command.cmd in COMMAND_NAMES and command.ts.tzinfo is not None


@FUZZ
@given(content=control_file_bytes())
def test_a_command_sent_to_a_damaged_control_file_arrives_and_loses_nothing(content):
    with run_dir() as run:
        paths = RunPaths.for_run_dir(run)
        paths.control.write_bytes(content)
        complete = content[: content.rfind(b"\n") + 1]
        torn = content[len(complete) :]
        before = read_commands(run)

        sent = send_command(paths, new_command("pause", source="fuzz"))

        assert paths.control.read_bytes().startswith(complete)
        recovered = list(paths.recovered_dir.glob("control.jsonl.partial.*"))
        assert [p.read_bytes() for p in recovered] == ([torn] if torn else [])
        after = read_commands(run)
    assert after[-1] == sent
    assert [_key(c) for c in after[:-1]] == [_key(c) for c in before]


def _key(item: Command | BadCommand) -> object:
    return item if isinstance(item, Command) else (item.line_number, item.reason)


# --- a seed run's ledger.json -------------------------------------------------------------------------------------


@FUZZ
@given(content=ledger_file_bytes(), state_md=st.booleans())
def test_a_damaged_seed_ledger_opens_read_only_with_its_problems_listed(content, state_md):
    with run_dir() as run:
        (run / "ledger.json").write_bytes(content)
        if state_md:
            (run / "state.md").write_text("# Analyst/Worker State\n\nTask: old\nCurrent state: WORKER_RUNNING\n")
        opened = open_run(run)

    state = opened.state
    assert opened.legacy and state.read_only
    if _json_document(content) is NOT_JSON:
        assert any(p.startswith("ledger.json could not be read: ") for p in state.problems), state.problems
    for problem in state.problems:
        assert_readable_reason(problem)
    _views_of(state)


@FUZZ
@given(document=ledger_documents())
def test_each_seed_ledger_step_is_shown_or_reported_as_skipped(document):
    with run_dir() as run:
        (run / "ledger.json").write_text(json.dumps(document))
        state = open_run(run).state

    steps = document.get("steps") if isinstance(document, dict) else None
    if isinstance(steps, list):
        skipped = [p for p in state.problems if p.startswith("ledger.json: step entry ")]
        assert len(state.ledger.steps) + len(skipped) == len(steps)
    elif isinstance(document, dict) and steps is not None:
        assert any(p.startswith("ledger.json: 'steps' is a") for p in state.problems), state.problems
    _views_of(state)


NOT_JSON = object()


def _json_document(content: bytes) -> object:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return NOT_JSON


def _views_of(state) -> None:
    """What the TUI and the CLI compute from a run's ledger: each must take whatever a ledger holds."""
    token_table_rows(state.ledger)
    summary = timing_summary(state.ledger, state.created_at, state.last_event_at)
    summary.rows()
    summary.tool_calls_line()
    for row in compare_ledgers([state.ledger, state.ledger], [1.0, None]):
        row.formatted(0), row.formatted(1), row.ratio(1)
    summarize(state)


def test_the_fuzzed_files_reach_the_cases_they_are_for():
    """The byte strategies must keep producing each kind of damage the properties above are about."""
    seen: set[str] = set()
    kinds = {"invalid UTF-8": "invalid UTF-8", "invalid JSON at": "not JSON", "nested too deeply": "deep nesting",
             "not a JSON object": "not an object", "exceeds the": "line over the limit",
             "lone UTF-16 surrogate": "lone surrogate", "integer string conversion": "number too long"}  # fmt: skip

    @settings(FUZZ, max_examples=100)
    @given(content=events_file_bytes())
    def look(content):
        with run_dir() as run:
            (run / "events.jsonl").write_bytes(content)
            events = EventReader(run / "events.jsonl").read_new()
            with read_sizes((64, 2048)):
                events += EventReader(run / "events.jsonl").read_new()
        for event in events:
            reason = event.reason if isinstance(event, MalformedLine) else ""
            seen.update(kind for text, kind in kinds.items() if text in reason)
            if reason and ": " in reason and reason.split(":")[0] in ev.EVENT_TYPES:
                seen.add("invalid event")
            if isinstance(event, ev.UnknownEvent):
                seen.add("unknown event type")
        if content and not content.endswith(b"\n"):
            seen.add("torn last line")
        if b"\r\n" in content:
            seen.add("CRLF")
        if b"NaN" in content or b"Infinity" in content:
            seen.add("NaN or Infinity")

    look()
    wanted = set(kinds.values()) | {"invalid event", "unknown event type", "torn last line", "CRLF", "NaN or Infinity"}
    assert wanted <= seen, wanted - seen
