"""Background tasks an engine runs beside its main work (control watcher, heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def stop_background(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel every task, then wait for each to end; what they raise while stopping no longer matters."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
