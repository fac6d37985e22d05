"""The bundled sample runs are exactly what tests/fixtures/sample_runs.py makes with today's code."""

import os
import time
from pathlib import Path

import pytest

from aw_tui.cli import bundled_samples_root
from aw_tui.store.discovery import discover_runs
from tests.fixtures.sample_runs import make_sample_runs


@pytest.fixture
def utc_local_time():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def source_files(run: Path) -> dict[str, bytes]:
    """The files a writer produces directly (derived files hold absolute paths and are checked elsewhere)."""
    wanted = [run / "events.jsonl", run / "ledger.json", run / "state.md", *sorted((run / "steps").glob("*.md"))]
    if (run / "events.jsonl").exists():
        wanted = [p for p in wanted if p.name not in ("ledger.json", "state.md")]
    return {str(p.relative_to(run)): p.read_bytes() for p in wanted if p.exists()}


def test_bundled_samples_match_the_generator(tmp_path, utc_local_time):
    made = make_sample_runs(tmp_path)
    bundled = bundled_samples_root()
    for run in made:
        assert source_files(bundled / run.name) == source_files(run), (
            f"{run.name} is stale: regenerate with TZ=UTC python -m tests.fixtures.sample_runs aw_tui/data/samples"
        )


def test_samples_are_listed_newest_first_with_the_legacy_run_read_only():
    listings = discover_runs([bundled_samples_root()])
    assert [(item.name, item.liveness) for item in listings] == [
        ("aw_20260314_093000_fix_the_failing_duration_parser_test", "orphaned"),
        ("aw_20250902_091203_speed_up_gpu_sort", "read-only"),
    ]
    native = listings[0].summary
    assert native.state == "DONE_NEEDS_OPERATOR_CONFIRMATION" and native.open_gates == 1
