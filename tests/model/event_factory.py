"""Random but plausible event streams for property tests (shared by model, store and fuzz tests)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from aw_tui.model import events as ev

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
ROLES = ("analyst", "worker", "delegate")
STATES = ("ANALYST_PLANNING", "WORKER_RUNNING", "ANALYST_REVIEWING", "BLOCKED_NEEDS_OPERATOR", "FINISHED")


def stamp(events: list, start_seq: int = 1) -> list:
    return [e.model_copy(update={"seq": start_seq + i, "ts": T0 + timedelta(seconds=start_seq + i)}) for i, e in enumerate(events)]


@st.composite
def event_streams(draw, max_size: int = 60) -> list:
    """A run: created first, then a random mix that refers to ids seen so far (and sometimes to unknown ids)."""
    out: list = [ev.RunCreated(run_id="aw_x", task="do the thing", workspace="/w")]
    phases: list[str] = []
    agents: list[str] = []
    gates: list[str] = []
    for i in range(draw(st.integers(0, max_size))):
        kind = draw(st.sampled_from(
            ["phase", "phase_end", "agent", "agent_end", "usage", "tool", "step", "gate", "resolve", "state",
             "pause", "log", "compaction", "ack", "memo", "attempt", "unknown"]
        ))
        pick = lambda pool: draw(st.sampled_from(pool + ["ghost"])) if pool else "ghost"  # noqa: E731
        if kind == "phase":
            pid = f"p{i}"
            out.append(ev.PhaseStarted(id=pid, title=f"Phase {i}", parent=draw(st.sampled_from([None] + phases))))
            phases.append(pid)
        elif kind == "phase_end":
            out.append(ev.PhaseFinished(id=pick(phases), status=draw(st.sampled_from(["done", "failed"]))))
        elif kind == "agent":
            aid = f"a{i}"
            out.append(ev.AgentStarted(
                id=aid, role=draw(st.sampled_from(ROLES)), model=draw(st.sampled_from(["m1", "m2"])),
                phase=draw(st.sampled_from([None] + phases)), parent=draw(st.sampled_from([None, None] + agents)),
            ))
            agents.append(aid)
        elif kind == "agent_end":
            out.append(ev.AgentFinished(id=pick(agents), status=draw(st.sampled_from(["done", "failed"]))))
        elif kind == "usage":
            out.append(ev.AgentUsage(
                agent=pick(agents), input=draw(st.integers(0, 5000)), output=draw(st.integers(0, 500)),
                cache_read=draw(st.integers(0, 100)), cost=draw(st.sampled_from([0.0, 0.001, 0.25])),
                cost_known=draw(st.booleans()),
            ))
        elif kind == "tool":
            agent = pick(agents)
            out.append(ev.ToolStarted(agent=agent, call_id=f"c{i}", tool="bash"))
            out.append(ev.ToolFinished(agent=agent, call_id=f"c{i}", tool=draw(st.sampled_from(["bash", "read"])),
                                       duration_ms=draw(st.floats(0, 1000)), error=draw(st.sampled_from([None, "boom"]))))
        elif kind == "step":
            out.append(ev.StepReport(step=i + 1, role="worker", phase="WORKER_RUN", path=f"steps/{i + 1:04d}.md",
                                     agent=draw(st.sampled_from([None] + agents)), state_after="ANALYST_REVIEWING"))
        elif kind == "gate":
            gid = f"g{i}"
            out.append(ev.GateOpened(id=gid, kind=draw(st.sampled_from(["operator_input", "confirm_done"])), title="?"))
            gates.append(gid)
        elif kind == "resolve":
            out.append(ev.GateResolved(id=pick(gates), decision=draw(st.sampled_from(["approved", "rejected", "answered"])),
                                       text=draw(st.sampled_from([None, "because"]))))
        elif kind == "state":
            out.append(ev.RunStateChanged(state=draw(st.sampled_from(STATES))))
        elif kind == "pause":
            out.append(draw(st.sampled_from([ev.RunPaused(), ev.RunResumed()])))
        elif kind == "log":
            out.append(ev.Log(message=f"log {i}"))
        elif kind == "attempt":
            out.append(ev.LlmAttempt(agent=pick(agents), attempt=1, model="m1",
                                     outcome=draw(st.sampled_from(["ok", "rate_limited", "timeout"])),
                                     retry_in_s=draw(st.sampled_from([None, 1.5]))))
        elif kind == "compaction":
            out.append(ev.Compaction(status=draw(st.sampled_from(["completed", "failed"])), duration_ms=10, tokens_before=115_200))
        elif kind == "ack":
            out.append(ev.CommandAcknowledged(command_id=f"c{i}", cmd="pause"))
        elif kind == "memo":
            out.append(ev.MemoUpdated(hypothesis=f"h{i}", done=[f"d{i}"]))
        else:
            out.append(ev.UnknownEvent(type="future.thing"))
    return stamp(out)
