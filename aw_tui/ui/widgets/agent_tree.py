"""The phase/agent tree: phases and agents as the run's events built them, updated in place as they change.

An update costs O(changed agents + running agents), not O(tree): the reducer is copy-on-write, so a node object
that is the one shown last time has not changed, and only changed or running agents (whose elapsed time moves)
are relabelled. Scanning for changed nodes is one identity check per node. New nodes go where the reducer put
them, in each place the phases first and then the agents, in start order, so piecemeal updates build the same
tree as one update.

The tree follows the live run (the cursor on the newest running agent) until the user moves the cursor (a
cursor key or a click); setting `follow` again (`F` on the run screen) follows again.
"""

from __future__ import annotations

from datetime import datetime

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text, TextType
from textual import events
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import Tree
from textual.widgets.tree import NodeID, TreeNode

from aw_tui.model.formatting import counted, format_duration, format_tokens
from aw_tui.model.state import AgentNode, PhaseNode, RunState
from aw_tui.ui.widgets.scrolling import ReusedScrollRows

STATUS_MARK = {
    "running": ("▶", "bold green"), "done": ("✓", "green"), "failed": ("✗", "bold red"), "aborted": ("■", "red"),
    "interrupted": ("↯", "yellow"), "refused": ("⊘", "yellow"), "pending": ("·", "dim"), "active": ("▶", "green"),
    "skipped": ("–", "dim"),
}  # fmt: skip

ROOT_KEY = ""  # the key of the (hidden) root in `_phase_slots`


def agent_label(agent: AgentNode, now: datetime, elapsed: str | None = None) -> Text:
    mark, style = STATUS_MARK.get(agent.status, ("?", ""))
    text = Text.assemble((f"{mark} ", style), (agent.label or agent.id, "bold" if agent.status == "running" else ""))
    provider, _, model = agent.model.rpartition("/")
    # A scripted model is named after the script role it plays (often the label itself): the badge says "scripted".
    text.append(f"  [{'scripted' if provider.startswith('scripted') else model}]", style="cyan")
    tokens = agent.usage.input + agent.usage.cache_read + agent.usage.output
    text.append(f"  {format_tokens(tokens)} tok", style="dim")
    if agent.tool_count or agent.tools_running:
        text.append(f"  {counted(agent.tool_count, 'tool')}", style="dim")
    if agent.tools_running:
        text.append(" (1 running)" if agent.tools_running == 1 else f" ({agent.tools_running} running)", style="green")
    text.append(f"  {elapsed if elapsed is not None else _elapsed(agent, now)}", style="dim")
    return text


def phase_label(phase: PhaseNode) -> Text:
    mark, style = STATUS_MARK.get(phase.status, ("?", ""))
    return Text.assemble((f"{mark} ", style), (phase.title, "bold"))


def _elapsed(agent: AgentNode, now: datetime) -> str:
    return format_duration(agent.elapsed_ms(now))


def _cell_width(plain: str) -> int:
    """cell_len, word by word: a label's words repeat (marks, models, "tok") and rich caches them, while a whole
    label is new each time and, with its mark, not plain ASCII (the slow path). Widths add up across spaces."""
    words = plain.split(" ")
    return sum(map(cell_len, words)) + len(words) - 1


