"""The phase/agent tree: phases and agents as the run's events built them, updated in place as they change.

Nodes are kept by id and relabelled only when their text changes, so an update costs O(changed agents), not
O(tree). The tree follows the live run (the cursor on the newest running agent) until the user moves the cursor;
`f` follows again.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from aw_tui.model.formatting import format_duration, format_tokens
from aw_tui.model.state import AgentNode, PhaseNode, RunState

STATUS_MARK = {
    "running": ("▶", "bold green"), "done": ("✓", "green"), "failed": ("✗", "bold red"), "aborted": ("■", "red"),
    "interrupted": ("↯", "yellow"), "refused": ("⊘", "yellow"), "pending": ("·", "dim"), "active": ("▶", "green"),
    "skipped": ("–", "dim"),
}  # fmt: skip


def agent_label(agent: AgentNode, now: datetime) -> Text:
    mark, style = STATUS_MARK.get(agent.status, ("?", ""))
    text = Text.assemble((f"{mark} ", style), (agent.label or agent.id, "bold" if agent.status == "running" else ""))
    model = agent.model.split("/", 1)[-1]
    text.append(f"  [{model}]", style="cyan")
    tokens = agent.usage.input + agent.usage.cache_read + agent.usage.output
    text.append(f"  {format_tokens(tokens)} tok", style="dim")
    if agent.tool_count or agent.tools_running:
        text.append(f"  {agent.tool_count} tool{'s' if agent.tool_count != 1 else ''}", style="dim")
    if agent.tools_running:
        text.append(" (1 running)" if agent.tools_running == 1 else f" ({agent.tools_running} running)", style="green")
    text.append(f"  {format_duration(agent.elapsed_ms(now))}", style="dim")
    return text


def phase_label(phase: PhaseNode) -> Text:
    mark, style = STATUS_MARK.get(phase.status, ("?", ""))
    return Text.assemble((f"{mark} ", style), (phase.title, "bold"))


class AgentTree(Tree[str]):
    def __init__(self, **kwargs) -> None:
        super().__init__("run", **kwargs)
        self.show_root = False
        self.guide_depth = 3
        self._node_by_key: dict[str, TreeNode[str]] = {}
        self._labels: dict[str, str] = {}
        self.follow = True
        self._moving = False

    def update_state(self, state: RunState, now: datetime) -> None:
        for phase_id in state.root_phases:
            self._add_phase(state, phase_id, self.root, now)
        for agent_id in state.root_agents:
            self._add_agent(state, agent_id, self.root, now)
        for phase_id, phase in state.phases.items():
            self._relabel(f"phase:{phase_id}", phase_label(phase))
        for agent_id, agent in state.agents.items():
            if agent_id in self._node_by_key:
                self._relabel(agent_id, agent_label(agent, now))
        if self.follow:
            running = [a for a in state.agents.values() if a.status == "running"]
            target = (running or list(state.agents.values()) or [None])[-1]
            if target is not None and target.id in self._node_by_key:
                self._moving = True
                self.move_cursor(self._node_by_key[target.id], animate=False)
                self._moving = False

    def _add_phase(self, state: RunState, phase_id: str, parent: TreeNode[str], now: datetime) -> None:
        key = f"phase:{phase_id}"
        phase = state.phases[phase_id]
        node = self._node_by_key.get(key)
        if node is None:
            node = parent.add(phase_label(phase), data=key, expand=True)
            self._node_by_key[key] = node
        for child in phase.phases:
            self._add_phase(state, child, node, now)
        for agent_id in phase.agents:
            self._add_agent(state, agent_id, node, now)

    def _add_agent(self, state: RunState, agent_id: str, parent: TreeNode[str], now: datetime) -> None:
        agent = state.agents.get(agent_id)
        if agent is None:
            return
        node = self._node_by_key.get(agent_id)
        if node is None:
            node = parent.add(agent_label(agent, now), data=agent_id, expand=True,
                              allow_expand=bool(agent.children))  # fmt: skip
            self._node_by_key[agent_id] = node
        for child in agent.children:
            node.allow_expand = True
            self._add_agent(state, child, node, now)

    def _relabel(self, key: str, label: Text) -> None:
        node = self._node_by_key.get(key)
        if node is None:
            return
        plain = label.markup
        if self._labels.get(key) != plain:
            self._labels[key] = plain
            node.set_label(label)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if not self._moving:
            self.follow = False

    @property
    def selected_agent(self) -> str | None:
        node = self.cursor_node
        if node is None or node.data is None or node.data.startswith("phase:"):
            return None
        return node.data
