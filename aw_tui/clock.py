"""The wall clock in UTC: one function, in a module light enough for the TUI's path to its first frame."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
