"""The selected step's report, rendered as markdown. Reports are read off the event loop and cached per path;
the transcript part is hidden until asked for (`t`), which keeps large reports quick to show."""

from __future__ import annotations

import asyncio

from rich.markdown import Markdown
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from aw_tui.store.layout import RunPaths
from aw_tui.store.run import RunError, read_step_report

TRANSCRIPT_HEADING = "\n## Transcript\n"


class ReportView(VerticalScroll):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cache: dict[str, str] = {}
        self.path: str | None = None
        self.show_transcript = False

    def compose(self):
        yield Static(id="report-body")

    async def show(self, paths: RunPaths, relative: str | None, title: str) -> None:
        self.border_title = title
        body = self.query_one("#report-body", Static)
        if relative is None:
            self.path = None
            body.update(Text("Select a finished step in the tree to read its report.", style="dim"))
            return
        if relative != self.path:
            self.scroll_home(animate=False)
        self.path = relative
        text = self._cache.get(relative)
        if text is None:
            try:
                text = await asyncio.to_thread(read_step_report, paths, relative)
            except RunError as error:
                body.update(Text(str(error), style="red"))
                return
            self._cache[relative] = text
        if not self.show_transcript and TRANSCRIPT_HEADING in text:
            text = text.split(TRANSCRIPT_HEADING, 1)[0] + "\n\n*(transcript hidden: press t)*\n"
        body.update(Markdown(text))
