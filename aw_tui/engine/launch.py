"""Starting and continuing runs: what `aw-tui run`, `aw-tui demo`, `aw-tui resume` and the TUI share.

- `start_run(task, settings, ...)` creates the run directory (leased) with the settings it runs under.
- `attach_run(path)` takes an existing run's lease (refused while another engine holds it).
- `prepare_engine(writer)` makes its models reachable: a run on the scripted provider gets its script
  installed and, when resumed, fast-forwarded past the calls the earlier process already made.
- `prepare_demo()` copies the bundled demo project into a fresh temporary workspace.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aw_tui.engine.orchestrator import ENGINE_KEY, run_settings, unrecorded_agents
from aw_tui.model.settings import Settings
from aw_tui.model.state import RunState
from aw_tui.packaged import package_dir
from aw_tui.store.run import RunWriter

SCRIPTED_PREFIX = "scripted/"
DEMO_TASK = (
    "The test suite of this small shop project fails: orders of exactly ten items do not get the bulk discount. "
    "Find the cause, fix it without changing the tests, make `python3 -m unittest -q` pass, and clean up the "
    "stale build/ directory."
)
DEMO_TITLE = "demo: fix the bulk discount"


class LaunchError(Exception):
    """A run that cannot start: the message is one line for the user."""


def demo_data() -> Path:
    return package_dir("aw_tui.data") / "demo"


def prepare_demo(parent: Path | None = None) -> tuple[Path, Path]:
    """A fresh copy of the demo project (with a stale build/ directory to clean up) and the demo script."""
    workspace = Path(tempfile.mkdtemp(prefix="aw-tui-demo-", dir=parent))
    shutil.copytree(demo_data() / "project", workspace, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    build = workspace / "build"
    build.mkdir()
    (build / "stale_pricing.py").write_text("# a stale copy left by an old packaging run\n")
    return workspace, demo_data() / "script.json"


def uses_scripted_models(settings: Settings) -> bool:
    return any(role.model.startswith(SCRIPTED_PREFIX) for role in (settings.analyst, settings.worker))


def start_run(
    task: str,
    settings: Settings,
    *,
    workspace: Path,
    runs_root: Path,
    title: str | None = None,
    script: Path | None = None,
) -> RunWriter:
    """Create a run (leased by this process) after checking what can be checked before spending anything."""
    if not task.strip():
        raise LaunchError("the task is empty; say what the run should do")
    workspace = Path(workspace).expanduser()
    if not workspace.is_dir():
        raise LaunchError(f"the workspace {workspace} does not exist or is not a directory")
    if uses_scripted_models(settings) and script is None:
        raise LaunchError("scripted/ models play a script: pass --script FILE (see `aw-tui demo` for one)")
    data: dict[str, Any] = settings.model_dump(mode="json")
    engine: dict[str, Any] = {}
    if script is not None:
        script = Path(script).expanduser().resolve()
        if not script.is_file():
            raise LaunchError(f"the script {script} does not exist")
        engine["script"] = str(script)
    if engine:
        data[ENGINE_KEY] = engine
    try:
        return RunWriter.create(runs_root, task=task, title=title, workspace=str(workspace.resolve()), settings=data)
    except OSError as error:
        raise LaunchError(f"cannot create a run under {runs_root}: {error.strerror or error}") from None


def attach_run(path: Path) -> RunWriter:
    return RunWriter.attach(path)


def prepare_engine(writer: RunWriter) -> None:
    """Install the scripted provider for a run that uses it, skipping turns an earlier engine played."""
    settings, engine = run_settings(writer.state)
    if not uses_scripted_models(settings):
        return
    script = engine.get("script")
    if not script:
        raise LaunchError("this run uses scripted/ models but recorded no script to play")
    if not os.path.isfile(script):
        raise LaunchError(f"the run's script {script} no longer exists")
    from aw_tui.engine.scripted import install_script

    provider = install_script(Path(script))
    provider.skip(scripted_calls_made(writer.state))


def scripted_calls_made(state: RunState) -> dict[str, int]:
    """Calls each scripted role already answered in turns that count (interrupted turns are played again)."""
    made: dict[str, int] = {}
    redone = {agent.id for agent in unrecorded_agents(state)}  # about to be recorded as interrupted
    for agent in state.agents.values():
        if agent.status == "interrupted" or agent.id in redone or not agent.model.startswith(SCRIPTED_PREFIX):
            continue
        role = agent.model[len(SCRIPTED_PREFIX) :]
        made[role] = made.get(role, 0) + agent.llm_calls + agent.llm_failures
    return made
