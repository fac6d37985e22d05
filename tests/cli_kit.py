"""Running the command line in tests: in-process (run_main) and as real `python -m aw_tui` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aw_tui
from aw_tui import cli
from aw_tui.store.run import open_run

REPO_ROOT = str(Path(aw_tui.__file__).resolve().parents[1])
SCRIPTED = ["--analyst", "scripted/analyst", "--worker", "scripted/worker"]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of main(argv), counting argparse's SystemExit as an exit status."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got {err!r}"
    assert "Traceback" not in err
    return err.strip()


# --- real processes ---------------------------------------------------------------------------------------------


def process_env(config_home: Path) -> dict[str, str]:
    return {
        **os.environ, "PYTHONPATH": REPO_ROOT, "XDG_CONFIG_HOME": str(config_home),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }  # fmt: skip


def run_process(argv: list[str], *, cwd: Path, config_home: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aw_tui", *argv], cwd=cwd, env=process_env(config_home), capture_output=True,
        text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def start_process(argv: list[str], *, cwd: Path, config_home: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m aw_tui ...` in the background; its output goes to a file (a pipe nobody reads could fill up)."""
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "aw_tui", *argv], cwd=cwd, env=process_env(config_home), stdout=sink,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def only_run(runs_root: Path) -> Path:
    runs = [p for p in runs_root.iterdir() if p.is_dir() and p.name.startswith("aw_")] if runs_root.is_dir() else []
    assert len(runs) == 1, f"expected one run under {runs_root}, found {[p.name for p in runs]}"
    return runs[0]


def events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            break
    return out


def wait_for_event(
    runs_root: Path, matches: Callable[[dict[str, Any]], bool], *, process: subprocess.Popen[Any], log: Path,
    timeout: float = 30,
) -> Path:  # fmt: skip
    """Poll the (only) run under runs_root until an event matches; returns the run directory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runs_root.is_dir():
            runs = [p for p in runs_root.iterdir() if (p / "events.jsonl").is_file()]
            if runs and any(matches(e) for e in events(runs[0])):
                return runs[0]
        if process.poll() is not None:
            pytest.fail(f"the engine exited ({process.returncode}) before the awaited event:\n{log.read_text()}")
        time.sleep(0.02)
    pytest.fail(f"no matching event within {timeout} s:\n{log.read_text()}")


def final_state(run_dir: Path) -> str:
    return open_run(run_dir, use_checkpoint=False).state.state
