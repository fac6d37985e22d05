"""Opening from run.json's checkpoint gives exactly the state a full replay gives, or falls back to replay."""

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aw_tui.model import events as ev
from aw_tui.store.run import RunWriter, open_run
from tests.model.event_factory import event_streams


def unstamped(events):
    # The writer stamps seq and ts itself; run.created is made by RunWriter.create.
    return [e for e in events if not isinstance(e, ev.RunCreated)]


def write_run(root: Path, events, cuts: list[int], derive_at: set[int]) -> RunWriter:
    writer = RunWriter.create(root, task="checkpoint property")
    bounds = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
        writer.emit(*events[start:end])
        if index in derive_at:
            writer.write_derived()
    return writer


@settings(max_examples=60, deadline=None)
@given(
    events=event_streams(max_size=40),
    cuts=st.lists(st.integers(0, 100), max_size=6),
    derive_at=st.sets(st.integers(0, 6), max_size=4),
    garbage_after=st.booleans(),
)
def test_checkpointed_open_equals_full_replay(events, cuts, derive_at, garbage_after):
    root = Path(tempfile.mkdtemp())
    try:
        writer = write_run(root, unstamped(events), cuts, derive_at)
        writer._log.close()  # leave the run as a crash would: no final derived files, lease file left
        writer.lease.release()
        if garbage_after:
            with open(writer.paths.events, "ab") as file:
                file.write(b"{not json}\n")
        replayed = open_run(writer.paths.root, use_checkpoint=False).state
        assert open_run(writer.paths.root).state == replayed
        if not garbage_after:
            assert replayed == writer.state
    finally:
        shutil.rmtree(root)


def make_run(tmp_path: Path, n: int = 5) -> RunWriter:
    writer = RunWriter.create(tmp_path, task="t")
    for i in range(n):
        writer.emit(ev.Log(message=f"line {i}"))
    writer.write_derived()
    return writer


def test_malformed_lines_after_a_checkpoint_keep_their_line_numbers(tmp_path):
    writer = make_run(tmp_path)
    writer.close()
    with open(writer.paths.events, "ab") as file:
        file.write(b"oops\n")
    state = open_run(writer.paths.root).state
    assert state.problems[-1].startswith("line 7: invalid JSON")


def test_a_checkpoint_from_another_log_is_not_trusted(tmp_path):
    first = make_run(tmp_path / "a", n=5)
    first.close()
    second = make_run(tmp_path / "b", n=3)
    second.emit(ev.RunStateChanged(state="FAILED"))
    second.close()
    shutil.copy(second.paths.run_json, first.paths.run_json)  # run.json of another run, same kind of content
    assert open_run(first.paths.root).state == open_run(first.paths.root, use_checkpoint=False).state
    assert open_run(first.paths.root).state.state != "FAILED"


def test_a_damaged_or_truncated_checkpoint_falls_back_to_replay(tmp_path):
    writer = make_run(tmp_path)
    writer.close()
    expected = open_run(writer.paths.root, use_checkpoint=False).state
    snapshot = json.loads(writer.paths.run_json.read_text())
    snapshot["checkpoint"]["state"]["agents"] = "garbage"
    writer.paths.run_json.write_text(json.dumps(snapshot))
    assert open_run(writer.paths.root).state == expected
    writer.paths.run_json.write_text("{")
    assert open_run(writer.paths.root).state == expected
    with open(writer.paths.events, "r+b") as file:  # the log lost its tail after the checkpoint was written
        file.truncate(writer.paths.events.stat().st_size - 10)
    assert open_run(writer.paths.root).state == open_run(writer.paths.root, use_checkpoint=False).state


def test_a_follower_starts_over_when_the_log_is_replaced(tmp_path):
    writer = make_run(tmp_path, n=5)
    writer.close()
    opened = open_run(writer.paths.root)
    lines = writer.paths.events.read_bytes().splitlines(keepends=True)
    replacement = tmp_path / "replacement.jsonl"
    replacement.write_bytes(b"".join(lines[:3]))  # a shorter log, as after a restore from backup
    replacement.replace(writer.paths.events)
    assert opened.refresh() is True
    assert opened.state == open_run(writer.paths.root, use_checkpoint=False).state
    assert opened.state.last_seq == 3