class AgentTree(ReusedScrollRows, Tree[str]):
    def __init__(self, **kwargs) -> None:
        super().__init__("run", **kwargs)
        self._reset_maps()  # first: setting show_root below lays the (empty) tree out
        self._render_style: Style | None = None
        self._render_size: Size | None = None
        self.show_root = False
        self.guide_depth = 3
        self.follow = True

    def _reset_maps(self) -> None:
        # Names are deliberately unlike Textual's own private attributes (see the project notes).
        self._node_by_key: dict[str, TreeNode[str]] = {}  # "phase:<id>" or an agent id -> its node
        self._shown_phases: dict[str, PhaseNode] = {}  # the PhaseNode each phase's label was made from
        self._shown_agents: dict[str, AgentNode] = {}  # likewise for agents
        self._durations: dict[str, str] = {}  # running agent -> the elapsed time its label shows
        self._start_order: dict[str, int] = {}  # agent -> its place in start order
        self._running_agents: dict[str, None] = {}  # running agents (an ordered set)
        self._phase_slots: dict[str, int] = {ROOT_KEY: 0}  # node key -> how many phase children it has
        self._shown_run = ""
        self._follow_target: TreeNode[str] | None = None  # where following last put the cursor
        self._label_widths: dict[NodeID, tuple[TextType, int]] = {}  # node -> (the label measured, its width)

    # --- updating ----------------------------------------------------------------------------------------------

    def update_state(self, state: RunState, now: datetime) -> None:
        if self._belongs_to_another_run(state):
            self.clear()
            self._reset_maps()
        self._shown_run = state.run_id
        relabelled: list[TreeNode[str]] = []
        shown_phases = self._shown_phases
        for phase_id, phase in state.phases.items():
            shown = shown_phases.get(phase_id)
            if shown is phase:
                continue
            if shown is None:
                self._place_phase(phase)
            else:
                self._relabel(f"phase:{phase_id}", phase_label(phase), relabelled)
            shown_phases[phase_id] = phase
        shown_agents = self._shown_agents
        running = self._running_agents
        changed: list[str] = []
        for agent_id, agent in state.agents.items():
            shown = shown_agents.get(agent_id)
            if shown is agent:
                continue
            shown_agents[agent_id] = agent
            changed.append(agent_id)
            if agent.status == "running":
                running[agent_id] = None
            else:
                running.pop(agent_id, None)
                self._durations.pop(agent_id, None)
            if shown is None:
                self._start_order[agent_id] = len(self._start_order)
                self._place_agent(agent, now)
            else:
                self._relabel(agent_id, self._agent_label(agent, now), relabelled)
        # Running agents age with the clock: relabel those whose shown elapsed time moved.
        durations = self._durations
        fresh = set(changed)
        for agent_id in running:
            if agent_id not in fresh:
                agent = state.agents[agent_id]
                elapsed = _elapsed(agent, now)
                if elapsed != durations.get(agent_id):
                    durations[agent_id] = elapsed
                    self._relabel(agent_id, agent_label(agent, now, elapsed), relabelled)
        self._repaint(relabelled)
        if self.follow:
            self._follow_newest(state)

    def _belongs_to_another_run(self, state: RunState) -> bool:
        # A run replaced under us (its event log cut or rewritten) or another run: start over.
        return bool(self._shown_agents or self._shown_phases) and (
            state.run_id != self._shown_run
            or len(state.agents) < len(self._shown_agents)
            or len(state.phases) < len(self._shown_phases)
        )

    def _agent_label(self, agent: AgentNode, now: datetime) -> Text:
        elapsed = _elapsed(agent, now)
        if agent.status == "running":
            self._durations[agent.id] = elapsed
        return agent_label(agent, now, elapsed)

    def _place_phase(self, phase: PhaseNode) -> None:
        # The reducer sets `parent` only for a parent it knew, which was started (and placed) before this phase.
        parent_key = f"phase:{phase.parent}" if phase.parent is not None else ROOT_KEY
        parent = self._node_by_key.get(parent_key) if parent_key != ROOT_KEY else None
        if parent is None:
            parent, parent_key = self.root, ROOT_KEY
        slot = self._phase_slots.get(parent_key, 0)
        key = f"phase:{phase.id}"
        self._node_by_key[key] = parent.add(phase_label(phase), data=key, before=slot, expand=True)
        self._phase_slots[parent_key] = slot + 1
        self._phase_slots[key] = 0

    def _place_agent(self, agent: AgentNode, now: datetime) -> None:
        # As the reducer does: under the parent agent if that had started before this one (agents are visited in
        # start order, so exactly when it has a node by now), else under its phase, else at the root.
        parent = self._node_by_key.get(agent.parent) if agent.parent is not None else None
        if parent is not None:
            parent.allow_expand = True
        elif agent.phase is not None:
            parent = self._node_by_key.get(f"phase:{agent.phase}")
        node = (self.root if parent is None else parent).add(self._agent_label(agent, now), data=agent.id,
                                                             expand=True, allow_expand=False)  # fmt: skip
        self._node_by_key[agent.id] = node

    def _relabel(self, key: str, label: Text, relabelled: list[TreeNode[str]]) -> None:
        node = self._node_by_key.get(key)
        if node is None or node.label == label:
            return
        # Not TreeNode.set_label: it schedules a repaint callback per node, which costs more than making the label.
        # `_updates` keys Tree's line cache, so the line is drawn anew when it is repainted (_repaint).
        node._label = self.process_label(label)
        node._updates += 1
        relabelled.append(node)

    def _repaint(self, nodes: list[TreeNode[str]]) -> None:
        """Repaint the lines of these nodes that are on screen (not the whole tree: a frame costs per line)."""
        top, height, width = self.scroll_offset.y, self.size.height, self.size.width
        for node in nodes:
            # node.line is where the last layout put it; nodes added since have laid the whole tree out anew.
            if top <= node.line < top + height:
                self.refresh(Region(0, node.line - top, width, 1))

    # --- following ---------------------------------------------------------------------------------------------

    def _follow_newest(self, state: RunState) -> None:
        if self._running_agents:
            order = self._start_order
            target_id = max(self._running_agents, key=order.__getitem__)
        elif state.agents:
            target_id = next(reversed(state.agents))
        else:
            return
        node = self._node_by_key.get(target_id)
        if node is None:
            return
        node = self._visible_node(node)
        self._follow_target = node
        if self.cursor_node is not node:
            # move_cursor goes to node.line, which is current only once the lines are laid out (last_line does it).
            if self.last_line >= 0:
                self.move_cursor(node, animate=False)

    @staticmethod
    def _visible_node(node: TreeNode[str]) -> TreeNode[str]:
        """The node itself, or its outermost collapsed ancestor when a collapsed phase or agent hides it."""
        visible = node
        ancestor = node.parent
        while ancestor is not None and not ancestor.is_root:
            if not ancestor.is_expanded:
                visible = ancestor
            ancestor = ancestor.parent
        return visible

    def _user_moved(self) -> None:
        self.follow = False

    # The user's ways of moving the cursor stop following at once. (NodeHighlighted arrives later, as a message,
    # possibly after the next update has moved the cursor again, so it cannot tell who moved it on its own.)
    def action_cursor_up(self) -> None:
        self._user_moved()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._user_moved()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._user_moved()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._user_moved()
        super().action_page_down()

    def action_scroll_home(self) -> None:
        self._user_moved()
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self._user_moved()
        super().action_scroll_end()

    def action_cursor_parent(self) -> None:
        self._user_moved()
        super().action_cursor_parent()

    def action_cursor_parent_next_sibling(self) -> None:
        self._user_moved()
        super().action_cursor_parent_next_sibling()

    def action_cursor_previous_sibling(self) -> None:
        self._user_moved()
        super().action_cursor_previous_sibling()

    def action_cursor_next_sibling(self) -> None:
        self._user_moved()
        super().action_cursor_next_sibling()

    def on_click(self, event: events.Click) -> None:
        self._user_moved()

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        # Anything else that leaves the cursor off the followed node (say a collapse that hid it) also stops
        # following. Highlights of the followed node itself, late or repeated by a re-layout, change nothing.
        if self.follow and self._follow_target is not None and self.cursor_node is not self._follow_target:
            self.follow = False

    # --- rendering ---------------------------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Tree asks for rich_style once per line and for size twice, and each ask walks the DOM (to the screen and
        # its layout); neither changes during a render, so one ask each per render will do.
        self._render_style = super().rich_style
        self._render_size = super().size
        try:
            return super().render_lines(crop)
        finally:
            self._render_style = None
            self._render_size = None

    @property
    def rich_style(self) -> Style:
        return self._render_style if self._render_style is not None else super().rich_style

    @property
    def size(self) -> Size:
        return self._render_size if self._render_size is not None else super().size

    def process_label(self, label: TextType) -> Text:
        # Tree keeps a label's first line; ours are one line already (no copy to split them needlessly).
        if isinstance(label, Text) and "\n" not in label.plain:
            return label
        return super().process_label(label)

    def get_label_width(self, node: TreeNode[str]) -> int:
        # Tree measures every line whenever a node is added or shown, and its default renders the label to do it:
        # with 10,000 nodes that is most of the cost of a new agent. Widths are kept per label instead.
        label = node.label
        known = self._label_widths.get(node.id)
        if known is None or known[0] is not label:
            known = (label, _cell_width(label.plain))  # type: ignore[union-attr]
            self._label_widths[node.id] = known
        if node.allow_expand:
            return known[1] + cell_len(self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE)
        return known[1]

    def node_for(self, key: str) -> TreeNode[str] | None:
        """The node shown for an agent id or for "phase:<id>", if there is one yet."""
        return self._node_by_key.get(key)

    @property
    def selected_agent(self) -> str | None:
        node = self.cursor_node
        if node is None or node.data is None or node.data.startswith("phase:"):
            return None
        return node.data
