"""The engine commands of the CLI (run, demo, resume and the operator commands) end to end, offline.

Every run here plays a script on the scripted provider (`scripted/analyst`, `scripted/worker`): no network, no
key. Most tests call `aw_tui.cli.main` in-process; the ones about several processes on one run (a lease held
elsewhere, a kill -9 in the middle of a turn, commands to a live engine) run `python -m aw_tui` for real.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from aw_tui.store.control import read_commands
from aw_tui.store.run import open_run
from tests.cli_kit import (
    SCRIPTED, assert_one_error_line, events, final_state, only_run, run_main, run_process, start_process,
    stop_process, wait_for_event,
)  # fmt: skip

STEP_FILES = ["0001_analyst_plan.md", "0002_worker_result.md", "0003_analyst_review.md"]


# --- helpers ---------------------------------------------------------------------------------------------------


def lock_holders(run_dir: Path) -> list[str]:
    """The processes with the run's .lease.lock open (from /proc), for a failure message."""
    lock = str(run_dir / ".lease.lock")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == lock for fd in os.listdir(f"/proc/{pid}/fd")):
                found.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:
            continue
    return found


def wait_until_not_live(run_dir: Path, timeout: float = 5.0) -> None:
    """A killed engine's lease stops being live once the kernel has dropped its flock (at once, normally)."""
    deadline = time.monotonic() + timeout
    while open_run(run_dir).lease_status() == "live":
        if time.monotonic() >= deadline:
            pytest.fail(f"the lease of {run_dir.name} is still live {timeout} s after its engine was killed; "
                        f"processes with the lock file open: {lock_holders(run_dir) or 'none'}")  # fmt: skip
        time.sleep(0.05)


def ledger(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))


def step_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "steps").iterdir())


def analyst_text(step: int, state: str, *, next_state: str, instruction: str = "None",
                 handoff: str = "None", diagnosis: str = "") -> str:  # fmt: skip
    diagnosis = diagnosis or (
        "The task is small and well understood: one file in the workspace needs a change, and the change can be "
        "checked with a single command afterwards."
    )
    return (
        f"[ANALYST: scripted/analyst]\nStep: {step}\nState: {state}\n\n"
        f"## Diagnosis / Review\n{diagnosis}\n\n"
        "## Hypothesis\nNothing is hidden here; the obvious reading of the task is the right one.\n\n"
        f"## Worker instruction\n{instruction}\n\n"
        "## Validation / Risks\nCheck the result with the command named in the instruction. No risks.\n\n"
        "## Operational memory\n- Nothing to remember yet.\n\n"
        f"## Next state\n{next_state}\n\n"
        f"## Operator handoff\n{handoff}\n"
    )


WORKER_REPORT = (
    "[WORKER: scripted/worker]\nInstruction id: 0001_check_the_workspace\n\n"
    "## Task understood\nCheck the workspace as instructed.\n\n"
    "## Actions taken\n1. Read notes.txt.\n2. Ran the two commands.\n\n"
    "## Result\nEverything is as expected.\n\n"
    "## Validation\nBoth commands exited 0.\n\n"
    "## Diff / artifacts\nNo file changed.\n\n"
    "## Issues / risks / lessons\nNone.\n\n"
    "## Worker recommendation / next steps\nNothing more is needed.\n\n"
    "## Stop / handoff\nStopped after the instruction was carried out.\n"
)
INSTRUCTION = (
    "Check the workspace.\n- Goal: read notes.txt and run the two commands.\n- Files and commands allowed: read "
    "notes.txt; bash.\n- Exact stop conditions: both commands ran.\n- Expected result: both exit 0.\n"
    "- What to report back: their output."
)


def write_script(path: Path, roles: dict[str, list[dict[str, Any]]]) -> Path:
    path.write_text(json.dumps({"version": 1, "roles": roles}, indent=1), encoding="utf-8")
    return path


def workspace(tmp_path: Path, name: str = "ws") -> Path:
    ws = tmp_path / name
    ws.mkdir()
    (ws / "notes.txt").write_text("a workspace for tests\n", encoding="utf-8")
    return ws


