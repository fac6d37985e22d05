"""benchmarks/run.py: one table from every benchmark script, results.json, and the README section."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("kit", None)


def results(**benchmarks):
    return {"when": "2026-11-21T10:00:00+00:00", "commit": "abc1234", "python": "3.11.7",
            "machine": {"platform": "Linux", "cpus": 2}, "quick": False, "benchmarks": benchmarks}  # fmt: skip


def row(figure, value, unit="ms", target=None):
    met = None if target is None else (value >= target if unit.endswith("/s") else value <= target)
    return {"figure": figure, "value": value, "unit": unit, "target": target, "met": met}


def test_a_real_script_run_gives_its_rows(bench_run, tmp_path, monkeypatch):
    monkeypatch.setitem(bench_run.BENCHMARKS, "store", ("store_bench.py", [], ["--events", "2000", "--repeat", "1"]))
    rows, seconds, error = bench_run.run_one("store", True, tmp_path)
    assert error is None and seconds > 0
    figures = [r["figure"] for r in rows]
    assert "reduce throughput" in figures
    assert all(isinstance(r["value"], float) and r["value"] > 0 for r in rows)


def test_a_failing_script_is_a_row_that_says_so(bench_run, tmp_path, monkeypatch):
    broken = tmp_path / "broken_bench.py"
    broken.write_text("raise SystemExit(3)\n")
    monkeypatch.setitem(bench_run.BENCHMARKS, "broken", (str(broken), [], []))
    rows, _, error = bench_run.run_one("broken", False, tmp_path)
    assert rows == [] and error == f"{broken} exited 3"
    table = bench_run.table_rows(results(broken={"seconds": 0.1, "error": error, "rows": []}))
    assert table[0]["met"] is False and "FAILED" in table[0]["figure"]


def test_the_readme_section_lists_targeted_figures_and_folds_the_rest(bench_run, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench_run.README_START}\nold table\n{bench_run.README_END}\nafter\n")
    data = results(store={"seconds": 3.0, "error": None, "rows": [
        row("reduce throughput", 450_000.0, "events/s", 200_000), row("tail read", 4.0), row("open", 1500.0, "ms", 1000),
        row("  of which parsing", 700.0, "ms", 800),
    ]})  # fmt: skip
    bench_run.update_readme(data, readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    headline, folded = text.split("<details>")
    assert "| [store] reduce throughput | 450,000 events/s | >= 200,000 | yes |" in headline
    assert "| [store] open | 1,500 ms | <= 1,000 | **no** |" in headline
    assert "tail read" not in headline and "| [store] tail read | 4.00 ms |  |  |" in folded
    assert "commit `abc1234`" in headline
    assert "| [store] open › of which parsing | 700 ms | <= 800 | yes |" in headline  # an indented row keeps its parent


def test_the_readme_without_markers_is_left_alone(bench_run, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        bench_run.update_readme(results(), readme)
    assert readme.read_text() == "# no markers\n"


def test_results_json_is_what_main_writes(bench_run, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_run, "BENCHMARKS", {"store": ("store_bench.py", [], ["--events", "1000", "--repeat", "1"])})
    out = tmp_path / "results.json"
    monkeypatch.setattr(sys, "argv", ["run.py", "--quick", "--out", str(out)])
    assert bench_run.main() == 0
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["benchmarks"]["store"]["error"] is None
    assert {r["figure"] for r in data["benchmarks"]["store"]["rows"]} >= {"reduce throughput"}
