"""Every benchmark, one table: `python benchmarks/run.py [--quick] [--only NAME ...] [--readme]`.

Runs each benchmark script in its own process (so one's litellm state, scripted provider or event loop cannot
bend another's figures), one after the other, and prints one table: figure, value, target, met. Writes every
row, with the machine, the Python, the commit and how long each script took, to benchmarks/results.json.
--readme also replaces the table between the benchmark markers in README.md with this run's.

Each script is also runnable alone and says in its docstring how each figure is taken. Comparisons (aw-tui's
first frame against a minimal Textual app's, a fan-out against the bare litellm calls it makes) are measured side
by side inside one script's run. A script that fails is a row that says so, and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kit import REPO, print_table, row_cells  # noqa: E402

RESULTS = HERE / "results.json"
README = REPO / "README.md"
README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"

# name -> (script, arguments for a full run, arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "store": ("store_bench.py", [], ["--events", "20000", "--repeat", "2"]),
    "engine": ("engine_bench.py", [], ["--calls", "50", "--orchestrator-turns", "10", "--repeat", "1"]),
    "workflow": ("workflow_bench.py", [], ["--agents", "100", "--repeat", "1"]),
    "tui": ("tui_bench.py", [], ["--repeat", "3", "--samples", "15", "--keys", "40"]),
}


def run_one(name: str, quick: bool, work: Path) -> tuple[list[dict], float, str | None]:
    """The rows of one benchmark script, the seconds it took, and why it failed (None when it did not)."""
    script, full, short = BENCHMARKS[name]
    out = work / f"{name}.json"
    argv = [sys.executable, str(HERE / script), *(short if quick else full), "--json", str(out)]
    print(f"== {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    # The script's own table goes to our stderr as it runs, so a long run shows progress.
    done = subprocess.run(argv, cwd=REPO, stdout=sys.stderr, stderr=sys.stderr, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        return [], elapsed, f"{script} exited {done.returncode}"
    try:
        rows = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [], elapsed, f"{script} wrote unreadable results: {error}"
    return rows, elapsed, None


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False, timeout=10)  # fmt: skip
    except OSError:
        return None
    return done.stdout.strip() or None


def table_rows(results: dict) -> list[dict]:
    """Every benchmark's rows in one list, each figure prefixed with its benchmark; failures as rows that say so."""
    rows = []
    for name, result in results["benchmarks"].items():
        if result["error"]:
            rows.append({"figure": f"[{name}] FAILED: {result['error']}", "value": 0.0, "unit": "", "target": None,
                         "met": False, "label": f"[{name}] FAILED: {result['error']}"})  # fmt: skip
        parent = ""
        for row in result["rows"]:
            figure = row["figure"]
            # An indented figure details the one above it; out of the full table it needs that one's name.
            if figure.startswith(" "):
                label = f"{parent} › {figure.strip()}"
            else:
                parent = label = figure
            rows.append({**row, "figure": f"[{name}] {figure}", "label": f"[{name}] {label}"})
    return rows


def markdown(results: dict) -> str:
    """The README section: the figures that have a target, then every figure in a fold."""
    machine = results["machine"]
    lines = [
        f"Measured {results['when'][:10]} at commit `{results['commit']}` on {machine['cpus']} CPUs, "
        f"Python {results['python']} (`python benchmarks/run.py --readme`; every row is in "
        "`benchmarks/results.json`).",
        "",
        "| figure | value | target | met |",
        "|---|---:|---:|:-:|",
    ]

    def line(row: dict) -> str:
        value, target, met = row_cells(row, missed="**no**")
        return f"| {row['label']} | {value} | {target} | {met} |"

    rows = table_rows(results)
    lines += [line(row) for row in rows if row["target"] is not None or row["met"] is False]
    lines += ["", "<details><summary>Every figure</summary>", "", "| figure | value | target | met |",
              "|---|---:|---:|:-:|", *(line(row) for row in rows), "", "</details>"]  # fmt: skip
    return "\n".join(lines)


def update_readme(results: dict, readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: the markers {README_START} and {README_END} are missing; nothing replaced")
    new = text[: start + len(README_START)] + "\n" + markdown(results) + "\n" + text[end:]
    readme.write_text(new, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs: a smoke run")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})")
    parser.add_argument("--readme", action="store_true", help="replace the table in README.md with this run's")
    args = parser.parse_args()

    results: dict = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "quick": args.quick,
        "benchmarks": {},
    }
    with tempfile.TemporaryDirectory(prefix="aw-bench-run-") as tmp:
        for name in args.only or BENCHMARKS:
            rows, seconds, error = run_one(name, args.quick, Path(tmp))
            results["benchmarks"][name] = {"seconds": round(seconds, 1), "error": error, "rows": rows}

    rows = table_rows(results)
    print()
    print_table(rows)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out}")
    if args.readme:
        update_readme(results)
        print(f"updated: {README}")
    missed = [row["figure"] for row in rows if row["met"] is False]
    if missed:
        print(f"targets missed or failed: {len(missed)}")
    return 1 if any(result["error"] for result in results["benchmarks"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