def finished_demo(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, Path]:
    """Run `aw-tui demo` to the end in-process; (run directory, its stdout, the demo workspace)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the demo workspace goes under tmp_path
    runs_root = tmp_path / "runs"
    code, out, err = run_main(capsys, "demo", "--headless", "--auto-approve", "all", "--runs-root", str(runs_root))
    assert code == 0, out + err
    line = next(line for line in out.splitlines() if line.startswith("demo workspace: "))
    demo_ws = Path(line[len("demo workspace: ") :].split(" (", 1)[0])
    return only_run(runs_root), out, demo_ws


# --- 1. the demo --------------------------------------------------------------------------------------------------


def test_demo_fixes_the_project_with_an_auto_approved_dangerous_command_and_finishes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, out, demo_ws = finished_demo(capsys, tmp_path, monkeypatch)

    assert demo_ws.is_relative_to(tmp_path) and demo_ws.is_dir()
    assert step_files(run_dir) == STEP_FILES
    pricing = (demo_ws / "shop" / "pricing.py").read_text(encoding="utf-8")
    assert "if quantity >= BULK_QUANTITY:" in pricing and "if quantity > BULK_QUANTITY:" not in pricing
    assert not (demo_ws / "build").exists()  # the approved `rm -rf build` really ran

    log = events(run_dir)
    opened = [e for e in log if e["type"] == "gate.opened" and e["kind"] == "dangerous_command"]
    assert [e["binding"] for e in opened] == ["rm -rf build"]
    resolved = [e for e in log if e["type"] == "gate.resolved" and e["id"] == opened[0]["id"]]
    assert len(resolved) == 1
    assert resolved[0]["decision"] == "approved"
    assert "auto-approve" in resolved[0]["resolved_by"]

    assert final_state(run_dir) == "FINISHED"
    totals = ledger(run_dir)["total"]
    assert totals["cost"] > 0 and totals["in"] > 0 and totals["out"] > 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[-1].startswith("FINISHED:"), lines[-3:]


# --- 2. an analyst that aborts -----------------------------------------------------------------------------------


def test_run_with_an_analyst_that_aborts_exits_1_in_state_aborted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = analyst_text(1, "ANALYST_PLANNING", next_state="ABORT", diagnosis=(
        "The task asks for something this workspace cannot provide: there is no code here at all, only a notes "
        "file, so no worker stage could make progress. Stopping is the honest answer."))  # fmt: skip
    script = write_script(tmp_path / "abort.json", {"analyst": [{"text": text, "usage": {"input": 500, "output": 90}}],
                                                    "worker": []})  # fmt: skip
    runs_root = tmp_path / "runs"
    code, out, err = run_main(
        capsys, "run", "Refactor the payment module", *SCRIPTED, "--script", str(script),
        "--workspace", str(workspace(tmp_path)), "--runs-root", str(runs_root), "--headless",
    )  # fmt: skip
    assert code == 1, out + err
    run_dir = only_run(runs_root)
    assert final_state(run_dir) == "ABORTED"
    assert step_files(run_dir) == ["0001_analyst_plan.md"]
    assert not any(e["type"] == "agent.started" and e["role"] == "worker" for e in events(run_dir))
    assert [line for line in out.splitlines() if line.strip()][-1].startswith("ABORTED:")


# --- 3. bad inputs -----------------------------------------------------------------------------------------------


def test_run_in_a_workspace_that_does_not_exist_fails_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.json", {"analyst": [], "worker": []})
    missing = tmp_path / "no-such-project"
    runs_root = tmp_path / "runs"
    code, out, err = run_main(capsys, "run", "Do it", *SCRIPTED, "--script", str(script), "--workspace", str(missing),
                              "--runs-root", str(runs_root), "--headless")  # fmt: skip
    assert code == 1
    message = assert_one_error_line(err)
    assert message.startswith("aw-tui: ")
    assert str(missing) in message and "does not exist" in message
    assert not runs_root.exists() or not any(runs_root.iterdir())  # nothing was created


def test_scripted_models_without_a_script_fail_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    runs_root = tmp_path / "runs"
    code, out, err = run_main(capsys, "run", "Do it", *SCRIPTED, "--workspace", str(workspace(tmp_path)),
                              "--runs-root", str(runs_root), "--headless")  # fmt: skip
    assert code == 1
    message = assert_one_error_line(err)
    assert "--script" in message and "scripted/" in message
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_a_script_that_does_not_exist_fails_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing-script.json"
    runs_root = tmp_path / "runs"
    code, out, err = run_main(capsys, "run", "Do it", *SCRIPTED, "--script", str(missing),
                              "--workspace", str(workspace(tmp_path)), "--runs-root", str(runs_root), "--headless")  # fmt: skip
    assert code == 1
    message = assert_one_error_line(err)
    assert str(missing) in message and "does not exist" in message
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_an_unknown_thinking_level_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_main(capsys, "run", "Do it", *SCRIPTED, "--analyst-thinking", "extreme",
                              "--workspace", str(tmp_path), "--runs-root", str(tmp_path / "runs"))  # fmt: skip
    assert code == 2
    message = assert_one_error_line(err)
    assert "--analyst-thinking" in message and "extreme" in message
    assert not (tmp_path / "runs").exists()


# --- 4. commands to a run that has ended --------------------------------------------------------------------------


def test_commands_to_a_finished_run_fail_saying_it_has_ended(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, _, _ = finished_demo(capsys, tmp_path, monkeypatch)
    control_before = (run_dir / "control.jsonl").read_bytes()

    for argv in (["approve", str(run_dir), "g-0001"], ["pause", str(run_dir)]):
        code, out, err = run_main(capsys, *argv)
        assert code == 1, (argv, out, err)
        message = assert_one_error_line(err)
        assert "has ended" in message and "FINISHED" in message, message
    code, out, err = run_main(capsys, "resume", str(run_dir), "--headless")
    assert code == 1
    message = assert_one_error_line(err)
    assert "has ended" in message and run_dir.name in message

    # Refused before anything was written: no command queued, the run untouched.
    assert (run_dir / "control.jsonl").read_bytes() == control_before
    assert final_state(run_dir) == "FINISHED"


# --- 5. two engines on one run ------------------------------------------------------------------------------------


def test_resume_is_refused_while_another_process_runs_the_run(tmp_path: Path, isolated_config: Path) -> None:
    from aw_tui.engine.launch import start_run
    from aw_tui.model.settings import RoleSettings, Settings

    script = write_script(tmp_path / "s.json", {"analyst": [], "worker": []})
    settings = Settings(analyst=RoleSettings(model="scripted/analyst"), worker=RoleSettings(model="scripted/worker"))
    writer = start_run("Hold the lease", settings, workspace=workspace(tmp_path), runs_root=tmp_path / "runs",
                       script=script)  # fmt: skip
    try:
        run_dir = writer.paths.root
        events_before = (run_dir / "events.jsonl").read_bytes()
        done = run_process(["resume", str(run_dir), "--headless"], cwd=tmp_path, config_home=isolated_config)
        assert done.returncode == 1, done.stdout + done.stderr
        message = assert_one_error_line(done.stderr)
        assert message == f"aw-tui: {run_dir.name} is running in another process and is not paused"
        assert (run_dir / "events.jsonl").read_bytes() == events_before  # the second process wrote nothing
        assert open_run(run_dir).lease_status() == "live"
    finally:
        writer.close()


# --- 6. a command to an orphaned run is queued ---------------------------------------------------------------------


def test_pause_of_a_run_nobody_runs_is_queued(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from aw_tui.engine.launch import start_run
    from aw_tui.model.settings import RoleSettings, Settings

    script = write_script(tmp_path / "s.json", {"analyst": [], "worker": []})
    settings = Settings(analyst=RoleSettings(model="scripted/analyst"), worker=RoleSettings(model="scripted/worker"))
    writer = start_run("Left alone", settings, workspace=workspace(tmp_path), runs_root=tmp_path / "runs",
                       script=script)  # fmt: skip
    run_dir = writer.paths.root
    writer.close()  # the engine went away without finishing: no lease, a state that is not terminal
    opened = open_run(run_dir)
    assert opened.lease_status() != "live" and not opened.state.is_terminal

    code, out, err = run_main(capsys, "pause", str(run_dir))
    assert code == 0, err
    assert err == ""
    assert "queued" in out and run_dir.name in out
    commands = read_commands(run_dir)
    assert [(c.cmd, c.source) for c in commands] == [("pause", "cli")]  # type: ignore[union-attr]


# --- 7. kill -9 in the middle of a worker turn, then resume -------------------------------------------------------


def crash_script(path: Path) -> Path:
    """An analyst plan, a worker turn of four calls, a review saying DONE.

    The worker's second call runs a bash command that waits until a file `go` exists in the workspace: the
    engine is reliably inside the worker's turn while it waits, and where `go` exists (the uninterrupted run,
    the resumed run) it returns at once. Usage is fixed per turn, so costs compare exactly."""
    return write_script(path, {
        "analyst": [
            {"text": analyst_text(1, "ANALYST_PLANNING", next_state="NEEDS_WORKER", instruction=INSTRUCTION),
             "usage": {"input": 2000, "output": 400, "reasoning": 100}},
            {"expect_contains": "worker report",
             "text": analyst_text(3, "ANALYST_REVIEWING", next_state="DONE", handoff=(
                 "- Problem: none.\n- Question: confirm that the run is done?\n- Recommended answer: approve.")),
             "usage": {"input": 1500, "output": 300, "cache_read": 2000}},
        ],
        "worker": [
            {"tool_calls": [{"id": "read_notes", "name": "read", "arguments": {"path": "notes.txt"}}],
             "usage": {"input": 1800, "output": 60}},
            {"expect_tool_result": "read_notes",
             "tool_calls": [{"id": "wait_go", "name": "bash",
                             "arguments": {"command": "while [ ! -e go ]; do sleep 0.05; done; echo released"}}],
             "usage": {"input": 2400, "output": 50}},
            {"expect_tool_result": "wait_go",
             "tool_calls": [{"id": "second", "name": "bash", "arguments": {"command": "echo second"}}],
             "usage": {"input": 2700, "output": 45}},
            {"expect_tool_result": "second", "text": WORKER_REPORT, "usage": {"input": 3000, "output": 500}},
        ],
    })  # fmt: skip


def test_a_run_killed_mid_turn_resumes_and_redoes_only_the_interrupted_turn(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_config: Path
) -> None:
    script = crash_script(tmp_path / "crash.json")
    task = "Check the workspace and report"
    crash_ws = workspace(tmp_path, "crash-ws")
    runs_root = tmp_path / "runs"
    log = tmp_path / "crash.log"
    process = start_process(
        ["run", task, *SCRIPTED, "--script", str(script), "--workspace", str(crash_ws), "--runs-root", str(runs_root),
         "--headless", "--auto-approve", "all"], cwd=tmp_path, config_home=isolated_config, log=log,
    )  # fmt: skip
    try:
        # While that process starts: the same script uninterrupted, in-process, where `go` already exists.
        clean_ws = workspace(tmp_path, "clean-ws")
        (clean_ws / "go").touch()
        clean_root = tmp_path / "clean-runs"
        code, out, err = run_main(capsys, "run", task, *SCRIPTED, "--script", str(script), "--workspace",
                                  str(clean_ws), "--runs-root", str(clean_root), "--headless", "--auto-approve", "all")  # fmt: skip
        assert code == 0, out + err
        clean_run = only_run(clean_root)
        assert step_files(clean_run) == STEP_FILES
        clean_cost = ledger(clean_run)["total"]["cost"]
        assert clean_cost > 0

        run_dir = wait_for_event(
            runs_root, lambda e: e["type"] == "tool.started" and e.get("call_id") == "wait_go",
            process=process, log=log,
        )  # fmt: skip
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        stop_process(process)
        (crash_ws / "go").touch()  # lets the orphaned bash loop of the killed engine end

    wait_until_not_live(run_dir)
    killed = open_run(run_dir, use_checkpoint=False)
    assert killed.state.state == "WORKER_RUNNING"
    assert [a.id for a in killed.state.agents.values() if a.status == "running"] == ["s0002-worker"]

    resumed = run_process(["resume", str(run_dir), "--headless", "--auto-approve", "all"], cwd=tmp_path,
                          config_home=isolated_config)  # fmt: skip
    output = resumed.stdout + resumed.stderr
    assert "ran out of turns" not in output and "ScriptError" not in output
    assert resumed.returncode == 0, output
    assert [line for line in resumed.stdout.splitlines() if line.strip()][-1].startswith("FINISHED:")

    state = open_run(run_dir, use_checkpoint=False).state
    assert state.state == "FINISHED"
    interrupted = [a for a in state.agents.values() if a.status == "interrupted"]
    assert [a.id for a in interrupted] == ["s0002-worker"]
    assert step_files(run_dir) == STEP_FILES
    data = ledger(run_dir)
    assert [step["step"] for step in data["steps"]] == [1, 2, 3]
    assert data["steps"][1]["agent"] != "s0002-worker"  # step 2 is the redone turn

    log_events = events(run_dir)
    # Every model call of the resumed engine fit the script: it was fast-forwarded past the analyst's plan only.
    attempts = [e for e in log_events if e["type"] == "llm.attempt"]
    assert attempts and all(e["outcome"] == "ok" for e in attempts), [e for e in attempts if e["outcome"] != "ok"]
    assert [e["agent"] for e in attempts] == ["s0001-analyst", "s0002-worker", "s0002-worker",
                                              *["s0002-worker.2"] * 4, "s0003-analyst"]  # fmt: skip
    interrupted_cost = sum(e["cost"] for e in log_events if e["type"] == "agent.usage" and e["agent"] == "s0002-worker")
    assert interrupted_cost > 0  # the killed turn had made (and paid for) model calls
    assert data["total"]["cost"] == pytest.approx(clean_cost + interrupted_cost)
    # No gate was needed and none is left open.
    assert not any(g.is_open for g in state.gates.values())


# --- 8. notes and answers to a live engine ------------------------------------------------------------------------


def test_note_and_answer_reach_a_live_engine_and_a_second_answer_is_rejected(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, isolated_config: Path
) -> None:
    question = "- Problem: two plans fit the task.\n- Question: plan A or plan B?\n- Recommended answer: plan A."
    script = write_script(tmp_path / "ask.json", {
        "analyst": [
            {"text": analyst_text(1, "ANALYST_PLANNING", next_state="NEEDS_OPERATOR", handoff=question),
             "usage": {"input": 900, "output": 200}},
            # The note and then the answer, in that order, as the operator notes of the next prompt. The delay
            # keeps the engine busy (and live) while the test sends a second answer.
            {"expect_contains": "- remember the cache\n- use plan B", "delay_s": 2.0,
             "text": analyst_text(2, "ANALYST_PLANNING", next_state="DONE", handoff=(
                 "- Problem: none.\n- Question: confirm that the run is done?\n- Recommended answer: approve.")),
             "usage": {"input": 1100, "output": 250}},
        ],
        "worker": [],
    })  # fmt: skip
    runs_root = tmp_path / "runs"
    log = tmp_path / "engine.log"
    process = start_process(
        ["run", "Choose a plan", *SCRIPTED, "--script", str(script), "--workspace", str(workspace(tmp_path)),
         "--runs-root", str(runs_root), "--headless", "--auto-approve", "confirm_done"],
        cwd=tmp_path, config_home=isolated_config, log=log,
    )  # fmt: skip
    try:
        run_dir = wait_for_event(
            runs_root, lambda e: e["type"] == "gate.opened" and e["id"] == "g-0001", process=process, log=log
        )
        gate = next(e for e in events(run_dir) if e["type"] == "gate.opened" and e["id"] == "g-0001")
        assert gate["kind"] == "operator_input"

        code, out, err = run_main(capsys, "note", str(run_dir), "remember the cache")
        assert (code, err) == (0, ""), out + err
        assert out.startswith("note: done")

        code, out, err = run_main(capsys, "answer", str(run_dir), "g-0001", "use plan B")
        assert (code, err) == (0, ""), out + err
        assert out.startswith("answer g-0001: done")

        code, out, err = run_main(capsys, "answer", str(run_dir), "g-0001", "again")
        assert code == 1, out + err
        message = assert_one_error_line(err)
        assert "already" in message and "g-0001" in message

        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        stop_process(process)

    log_events = events(run_dir)
    resolutions = [e for e in log_events if e["type"] == "gate.resolved" and e["id"] == "g-0001"]
    assert [(e["decision"], e.get("text")) for e in resolutions] == [("answered", "use plan B")]
    rejected = [e for e in log_events if e["type"] == "command.rejected"]
    assert len(rejected) == 1
    assert rejected[0]["cmd"] == "answer" and "already" in rejected[0]["reason"]
    acknowledged = {e["cmd"] for e in log_events if e["type"] == "command.acknowledged"}
    assert {"note", "answer", "approve"} <= acknowledged
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.state == "FINISHED"
    assert [n.text for n in state.notes][:2] == ["remember the cache", "use plan B"]
    assert step_files(run_dir) == ["0001_analyst_plan.md", "0002_analyst_plan.md"]
