"""Messages the app's background work posts to its screens (workers never touch widgets)."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class RunsChanged(Message, bubble=False):
    """Files changed under the watched roots; `runs` are the run directories touched (a burst merged into one)."""

    def __init__(self, runs: frozenset[Path]) -> None:
        super().__init__()
        self.runs = runs
