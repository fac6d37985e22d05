"""The help screen: the keys of the focused pane first, then the screen's, then the ones that work everywhere,
all read from the action registry (aw_tui/ui/actions.py)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from aw_tui.ui.actions import help_sections
from aw_tui.ui.screens.dialogs import DIALOG_CSS


class HelpScreen(ModalScreen[None]):
    CSS_PATH = DIALOG_CSS
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help.close")]

    def __init__(self, focused_panes: tuple[str, ...], screen_panes: tuple[str, ...], screen_title: str) -> None:
        super().__init__(classes="dialog")
        self.focused_pane_names = focused_panes
        self.screen_pane_names = screen_panes
        self.screen_title = screen_title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label(f"Keys: {self.screen_title}", id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(self._render_sections(), id="help-body")
            yield Label("esc closes · ctrl+p finds any action by name", id="dialog-hint")

    def _render_sections(self) -> Group:
        parts: list[Text | Table] = []
        for title, listed in help_sections(self.focused_pane_names, self.screen_pane_names):
            parts.append(Text(title, style="bold underline"))
            table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 1))
            table.add_column(justify="right", style="bold cyan", no_wrap=True, min_width=10)
            table.add_column(no_wrap=True, min_width=14)
            table.add_column(style="dim")
            for action in listed:
                table.add_row(action.key_label, action.title, action.help)
            parts.extend([table, Text("")])
        return Group(*parts)

    def action_close(self) -> None:
        self.dismiss(None)
