"""Two processes, one run: `aw-tui run --headless` drives the engine, the TUI in this process follows and steers it.

Process 1 is a real `python -m aw_tui run --headless` on the demo's project and script, with stdin not a terminal
and no --auto-approve, so every gate waits for a command in control.jsonl. Process 2 is the TUI under Pilot, with
its file watcher on: it learns everything from the run directory and acts only through control.jsonl.

The script is the demo's with one worker call put in front: a bash loop that waits for a file `go` in the
workspace. That holds the engine inside a worker turn, live, until a test lets it go, so the TUI is reliably open
before the first gate and a pause or an abort lands while the engine works (not only while it waits).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aw_tui.engine.launch import DEMO_TASK, demo_data, prepare_demo
from aw_tui.store.control import read_commands
from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.screens.run import RunScreen
from aw_tui.ui.widgets.agent_tree import AgentTree
from aw_tui.ui.widgets.gate_queue import GateQueue
from aw_tui.ui.widgets.status_line import StatusLine
from tests.cli_kit import SCRIPTED, events, final_state, start_process, stop_process, wait_for_event
from tests.ui.ui_kit import wait_for_run_screen

TIMEOUT_S = 20.0  # for one awaited change; every wait polls, so a healthy run takes a fraction of it


class Engine:
    """The headless engine process and what a test needs to watch it: its run, workspace, log and marker."""

    def __init__(self, process: subprocess.Popen[bytes], runs_root: Path, workspace: Path, log: Path, marker: str):
        self.process = process
        self.runs_root = runs_root
        self.workspace = workspace
        self.log = log
        self.marker = marker  # unique text in the waiting bash command, to find its process
        self.run_dir: Path | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        assert self.run_dir is not None
        return events(self.run_dir)

    def release(self) -> None:
        """Let the worker's waiting bash call return."""
        (self.workspace / "go").touch()


