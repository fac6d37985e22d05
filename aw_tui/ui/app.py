"""The aw-tui Textual app: the runs list, one screen per open run, and runs driven in this process.

State flows one way: the run directory's events -> the reducer -> RunState -> widgets. The watcher (an async
worker) only posts RunsChanged; screens read their runs off the event loop. An engine started here (`aw-tui demo`)
writes its run directory like a headless one, and the screens see it the same way. litellm is imported only when
an engine starts, in a worker thread, never on the way to the first frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding

from aw_tui.model.state import RunState
from aw_tui.store.eventlog import utc_now
from aw_tui.ui.messages import RunsChanged
from aw_tui.ui.screens.dialogs import ConfirmDialog
from aw_tui.ui.screens.run import RunScreen
from aw_tui.ui.screens.runs import RunsScreen


def _styles() -> list[Path]:
    folder = Path(str(resources.files("aw_tui.styles")))
    return sorted(folder.glob("*.tcss"))


class AwTuiApp(App[int]):
    TITLE = "aw-tui"
    CSS_PATH = _styles()
    BINDINGS = [
        Binding("q", "quit_app", "Quit", id="app.quit"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
    ]

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
        self._attention: dict[Path, tuple[int, str]] = {}

    def now(self) -> datetime:
        return self._clock()

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.roots))
        if self.open_path is not None:
            self.open_run(self.open_path)
        if self.watch_enabled:
            self.run_worker(self._watch(), group="watcher", exit_on_error=False)
        if self._start_engine is not None:
            self.run_worker(self._drive_new_run(), group="engines", exit_on_error=False)

    async def _watch(self) -> None:
        from aw_tui.ui.watcher import watch_roots

        await watch_roots(self.roots, self.post_message, self._stop_watch)

    def on_runs_changed(self, message: RunsChanged) -> None:
        # Screens below the top one keep up too: the runs list is current when the user goes back to it.
        for screen in self.screen_stack:
            if isinstance(screen, (RunsScreen, RunScreen)):
                screen.post_message(RunsChanged(message.runs))

    def open_run(self, path: Path) -> None:
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

        await asyncio.to_thread(prepare)
        from aw_tui.engine.orchestrator import Orchestrator

        orchestrator = Orchestrator(writer)
        self._engines[writer.paths.root] = orchestrator
        try:
            return await orchestrator.run()
        finally:
            self._engines.pop(writer.paths.root, None)
            writer.close()

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
        self.title = f"aw-tui [{waiting} gate{'s' if waiting != 1 else ''} waiting]" if waiting else "aw-tui"

    # --- leaving -----------------------------------------------------------------------------------------------

    def action_quit_app(self) -> None:
        if not self._engines:
            self._leave()
            return

        def decided(abort: bool | None) -> None:
            if abort is None:
                return
            if abort:
                from aw_tui.model.commands import new_command
                from aw_tui.store.control import send_command

                for orchestrator in self._engines.values():
                    send_command(orchestrator.paths, new_command("abort", source="operator (tui quit)"))
            self._leave()

        names = ", ".join(path.name for path in self._engines)
        self.push_screen(ConfirmDialog(
            f"{names} runs in this process. Quitting stops it where it is (`aw-tui resume` continues it). "
            "Abort it instead?", yes="Abort it"), decided)  # fmt: skip

    def _leave(self) -> None:
        self._stop_watch.set()
        self.exit(0)

    def action_help(self) -> None:
        lines = []
        for binding in [*self.screen.BINDINGS, *self.BINDINGS]:
            if isinstance(binding, Binding):
                lines.append(f"{binding.key:>14}  {binding.description}")
        self.notify("\n".join(lines), title="Keys", timeout=10)


def _quiet_litellm() -> None:
    """litellm logs to stderr, which lands on top of the screen; its messages reach the events instead."""
    for name in ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "litellm"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
