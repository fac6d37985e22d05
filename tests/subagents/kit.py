"""Building blocks for subagent tests: a runtime on a temporary workspace whose events are recorded (and folded
into a RunState, as the tree and the ledger see them), and scripted-provider shorthands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aw_tui.engine.agent import AgentHooks
from aw_tui.engine.agentdefs import AgentCatalog
from aw_tui.engine.delegate import SubagentRuntime
from aw_tui.engine.tools import ToolContext
from aw_tui.model import events as ev
from aw_tui.model.settings import Settings
from aw_tui.model.state import RunState, fold

SCRIPTED_ROLES = {"analyst": {"model": "scripted/analyst"}, "worker": {"model": "scripted/worker"}}


@dataclass
class Recorder:
    """An emit hook that numbers events like the event log does, so they fold into a RunState."""

    events: list[ev.Event] = field(default_factory=list)

    def emit(self, *events: ev.Event) -> list[ev.Event]:
        stamped = [e.model_copy(update={"seq": len(self.events) + n}) for n, e in enumerate(events, start=1)]
        self.events.extend(stamped)
        return stamped

    @property
    def state(self) -> RunState:
        return fold(self.events)

    def of_type(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def make_settings(**layers: dict[str, Any]) -> Settings:
    base: dict[str, Any] = {key: dict(value) for key, value in SCRIPTED_ROLES.items()}
    for key, value in layers.items():
        base[key] = {**base.get(key, {}), **value}
    return Settings.model_validate(base)


def make_runtime(
    tmp_path: Path, *, settings: Settings | None = None, catalog: AgentCatalog | None = None,
    parent: str | None = None, depth: int = 0, policy: str = "all-tools", **kwargs: Any,
) -> tuple[SubagentRuntime, Recorder]:  # fmt: skip
    recorder = Recorder()
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    tools = ToolContext(workspace=workspace, artifacts_dir=tmp_path / "run" / "artifacts", policy=policy)
    runtime = SubagentRuntime(
        settings=settings or make_settings(delegate={"fast_model": "scripted/fast",
                                                     "balanced_model": "scripted/balanced",
                                                     "smart_model": "scripted/smart"}),
        hooks=AgentHooks(emit=recorder.emit), tools=tools, catalog=catalog, parent=parent, depth=depth, **kwargs,
    )  # fmt: skip
    return runtime, recorder


def text(reply: str, **usage: int) -> dict[str, Any]:
    return {"text": reply, "usage": usage or {"input": 100, "output": 10}}


def call(name: str, arguments: dict[str, Any], call_id: str | None = None, **usage: int) -> dict[str, Any]:
    tool_call: dict[str, Any] = {"name": name, "arguments": arguments}
    if call_id:
        tool_call["id"] = call_id
    return {"tool_calls": [tool_call], "usage": usage or {"input": 100, "output": 10}}


def priced(roles: dict[str, list[dict[str, Any]]], **prices: dict[str, Any]) -> dict[str, Any]:
    """A script whose roles all have a price (so thinking levels reach them and costs are known)."""
    table = {role: {"input": 1.0, "output": 2.0} for role in roles}
    table.update(prices)
    return {"roles": roles, "prices": table}
