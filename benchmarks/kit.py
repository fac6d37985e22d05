"""Shared by the benchmark scripts: the result table and timing a whole command.

Each script's `measure()` returns rows {figure, value, unit, target, met}; `print_table` prints them. A target is
an upper bound, except for rates (a unit ending in "/s"), where it is a lower bound.
"""

from __future__ import annotations

import argparse
import compileall
import json
import subprocess
import time
from pathlib import Path


def row_cells(row: dict, missed: str = "NO") -> tuple[str, str, str]:
    """A row's value, target and met as printed: `1,234 ms`, `<= 2,000` (`>=` for rates), `yes` or `missed`."""
    unit = f" {row['unit']}" if row["unit"] else ""
    value = f"{row['value']:,.2f}{unit}" if abs(row["value"]) < 100 else f"{row['value']:,.0f}{unit}"
    bound = ">=" if str(row["unit"]).endswith("/s") else "<="
    target = "" if row["target"] is None else f"{bound} {row['target']:,g}"
    met = "" if row["met"] is None else ("yes" if row["met"] else missed)
    return value, target, met


def print_table(rows: list[dict]) -> None:
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{width}}  {'value':>14}  {'target':>12}  met")
    for r in rows:
        value, target, met = row_cells(r)
        print(f"{r['figure']:<{width}}  {value:>14}  {target:>12}  {met}")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE as JSON (benchmarks/run.py reads it)")


def report(rows: list[dict], json_path: str | None) -> int:
    """Print the table and, when asked, write the rows for run.py; the exit status of a benchmark script."""
    print_table(rows)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


REPO = Path(__file__).resolve().parents[1]


def compile_package() -> None:
    """Write aw-tui's bytecode before processes are timed, as pip does when it installs the wheel.

    Textual and litellm come from site-packages with their .pyc files; aw-tui runs from this checkout, where
    PYTHONDONTWRITEBYTECODE (set in many shells and CI images) would leave it compiled from source in every
    measured process: time no installed copy spends.
    """
    if not compileall.compile_dir(REPO / "aw_tui", quiet=1):
        raise RuntimeError("compiling aw_tui failed")


def wall_s(argv: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    """Seconds a command takes from start to exit; a failing command raises with the end of its output."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed
