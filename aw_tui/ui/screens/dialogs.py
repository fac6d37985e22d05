"""Small modal dialogs: a yes/no confirmation (No by default) and a one-line text prompt."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from aw_tui.ui.stylesheets import stylesheet

# Every dialog's styles, loaded with the first dialog shown.
DIALOG_CSS = [stylesheet("dialogs.tcss")]


class ConfirmDialog(ModalScreen[bool]):
    CSS_PATH = DIALOG_CSS
    BINDINGS = [Binding("escape", "cancel", "No", id="dialog.cancel"), Binding("y", "yes", "Yes", id="dialog.yes"),
                Binding("n", "cancel", "No", id="dialog.no")]  # fmt: skip

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.yes_label = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(self.question, id="dialog-question")
            with Horizontal(id="dialog-buttons"):
                yield Button("No", id="no", variant="primary")
                yield Button(self.yes_label, id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class TextPrompt(ModalScreen[str | None]):
    CSS_PATH = DIALOG_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, question: str, *, placeholder: str = "", required: bool = True) -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.placeholder = placeholder
        self.required = required

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(self.question, id="dialog-question")
            yield Input(placeholder=self.placeholder, id="dialog-input")
            yield Label("enter to send · escape to cancel", id="dialog-hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if self.required and not value:
            self.query_one("#dialog-hint", Label).update("an answer is needed (escape cancels)")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceDialog(ModalScreen[str | None]):
    """A question with several answers; the first is the default (focused), escape answers None."""

    CSS_PATH = DIALOG_CSS

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.choices = choices  # (answer, button label)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(self.question, id="dialog-question")
            with Horizontal(id="dialog-buttons"):
                for index, (answer, label) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{answer}", variant="primary" if index == 0 else "default")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button_id = event.button.id or ""
        self.dismiss(button_id.removeprefix("choice-") if button_id.startswith("choice-") else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
