"""RunSummary: the few facts a runs list needs, and the JSON snapshot of a RunState written to run.json.

run.json is derived (rebuildable from events.jsonl). Its `summary` block lets a runs list of a thousand runs read
one small object per run instead of replaying every event log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aw_tui.model.codec import state_to_json
from aw_tui.model.state import RunState

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RoleCost:
    cost: float
    cost_known: bool
    tokens: int


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    title: str
    state: str
    paused: bool
    created_at: datetime | None
    last_event_at: datetime | None
    open_gates: int
    costs: dict[str, RoleCost]  # by role
    last_seq: int
    problems: int
    read_only: bool = False

    def cost_of(self, role: str) -> RoleCost:
        return self.costs.get(role, RoleCost(0.0, True, 0))

    @property
    def total_cost(self) -> RoleCost:
        return _summed(self.costs.values())

    def cost_except(self, *roles: str) -> RoleCost | None:
        """Every other role's cost in one, or None when the run has no other role."""
        others = [cost for role, cost in self.costs.items() if role not in roles]
        return _summed(others) if others else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "title": self.title,
            "state": self.state,
            "paused": self.paused,
            "created_at": _iso(self.created_at),
            "last_event_at": _iso(self.last_event_at),
            "open_gates": self.open_gates,
            "costs": {
                role: {"cost": c.cost, "cost_known": c.cost_known, "tokens": c.tokens}
                for role, c in self.costs.items()
            },
            "last_seq": self.last_seq,
            "problems": self.problems,
            "read_only": self.read_only,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """Raises KeyError, TypeError or ValueError on a malformed block; callers fall back to the events."""
        costs = {
            str(role): RoleCost(float(c["cost"]), bool(c["cost_known"]), int(c["tokens"]))
            for role, c in dict(data["costs"]).items()
        }
        return cls(
            run_id=str(data["run_id"]),
            title=str(data["title"]),
            state=str(data["state"]),
            paused=bool(data["paused"]),
            created_at=_parse_ts(data.get("created_at")),
            last_event_at=_parse_ts(data.get("last_event_at")),
            open_gates=int(data["open_gates"]),
            costs=costs,
            last_seq=int(data["last_seq"]),
            problems=int(data.get("problems", 0)),
            read_only=bool(data.get("read_only", False)),
        )


def summarize(state: RunState) -> RunSummary:
    costs = {
        role: RoleCost(usage.cost, usage.cost_known, usage.total_tokens)
        for role, usage in state.ledger.by_role().items()
    }
    return RunSummary(
        run_id=state.run_id,
        title=state.title or state.task,
        state=state.state,
        paused=state.paused,
        created_at=state.created_at,
        last_event_at=state.last_event_at,
        open_gates=len(state.open_gates),
        costs=costs,
        last_seq=state.last_seq,
        problems=state.malformed_lines + len(state.problems),
        read_only=state.read_only,
    )


def snapshot_json(
    state: RunState, *, events_bytes: int, events_lines: int, lease: dict[str, Any] | None
) -> dict[str, Any]:
    """run.json: a summary for listings, the lease, and a checkpoint of the whole state.

    The checkpoint is exact (model/codec.py) and says which prefix of events.jsonl it reflects, so a reader
    can load it and apply only the events after it instead of replaying the whole log.
    """
    return {
        "version": SNAPSHOT_VERSION,
        "summary": summarize(state).to_json(),
        # The size of events.jsonl this snapshot reflects: a reader whose file is longer knows it is stale.
        "events_bytes": events_bytes,
        "lease": lease,
        "task": state.task,
        "workspace": state.workspace,
        "checkpoint": {"events_lines": events_lines, "state": state_to_json(state)},
    }


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _summed(costs: Iterable[RoleCost]) -> RoleCost:
    cost, known, tokens = 0.0, True, 0
    for item in costs:
        cost, known, tokens = cost + item.cost, known and item.cost_known, tokens + item.tokens
    return RoleCost(cost, known, tokens)
