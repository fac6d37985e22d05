"""RunSummary: the few facts a runs list needs, and the JSON snapshot of a RunState written to run.json.

run.json is derived (rebuildable from events.jsonl). Its `summary` block lets a runs list of a thousand runs read
one small object per run instead of replaying every event log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aw_tui.model.state import AgentNode, PhaseNode, RunState

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
        cost, known, tokens = 0.0, True, 0
        for item in self.costs.values():
            cost, known, tokens = cost + item.cost, known and item.cost_known, tokens + item.tokens
        return RoleCost(cost, known, tokens)

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


def snapshot_json(state: RunState, *, events_bytes: int, lease: dict[str, Any] | None) -> dict[str, Any]:
    """run.json: a summary for listings, then the whole state (tree, gates, steps, notes) for other readers."""
    return {
        "version": SNAPSHOT_VERSION,
        "summary": summarize(state).to_json(),
        # The size of events.jsonl this snapshot reflects: a reader whose file is longer knows it is stale.
        "events_bytes": events_bytes,
        "lease": lease,
        "task": state.task,
        "workspace": state.workspace,
        "kind": state.kind,
        "settings": state.settings,
        "state_reason": state.state_reason,
        "memo": {
            "hypothesis": state.memo.hypothesis,
            "next_action": state.memo.next_action,
            "operator_expected": state.memo.operator_expected,
            "done": list(state.memo.done),
            "open_questions": list(state.memo.open_questions),
            "instruction_id": state.memo.instruction_id,
        },
        "phases": [_phase_json(p) for p in state.phases.values()],
        "agents": [_agent_json(a) for a in state.agents.values()],
        "gates": [
            {
                "id": g.id,
                "kind": g.kind,
                "title": g.title,
                "status": g.status,
                "requested_by": g.requested_by,
                "binding": g.binding,
                "opened_at": _iso(g.opened_at),
                "resolved_at": _iso(g.resolved_at),
                "resolved_by": g.resolved_by,
                "text": g.text,
            }
            for g in state.gates.values()
        ],
        "steps": [
            {"step": s.step, "role": s.role, "phase": s.phase, "path": s.path, "agent": s.agent} for s in state.steps
        ],
        "notes": [{"ts": _iso(n.ts), "text": n.text} for n in state.notes],
        "malformed_lines": state.malformed_lines,
        "unknown_events": state.unknown_events,
        "problems": list(state.problems),
    }


def _phase_json(node: PhaseNode) -> dict[str, Any]:
    return {
        "id": node.id,
        "title": node.title,
        "parent": node.parent,
        "status": node.status,
        "started_at": _iso(node.started_at),
        "finished_at": _iso(node.finished_at),
        "agents": list(node.agents),
        "phases": list(node.phases),
    }


def _agent_json(node: AgentNode) -> dict[str, Any]:
    return {
        "id": node.id,
        "role": node.role,
        "model": node.model,
        "thinking": node.thinking,
        "phase": node.phase,
        "parent": node.parent,
        "label": node.label,
        "step": node.step,
        "status": node.status,
        "started_at": _iso(node.started_at),
        "finished_at": _iso(node.finished_at),
        "usage": node.usage.to_json(),
        "tool_count": node.tool_count,
        "tool_errors": node.tool_errors,
        "report": node.report,
        "error": node.error,
        "children": list(node.children),
    }



def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
