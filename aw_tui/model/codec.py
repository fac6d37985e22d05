"""An exact JSON form of RunState, for the checkpoint in run.json.

`state_from_json(state_to_json(s)) == s` for every state the reducer can build (tests/model/test_codec.py).
Opening a large run then costs loading this checkpoint plus the events appended after it, not a full replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aw_tui.model import events as ev
from aw_tui.model.ledger import Ledger, LedgerCompaction, LedgerStep, Usage
from aw_tui.model.state import AgentNode, Gate, Memo, OperatorNote, PhaseNode, RunState, StepRef

CODEC_VERSION = 3  # bump on any change of layout: an old checkpoint is then replayed, never misread


class CodecError(ValueError):
    """A checkpoint that cannot be trusted; the caller replays the events instead."""


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _usage(u: Usage) -> list[Any]:
    return [u.input, u.output, u.cache_read, u.cache_write, u.reasoning, u.cost, u.cost_known]


def _usage_back(data: list[Any]) -> Usage:
    return Usage(*data)


def state_to_json(s: RunState) -> dict[str, Any]:
    return {
        "codec": CODEC_VERSION,
        "run_id": s.run_id, "task": s.task, "title": s.title, "workspace": s.workspace, "kind": s.kind,
        "settings": s.settings, "created_at": _ts(s.created_at), "state": s.state, "state_reason": s.state_reason,
        "paused": s.paused,
        "memo": [s.memo.hypothesis, s.memo.next_action, s.memo.operator_expected, list(s.memo.done),
                 list(s.memo.open_questions), s.memo.instruction_id, s.memo.instruction],
        "phases": [[p.id, p.title, p.parent, p.status, _ts(p.started_at), _ts(p.finished_at), p.agents, p.phases]
                   for p in s.phases.values()],
        "agents": [[a.id, a.role, a.model, a.thinking, a.phase, a.parent, a.label, a.step, _ts(a.started_at), a.status,
                    _ts(a.finished_at), _usage(a.usage), a.context_tokens, a.llm_calls, a.llm_failures, a.tool_count, a.tool_errors,
                    a.tools_running, a.tool_ms, a.tool_ms_by_name, a.tool_counts, a.report, a.error, a.children]
                   for a in s.agents.values()],
        "root_phases": s.root_phases, "root_agents": s.root_agents,
        "gates": [[g.id, g.kind, g.title, g.body, list(g.options), g.requested_by, g.binding, _ts(g.opened_at),
                   g.opened_seq, g.status, g.text, g.resolved_by, g.command_id, _ts(g.resolved_at)]
                  for g in s.gates.values()],
        "ledger": {
            "steps": [[x.step, x.role, x.phase, x.model, x.thinking_level, _usage(x.usage), x.wall_ms, x.tool_ms,
                       x.tool_ms_by_name, x.tool_counts, x.tool_errors, x.state_after, _ts(x.started_at),
                       _ts(x.finished_at), x.artifact, x.context_tokens, x.context_window, x.agent, x.external_ms,
                       x.operator_wait_ms]
                      for x in s.ledger.steps],
            "compactions": [[_ts(c.started_at), _ts(c.finished_at), c.model, c.phase, c.role,
                             c.wall_ms, c.tokens_before, c.status, c.error] for c in s.ledger.compactions],
            "usage": [[role, model, _usage(u)] for (role, model), u in s.ledger.usage.items()],
            "legacy_events": s.ledger.legacy_events,
        },
        "steps": [[x.step, x.role, x.phase, x.path, x.agent, _ts(x.ts)] for x in s.steps],
        "notes": [[_ts(n.ts), n.text] for n in s.notes],
        "commands": [[k, status, reason] for k, (status, reason) in s.commands.items()],
        "logs": [ev.event_to_json(log) for log in s.logs],
        "last_seq": s.last_seq, "last_event_at": _ts(s.last_event_at), "events_applied": s.events_applied,
        "malformed_lines": s.malformed_lines, "unknown_events": s.unknown_events, "problems": s.problems,
        "read_only": s.read_only, "workflow_stats": s.workflow_stats,
    }  # fmt: skip


def state_from_json(d: dict[str, Any]) -> RunState:
    """Raises CodecError on anything that is not a checkpoint this version wrote."""
    try:
        if d.get("codec") != CODEC_VERSION:
            raise CodecError(f"checkpoint codec {d.get('codec')!r}, expected {CODEC_VERSION}")
        memo = d["memo"]
        ledger = d["ledger"]
        logs = []
        for raw in d["logs"]:
            log = ev.parse_event(raw)
            if not isinstance(log, ev.Log):
                raise CodecError("a checkpoint log entry is not a log event")
            logs.append(log)
        return RunState(
            run_id=d["run_id"], task=d["task"], title=d["title"], workspace=d["workspace"], kind=d["kind"],
            settings=d["settings"], created_at=_dt(d["created_at"]), state=d["state"],
            state_reason=d["state_reason"], paused=d["paused"],
            memo=Memo(memo[0], memo[1], memo[2], tuple(memo[3]), tuple(memo[4]), memo[5], memo[6]),
            phases={p[0]: PhaseNode(p[0], p[1], p[2], p[3], _dt(p[4]), _dt(p[5]), p[6], p[7]) for p in d["phases"]},
            agents={a[0]: AgentNode(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], _dt(a[8]), a[9], _dt(a[10]),
                                    _usage_back(a[11]), a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19],
                                    a[20], a[21], a[22], a[23]) for a in d["agents"]},
            root_phases=d["root_phases"], root_agents=d["root_agents"],
            gates={g[0]: Gate(g[0], g[1], g[2], g[3], tuple(g[4]), g[5], g[6], _dt(g[7]), g[8], g[9], g[10], g[11],
                              g[12], _dt(g[13])) for g in d["gates"]},
            ledger=Ledger(
                steps=[LedgerStep(x[0], x[1], x[2], x[3], x[4], _usage_back(x[5]), x[6], x[7], x[8], x[9], x[10],
                                  x[11], _dt(x[12]), _dt(x[13]), x[14], x[15], x[16], x[17], x[18],
                                  x[19] if len(x) > 19 else 0.0)  # checkpoints from before the field
                       for x in ledger["steps"]],
                compactions=[LedgerCompaction(_dt(c[0]), _dt(c[1]), c[2], c[3], c[4], c[5], c[6], c[7], c[8])
                             for c in ledger["compactions"]],
                usage={(r, m): _usage_back(u) for r, m, u in ledger["usage"]},
                legacy_events=ledger["legacy_events"],
            ),
            steps=[StepRef(x[0], x[1], x[2], x[3], x[4], _dt(x[5])) for x in d["steps"]],
            notes=[OperatorNote(_dt(n[0]), n[1]) for n in d["notes"]],
            commands={k: (status, reason) for k, status, reason in d["commands"]},
            logs=logs, last_seq=d["last_seq"], last_event_at=_dt(d["last_event_at"]),
            events_applied=d["events_applied"], malformed_lines=d["malformed_lines"],
            unknown_events=d["unknown_events"], problems=d["problems"], read_only=d["read_only"],
            workflow_stats=dict(d["workflow_stats"]),
        )  # fmt: skip
    except CodecError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise CodecError(f"damaged checkpoint: {type(error).__name__}: {error}") from None
