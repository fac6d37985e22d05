from __future__ import annotations

import multiprocessing
from datetime import datetime
from pathlib import Path

import pytest

from aw_tui.store.layout import (
    RunPaths,
    create_run_dir,
    run_dir_name,
    slugify,
    step_file_name,
)

NOW = datetime(2025, 3, 4, 5, 6, 7)


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Fix the Flaky Test!", "fix_the_flaky_test"),
        ("  padded  ", "padded"),
        ("ｆｕｌｌ", "full"),  # NFKC folds full-width letters
        ("Ünïcode 日本", "ünïcode_日本"),
        ("!!!", "task"),
        ("", "task"),
        ("a -- b__c", "a_b_c"),
        ("Ⅻ ²", "xii_2"),  # NFKC turns the numeral and superscript into plain letters/digits
        ("v1.2.3", "v1_2_3"),
    ],
)
def test_slugify_matches_the_seed(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_slugify_treats_uncomposable_combining_marks_as_separators() -> None:
    # NFKC composes e + U+0301 into é, but U+20DD (combining enclosing circle) has no composed form.
    assert slugify("cafe\u0301") == "café"
    assert slugify("a\u20ddb") == "a_b"


def test_slugify_cuts_to_80_characters_after_stripping() -> None:
    assert slugify("x" * 200) == "x" * 80
    # The cut comes last, so a separator at position 80 survives (as in the seed).
    assert slugify("a" * 79 + " b") == "a" * 79 + "_"


def test_run_dir_name_uses_the_given_time() -> None:
    assert run_dir_name("Fix the Flaky Test!", NOW) == "aw_20250304_050607_fix_the_flaky_test"


def test_run_dir_name_fits_a_filename_even_for_long_multibyte_slugs() -> None:
    name = run_dir_name("日" * 200, NOW)
    assert len(name.encode("utf-8")) <= 255 - 8
    assert name.startswith("aw_20250304_050607_日")


def test_create_run_dir_makes_root_steps_and_artifacts(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "nested"
    run_dir = create_run_dir(root, "Fix the Flaky Test!", NOW)
    assert run_dir == root / "aw_20250304_050607_fix_the_flaky_test"
    assert (run_dir / "steps").is_dir()
    assert (run_dir / "artifacts").is_dir()


def test_create_run_dir_never_reuses_an_existing_directory(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path, "Same", NOW)
    (first / "events.jsonl").write_text("keep me\n")
    second = create_run_dir(tmp_path, "Same", NOW)
    third = create_run_dir(tmp_path, "Same", NOW)
    assert [first.name, second.name, third.name] == [
        "aw_20250304_050607_same",
        "aw_20250304_050607_same_2",
        "aw_20250304_050607_same_3",
    ]
    assert (first / "events.jsonl").read_text() == "keep me\n"


def _create_in_child(root: str, queue: multiprocessing.Queue) -> None:
    queue.put(str(create_run_dir(Path(root), "Race", NOW)))


def test_create_run_dir_gives_racing_processes_distinct_directories(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_create_in_child, args=(str(tmp_path), queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    created = {queue.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(timeout=30)
    assert len(created) == 6
    assert {Path(path).name for path in created} == {
        "aw_20250304_050607_race",
        *(f"aw_20250304_050607_race_{n}" for n in range(2, 7)),
    }


def test_step_file_names_follow_the_seed() -> None:
    assert step_file_name(1, "analyst_plan") == "0001_analyst_plan.md"
    assert step_file_name(2, "worker_result") == "0002_worker_result.md"
    assert step_file_name(3, "analyst_review") == "0003_analyst_review.md"
    assert step_file_name(12345, "worker_result") == "12345_worker_result.md"
    assert step_file_name(4, "../Worker Result") == "0004_worker_result.md"
    with pytest.raises(ValueError):
        step_file_name(0, "analyst_plan")


def test_run_paths_name_every_file_of_the_contract(tmp_path: Path) -> None:
    paths = RunPaths.for_run_dir(tmp_path / "aw_x")
    root = tmp_path / "aw_x"
    assert paths.root == root
    assert paths.events == root / "events.jsonl"
    assert paths.run_json == root / "run.json"
    assert paths.state_md == root / "state.md"
    assert paths.ledger_json == root / "ledger.json"
    assert paths.steps_dir == root / "steps"
    assert paths.control == root / "control.jsonl"
    assert paths.artifacts_dir == root / "artifacts"
    assert paths.recovered_dir == root / "artifacts" / "recovered"
    assert paths.lease_json == root / "lease.json"
    assert paths.lease_lock == root / ".lease.lock"
    assert paths.run_name == "aw_x"
    assert paths.step_file(1, "analyst_plan") == root / "steps" / "0001_analyst_plan.md"
    assert not root.exists()  # pure path arithmetic
