"""The `aw-tui` command line against README "Commands": output, exit status, and one-line errors.

Most tests call aw_tui.cli.main in-process; a few run `python -m aw_tui` in a real process, because only there
can one see the exit status the shell sees and that nothing but one line reaches stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import aw_tui
from aw_tui import cli
from aw_tui.model import events as ev
from aw_tui.store import jsonl as jsonl_module
from aw_tui.store.run import RunWriter

from .cli_kit import assert_one_error_line, run_main
from .fixtures.sample_runs import FixedClock, make_legacy_run

REPO_ROOT = str(Path(aw_tui.__file__).resolve().parents[1])
T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = {
    "analyst": {"model": "anthropic/claude-opus-4-1", "thinking": "high"},
    "worker": {"model": "openai/gpt-5-mini", "thinking": "low"},
}
SAMPLE_NATIVE = "aw_20260314_093000_fix_the_failing_duration_parser_test"
SAMPLE_LEGACY = "aw_20250902_091203_speed_up_gpu_sort"


# --- helpers ---------------------------------------------------------------------------------------------------




def run_process(args: list[str], *, cwd: Path, config_home: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "XDG_CONFIG_HOME": str(config_home)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def make_turn(writer: RunWriter, clock: FixedClock, *, step: int, role: str, model: str, cost: float) -> None:
    agent = f"{role}-{step}"
    phase = "ANALYST_PLAN" if role == "analyst" else "WORKER_RUN"
    writer.emit(ev.AgentStarted(id=agent, role=role, model=model, step=step, label=f"{role} {step}"))
    clock.tick(2)
    writer.emit(
        ev.ToolStarted(agent=agent, call_id=f"{agent}-t", tool="bash", summary="pytest -q"),
        ev.ToolFinished(agent=agent, call_id=f"{agent}-t", tool="bash", duration_ms=1200),
    )
    clock.tick(8)
    path = f"steps/{step:04d}_{role}.md"
    (writer.paths.root / path).write_text(f"# step {step}\n", encoding="utf-8")
    writer.emit(
        ev.AgentUsage(agent=agent, input=1000 * step, output=100 * step, cost=cost),
        ev.AgentFinished(id=agent, report=path),
        ev.StepReport(step=step, role=role, phase=phase, path=path, agent=agent, state_after="WORKER_RUNNING"),
    )


def make_run(
    root: Path, task: str, *, at: datetime = T0, paused: bool = False, gate: bool = False, close: bool = True
) -> RunWriter:
    """A run with two steps (analyst, worker); optionally paused and with an open gate."""
    clock = FixedClock(at)
    writer = RunWriter.create(root, task=task, settings=SETTINGS, workspace="/home/dev/project", clock=clock)
    writer.emit(ev.RunStateChanged(state="ANALYST_PLANNING"))
    make_turn(writer, clock, step=1, role="analyst", model=SETTINGS["analyst"]["model"], cost=0.5)
    writer.emit(ev.RunStateChanged(state="WORKER_RUNNING"))
    make_turn(writer, clock, step=2, role="worker", model=SETTINGS["worker"]["model"], cost=0.02)
    if gate:
        writer.emit(
            ev.RunStateChanged(state="WAITING_FOR_OPERATOR"),
            ev.GateOpened(id="gate-7", kind="dangerous_command", title="rm -rf build", binding="rm -rf build"),
        )
    if paused:
        writer.emit(ev.RunPaused(command_id="cmd-1", reason="operator pressed p"))
    if close:
        writer.close()
    else:
        writer.write_derived()
    return writer


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def run_dir(root: Path) -> Path:
    return make_run(root, "Fix the parser", gate=True).paths.root


HOLD_LEASE = """
import sys, time
from aw_tui.store.run import RunWriter
writer = RunWriter.attach(sys.argv[1])
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lease_holder(run_dir: Path, tmp_path: Path, isolated_config: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the run's lease until the test ends."""
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "XDG_CONFIG_HOME": str(isolated_config)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# --- runs ------------------------------------------------------------------------------------------------------


def test_runs_lists_every_run_newest_first_with_state_costs_gates_and_liveness(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    old = make_run(root, "Older finished run", at=T0)
    old_writer = RunWriter.attach(old.paths.root)
    old_writer.emit(ev.RunStateChanged(state="FINISHED"))
    old_writer.close()
    waiting = make_run(root, "Waiting on a gate", at=T0 + timedelta(hours=1), gate=True, paused=True)
    live = make_run(root, "Being written", at=T0 + timedelta(hours=2), close=False)
    legacy = make_legacy_run(root)
    try:
        code, out, err = run_main(capsys, "runs", "--root", str(root))
    finally:
        live.close()

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["Run", "State", "Age", "Analyst", "Worker", "Gates", "Lease"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == [live.paths.root.name, waiting.paths.root.name, old.paths.root.name, legacy.name]
    rows = dict(zip(names, lines[1:]))
    assert rows[live.paths.root.name].split()[-1] == "live"
    assert "WAITING_FOR_OPERATOR PAUSED" in rows[waiting.paths.root.name]
    assert rows[waiting.paths.root.name].split()[-2:] == ["1", "orphaned"]
    assert "$0.500" in rows[waiting.paths.root.name] and "$0.0200" in rows[waiting.paths.root.name]
    assert "FINISHED" in rows[old.paths.root.name] and rows[old.paths.root.name].split()[-1] == "ended"
    assert rows[legacy.name].split()[-1] == "read-only"


def test_runs_json_gives_name_path_liveness_and_summary(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    run = make_run(root, "Fix the parser", gate=True, paused=True).paths.root
    legacy = make_legacy_run(root)

    code, out, err = run_main(capsys, "runs", "--json", "--root", str(root))

    assert (code, err) == (0, "")
    listed = json.loads(out)
    assert [item["name"] for item in listed] == [run.name, legacy.name]
    native = listed[0]
    assert native["path"] == str(run)
    assert native["liveness"] == "orphaned"
    assert native["error"] is None
    summary = native["summary"]
    assert summary["title"] == "Fix the parser"
    assert summary["state"] == "WAITING_FOR_OPERATOR"
    assert summary["paused"] is True
    assert summary["open_gates"] == 1
    assert summary["costs"]["analyst"]["cost"] == pytest.approx(0.5)
    assert summary["costs"]["worker"]["cost"] == pytest.approx(0.02)
    assert summary["created_at"] == "2026-04-01T12:00:00Z"
    assert listed[1]["liveness"] == "read-only"


def test_runs_combines_repeated_roots(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = make_run(tmp_path / "a", "in the first root", at=T0).paths.root
    second = make_run(tmp_path / "b", "in the second root", at=T0 + timedelta(minutes=5)).paths.root

    code, out, _ = run_main(capsys, "runs", "--json", "--root", str(tmp_path / "a"), "--root", str(tmp_path / "b"))

    assert code == 0
    assert [item["path"] for item in json.loads(out)] == [str(second), str(first)]


def test_runs_in_an_empty_or_missing_root_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_main(capsys, "runs", "--root", str(empty))
    assert (code, err) == (0, "")
    assert out.startswith(f"No runs under {empty}")

    code, out, err = run_main(capsys, "runs", "--root", str(tmp_path / "missing"))
    assert (code, err) == (0, "")
    assert out.startswith(f"No runs under {tmp_path / 'missing'}")

    code, out, _ = run_main(capsys, "runs", "--json", "--root", str(empty))
    assert (code, json.loads(out)) == (0, [])


def test_runs_shows_an_unreadable_run_with_its_reason(
    capsys: pytest.CaptureFixture[str], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = make_run(root, "cannot read").paths.root
    (bad / "run.json").unlink()

    def refuse(self):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(jsonl_module.JsonlTail, "read_new", refuse)

    code, out, err = run_main(capsys, "runs", "--root", str(root))
    assert (code, err) == (0, "")
    words = " ".join(out.split())  # a long reason may wrap inside its table cell
    assert f"{bad.name} unreadable" in words and "permission denied" in words

    code, out, err = run_main(capsys, "status", "--root", str(root), bad.name)
    assert code == 1
    assert "permission denied" in assert_one_error_line(err)


def test_no_command_lists_the_runs_under_the_configured_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path / "tmp", "found under ./tmp").paths.root  # runs.roots defaults to ./tmp

    code, out, err = run_main(capsys)

    assert (code, err) == (0, "")
    assert run.name in out and "orphaned" in out


def test_the_project_config_chooses_the_runs_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / ".aw-tui").mkdir(parents=True)
    (project / ".aw-tui" / "config.toml").write_text('[runs]\nroots = ["elsewhere"]\n')
    run = make_run(project / "elsewhere", "configured root").paths.root
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")  # relative roots in the project file are relative to the project

    code, out, _ = run_main(capsys, "runs", "--json")

    assert code == 0
    assert [item["name"] for item in json.loads(out)] == [run.name]


def test_a_broken_config_is_one_line_naming_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".aw-tui").mkdir()
    (tmp_path / ".aw-tui" / "config.toml").write_text('[analyst]\nthinking = "huge"\n')
    monkeypatch.chdir(tmp_path)

    code, _, err = run_main(capsys, "runs")

    assert code == 1
    line = assert_one_error_line(err)
    assert line.startswith("aw-tui: ")
    assert "config.toml" in line and "analyst.thinking" in line and "huge" in line


# --- status ----------------------------------------------------------------------------------------------------


def test_status_shows_state_models_usage_steps_and_open_gates(
    capsys: pytest.CaptureFixture[str], root: Path, run_dir: Path
) -> None:
    code, out, err = run_main(capsys, "status", "--root", str(root), run_dir.name[:12])

    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "Fix the parser"
    assert run_dir.name in out
    assert "WAITING_FOR_OPERATOR" in out
    assert "PAUSED" not in out
    assert "orphaned" in out
    assert "anthropic/claude-opus-4-1 (thinking high)" in out
    assert "openai/gpt-5-mini (thinking low)" in out
    assert "$0.520" in out  # total cost
    assert "steps/0002_worker.md" in out
    assert "Open gates (1)" in out
    gate_line = next(line for line in out.splitlines() if "gate-7" in line)
    assert "dangerous_command" in gate_line and "rm -rf build" in gate_line and "waiting" in gate_line
    assert "Problems" not in out


def test_status_shows_paused_loudly(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    run = make_run(root, "Paused run", paused=True).paths.root

    code, out, _ = run_main(capsys, "status", str(run))

    assert code == 0
    state_line = next(line for line in out.splitlines() if line.strip().startswith("State"))
    assert "WORKER_RUNNING" in state_line and "PAUSED" in state_line
    assert "No open gates." in out


def test_status_of_a_live_run_says_live(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    writer = make_run(root, "Still running", close=False)
    try:
        code, out, _ = run_main(capsys, "status", str(writer.paths.root))
    finally:
        writer.close()
    assert code == 0
    lease_line = next(line for line in out.splitlines() if line.strip().startswith("Lease"))
    assert "live" in lease_line


def test_status_reports_malformed_lines_as_problems(
    capsys: pytest.CaptureFixture[str], root: Path, run_dir: Path
) -> None:
    with open(run_dir / "events.jsonl", "ab") as events:
        events.write(b"{this is not json\n")

    code, out, err = run_main(capsys, "status", str(run_dir))

    assert (code, err) == (0, "")
    assert "Problems (1 malformed lines" in out
    problem = next(line for line in out.splitlines() if line.strip().startswith("•"))
    assert "line " in problem and "JSON" in problem
    assert "Open gates (1)" in out  # the good events still count


def test_status_of_a_legacy_run_says_read_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    legacy = make_legacy_run(tmp_path)

    code, out, err = run_main(capsys, "status", str(legacy))

    assert (code, err) == (0, "")
    assert "Speed up GPU sort" in out
    assert "WAITING_FOR_OPERATOR" in out
    assert "read-only" in out
    assert "original extension" in out


# --- ledger ----------------------------------------------------------------------------------------------------


def test_ledger_shows_tokens_and_cost_by_role_and_model_with_a_total_row(
    capsys: pytest.CaptureFixture[str], root: Path, run_dir: Path
) -> None:
    code, out, err = run_main(capsys, "ledger", "--root", str(root), run_dir.name)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Ledger of {run_dir.name}"
    analyst = next(line for line in lines if line.startswith("Analyst "))
    worker = next(line for line in lines if line.startswith("Worker "))
    total = next(line for line in lines if line.startswith("Total "))
    assert "anthropic/claude-opus-4-1" in analyst and "$0.500" in analyst
    assert "openai/gpt-5-mini" in worker and "$0.0200" in worker
    assert total.split()[-1] == "$0.520"
    assert any(line.startswith("End-to-end") for line in lines)
    assert "Tool calls  bash×2" in out
    assert not any(line.startswith("0001 ") for line in lines)  # steps only with --steps


def test_ledger_steps_adds_one_row_per_step(capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    code, out, _ = run_main(capsys, "ledger", str(run_dir), "--steps")

    assert code == 0
    step_rows = [line.split() for line in out.splitlines() if line[:4].isdigit()]
    assert [row[:2] for row in step_rows] == [["0001", "Analyst"], ["0002", "Worker"]]
    assert "$0.500" in step_rows[0] and "$0.0200" in step_rows[1]


def test_ledger_json_has_totals_timing_and_steps(capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    code, out, err = run_main(capsys, "ledger", str(run_dir), "--json")

    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["run"] == run_dir.name
    totals = data["totals"]
    assert set(totals) == {"by_model", "by_role", "by_role_model", "total"}
    assert totals["by_model"]["anthropic/claude-opus-4-1"]["in"] == 1000
    assert totals["by_model"]["openai/gpt-5-mini"]["out"] == 200
    assert totals["by_role"]["analyst"]["cost"] == pytest.approx(0.5)
    assert totals["by_role"]["worker"]["cost"] == pytest.approx(0.02)
    assert [(row["role"], row["model"]) for row in totals["by_role_model"]] == [
        ("analyst", "anthropic/claude-opus-4-1"),
        ("worker", "openai/gpt-5-mini"),
    ]
    assert totals["total"]["in"] == 3000 and totals["total"]["out"] == 300
    assert totals["total"]["cost"] == pytest.approx(0.52)
    assert "End-to-end" in data["timing"]
    assert [step["step"] for step in data["steps"]] == [1, 2]
    assert data["compactions"] == []


# --- rebuild ---------------------------------------------------------------------------------------------------


def test_rebuild_recreates_deleted_derived_files(capsys: pytest.CaptureFixture[str], root: Path, run_dir: Path) -> None:
    before_ledger = json.loads((run_dir / "ledger.json").read_text())
    before_summary = json.loads((run_dir / "run.json").read_text())["summary"]
    for name in ("run.json", "state.md", "ledger.json"):
        (run_dir / name).unlink()

    code, out, err = run_main(capsys, "rebuild", "--root", str(root), run_dir.name)

    assert (code, err) == (0, "")
    assert out.startswith("rebuilt run.json, state.md and ledger.json of " + run_dir.name)
    assert json.loads((run_dir / "ledger.json").read_text()) == before_ledger
    assert json.loads((run_dir / "run.json").read_text())["summary"] == before_summary
    assert "WAITING_FOR_OPERATOR" in (run_dir / "state.md").read_text()
    assert not (run_dir / "lease.json").exists()  # rebuild let go of the lease


def test_rebuild_is_refused_while_another_process_holds_the_lease(
    capsys: pytest.CaptureFixture[str], root: Path, run_dir: Path, lease_holder: subprocess.Popen[str]
) -> None:
    (run_dir / "state.md").unlink()

    code, out, err = run_main(capsys, "rebuild", str(run_dir))

    assert (code, out) == (1, "")
    line = assert_one_error_line(err)
    assert line.startswith(f"aw-tui: run {run_dir.name} is being written by pid {lease_holder.pid}")
    assert not (run_dir / "state.md").exists()  # nothing was written

    code, out, _ = run_main(capsys, "runs", "--json", "--root", str(root))
    assert json.loads(out)[0]["liveness"] == "live"

    lease_holder.kill()
    lease_holder.wait(timeout=10)
    code, out, _ = run_main(capsys, "runs", "--json", "--root", str(root))
    assert json.loads(out)[0]["liveness"] == "orphaned"  # the holder died holding it
    code, _, err = run_main(capsys, "rebuild", str(run_dir))
    assert (code, err) == (0, "")
    assert (run_dir / "state.md").exists()


def test_rebuild_refuses_the_bundled_samples(capsys: pytest.CaptureFixture[str]) -> None:
    sample = cli.bundled_samples_root() / SAMPLE_NATIVE
    before = {name: (sample / name).read_bytes() for name in ("run.json", "state.md", "ledger.json")}

    code, out, err = run_main(capsys, "rebuild", "--samples", "aw_2026")

    assert (code, out) == (1, "")
    assert "sample runs are read-only" in assert_one_error_line(err)
    assert {name: (sample / name).read_bytes() for name in before} == before


def test_rebuild_refuses_a_legacy_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    legacy = make_legacy_run(tmp_path)
    before = (legacy / "ledger.json").read_bytes()

    code, _, err = run_main(capsys, "rebuild", str(legacy))

    assert code == 1
    assert "read-only" in assert_one_error_line(err)
    assert (legacy / "ledger.json").read_bytes() == before
    assert not (legacy / "run.json").exists()


# --- config ----------------------------------------------------------------------------------------------------


def test_config_prints_both_paths_and_every_key_with_its_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_config: Path
) -> None:
    user_file = isolated_config / "aw-tui" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text('[analyst]\nmodel = "anthropic/claude-opus-4-1"\n')
    (tmp_path / ".aw-tui").mkdir()
    (tmp_path / ".aw-tui" / "config.toml").write_text('[worker]\nthinking = "minimal"\n')
    monkeypatch.chdir(tmp_path)

    code, out, err = run_main(capsys, "config")

    assert (code, err) == (0, "")
    assert str(user_file) in out
    assert str(tmp_path.resolve() / ".aw-tui" / "config.toml") in out
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].count(".") == 1 and "/" not in parts[0]:
            rows[parts[0]] = parts[1:]
    assert rows["analyst.model"] == ["anthropic/claude-opus-4-1", "user"]
    assert rows["worker.thinking"] == ["minimal", "project"]
    assert rows["analyst.thinking"] == ["high", "default"]
    for key in ("analyst.context_limit", "worker.model", "runs.roots", "budget.max_cost_usd",
                "limits.max_autonomous_hours"):  # fmt: skip
        assert key in rows


def test_config_set_writes_the_project_file_under_the_current_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_config: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    code, out, err = run_main(capsys, "config", "set", "analyst.thinking", "low")

    assert (code, err) == (0, "")
    project_file = tmp_path.resolve() / ".aw-tui" / "config.toml"
    assert str(project_file) in out
    assert tomllib.loads(project_file.read_text()) == {"analyst": {"thinking": "low"}}
    assert not (isolated_config / "aw-tui" / "config.toml").exists()

    code, out, _ = run_main(capsys, "config")
    assert any(line.split() == ["analyst.thinking", "low", "project"] for line in out.splitlines())


def test_config_set_global_writes_the_user_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_config: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    code, _, err = run_main(capsys, "config", "set", "worker.model", "openai/gpt-5-nano", "--global")

    assert (code, err) == (0, "")
    user_file = isolated_config / "aw-tui" / "config.toml"
    assert tomllib.loads(user_file.read_text()) == {"worker": {"model": "openai/gpt-5-nano"}}
    assert not (tmp_path / ".aw-tui").exists()


def test_config_set_an_invalid_value_fails_naming_the_key_and_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    code, out, err = run_main(capsys, "config", "set", "analyst.thinking", "huge")

    assert (code, out) == (1, "")
    line = assert_one_error_line(err)
    assert line.startswith("aw-tui: ")
    assert "analyst.thinking" in line
    assert "must be one of off, minimal, low, medium, high, xhigh" in line and "'huge'" in line
    assert not (tmp_path / ".aw-tui" / "config.toml").exists()


def test_config_set_an_unknown_key_fails_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "config", "set", "analyst.colour", "blue")
    assert code == 1
    assert "analyst.colour" in assert_one_error_line(err)


# --- usage errors and failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["status"], "required: RUN"),
        (["ledger", "--samples"], "required: RUN"),
        (["rebuild"], "required: RUN"),
        (["runs", "--bogus"], "--bogus"),
        (["config", "set", "analyst.model"], "required: VALUE"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = run_main(capsys, *argv)
    assert (code, out) == (2, "")
    line = assert_one_error_line(err)
    assert line.startswith("aw-tui")
    assert expected in line


def test_a_run_prefix_matching_nothing_fails_naming_the_roots(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    make_run(root, "something")
    for command in ("status", "ledger", "rebuild"):
        code, out, err = run_main(capsys, command, "--root", str(root), "aw_1999")
        assert (code, out) == (1, ""), command
        line = assert_one_error_line(err)
        assert line == f"aw-tui: no run matches 'aw_1999' under {root}"


def test_an_ambiguous_prefix_fails_listing_the_candidates(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    first = make_run(root, "first", at=T0).paths.root
    second = make_run(root, "second", at=T0 + timedelta(seconds=1)).paths.root

    code, _, err = run_main(capsys, "status", "--root", str(root), "aw_")

    assert code == 1
    line = assert_one_error_line(err)
    assert first.name in line and second.name in line and "matches 2 runs" in line


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--version")
    assert (code, out) == (0, f"aw-tui {aw_tui.__version__}\n")
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for command in ("runs", "status", "ledger", "rebuild", "config"):
        assert command in out


# --- the bundled samples ---------------------------------------------------------------------------------------


def test_samples_work_for_runs_status_and_ledger(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "runs", "--samples")
    assert (code, err) == (0, "")
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == [SAMPLE_NATIVE, SAMPLE_LEGACY]

    code, out, err = run_main(capsys, "status", "--samples", "aw_2026")
    assert (code, err) == (0, "")
    assert "DONE_NEEDS_OPERATOR_CONFIRMATION" in out and "confirm_done" in out

    code, out, err = run_main(capsys, "status", "--samples", "aw_2025")
    assert (code, err) == (0, "")
    assert "read-only" in out

    code, out, err = run_main(capsys, "ledger", "--samples", "aw_2026", "--steps")
    assert (code, err) == (0, "")
    assert next(line for line in out.splitlines() if line.startswith("Total")).split()[-1] == "$0.354"
    assert "Tool calls  bash×2, read×1, edit×1" in out

    code, out, _ = run_main(capsys, "ledger", "--samples", "aw_2025", "--json")
    assert code == 0
    assert json.loads(out)["totals"]["total"]["cost"] == pytest.approx(2.29)


# --- real processes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, status, in_stderr",
    [
        (["frobnicate"], 2, "invalid choice"),
        (["status"], 2, "required: RUN"),
        (["status", "--samples", "aw_1999"], 1, "aw-tui: no run matches 'aw_1999'"),
        (["rebuild", "--samples", "aw_2026"], 1, "aw-tui: the bundled sample runs are read-only"),
        (["config", "set", "analyst.thinking", "huge"], 1, "analyst.thinking: must be one of"),
    ],
)
def test_a_real_process_exits_with_the_status_and_one_line_on_stderr(
    tmp_path: Path, isolated_config: Path, args: list[str], status: int, in_stderr: str
) -> None:
    done = run_process(["-m", "aw_tui", *args], cwd=tmp_path, config_home=isolated_config)
    assert done.returncode == status, done.stderr
    assert done.stdout == ""
    line = assert_one_error_line(done.stderr)
    assert in_stderr in line


def test_a_real_process_lists_runs_and_config_set_writes_under_its_cwd(tmp_path: Path, isolated_config: Path) -> None:
    done = run_process(["-m", "aw_tui", "runs", "--samples"], cwd=tmp_path, config_home=isolated_config)
    assert (done.returncode, done.stderr) == (0, "")
    assert SAMPLE_NATIVE in done.stdout and SAMPLE_LEGACY in done.stdout

    done = run_process(["-m", "aw_tui", "--version"], cwd=tmp_path, config_home=isolated_config)
    assert (done.returncode, done.stdout.strip()) == (0, f"aw-tui {aw_tui.__version__}")

    done = run_process(["-m", "aw_tui", "config", "set", "analyst.thinking", "low"], cwd=tmp_path,
                       config_home=isolated_config)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert tomllib.loads((tmp_path / ".aw-tui" / "config.toml").read_text()) == {"analyst": {"thinking": "low"}}


def test_the_read_only_commands_never_import_litellm(tmp_path: Path, isolated_config: Path) -> None:
    script = (
        "import sys; from aw_tui.cli import main\n"
        "for argv in (['runs', '--samples'], ['status', '--samples', 'aw_2026'], ['ledger', '--samples', 'aw_2026'],\n"
        "             ['ledger', '--samples', 'aw_2026', '--json'], ['config']):\n"
        "    assert main(argv) == 0, argv\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
        "assert 'textual' not in sys.modules, 'textual was imported'\n"
    )
    done = run_process(["-c", script], cwd=tmp_path, config_home=isolated_config)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("args", [["runs", "--samples", "--json"], ["ledger", "--samples", "aw_2026", "--json"],
                                  ["runs", "--samples"]])  # fmt: skip
def test_a_reader_that_goes_away_ends_the_command_quietly(
    tmp_path: Path, isolated_config: Path, args: list[str]
) -> None:
    """`aw-tui runs --json | head -1`: the closed pipe is no failure to report, and never a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        env = {**os.environ, "PYTHONPATH": REPO_ROOT, "XDG_CONFIG_HOME": str(isolated_config)}
        done = subprocess.run(
            [sys.executable, "-m", "aw_tui", *args], cwd=tmp_path, env=env, stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=30, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 1


# After litellm was used, the command leaves with os._exit once its work is done (the interpreter's teardown of
# litellm costs about a second). What must still happen: exit handlers, flushed output, the exit status.
FAST_EXIT_PROBE = """
import atexit, sys
from pathlib import Path

class TornDown:  # a global finalized by the interpreter's teardown, which the fast exit skips
    def __del__(self):
        Path("torn-down").write_text("yes")

canary = TornDown()
atexit.register(lambda: Path("exit-handlers").write_text("ran"))
sys.argv = ["aw-tui", *sys.argv[1:]]
from aw_tui.cli import entry
entry()
"""


@pytest.mark.parametrize(("ending", "status"), [("return answer", 0), ("raise RuntimeError('the workflow broke')", 1)])
def test_after_litellm_the_command_skips_teardown_but_runs_exit_handlers_and_flushes(
    tmp_path: Path, isolated_config: Path, ending: str, status: int
) -> None:
    (tmp_path / "one.py").write_text(f'async def workflow(wf, args):\n    answer = await wf.agent("hi")\n    {ending}\n')
    (tmp_path / "script.json").write_text(json.dumps({"roles": {"workflow": [{"text": "hello from the model"}]}}))
    args = ["workflow", "run", "one.py", "--model", "scripted", "--script", "script.json", "--runs-root", "runs"]
    probe = "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'; exec(" + repr(FAST_EXIT_PROBE) + ")"
    done = run_process(["-c", probe, *args], cwd=tmp_path, config_home=isolated_config, timeout=60)
    assert done.returncode == status, done.stdout + done.stderr
    # Printed before os._exit, through a pipe: flushed.
    assert ("hello from the model" if status == 0 else "the workflow broke") in done.stdout + done.stderr
    assert (tmp_path / "exit-handlers").read_text() == "ran"
    assert not (tmp_path / "torn-down").exists()


def test_without_litellm_the_command_exits_the_usual_way(tmp_path: Path, isolated_config: Path) -> None:
    done = run_process(["-c", FAST_EXIT_PROBE, "runs", "--samples"], cwd=tmp_path, config_home=isolated_config)
    assert done.returncode == 0, done.stderr
    assert SAMPLE_NATIVE in done.stdout
    assert (tmp_path / "exit-handlers").read_text() == "ran"
    assert (tmp_path / "torn-down").read_text() == "yes"
