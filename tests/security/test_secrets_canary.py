"""A canary API key in the environment never reaches the run directory, the headless log or the model.

Keys leak where text is copied without thought: provider error messages (which may quote the key they were
sent, or the Authorization header), litellm's exception strings, a settings dump, a worker that runs `env`.
Two runs carry a fresh canary: the bundled demo through the CLI, and a run against a mock provider (llmock)
whose errors quote the key back, continued by a headless engine as the TUI starts one (output in
artifacts/headless.log). Afterwards every file is searched for the canary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from llmock.scenarios import Fail, Reply, ToolCall

from aw_tui.engine.launch import start_run
from aw_tui.engine.orchestrator import FAILURE_OPTION
from aw_tui.store.config import load_config
from aw_tui.store.run import open_run
from tests.chaos.kit import (
    ANALYST_MODEL,
    NOTES,
    TASK,
    WORKER_MODEL,
    TappedServer,
    done_reply,
    for_model,
    plan_reply,
    report_reply,
    run_files,
    write_user_config,
)
from tests.cli_kit import run_main

SECRET_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AW_TUI_CANARY_TOKEN")
# The headless engine is a fresh process: it imports litellm (seconds on a small machine) before its first call.
ENGINE_DEADLINE_S = 120.0


def new_canary() -> str:
    return f"sk-canary-{uuid.uuid4().hex}"


def plant(monkeypatch: pytest.MonkeyPatch, canary: str) -> None:
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, canary)


def files_holding(canary: str, *roots: Path) -> list[str]:
    """Every file under `roots` whose bytes contain the canary (binary files too: nothing is skipped)."""
    needle = canary.encode()
    return [str(path) for root in roots for path in run_files(root) if needle in path.read_bytes()]


def assert_a_real_run_directory(run_dir: Path) -> None:
    """The search covered what a run writes, so finding nothing means something."""
    names = {path.relative_to(run_dir).as_posix() for path in run_files(run_dir)}
    assert {"events.jsonl", "run.json", "ledger.json", "state.md"} <= names, names
    assert any(name.startswith("steps/") for name in names), names


def test_the_demo_run_headless_through_the_cli_writes_no_key(capsys, tmp_path: Path, monkeypatch):
    canary = new_canary()
    plant(monkeypatch, canary)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "demo"))  # the demo workspace goes under tmp_path
    (tmp_path / "demo").mkdir()
    runs_root = tmp_path / "runs"

    code, out, err = run_main(capsys, "demo", "--headless", "--auto-approve", "all", "--runs-root", str(runs_root))

    assert code == 0, out + err
    [run_dir] = [p for p in runs_root.iterdir() if p.is_dir()]
    assert_a_real_run_directory(run_dir)
    assert files_holding(canary, run_dir, tmp_path / "demo") == []
    assert canary not in out and canary not in err


# --- a failing run against a mock provider, continued by a headless engine ---------------------------------------


@pytest.fixture(scope="module")
def tapped_server() -> Iterator[TappedServer]:
    with TappedServer() as tapped:
        yield tapped


def script_a_run_whose_errors_quote_the_key(tapped: TappedServer, canary: str):
    """plan (after a 500 that quotes the Authorization header) -> worker refused with a 401 that quotes the key ->
    the operator retries the turn -> the worker runs `env`, reports -> the analyst declares the task done."""
    mock = tapped.fresh()
    bearer_500 = f"upstream rejected the request with Authorization: Bearer {canary}; try again"
    key_401 = f"Incorrect API key provided: {canary}. You can find your API key at https://platform.example/keys."
    mock.add(
        Fail(500, retry_after=0.1, message=bearer_500, match=for_model(ANALYST_MODEL)),
        Fail(401, message=key_401, match=for_model(WORKER_MODEL)),
        plan_reply(),
        Reply(tool_calls=(ToolCall("bash", {"command": "env; printenv OPENAI_API_KEY; echo env-listed"}),),
              match=for_model(WORKER_MODEL)),  # fmt: skip
        report_reply(),
        done_reply(),
    )
    return mock


def drive_headless_engine(run_dir: Path, capsys) -> subprocess.Popen[bytes]:
    """Let the engine the TUI would hand the run to (`aw-tui resume --headless`, its output in
    artifacts/headless.log) run it, answering its gates from this process through the CLI: retry a failed turn,
    confirm the end."""
    from aw_tui.ui.app import start_headless_engine

    engine = start_headless_engine(run_dir)
    answered: set[str] = set()
    deadline = time.monotonic() + ENGINE_DEADLINE_S
    try:
        while engine.poll() is None:
            assert time.monotonic() < deadline, "the headless engine did not finish"
            for gate in open_run(run_dir).state.open_gates:
                if gate.id in answered:
                    continue
                if FAILURE_OPTION in gate.options:
                    code, out, err = run_main(capsys, "answer", str(run_dir), gate.id, "the key is fixed, try again")
                else:
                    code, out, err = run_main(capsys, "approve", str(run_dir), gate.id)
                assert code == 0, out + err
                answered.add(gate.id)
            time.sleep(0.05)
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)  # its own session (start_new_session), so its group is its pid
            engine.wait()
    return engine


@pytest.mark.chaos
def test_a_run_whose_provider_quotes_the_key_in_its_errors_writes_no_key(
    capsys, tmp_path: Path, monkeypatch, tapped_server: TappedServer
):
    canary = new_canary()
    plant(monkeypatch, canary)
    mock = script_a_run_whose_errors_quote_the_key(tapped_server, canary)
    write_user_config(mock.base_url("openai"), stream=False, timeout_s=30.0)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text(NOTES)
    writer = start_run(TASK, load_config().settings, workspace=workspace, runs_root=tmp_path / "runs")
    run_dir = writer.paths.root
    writer.close()  # the headless engine takes the lease

    engine = drive_headless_engine(run_dir, capsys)

    headless_log = run_dir / "artifacts" / "headless.log"
    log_text = headless_log.read_text(errors="replace")
    assert engine.returncode == 0, log_text
    state = open_run(run_dir).state
    assert state.state == "FINISHED"
    assert_a_real_run_directory(run_dir)
    assert headless_log in run_files(run_dir)
    assert files_holding(canary, run_dir) == []
    # The key was really in play: every request carried it.
    assert tapped_server.served and {r.authorization for r in tapped_server.served} == {f"Bearer {canary}"}
    # Both failures were recorded, still saying what happened, with the key cut out.
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    failures = [e for e in events if e["type"] == "llm.attempt" and e["outcome"] != "ok"]
    assert [(f["outcome"], "[redacted]" in f["error"]) for f in failures] == [("server_error", True),
                                                                          ("auth_error", True)]  # fmt: skip
    assert "(HTTP 500)" in failures[0]["error"] and "(HTTP 401)" in failures[1]["error"]
    assert "model call 1 auth_error" in log_text  # the headless log shows the failure
    # The worker's shell ran `env`, and the model read its output: without the key.
    worker_bodies = [r.body for r in mock.requests if r.model == WORKER_MODEL and r.status == 200]
    tool_results = [m["content"] for body in worker_bodies for m in body["messages"] if m.get("role") == "tool"]
    assert any("env-listed" in text and "PATH=" in text for text in tool_results), tool_results
    assert all(canary not in str(r.body) for r in mock.requests)