def waiting_script(path: Path, marker: str) -> Path:
    """The demo's script, with a first worker call that waits for `go` in the workspace."""
    script = json.loads((demo_data() / "script.json").read_text(encoding="utf-8"))
    wait = f"while [ ! -e go ]; do sleep 0.05; done; echo {marker}"
    script["roles"]["worker"].insert(0, {
        "tool_calls": [{"id": "wait_go", "name": "bash", "arguments": {"command": wait}}],
        "usage": {"input": 1500, "output": 30},
    })  # fmt: skip
    path.write_text(json.dumps(script, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path: Path, isolated_config: Path) -> Iterator[Engine]:
    """`aw-tui run --headless` on a copy of the demo project, started and (whatever happens) stopped."""
    marker = f"released-{tmp_path.name}"
    workspace, _ = prepare_demo(tmp_path)
    script = waiting_script(tmp_path / "script.json", marker)
    runs_root = tmp_path / "runs"
    log = tmp_path / "engine.log"
    process = start_process(
        ["run", DEMO_TASK, *SCRIPTED, "--script", str(script), "--workspace", str(workspace), "--runs-root",
         str(runs_root), "--title", "cross-process", "--headless"], cwd=tmp_path, config_home=isolated_config, log=log,
    )  # fmt: skip
    handle = Engine(process, runs_root, workspace, log, marker)
    try:
        handle.run_dir = wait_for_event(runs_root, lambda e: e["type"] == "run.created", process=process, log=log)
        yield handle
    finally:
        stop_process(process)
        handle.release()  # a killed engine's bash loop ends too


def tui(engine: Engine) -> AwTuiApp:
    assert engine.run_dir is not None
    return AwTuiApp([engine.runs_root], open_path=engine.run_dir, watch=True)


async def until(pilot: Any, engine: Engine, condition: Callable[[], Any], what: str, *, engine_exits: bool = False,
                timeout: float = TIMEOUT_S) -> Any:  # fmt: skip
    """Let the TUI run until `condition()` is truthy (its value is returned); fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if not engine_exits and engine.process.poll() is not None:
            pytest.fail(f"the engine exited ({engine.process.returncode}) while waiting for {what}:\n{engine.output()}")
        if time.monotonic() >= deadline:
            pytest.fail(f"not within {timeout} s: {what}\nengine output:\n{engine.output()}")
        await pilot.pause(0.05)


def status_text(screen: RunScreen) -> str:
    return str(screen.query_one(StatusLine).content)


def tree_agent_ids(screen: RunScreen) -> list[str]:
    """The agents the tree shows (node data is the agent id, or `phase:<id>` for a phase)."""
    found: list[str] = []
    pending = list(screen.query_one(AgentTree).root.children)
    while pending:
        node = pending.pop(0)
        if node.data and not str(node.data).startswith("phase:"):
            found.append(str(node.data))
        pending.extend(node.children)
    return found


def shown_gates(screen: RunScreen) -> list[tuple[str, str]]:
    """(id, kind) of the gates in the TUI's gate queue."""
    return [(gate.id, gate.kind) for gate in screen.query_one(GateQueue).gates]


def worker_waits(screen: RunScreen) -> str | None:
    """The id of the worker agent whose waiting bash call runs, as the TUI sees it."""
    assert screen.opened is not None
    running = [a for a in screen.opened.state.agents.values() if a.role == "worker" and a.tools_running]
    return running[0].id if running else None


def acknowledged(engine: Engine, command_id: str) -> bool:
    return any(e["type"] == "command.acknowledged" and e["command_id"] == command_id for e in engine.events())


def tui_command(engine: Engine, cmd: str, seen: int = 0) -> Any:
    """The TUI's command `cmd` on control.jsonl after the first `seen` commands, or None."""
    assert engine.run_dir is not None
    commands = [c for c in read_commands(engine.run_dir)[seen:] if getattr(c, "cmd", None) == cmd]
    return commands[0] if commands else None


def processes_running(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if marker in cmdline and "zombie" not in state:
            found.append(f"{pid}: {cmdline[:200]}")
    return found


# --- 1. the TUI follows the run live and approves both of its gates ------------------------------------------------


async def test_the_tui_shows_a_headless_run_live_and_its_approvals_drive_it_to_finished(engine: Engine) -> None:
    async with tui(engine).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        worker = await until(pilot, engine, lambda: worker_waits(screen), "the TUI showing the worker's bash call")
        assert screen.opened is not None
        # The state is folded before the widgets are redrawn from it: wait for the tree, not just the state.
        await until(pilot, engine, lambda: tree_agent_ids(screen) == ["s0001-analyst", worker],
                    "the tree showing the analyst and the worker")  # fmt: skip
        assert shown_gates(screen) == []
        assert "engine live" in status_text(screen)

        engine.release()
        dangerous = await until(pilot, engine, lambda: [g for g in shown_gates(screen) if g[1] == "dangerous_command"],
                                "the dangerous_command gate in the TUI's gate queue")  # fmt: skip
        [(gate_id, _)] = dangerous
        gate = screen.opened.state.gates[gate_id]
        assert gate.binding == "rm -rf build" and gate.is_open
        assert screen.query_one(GateQueue).selected is not None and screen.query_one(GateQueue).selected.id == gate_id
        assert (engine.workspace / "build").is_dir()  # nothing runs it before the operator says so

        await pilot.press("a")
        approve = await until(pilot, engine, lambda: tui_command(engine, "approve"), "the TUI's approve command")
        assert approve.gate_id == gate_id and approve.source == "operator (tui)"
        await until(pilot, engine, lambda: acknowledged(engine, approve.id), "the engine acknowledging the approval")
        resolved = [e for e in engine.events() if e["type"] == "gate.resolved" and e["id"] == gate_id]
        assert [(e["decision"], e["resolved_by"], e["command_id"]) for e in resolved] == [
            ("approved", "operator (tui)", approve.id)]  # fmt: skip

        done = await until(pilot, engine, lambda: [g for g in shown_gates(screen) if g[1] == "confirm_done"],
                           "the confirm_done gate in the TUI's gate queue")  # fmt: skip
        [(done_id, _)] = done
        assert shown_gates(screen) == [(done_id, "confirm_done")]  # the dangerous gate left the queue
        assert not (engine.workspace / "build").exists()  # the approved command really ran
        assert "s0003-analyst" in tree_agent_ids(screen)  # the review appeared while the screen was open

        await pilot.press("a")
        await until(pilot, engine, lambda: engine.process.poll() is not None, "the engine exiting", engine_exits=True)
        assert engine.process.returncode == 0, engine.output()
        await until(pilot, engine, lambda: screen.opened.state.state == "FINISHED" and "FINISHED" in status_text(screen),
                    "the TUI showing FINISHED", engine_exits=True)  # fmt: skip
        await until(pilot, engine, lambda: "no engine" in status_text(screen), "the TUI seeing the lease released",
                    engine_exits=True)  # fmt: skip
        assert shown_gates(screen) == []

    confirm = tui_command(engine, "approve", seen=1)
    assert confirm is not None and confirm.gate_id == done_id and confirm.source == "operator (tui)"
    log = engine.events()
    assert [(e["id"], e["decision"], e["resolved_by"]) for e in log if e["type"] == "gate.resolved"] == [
        (gate_id, "approved", "operator (tui)"), (done_id, "approved", "operator (tui)")]  # fmt: skip
    assert {e["command_id"] for e in log if e["type"] == "command.acknowledged"} == {approve.id, confirm.id}
    assert final_state(engine.run_dir) == "FINISHED"
    assert engine.output().rstrip().splitlines()[-1].startswith("FINISHED:")


# --- 2. pause and resume from the TUI --------------------------------------------------------------------------------


async def test_the_tui_pauses_a_working_headless_engine_and_resumes_it(engine: Engine) -> None:
    async with tui(engine).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        worker = await until(pilot, engine, lambda: worker_waits(screen), "the TUI showing the worker's bash call")
        assert screen.opened is not None and not screen.opened.state.paused
        assert "PAUSED" not in status_text(screen)

        await pilot.press("p")
        pause = await until(pilot, engine, lambda: tui_command(engine, "pause"), "the TUI's pause command")
        assert pause.source == "operator (tui)"
        await until(pilot, engine, lambda: acknowledged(engine, pause.id), "the engine acknowledging the pause")
        assert [e["command_id"] for e in engine.events() if e["type"] == "run.paused"] == [pause.id]
        await until(pilot, engine, lambda: screen.opened.state.paused and "PAUSED" in status_text(screen),
                    "the TUI's status line showing PAUSED")  # fmt: skip

        # Paused: the bash call in flight finishes, and nothing new starts (the script would reach the next gate
        # within a fraction of a second otherwise).
        engine.release()
        await until(pilot, engine, lambda: any(e["type"] == "tool.finished" and e.get("call_id") == "wait_go"
                                               for e in engine.events()), "the bash call in flight finishing")  # fmt: skip
        finished_at = len(engine.events())
        await pilot.pause(1.0)
        later = engine.events()[finished_at:]
        assert [e["type"] for e in later if e["type"] in ("llm.attempt", "tool.started", "gate.opened")] == []
        assert screen.opened.state.agents[worker].tools_running == 0

        await pilot.press("p")
        resume = await until(pilot, engine, lambda: tui_command(engine, "resume"), "the TUI's resume command")
        await until(pilot, engine, lambda: acknowledged(engine, resume.id), "the engine acknowledging the resume")
        assert [e["command_id"] for e in engine.events() if e["type"] == "run.resumed"] == [resume.id]
        await until(pilot, engine, lambda: not screen.opened.state.paused and "PAUSED" not in status_text(screen),
                    "the TUI's status line without PAUSED")  # fmt: skip
        # Resumed, the worker carries on to the next gate.
        await until(pilot, engine, lambda: [g for g in shown_gates(screen) if g[1] == "dangerous_command"],
                    "the dangerous_command gate after resuming")  # fmt: skip
    assert engine.process.poll() is None  # the engine still waits at that gate; the fixture stops it


# --- 3. abort from the TUI -----------------------------------------------------------------------------------------


async def test_the_tui_aborts_a_working_headless_engine(engine: Engine) -> None:
    async with tui(engine).run_test(size=(160, 48)) as pilot:
        screen = await wait_for_run_screen(pilot)
        await until(pilot, engine, lambda: worker_waits(screen), "the TUI showing the worker's bash call")
        # tool.call is written just before the shell starts, so the process may trail the TUI by a moment.
        await until(pilot, engine, lambda: processes_running(engine.marker), "the worker's bash call running")

        await pilot.press("A", "y")
        abort = await until(pilot, engine, lambda: tui_command(engine, "abort"), "the TUI's abort command")
        assert abort.source == "operator (tui)"
        await until(pilot, engine, lambda: engine.process.poll() is not None, "the engine exiting", engine_exits=True)
        assert engine.process.returncode == 1, engine.output()
        await until(pilot, engine, lambda: screen.opened.state.state == "ABORTED" and "ABORTED" in status_text(screen),
                    "the TUI showing ABORTED", engine_exits=True)  # fmt: skip
        assert screen.opened.state.state_reason == "the operator aborted the run"
        await until(pilot, engine, lambda: "no engine" in status_text(screen), "the TUI seeing the lease released",
                    engine_exits=True)  # fmt: skip

    assert acknowledged(engine, abort.id)
    assert final_state(engine.run_dir) == "ABORTED"
    assert not (engine.workspace / "go").exists()  # nobody released the bash call: the abort stopped it
    assert processes_running(engine.marker) == []
    assert engine.output().rstrip().splitlines()[-1].startswith("ABORTED:")
