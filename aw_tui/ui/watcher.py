"""Watches the runs roots and posts one RunsChanged per burst of file changes.

watchfiles already groups a burst (debounce); the set of run directories touched is what screens need, so a
hundred appends to one events.jsonl arrive as one message naming one run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from aw_tui.ui.messages import RunsChanged

DEBOUNCE_MS = 40
STEP_MS = 10


# The files whose changes a screen shows. Everything else is noise, and some of it is made by looking: checking a
# lease opens .lease.lock, and a listing that woke itself up that way would never stop.
WATCHED_NAMES = frozenset({"events.jsonl", "run.json", "lease.json", "state.md", "ledger.json", "control.jsonl"})


def run_dir_of(changed: Path, roots: Sequence[Path]) -> Path | None:
    """The run directory a change matters to (the first level below its root), or None for noise."""
    for root in roots:
        try:
            relative = changed.relative_to(root)
        except ValueError:
            continue
        parts = relative.parts
        if len(parts) == 1 or (len(parts) == 2 and parts[1] in WATCHED_NAMES) or (len(parts) > 2 and parts[1] == "steps"):
            return root / parts[0]
        return None
    return None


async def watch_roots(roots: Sequence[Path], post: Callable[[RunsChanged], object], stop: asyncio.Event) -> None:
    from watchfiles import awatch

    # A root that does not exist yet is not created just because someone looked: it is skipped.
    resolved = [Path(root).resolve() for root in roots if Path(root).is_dir()]
    if not resolved:
        return
    async for changes in awatch(*resolved, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop, watch_filter=None):
        touched = {run_dir_of(Path(path), resolved) for _, path in changes}
        touched.discard(None)
        if touched:
            post(RunsChanged(frozenset(touched)))  # type: ignore[arg-type]
