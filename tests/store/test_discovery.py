"""Finding runs under the roots (newest first, with liveness) and resolving a RUN argument to one directory."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aw_tui.model import events as ev
from aw_tui.store import jsonl as jsonl_module
from aw_tui.store.discovery import RunNotFound, discover_runs, list_run, resolve_run
from aw_tui.store.run import RunError, RunWriter

from ..fixtures.sample_runs import FixedClock, make_legacy_run

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=2)
SETTINGS = {"analyst": {"model": "a/strong", "thinking": "high"}, "worker": {"model": "w/cheap", "thinking": "low"}}


def start_run(root: Path, task: str, *, at: datetime = T0) -> RunWriter:
    """A leased run with its run.created event and one usage event per role; the caller closes it."""
    clock = FixedClock(at)
    writer = RunWriter.create(root, task=task, settings=SETTINGS, clock=clock)
    clock.tick(5)
    writer.emit(
        ev.RunStateChanged(state="ANALYST_PLANNING"),
        ev.AgentStarted(id="analyst-1", role="analyst", model="a/strong", step=1),
        ev.AgentUsage(agent="analyst-1", input=1000, output=100, cost=0.25),
        ev.AgentFinished(id="analyst-1"),
    )
    return writer


def make_run(root: Path, task: str, *, at: datetime = T0, state: str | None = None) -> Path:
    """A closed run (derived files current, no lease), optionally left in `state`."""
    writer = start_run(root, task, at=at)
    if state is not None:
        writer.emit(ev.RunStateChanged(state=state))  # type: ignore[arg-type]
    writer.close()
    return writer.paths.root


def by_name(listings: list) -> dict:
    return {item.name: item for item in listings}


# --- listing ---------------------------------------------------------------------------------------------------


def test_runs_from_two_roots_are_listed_newest_first_by_creation_time(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    oldest = make_run(first, "oldest", at=T0)
    middle = make_run(second, "middle", at=T0 + timedelta(hours=1))
    newest = make_run(first, "newest", at=T0 + timedelta(hours=2))
    # The order comes from the creation time, not the name: give the oldest run the name that sorts last.
    renamed = oldest.with_name("aw_zzzz_renamed_oldest")
    oldest.rename(renamed)

    listings = discover_runs([first, second], now=NOW)

    assert [item.path for item in listings] == [newest, middle, renamed]
    assert [item.summary.title for item in listings] == ["newest", "middle", "oldest"]


def test_a_missing_root_is_skipped_and_a_directory_that_is_not_a_run_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = make_run(root, "real run")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run\n")
    (root / "stray-file.txt").write_text("a file, not a directory\n")

    listings = discover_runs([tmp_path / "does-not-exist", root, tmp_path / "also-missing" / "deeper"], now=NOW)

    assert [item.path for item in listings] == [run]
    assert discover_runs([tmp_path / "does-not-exist"], now=NOW) == []


def test_the_same_root_given_twice_lists_each_run_once(tmp_path: Path) -> None:
    run = make_run(tmp_path, "only once")
    assert [item.path for item in discover_runs([tmp_path, tmp_path / "."], now=NOW)] == [run]


def test_liveness_of_live_orphaned_ended_and_read_only_runs(tmp_path: Path) -> None:
    live_writer = start_run(tmp_path, "still writing", at=T0)
    live_writer.write_derived()
    try:
        orphaned = make_run(tmp_path, "stopped unfinished", at=T0 + timedelta(minutes=1))
        finished = make_run(tmp_path, "finished", at=T0 + timedelta(minutes=2), state="FINISHED")
        aborted = make_run(tmp_path, "aborted", at=T0 + timedelta(minutes=3), state="ABORTED")
        failed = make_run(tmp_path, "failed", at=T0 + timedelta(minutes=4), state="FAILED")
        legacy = make_legacy_run(tmp_path)

        listings = by_name(discover_runs([tmp_path], now=NOW))

        assert listings[live_writer.paths.root.name].liveness == "live"
        assert listings[orphaned.name].liveness == "orphaned"
        for ended in (finished, aborted, failed):
            assert listings[ended.name].liveness == "ended", ended.name
        assert listings[legacy.name].liveness == "read-only"
        assert listings[legacy.name].summary.state == "WAITING_FOR_OPERATOR"
        assert all(item.error is None for item in listings.values())
    finally:
        live_writer.close()
    assert list_run(live_writer.paths.root, now=NOW).liveness == "orphaned"


def test_a_run_whose_events_cannot_be_read_is_unreadable_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = make_run(tmp_path, "fine", at=T0)
    bad = make_run(tmp_path, "locked away", at=T0 + timedelta(hours=1))
    (bad / "run.json").unlink()  # no snapshot to fall back on: the events must be read
    real_read_new = jsonl_module.JsonlTail.read_new

    def read_new(self):  # type: ignore[no-untyped-def]
        if Path(self.path).parent == bad:
            raise PermissionError(13, "Permission denied", str(self.path))
        return real_read_new(self)

    monkeypatch.setattr(jsonl_module.JsonlTail, "read_new", read_new)

    listings = discover_runs([tmp_path], now=NOW)

    assert [item.path for item in listings] == [good, bad]  # unreadable runs sort last, never dropped
    unreadable = listings[1]
    assert unreadable.liveness == "unreadable"
    assert unreadable.summary is None
    assert "permission denied" in (unreadable.error or "").lower()
    assert "events.jsonl" in (unreadable.error or "")
    assert listings[0].liveness == "orphaned"


def test_the_run_json_summary_is_used_while_it_is_current(tmp_path: Path) -> None:
    run = make_run(tmp_path, "original title")
    snapshot = json.loads((run / "run.json").read_text())
    snapshot["summary"]["title"] = "title from run.json"
    (run / "run.json").write_text(json.dumps(snapshot))

    listing = list_run(run, now=NOW)

    assert listing.summary is not None and listing.summary.title == "title from run.json"


def test_a_stale_run_json_is_ignored_and_the_events_are_replayed(tmp_path: Path) -> None:
    writer = start_run(tmp_path, "stale snapshot")
    try:
        writer.write_derived()
        assert list_run(writer.paths.root, now=NOW).summary.state == "ANALYST_PLANNING"
        writer.emit(
            ev.RunStateChanged(state="WORKER_RUNNING"),
            ev.GateOpened(id="g1", kind="operator_input", title="Which branch?"),
            ev.AgentStarted(id="worker-2", role="worker", model="w/cheap", step=2),
            ev.AgentUsage(agent="worker-2", input=500, output=50, cost=0.01),
        )  # no write_derived: run.json now describes fewer events than the log holds

        listing = list_run(writer.paths.root, now=NOW)

        assert listing.liveness == "live"
        summary = listing.summary
        assert summary is not None
        assert summary.state == "WORKER_RUNNING"
        assert summary.open_gates == 1
        assert summary.cost_of("worker").cost == pytest.approx(0.01)
        assert summary.cost_of("analyst").cost == pytest.approx(0.25)
        assert summary.last_seq == writer.state.last_seq
    finally:
        writer.close()


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{not json", b"[1, 2, 3]", b'{"events_bytes": "x"}', b"\x00\xff" * 50],
)
def test_a_damaged_run_json_falls_back_to_the_events(tmp_path: Path, garbage: bytes) -> None:
    run = make_run(tmp_path, "damaged snapshot", state="WAITING_FOR_OPERATOR")
    (run / "run.json").write_bytes(garbage)

    listing = list_run(run, now=NOW)

    assert listing.liveness == "orphaned"
    assert listing.summary is not None
    assert listing.summary.state == "WAITING_FOR_OPERATOR"
    assert listing.summary.title == "damaged snapshot"
    assert listing.summary.cost_of("analyst").cost == pytest.approx(0.25)


def test_a_run_json_with_the_right_size_but_a_broken_summary_falls_back_to_the_events(tmp_path: Path) -> None:
    run = make_run(tmp_path, "broken summary", state="FAILED")
    snapshot = json.loads((run / "run.json").read_text())
    snapshot["summary"] = {"title": "only a title"}
    (run / "run.json").write_text(json.dumps(snapshot))

    listing = list_run(run, now=NOW)

    assert listing.summary is not None and listing.summary.title == "broken summary"
    assert listing.liveness == "ended"


# --- resolving RUN ---------------------------------------------------------------------------------------------


@pytest.fixture
def two_roots(tmp_path: Path) -> tuple[Path, Path, Path, Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    alpha = make_run(first, "alpha task", at=T0)
    alpine = make_run(second, "alpine task", at=T0 + timedelta(days=1))
    beta = make_run(second, "beta task", at=T0 + timedelta(days=2))
    return first, second, alpha, alpine, beta


def test_resolve_run_by_full_name_and_by_unique_prefix(two_roots) -> None:  # type: ignore[no-untyped-def]
    first, second, alpha, alpine, beta = two_roots
    roots = [first, second]
    assert resolve_run(alpha.name, roots) == alpha
    assert resolve_run(beta.name, roots) == beta
    assert resolve_run(beta.name[: len("aw_20260403")], roots) == beta  # the date alone is unique
    assert resolve_run(alpine.name[:-2], roots) == alpine


def test_resolve_run_by_path(two_roots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _first, _second, alpha, _alpine, beta = two_roots
    # A path works whatever the roots are.
    assert resolve_run(str(alpha), []) == alpha
    monkeypatch.chdir(tmp_path)
    assert resolve_run(str(beta.relative_to(tmp_path)), [tmp_path / "nowhere"]) == beta.relative_to(tmp_path)
    # A legacy run is a run too, by path or by name.
    legacy = make_legacy_run(tmp_path / "legacy")
    assert resolve_run(str(legacy), []) == legacy
    assert resolve_run("aw_2025", [tmp_path / "legacy"]) == legacy


def test_a_directory_that_is_not_a_run_is_refused_by_path(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunNotFound, match="not a run directory"):
        resolve_run(str(tmp_path / "plain"), [tmp_path])


def test_an_ambiguous_prefix_lists_the_candidates(two_roots) -> None:  # type: ignore[no-untyped-def]
    first, second, alpha, alpine, beta = two_roots
    with pytest.raises(RunNotFound) as ambiguous:
        resolve_run("aw_", [first, second])
    message = str(ambiguous.value)
    assert "matches 3 runs" in message
    for run in (alpha, alpine, beta):
        assert run.name in message
    assert "\n" not in message


def test_an_ambiguous_prefix_with_many_candidates_shows_five_and_counts_the_rest(tmp_path: Path) -> None:
    for hour in range(7):
        make_run(tmp_path, f"task {hour}", at=T0 + timedelta(hours=hour))
    with pytest.raises(RunNotFound, match=r"matches 7 runs .* and 2 more\); give more of the name"):
        resolve_run("aw_", [tmp_path])


def test_a_prefix_matching_nothing_names_the_roots(two_roots) -> None:  # type: ignore[no-untyped-def]
    first, second, *_ = two_roots
    with pytest.raises(RunNotFound) as missing:
        resolve_run("aw_1999", [first, second])
    message = str(missing.value)
    assert "no run matches 'aw_1999'" in message
    assert str(first) in message and str(second) in message
    assert isinstance(missing.value, RunError)  # the CLI reports RunError as one line


def test_an_exact_name_wins_over_longer_names_it_prefixes(tmp_path: Path) -> None:
    run = make_run(tmp_path, "same")
    copy = run.with_name(run.name + "_2")
    shutil.copytree(run, copy)
    assert resolve_run(run.name, [tmp_path]) == run
    assert resolve_run(copy.name, [tmp_path]) == copy
