"""`aw-tui workflow run` end to end, offline (the scripted provider): a run directory like any other, its
journal, --resume, the errors a user can make, abort from control.jsonl, and a real kill -9 then resume."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import aw_tui
from aw_tui.engine.journal import Journal
from aw_tui.engine.workflow import (
    JOURNAL_FILE, RESULT_FILE, TRACEBACK_FILE, WorkflowRunner, install_workflow_script, load_workflow_file,
    start_workflow_run, workflow_settings,
)  # fmt: skip
from aw_tui.model.commands import new_command
from aw_tui.store.control import send_command
from aw_tui.store.run import open_run
from tests.cli_kit import assert_one_error_line, run_main

from .kit import respond_turn, text_turn

REPO_ROOT = str(Path(aw_tui.__file__).resolve().parents[1])

FAN_OUT = '''"""Inspect the packages, then sum up."""
from pydantic import BaseModel

PHASES = ["Inspect", "Summarize", "Never reached"]


class Finding(BaseModel):
    package: str
    ok: bool


async def workflow(wf, args):
    wf.phase("Inspect")
    found = await wf.parallel([
        (lambda p=p: wf.agent(f"Inspect {p}.", label=f"inspect:{p}", schema=Finding)) for p in args["packages"]
    ])
    wf.phase("Summarize")
    summary = await wf.agent(f"Sum up {len(found)} findings.", label="summary")
    return {"findings": found, "summary": summary}
'''


def fan_out_script(packages: list[str], *, delay: float = 0.0) -> dict[str, Any]:
    roles: dict[str, Any] = {f"inspect:{p}": [respond_turn({"package": p, "ok": p != "b"}, output=15, delay=delay)]
                             for p in packages}  # fmt: skip
    roles["summary"] = [text_turn("all inspected", output=40)]
    return {"roles": roles, "prices": {role: {"input": 1.0, "output": 2.0} for role in roles}}


def only_run(runs_root: Path) -> Path:
    runs = [p for p in runs_root.iterdir() if p.name.startswith("aw_")]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    workflow = tmp_path / "fan_out.py"
    workflow.write_text(FAN_OUT)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(fan_out_script(["a", "b", "c"])))
    return {"workflow": workflow, "script": script, "runs": tmp_path / "runs"}


def run_workflow(capsys, files, *extra: str) -> tuple[int, str, str]:
    return run_main(capsys, "workflow", "run", str(files["workflow"]), "--args", '{"packages": ["a", "b", "c"]}',
                    "--model", "scripted", "--script", str(files["script"]), "--runs-root", str(files["runs"]),
                    *extra)  # fmt: skip


# --- a run ---------------------------------------------------------------------------------------------------------


def test_a_workflow_runs_in_a_run_directory_like_any_other(capsys, files):
    code, out, err = run_workflow(capsys, files)
    assert code == 0, err
    assert "FINISHED: 4 agent call(s), 85 output tokens, 285 tokens in all" in out
    run_dir = only_run(files["runs"])
    for name in ("events.jsonl", "run.json", "state.md", "ledger.json", f"artifacts/{JOURNAL_FILE}",
                 f"artifacts/{RESULT_FILE}"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    result = json.loads((run_dir / "artifacts" / RESULT_FILE).read_text())["result"]
    assert result["summary"] == "all inspected"
    assert [f["ok"] for f in result["findings"]] == [True, False, True]
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.kind == "workflow" and state.state == "FINISHED"
    assert state.workflow_stats["agent_calls"] == 4 and state.workflow_stats["output_tokens"] == 85
    titles = {p.title: p.status for p in state.phases.values()}
    assert titles == {"Inspect": "done", "Summarize": "done", "Never reached": "skipped"}
    inspect = next(p for p in state.phases.values() if p.title == "Inspect")
    assert sorted(state.agents[a].label for a in inspect.agents) == ["inspect:a", "inspect:b", "inspect:c"]
    assert all(a.status == "done" and a.role == "workflow" for a in state.agents.values())
    snapshot = json.loads((run_dir / "run.json").read_text())
    assert snapshot["checkpoint"]["state"]["workflow_stats"]["agent_calls"] == 4
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert ledger["totals_by_role"]["workflow"]["out"] == 85
    assert len(Journal(run_dir / "artifacts" / JOURNAL_FILE)) == 4


def test_resume_answers_unchanged_calls_from_the_journal_and_reruns_changed_ones(capsys, files):
    assert run_workflow(capsys, files)[0] == 0
    run_dir = only_run(files["runs"])
    # The summary prompt changes; the three inspections do not. The script has no turns left for inspections.
    files["workflow"].write_text(FAN_OUT.replace("Sum up {len(found)} findings.", "Summarise {len(found)} findings."))
    files["script"].write_text(json.dumps({"roles": {"summary": [text_turn("unused"), text_turn("summed again")]}}))
    code, out, err = run_main(capsys, "workflow", "run", str(files["workflow"]), "--resume", str(run_dir),
                              "--script", str(files["script"]))  # fmt: skip
    assert code == 0, err
    assert "FINISHED: 4 agent call(s) (3 from the journal)" in out
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.workflow_stats["cached_calls"] == 3 and state.state == "FINISHED"
    assert json.loads((run_dir / "artifacts" / RESULT_FILE).read_text())["result"]["summary"] == "summed again"


def test_the_plain_resume_command_sends_workflow_runs_to_workflow_run(capsys, files):
    assert run_workflow(capsys, files)[0] == 0
    run_dir = only_run(files["runs"])
    code, _, err = run_main(capsys, "resume", str(run_dir))
    assert code == 1 and "is a workflow run: run it again with `aw-tui workflow run" in assert_one_error_line(err)


# --- bad inputs: one line, non-zero ------------------------------------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    (None, "no such workflow file"),
    ("async def not_it(wf, args):\n    return 1\n", "defines no workflow function"),
    ("x = 1\n\nasync def workflow(wf, args)\n    return 1\n", "fan_out.py:3: syntax error"),
    ("def workflow(wf, args):\n    return 1\n", "fan_out.py:1: `workflow` must be an async function"),
    ("import no_such_module_here\n", "fan_out.py:1: importing the workflow failed: ModuleNotFoundError"),
    ("PHASES = 'Scope'\nasync def workflow(wf, args):\n    return 1\n", "PHASES must be a list"),
])  # fmt: skip
def test_a_bad_workflow_file_is_one_error_line_and_no_run(capsys, files, source, expected):
    if source is None:
        files["workflow"].unlink()
    else:
        files["workflow"].write_text(source)
    code, _, err = run_workflow(capsys, files)
    assert code == 1
    assert expected in assert_one_error_line(err)
    assert not files["runs"].exists()


@pytest.mark.parametrize("extra, expected", [
    (["--args", "{packages: 1}"], "--args is not valid JSON (line 1, column 2)"),
    (["--concurrency", "0"], "--concurrency 0 is out of range"),
    (["--resume", "aw_nothing_like_it"], "aw_nothing_like_it"),
])  # fmt: skip
def test_bad_options_are_one_error_line(capsys, files, extra, expected):
    code, _, err = run_workflow(capsys, files, *extra)
    assert code == 1 and expected in assert_one_error_line(err)


def test_scripted_without_a_script_is_refused(capsys, files):
    code, _, err = run_main(capsys, "workflow", "run", str(files["workflow"]), "--model", "scripted",
                            "--runs-root", str(files["runs"]))  # fmt: skip
    assert code == 1 and "--script" in assert_one_error_line(err)


def test_a_workflow_that_raises_ends_failed_with_its_traceback_kept(capsys, files):
    files["workflow"].write_text(FAN_OUT.replace('    wf.phase("Summarize")\n',
                                                 '    wf.phase("Summarize")\n    raise ValueError("boom at the end")\n'))
    code, out, err = run_workflow(capsys, files)
    assert code == 1
    line = assert_one_error_line(err)
    assert "workflow FAILED" in line and "ValueError: boom at the end" in line and "fan_out.py:18" in line
    run_dir = only_run(files["runs"])
    state = open_run(run_dir, use_checkpoint=False).state
    assert state.state == "FAILED" and "ValueError: boom at the end" in state.state_reason
    tb = (run_dir / "artifacts" / TRACEBACK_FILE).read_text()
    assert tb.startswith("Traceback") and 'raise ValueError("boom at the end")' in tb
    assert {p.title: p.status for p in state.phases.values()}["Summarize"] == "failed"
    assert state.workflow_stats["agent_calls"] == 3 and not state.running_agents


# --- operator commands -------------------------------------------------------------------------------------------


def test_abort_from_control_stops_the_agents_in_flight_and_ends_aborted(tmp_path, files):
    files["script"].write_text(json.dumps(fan_out_script(["a", "b", "c"], delay=30)))
    loaded = load_workflow_file(files["workflow"])
    writer = start_workflow_run(loaded, {"packages": ["a", "b", "c"]}, runs_root=files["runs"], model="scripted",
                                script=files["script"], workspace=tmp_path)  # fmt: skip
    roles = install_workflow_script(writer, workflow_settings(writer), str(files["script"]))

    def listen(events):
        if any(e.type == "agent.started" for e in events):
            send_command(writer.paths, new_command("abort", text="enough", source="test"))

    runner = WorkflowRunner(writer, loaded, {"packages": ["a", "b", "c"]}, listeners=[listen], scripted_roles=roles,
                            control_poll_s=0.02)  # fmt: skip
    started = time.monotonic()
    try:
        outcome = asyncio.run(runner.run())
    finally:
        writer.close()
    assert time.monotonic() - started < 10
    assert outcome.state == "ABORTED" and outcome.reason == "enough"
    state = open_run(writer.paths.root, use_checkpoint=False).state
    assert state.state == "ABORTED"
    assert [a.status for a in state.agents.values()] == ["aborted"] * 3


# --- a real kill -9 in the middle, then --resume ------------------------------------------------------------------


def _process_env(config_home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO_ROOT, "XDG_CONFIG_HOME": str(config_home),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # fmt: skip


def _journal_lines(run_dir: Path) -> int:
    return len(Journal(run_dir / "artifacts" / JOURNAL_FILE))


def test_a_killed_workflow_resumes_with_every_completed_call_from_the_journal(tmp_path, isolated_config):
    packages = [f"p{i:02d}" for i in range(12)]
    script = fan_out_script(packages)
    for i, p in enumerate(packages):  # they finish one by one, 0.15 s apart
        script["roles"][f"inspect:{p}"][0]["delay_s"] = 0.15 * (i + 1)
    (tmp_path / "script.json").write_text(json.dumps(script))
    (tmp_path / "fan_out.py").write_text(FAN_OUT)
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "aw_tui", "workflow", "run", "fan_out.py", "--args",
            json.dumps({"packages": packages}), "--model", "scripted", "--script", "script.json",
            "--runs-root", str(runs), "--quiet"]  # fmt: skip
    with open(tmp_path / "first.log", "wb") as log:
        process = subprocess.Popen(argv, cwd=tmp_path, env=_process_env(isolated_config), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if runs.is_dir() and any(runs.iterdir()) and _journal_lines(only_run(runs)) >= 4:
                break
            assert process.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    run_dir = only_run(runs)
    completed = _journal_lines(run_dir)
    assert 4 <= completed < 12, "the kill should land in the middle of the fan-out"
    before = open_run(run_dir, use_checkpoint=False).state
    assert before.state == "WORKFLOW_RUNNING" and before.running_agents

    done = subprocess.run([sys.executable, "-m", "aw_tui", "workflow", "run", "fan_out.py", "--resume", str(run_dir)],
                          cwd=tmp_path, env=_process_env(isolated_config), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    after = open_run(run_dir, use_checkpoint=False).state
    assert after.state == "FINISHED" and not after.running_agents
    assert after.workflow_stats["cached_calls"] == completed
    assert after.workflow_stats["agent_calls"] == 13
    interrupted = [a for a in before.agents.values() if a.status == "running"]
    assert any("interrupted" in log.message for log in after.logs)
    assert all(after.agents[a.id].status == "done" for a in interrupted)
    result = json.loads((run_dir / "artifacts" / RESULT_FILE).read_text())["result"]
    assert [f["package"] for f in result["findings"]] == packages
    # Billing: every answered call once, whichever process made it (a call cut off by the kill had not answered).
    assert after.ledger.by_role()["workflow"].output == 12 * 15 + 40


def test_resume_refuses_a_run_that_is_not_a_workflow(capsys, files):
    from aw_tui.store.run import RunWriter

    other = RunWriter.create(files["runs"], task="an analyst/worker run")
    other.close()
    code, _, err = run_workflow(capsys, files, "--resume", str(other.paths.root))
    assert code == 1 and "is not a workflow run" in assert_one_error_line(err)


def test_resume_with_changed_settings_logs_them(capsys, files):
    assert run_workflow(capsys, files)[0] == 0
    run_dir = only_run(files["runs"])
    code, out, err = run_main(capsys, "workflow", "run", str(files["workflow"]), "--resume", str(run_dir),
                              "--budget", "5000", "--quiet")  # fmt: skip
    assert code == 0, err
    assert out.startswith("FINISHED: 4 agent call(s) (4 from the journal)")
    logs = [log.message for log in open_run(run_dir, use_checkpoint=False).state.logs]
    assert any(message == "resumed with budget=5000" for message in logs), logs
