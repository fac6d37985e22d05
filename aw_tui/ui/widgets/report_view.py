"""The selected step's report, rendered as markdown, with search and a transcript toggle.

Reports are read off the event loop and cached per path; the transcript part is hidden until asked for (`t`),
which keeps large reports quick to show. Searching (`/`) shows the report's text with every match highlighted
and the current one scrolled into view; `n` / `N` move between matches; escape
leaves the search box, a second escape ends the search.
"""

from __future__ import annotations

import asyncio
import re

from rich.markdown import Markdown
from rich.text import Text
from textual import on
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.widgets import Input, Static

from aw_tui.store.layout import RunPaths
from aw_tui.store.run import RunError, read_step_report
from aw_tui.ui.actions import bindings

TRANSCRIPT_HEADING = "\n## Transcript\n"
MATCH_STYLE = "black on yellow"
CURRENT_MATCH_STYLE = "bold black on dark_orange"


def find_matches(text: str, query: str) -> list[int]:
    """Start offsets of `query` in `text`, case-insensitively (an empty query finds nothing)."""
    if not query:
        return []
    return [match.start() for match in re.finditer(re.escape(query), text, flags=re.IGNORECASE)]


class ReportView(Vertical):
    ACTION_PANES = ("report", "find")
    BINDINGS = bindings("find", target="#report")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cache: dict[str, str] = {}
        self.path: str | None = None
        self.show_transcript = False
        self.placeholder = "Select a finished step in the tree to read its report."
        self._text = ""  # the report shown, transcript included
        self.query_text = ""
        self.matches: list[int] = []
        self.current = 0
        self._shown_key: tuple[object, ...] | None = None  # what the body shows now, to skip redrawing it

    def compose(self):
        yield Input(placeholder="search the report (enter: next match, escape: done)", id="report-search",
                    classes="hidden")  # fmt: skip
        with VerticalScroll(id="report-scroll"):
            yield Static(id="report-body")

    async def show(self, paths: RunPaths, relative: str | None, title: str, placeholder: str | None = None) -> None:
        self.border_title = escape(title)  # agent labels and step roles come from the run's events: not markup
        scroll = self.query_one("#report-scroll", VerticalScroll)
        if relative is None:
            self.path, self._text = None, ""
            message = placeholder or self.placeholder
            self._update_body(("placeholder", message), lambda: Text(message, style="dim"))
            self._update_matches()
            return
        if relative != self.path:
            scroll.scroll_home(animate=False)
        text = self._cache.get(relative)
        if text is None:
            try:
                text = await asyncio.to_thread(read_step_report, paths, relative)
            except RunError as error:
                self.path, self._text = None, ""
                problem = str(error)
                self._update_body(("error", problem), lambda: Text(problem, style="red"))
                return
            self._cache[relative] = text
        self.path, self._text = relative, text
        self._render_body()

    def show_text(self, key: str, text: str, title: str) -> None:
        """A report that is not a step file (an agent's final answer), shown like one."""
        self.border_title = escape(title)
        if key != self.path:
            self.query_one("#report-scroll", VerticalScroll).scroll_home(animate=False)
        self.path, self._text = key, text
        self._render_body()

    def _update_body(self, key: tuple[object, ...], render) -> bool:
        """Redraw the body only when what it shows changed: a live run refreshes this pane on every event, and
        each redraw costs a layout pass."""
        if key == self._shown_key:
            return False
        self._shown_key = key
        self.query_one("#report-body", Static).update(render())
        return True

    def _render_body(self) -> None:
        if self.path is None:
            return
        shown = (self.path, len(self._text))
        if self.query_text:
            self._update_matches()
            if self._update_body(("search", *shown, self.query_text, self.current), self._highlighted):
                self.call_after_refresh(self._scroll_to_current)
            return
        self.border_subtitle = ""
        text = self._text
        if not self.show_transcript and TRANSCRIPT_HEADING in text:
            text = text.split(TRANSCRIPT_HEADING, 1)[0] + "\n\n*(transcript hidden: press t)*\n"
        self._update_body(("report", *shown, self.show_transcript), lambda: Markdown(text))

    # --- search --------------------------------------------------------------------------------------------

    def open_search(self) -> None:
        box = self.query_one("#report-search", Input)
        box.remove_class("hidden")
        box.focus()

    def _update_matches(self) -> None:
        self.matches = find_matches(self._text, self.query_text)
        self.current = min(self.current, max(len(self.matches) - 1, 0))
        if not self.query_text:
            self.border_subtitle = ""
        elif self.matches:
            self.border_subtitle = f"match {self.current + 1} of {len(self.matches)}"
        else:
            self.border_subtitle = escape(f"no match for {self.query_text!r}")  # the typed query is not markup

    def _highlighted(self) -> Text:
        # The source, not the rendered markdown: a match's position in it is exact, so it can be scrolled to.
        text = Text(self._text)
        size = len(self.query_text)
        for index, start in enumerate(self.matches):
            text.stylize(CURRENT_MATCH_STYLE if index == self.current else MATCH_STYLE, start, start + size)
        return text

    def _scroll_to_current(self) -> None:
        if not self.matches:
            return
        scroll = self.query_one("#report-scroll", VerticalScroll)
        width = max(scroll.scrollable_content_region.width, 1)
        before = self._text[: self.matches[self.current]]
        lines_before = before.split("\n")
        # Lines wrap in the pane: count the rows the text before the match takes at this width.
        row = sum(len(Text(line).wrap(self.app.console, width)) or 1 for line in lines_before[:-1])
        row += len(lines_before[-1]) // width
        scroll.scroll_to(y=max(row - 2, 0), animate=False)

    @on(Input.Changed, "#report-search")
    def _query_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.current = 0
        if self.query_text:
            self._render_body()
        else:
            self._update_matches()
            self._render_body()

    @on(Input.Submitted, "#report-search")
    def _query_submitted(self) -> None:
        self.action_next_match()

    def action_next_match(self) -> None:
        self._move(1)

    def action_previous_match(self) -> None:
        self._move(-1)

    def _move(self, step: int) -> None:
        if not self.matches:
            return
        self.current = (self.current + step) % len(self.matches)
        self._render_body()

    def action_end_search(self) -> None:
        box = self.query_one("#report-search", Input)
        if box.has_focus and self.query_text:
            # First escape: back to reading, the matches stay for n / N; the next escape ends the search.
            box.add_class("hidden")
            self.query_one("#report-scroll", VerticalScroll).focus()
            return
        box.value = ""
        box.add_class("hidden")
        self.query_text = ""
        self._update_matches()
        self._render_body()
        self.query_one("#report-scroll", VerticalScroll).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Outside a search these keys belong to the screen (escape goes back to the runs list).
        if action in ("next_match", "previous_match", "end_search"):
            return bool(self.query_text) or not self.query_one("#report-search", Input).has_class("hidden")
        return True
