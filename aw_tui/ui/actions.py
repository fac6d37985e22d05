"""Every key of the app in one registry: the bindings, the help screen and the command palette are built from it.

An action belongs to a pane (the part of the screen it is about, which is how the help screen groups keys) and
runs on a target: the app, the screen, or a widget (keys that only make sense while that widget has focus, such
as the report's next-match). Screens and widgets take their BINDINGS from here, so a key shown in the help is a
key that works, and a key that works is in the help and the palette.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding

APP, SCREEN = "app", "screen"


@dataclass(frozen=True)
class UiAction:
    id: str  # the binding id, stable for keymaps: "<pane>.<name>"
    keys: str  # Textual key names, comma separated
    action: str  # the action method's name without "action_"
    title: str  # short, for the footer and the palette
    help: str  # one sentence, for the help screen and the palette
    target: str = SCREEN  # APP, SCREEN, or "#widget-id" for keys bound on that widget
    show: bool = True  # shown in the footer
    priority: bool = False
    bound_by_textual: bool = False  # listed in help and palette, but Textual itself binds the key

    @property
    def pane(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def key_label(self) -> str:
        return " / ".join(KEY_NAMES.get(key, key) for key in self.keys.split(","))


# How keys read in the help and the palette, where Textual's name is not what is printed on the key.
KEY_NAMES = {"question_mark": "?", "slash": "/", "escape": "esc", "f1": "F1"}

PANE_TITLES = {
    "app": "Everywhere",
    "runs": "Runs list",
    "run": "Run",
    "tree": "Agent tree",
    "gate": "Gate queue",
    "report": "Step report",
    "find": "Search in the report",
    "ledger": "Ledger",
}

ACTIONS: tuple[UiAction, ...] = (
    # Everywhere
    UiAction("app.help", "question_mark,f1", "help", "Help", "Show the keys of the focused pane and screen",
             target=APP),
    UiAction("app.new_run", "n", "new_run", "New run", "Start a run: task, models, thinking and workspace",
             target=APP),
    UiAction("app.palette", "ctrl+p", "command_palette", "Commands", "Search every action by name", target=APP,
             show=False, bound_by_textual=True),
    UiAction("app.quit", "q", "quit_app", "Quit", "Leave aw-tui (asks what to do with runs driven here)",
             target=APP),
    # Runs list
    UiAction("runs.open", "enter", "open_run", "Open", "Open the selected run"),
    UiAction("runs.filter", "slash", "filter", "Filter", "Filter runs by name, title, state or liveness"),
    UiAction("runs.clear_filter", "escape", "clear_filter", "Clear filter", "Clear the filter", show=False),
    UiAction("runs.reload", "r", "reload", "Reload", "Scan the runs roots again"),
    UiAction("runs.mark", "space", "toggle_mark", "Mark", "Mark or unmark the selected run for comparison"),
    UiAction("runs.compare", "c", "compare", "Compare marked", "Compare the marked runs' ledgers side by side"),
    UiAction("runs.ledger", "L", "ledger", "Ledger", "Show the selected run's ledger"),
    # Run screen
    UiAction("run.pause", "p", "pause", "Pause/resume", "Pause the run (the tool call in flight finishes), or resume"),
    UiAction("run.abort", "A", "abort", "Abort", "Stop the model call and tools now; asks first"),
    UiAction("run.finish", "f", "finish", "Finish", "End the run as finished; asks first", show=False),
    UiAction("run.note", "m", "note", "Note", "Leave a note for the analyst's next prompt", show=False),
    UiAction("run.ledger", "L", "ledger", "Ledger", "Show this run's ledger: steps, totals by role and model, timing"),
    UiAction("run.back", "escape", "back", "Runs", "Back to the runs list"),
    UiAction("tree.follow", "F", "follow", "Follow", "Follow the live run again after moving the cursor",
             show=False),
    UiAction("gate.approve", "a", "approve", "Approve", "Approve the selected gate"),
    UiAction("gate.reject", "r", "reject", "Reject", "Reject the selected gate, with a reason"),
    UiAction("gate.answer", "enter", "answer", "Answer", "Answer the selected operator_input gate"),
    UiAction("gate.down", "j", "gate_down", "Next gate", "Select the next gate in the queue", show=False),
    UiAction("gate.up", "k", "gate_up", "Previous gate", "Select the previous gate in the queue", show=False),
    UiAction("gate.jump", "g", "next_gate", "Go to gate", "Jump to the next open gate from anywhere"),
    UiAction("report.transcript", "t", "transcript", "Transcript", "Show or hide the step's transcript", show=False),
    UiAction("report.search", "slash", "search", "Search", "Search the step report"),
    UiAction("find.next", "n", "next_match", "Next match", "Go to the next match of the search",
             target="#report", show=False),
    UiAction("find.previous", "N", "previous_match", "Previous match", "Go to the previous match of the search",
             target="#report", show=False),
    UiAction("find.end", "escape", "end_search", "End search",
             "Leave the search box (n / N still move); again to end the search", target="#report", show=False),
    # Ledger and comparison
    UiAction("ledger.back", "escape", "back", "Back", "Back to the previous screen"),
)

BY_ID = {action.id: action for action in ACTIONS}
assert len(BY_ID) == len(ACTIONS), "action ids must be unique"


def actions(*panes: str, target: str | None = None) -> list[UiAction]:
    """The actions of `panes`, pane by pane in the order given (which is the footer's order)."""
    return [a for pane in panes for a in ACTIONS if a.pane == pane and (target is None or a.target == target)]


def bindings(*panes: str, target: str = SCREEN) -> list[Binding]:
    """The Binding list for a class: the actions of `panes` that run on `target`."""
    return [
        Binding(a.keys, a.action, a.title, show=a.show, priority=a.priority, id=a.id)
        for a in actions(*panes, target=target)
        if not a.bound_by_textual
    ]


def help_sections(focused_panes: Iterable[str], screen_panes: Iterable[str]) -> list[tuple[str, list[UiAction]]]:
    """Help, most specific first: the focused pane's keys, the rest of the screen's, then the app's."""
    focused = list(focused_panes)
    order = focused + [pane for pane in screen_panes if pane not in focused] + [APP]
    sections = []
    for pane in order:
        listed = actions(pane)
        if listed:
            title = PANE_TITLES.get(pane, pane)
            sections.append((f"{title} (focused)" if pane in focused else title, listed))
    return sections


def focused_panes(widget: object) -> tuple[str, ...]:
    """The panes of the focused widget: the ACTION_PANES of it or of its nearest ancestor that declares some.
    (Screens list theirs in SCREEN_PANES, so a focused widget with no pane of its own claims none.)"""
    node = widget
    while node is not None:
        panes = getattr(type(node), "ACTION_PANES", None)
        if panes:
            return tuple(panes)
        node = getattr(node, "parent", None)
    return ()
