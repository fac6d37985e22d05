"""The workflow journal: the results of completed agent() calls, so a resumed workflow does not pay for them again.

A call's key (`journal_key`) is a SHA-256 over its structural position in the workflow (phase, label, the path of
parallel indexes, pipeline items and stages that led to it, and an occurrence number among identical calls at that
position) together with its prompt, options and schema. It never depends on a run-wide counter, so a resume finds
every completed call whatever order the calls finished in the first time.

On disk it is JSON lines (`artifacts/journal.jsonl` of the run): one object per completed call,
`{"key", "label", "phase", "kind": "text"|"json", "result", "output_tokens", "total_tokens", "cost"}`. Lines are
appended and fsynced; a line torn by a crash is cut off (and kept under artifacts/recovered/) when the file is
opened for appending, and a line that is not a valid entry is skipped when loading. A missing or unreadable file
is an empty journal, never an error. Without a path the journal lives in memory only.

Only successful calls are recorded: a call that gave None after its retries, or was refused, runs again on resume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aw_tui.store.jsonl import JsonlAppender, JsonlRecord, read_all


def stable_json(value: Any) -> str:
    """JSON with object keys sorted at every depth: equal values give equal text whatever their key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    return repr(value)


def journal_key(
    position: Mapping[str, Any], prompt: str, options: Mapping[str, Any], schema: Any, occurrence: int = 0
) -> str:
    """The key of one agent() call. `position` is where the call stands (phase, label, path); `options` are the
    call's options that change its answer (model, thinking, tools); `schema` its JSON schema or None."""
    body = stable_json({"at": position, "prompt": prompt, "options": options, "schema": schema})
    return hashlib.sha256(f"{body}#{occurrence}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class JournalEntry:
    key: str
    kind: str  # "text" or "json"
    result: Any
    label: str = ""
    phase: str | None = None
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "phase": self.phase, "kind": self.kind, "result": self.result,
            "output_tokens": self.output_tokens, "total_tokens": self.total_tokens, "cost": self.cost,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> JournalEntry | None:
        if not isinstance(data, dict):
            return None
        key, kind = data.get("key"), data.get("kind")
        if not isinstance(key, str) or kind not in ("text", "json"):
            return None
        if kind == "text" and not isinstance(data.get("result"), str):
            return None
        try:
            return cls(
                key=key, kind=kind, result=data.get("result"), label=str(data.get("label") or ""),
                phase=data.get("phase") if isinstance(data.get("phase"), str) else None,
                output_tokens=max(0, int(data.get("output_tokens") or 0)),
                total_tokens=max(0, int(data.get("total_tokens") or 0)), cost=max(0.0, float(data.get("cost") or 0)),
            )  # fmt: skip
        except (TypeError, ValueError):
            return None


class Journal:
    """Completed calls by key. `record()` buffers an entry; `flush()` appends the buffer with one fsync."""

    def __init__(self, path: Path | None = None, *, recovered_dir: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, JournalEntry] = {}
        self._pending: list[JournalEntry] = []
        self._appender: JsonlAppender | None = None
        self.skipped_lines = 0  # lines that were not entries (damaged, or written by something else)
        self._recovered_dir = recovered_dir
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            items = read_all(path)
        except OSError:
            return  # missing or unreadable: start empty
        for item in items:
            entry = JournalEntry.from_json(item.value) if isinstance(item, JsonlRecord) else None
            if entry is None:
                self.skipped_lines += 1
                continue
            self._entries[entry.key] = entry  # the last entry of a key wins

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> JournalEntry | None:
        return self._entries.get(key)

    def entries(self) -> Sequence[JournalEntry]:
        return list(self._entries.values())

    def record(self, entry: JournalEntry) -> None:
        self._entries[entry.key] = entry
        if self.path is not None:
            self._pending.append(entry)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Append the buffered entries (one write, one fsync). On failure they stay buffered and it raises."""
        if not self._pending or self.path is None:
            return
        if self._appender is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._appender = JsonlAppender(self.path, recovered_dir=self._recovered_dir)
            self._appender.open()
        batch = self._pending
        self._appender.append([entry.to_json() for entry in batch])
        del self._pending[: len(batch)]

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._appender is not None:
                self._appender.close()
                self._appender = None
