"""The new-run dialog (`n`): the task, each role's model and thinking (defaults from the config), the workspace.

It only checks what it can check cheaply (a task, models, an existing workspace); the app starts the run with
the same `start_run` the CLI uses, off the event loop, and reports anything that refuses there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea

from aw_tui.model.settings import THINKING_LEVELS, Settings
from aw_tui.ui.screens.dialogs import DIALOG_CSS


@dataclass(frozen=True)
class NewRunRequest:
    task: str
    analyst_model: str
    analyst_thinking: str
    worker_model: str
    worker_thinking: str
    workspace: Path

    def settings(self, base: Settings) -> Settings:
        """`base` (the loaded config) with this dialog's choices for the two roles."""
        return base.model_copy(update={
            "analyst": base.analyst.model_copy(update={"model": self.analyst_model, "thinking": self.analyst_thinking}),
            "worker": base.worker.model_copy(update={"model": self.worker_model, "thinking": self.worker_thinking}),
        })  # fmt: skip


class NewRunDialog(ModalScreen[NewRunRequest | None]):
    CSS_PATH = DIALOG_CSS
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="new_run.cancel"),
        Binding("ctrl+s", "start", "Start", id="new_run.start"),
    ]

    def __init__(self, defaults: Settings, workspace: Path) -> None:
        super().__init__(classes="dialog")
        self.defaults = defaults
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        thinking = [(level, level) for level in THINKING_LEVELS]
        with Vertical(id="new-run-box"):
            yield Label("New run", id="new-run-title")
            yield Label("Task: what the run should achieve")
            yield TextArea(id="new-run-task", soft_wrap=True, show_line_numbers=False)
            with Grid(id="new-run-grid"):
                yield Label("Analyst model")
                yield Input(self.defaults.analyst.model, id="new-run-analyst-model")
                yield Select(thinking, value=self.defaults.analyst.thinking, allow_blank=False,
                             id="new-run-analyst-thinking")  # fmt: skip
                yield Label("Worker model")
                yield Input(self.defaults.worker.model, id="new-run-worker-model")
                yield Select(thinking, value=self.defaults.worker.thinking, allow_blank=False,
                             id="new-run-worker-thinking")  # fmt: skip
                yield Label("Workspace")
                yield Input(str(self.workspace), id="new-run-workspace")
            yield Label("", id="new-run-problem")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Start (ctrl+s)", id="start", variant="success")

    def on_mount(self) -> None:
        self.query_one("#new-run-task", TextArea).focus()

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _request(self) -> NewRunRequest | str:
        """The request, or what is wrong with the form."""
        task = self.query_one("#new-run-task", TextArea).text.strip()
        if not task:
            return "the task is empty: say what the run should achieve"
        analyst, worker = self._value("new-run-analyst-model"), self._value("new-run-worker-model")
        if not analyst or not worker:
            return "both roles need a model (a litellm name such as openai/gpt-5-mini)"
        if any(model.startswith("scripted/") for model in (analyst, worker)):
            return "scripted/ models play a script: start those with `aw-tui demo` or `aw-tui run --script FILE`"
        workspace = Path(self._value("new-run-workspace") or ".").expanduser()
        if not workspace.is_dir():
            return f"the workspace {workspace} does not exist or is not a directory"
        return NewRunRequest(
            task=task, analyst_model=analyst, worker_model=worker, workspace=workspace.resolve(),
            analyst_thinking=str(self.query_one("#new-run-analyst-thinking", Select).value),
            worker_thinking=str(self.query_one("#new-run-worker-thinking", Select).value),
        )  # fmt: skip

    def action_start(self) -> None:
        request = self._request()
        if isinstance(request, str):
            self.query_one("#new-run-problem", Label).update(request)
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)
