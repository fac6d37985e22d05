"""The garbage collector and big runs.

A run of 10,000 agents keeps about a quarter of a million objects alive: its state, the tree's nodes and their
labels. Each of CPython's full collections walks every one of them, and one that lands in a keypress or an event
costs that frame 100 ms to a second. Once a run is loaded its objects are long-lived by design, so the run screen
freezes them (`gc.freeze`: later collections skip them) and unfreezes them when it closes, so that what it leaves
behind (widgets and their parents form cycles) is collected rather than kept for the life of the process.
"""

from __future__ import annotations

import gc


def freeze_loaded() -> None:
    """Take everything alive now out of later collections (no collection first: that would be the pause)."""
    gc.freeze()


def thaw_loaded() -> None:
    """Hand what freeze_loaded set aside back to the collector, for a screen's objects to be collected."""
    gc.unfreeze()
