"""The aw-tui Textual app: the runs list, one screen per open run, and runs driven in this process.

State flows one way: the run directory's events -> the reducer -> RunState -> widgets. The watcher (an async
worker) only posts RunsChanged; screens read their runs off the event loop. An engine started here (`aw-tui demo`)
writes its run directory like a headless one, and the screens see it the same way. litellm is imported only when
an engine starts, in a worker thread, never on the way to the first frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from aw_tui.clock import utc_now
from aw_tui.model.formatting import counted
from aw_tui.ui import actions
from aw_tui.ui.messages import RunsChanged
from aw_tui.ui.screens.runs import RunsScreen
from aw_tui.ui.stylesheets import stylesheet

# The first frame is the runs list: everything else (the models, pydantic, the other screens) is imported when
# it is first needed, which keeps start-up close to a bare Textual app's.
if TYPE_CHECKING:
    from aw_tui.model.state import RunState
    from aw_tui.ui.screens.new_run import NewRunRequest

HANDOVER_LOG = "headless.log"  # under artifacts/: what the headless engine that took over a run printed


class AwTuiApp(App[int]):
    TITLE = "aw-tui"
    CSS_PATH = [stylesheet("app.tcss")]  # the runs list; each other screen brings its own stylesheet
    BINDINGS = actions.bindings(actions.APP, target=actions.APP)

    def __init__(
        self,
        roots: list[Path],
        *,
        open_path: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
        watch: bool = True,
        start_engine: Any = None,
    ) -> None:
        super().__init__()
        self.roots = [Path(root) for root in roots]
        self.open_path = open_path
        self._clock = clock
        self.watch_enabled = watch
        self._start_engine = start_engine  # a callable returning a RunWriter to drive here (the demo)
        self._stop_watch = asyncio.Event()
        self._engines: dict[Path, Any] = {}  # run dir -> Orchestrator driven in this process
        self._engine_tasks: dict[Path, asyncio.Task[Any]] = {}
        self._attention: dict[Path, tuple[int, str]] = {}

    def now(self) -> datetime:
        return self._clock()

    def get_default_screen(self) -> Screen:
        # The runs list is the bottom of the stack, drawn as the first frame (no empty screen composed before it).
        return RunsScreen(self.roots)

    def on_mount(self) -> None:
        if self.open_path is not None:
            self.open_run(self.open_path)
        # After the first frame: watching the runs and starting an engine compete with drawing it, and neither
        # is needed to draw it. (Not on Textual's Ready event: the app served by textual-serve never acted on it.)
        self.call_after_refresh(self._start_background_work)

    def _start_background_work(self) -> None:
        if self.watch_enabled:
            self.run_worker(self._watch(), group="watcher", exit_on_error=False)
        if self._start_engine is not None:
            self.run_worker(self._drive_new_run(), group="engines", exit_on_error=False)

    async def _watch(self) -> None:
        from aw_tui.ui.watcher import watch_roots

        await watch_roots(self.roots, self.post_message, self._stop_watch)

    def on_runs_changed(self, message: RunsChanged) -> None:
        # Screens below the top one keep up too: the runs list is current when the user goes back to it. They are
        # told by a call, not a message: a message wakes a hidden screen, and Textual then repaints the whole top
        # screen for it (the screen below the top one counts as visible, and keeps itself marked dirty).
        top = self.screen
        for screen in self.screen_stack:
            if hasattr(screen, "on_runs_changed"):  # the runs list, run, ledger and comparison screens
                if screen is top:
                    screen.post_message(RunsChanged(message.runs))
                else:
                    screen.on_runs_changed(message)

    def open_run(self, path: Path) -> None:
        from aw_tui.ui.screens.run import RunScreen

        self.push_screen(RunScreen(path))

    # --- engines in this process -------------------------------------------------------------------------------

    async def _drive_new_run(self) -> None:
        writer = await asyncio.to_thread(self._start_engine)
        self.open_run(writer.paths.root)
        await self.drive(writer)

    async def drive(self, writer: Any) -> str:
        """Run an engine on `writer` in this process until its run ends (or the app quits)."""

        def prepare() -> None:
            from aw_tui.engine.launch import prepare_engine

            prepare_engine(writer)
            _quiet_litellm()

        # litellm loads here, in a thread: seconds on a busy machine, with the run's screen already up and empty.
        self.notify("Loading the model library; the first agent starts when it is ready.", title="Starting the engine")
        await asyncio.to_thread(prepare)
        from aw_tui.engine.orchestrator import Orchestrator

        orchestrator = Orchestrator(writer)
        root = writer.paths.root
        self._engines[root] = orchestrator
        task = asyncio.current_task()
        if task is not None:
            self._engine_tasks[root] = task
        try:
            return await orchestrator.run()
        finally:
            self._engines.pop(root, None)
            self._engine_tasks.pop(root, None)
            writer.close()

    def action_new_run(self) -> None:
        from aw_tui.store.config import ConfigError, load_config
        from aw_tui.ui.screens.new_run import NewRunDialog

        try:
            loaded = load_config()
        except ConfigError as error:
            self.notify(str(error), title="The config has a problem", severity="error", timeout=10)
            return

        def chosen(request: NewRunRequest | None) -> None:
            if request is not None:
                self.run_worker(self._start_requested(request, loaded), group="engines", exit_on_error=False)

        self.push_screen(NewRunDialog(loaded.settings, Path.cwd()), chosen)

    async def _start_requested(self, request: NewRunRequest, loaded: Any) -> None:
        from aw_tui.engine.launch import LaunchError, start_run

        root = self.roots[0] if self.roots else loaded.runs_roots()[0]
        try:
            writer = await asyncio.to_thread(
                start_run, request.task, request.settings(loaded.settings), workspace=request.workspace,
                runs_root=root,
            )  # fmt: skip
        except LaunchError as error:
            self.notify(str(error), title="The run did not start", severity="error", timeout=10)
            return
        self.notify(f"{writer.paths.root.name} started", timeout=4)
        self.open_run(writer.paths.root)
        await self.drive(writer)

    # --- attention ---------------------------------------------------------------------------------------------

    def update_attention(self, path: Path, state: RunState) -> None:
        """A bell, a notification and a badge in the title when a gate opens or a run fails."""
        previous = self._attention.get(path, (len(state.open_gates), state.state))
        self._attention[path] = (len(state.open_gates), state.state)
        if len(state.open_gates) > previous[0]:
            gate = state.open_gates[-1]
            self.bell()
            self.notify(f"{path.name}: {gate.kind}: {gate.title}", title=f"Gate {gate.id} waits for you",
                        severity="warning", timeout=8)  # fmt: skip
        if state.state in ("FAILED", "ABORTED") and previous[1] != state.state:
            self.bell()
            self.notify(f"{path.name} ended {state.state}: {state.state_reason}", severity="error", timeout=8)
        waiting = sum(count for count, _ in self._attention.values())
        self.title = f"aw-tui [{counted(waiting, 'gate')} waiting]" if waiting else "aw-tui"

    # --- leaving -----------------------------------------------------------------------------------------------

    def action_quit_app(self) -> None:
        if not self._engines:
            self._leave()
            return

        def decided(answer: str | None) -> None:
            if answer == "headless":
                self.run_worker(self._hand_over_and_leave(), group="leaving", exit_on_error=False)
            elif answer == "abort":
                from aw_tui.model.commands import new_command
                from aw_tui.store.control import send_command

                for orchestrator in self._engines.values():
                    send_command(orchestrator.paths, new_command("abort", source="operator (tui quit)"))
                self._leave()

        names = ", ".join(path.name for path in self._engines)
        from aw_tui.ui.screens.dialogs import ChoiceDialog

        self.push_screen(ChoiceDialog(
            f"{names} runs in this process. Leave it running headless (a background `aw-tui resume --headless`; "
            "reopen it with `aw-tui`), or abort it?",
            [("headless", "Leave running headless"), ("abort", "Abort it")]), decided)  # fmt: skip

    async def _hand_over_and_leave(self) -> None:
        """Stop the engines here (their turns in flight are redone) and start a headless engine for each run."""
        roots = list(self._engine_tasks)
        for task in self._engine_tasks.values():
            task.cancel()
        for task in list(self._engine_tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for root in roots:
            await asyncio.to_thread(start_headless_engine, root)
        self.notify("left running headless", timeout=2)
        self._leave()

    def _leave(self) -> None:
        self._stop_watch.set()
        self.exit(0)

    # --- help and the command palette ------------------------------------------------------------------------

    def action_help(self) -> None:
        from aw_tui.ui.screens.help import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        panes = actions.focused_panes(screen.focused) if screen.focused is not None else ()
        self.push_screen(HelpScreen(panes, tuple(getattr(screen, "SCREEN_PANES", ())), screen.title or self.title))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own commands, but its Quit leaves without asking about runs driven here: ours replaces it.
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command
        for action in actions.actions(*getattr(screen, "SCREEN_PANES", ()), actions.APP):
            if action.bound_by_textual:
                continue
            yield SystemCommand(f"{action.title} ({action.key_label})", action.help,
                                self._action_runner(screen, action))  # fmt: skip

    def _action_runner(self, screen: Screen, action: actions.UiAction) -> Callable[[], Any]:
        async def run() -> None:
            if action.target == actions.APP:
                await self.run_action(action.action)
            elif action.target == actions.SCREEN:
                await screen.run_action(action.action)
            else:
                widgets = screen.query(action.target)
                if widgets:
                    await widgets.first().run_action(action.action)

        return run


def start_headless_engine(run_dir: Path) -> subprocess.Popen[bytes]:
    """`aw-tui resume --headless RUN` in its own session, so it outlives this terminal; its output goes to a log
    in the run's artifacts."""
    log_path = run_dir / "artifacts" / HANDOVER_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "aw_tui", "resume", "--headless", str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _quiet_litellm() -> None:
    """litellm logs to stderr, which lands on top of the screen; its messages reach the events instead."""
    for name in ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "litellm"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
