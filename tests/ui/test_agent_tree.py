"""The phase/agent tree: nesting as the reducer built it (also when updates arrive piecemeal), labels, following.

States are built by feeding events through the reducer, the way the run screen gets them.
"""

from __future__ import annotations

import random
import shutil
from datetime import timedelta

import pytest
from textual.app import App, ComposeResult

from aw_tui.cli import bundled_samples_root
from aw_tui.model import events as ev
from aw_tui.model.formatting import format_duration
from aw_tui.model.state import PhaseNode, RunState, fold, reduce_all
from aw_tui.ui.app import AwTuiApp
from aw_tui.ui.widgets.agent_tree import AgentTree

from tests.model.event_factory import T0, stamp

NOW = T0 + timedelta(seconds=100)


class TreeApp(App[None]):
    def compose(self) -> ComposeResult:
        yield AgentTree(id="tree")


def tree_shape(node) -> list:
    """The tree below `node` as nested (data, children) pairs, in display order."""
    return [(child.data, tree_shape(child)) for child in node.children]


def expected_shape(state: RunState) -> list:
    """What the tree should show: in each place the phases first, then the agents, both in start order."""

    def agent(agent_id: str) -> tuple:
        return (agent_id, [agent(child) for child in state.agents[agent_id].children])

    def phase(phase_id: str) -> tuple:
        node = state.phases[phase_id]
        return (f"phase:{phase_id}", [phase(p) for p in node.phases] + [agent(a) for a in node.agents])

    return [phase(p) for p in state.root_phases] + [agent(a) for a in state.root_agents]


def labels(tree: AgentTree) -> dict[str, str]:
    out = {}

    def walk(node) -> None:
        for child in node.children:
            out[child.data] = child.label.plain
            walk(child)

    walk(tree.root)
    return out


NESTED_EVENTS = [
    ev.RunCreated(run_id="r", task="t"),
    ev.PhaseStarted(id="p1", title="Plan and build"),
    ev.PhaseStarted(id="p1a", title="Sub step", parent="p1"),
    ev.AgentStarted(id="w", role="worker", model="openai/gpt-5-mini", phase="p1", label="worker"),
    ev.AgentStarted(id="d", role="delegate", model="openai/gpt-5-nano", phase="p1", parent="w", label="delegate"),
    ev.AgentStarted(id="s", role="scout", model="anthropic/claude-haiku", phase="p1a", label="scout"),
    ev.AgentUsage(agent="w", input=1200, output=300, cache_read=500),
    ev.ToolStarted(agent="w", call_id="c1", tool="bash"),
    ev.ToolFinished(agent="w", call_id="c1", tool="bash", duration_ms=10),
    ev.ToolStarted(agent="w", call_id="c2", tool="read"),
    ev.ToolFinished(agent="w", call_id="c2", tool="read", duration_ms=10),
    ev.ToolStarted(agent="d", call_id="c3", tool="grep"),
    ev.AgentFinished(id="s", status="failed", error="boom"),
    ev.AgentStarted(id="loose", role="analyst", model="m", label="loose"),
]


def nested_state(extra: list | None = None) -> RunState:
    return fold(stamp(NESTED_EVENTS + (extra or [])))


async def test_agents_nest_under_their_parent_agent_and_phases_under_phases():
    state = nested_state()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(state, NOW)
        await pilot.pause()
        assert tree_shape(tree.root) == [
            ("phase:p1", [("phase:p1a", [("s", [])]), ("w", [("d", [])])]),
            ("loose", []),
        ]
        assert tree_shape(tree.root) == expected_shape(state)


async def test_labels_show_status_model_tokens_tools_and_elapsed():
    state = nested_state()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(state, NOW)
        await pilot.pause()
        shown = labels(tree)
    # w started at seq 4 (T0+4s) and runs: 96 s at NOW. 1,200 in + 500 cache read + 300 out = 2,000 tokens.
    assert shown["w"] == "▶ worker  [gpt-5-mini]  2,000 tok  2 tools  1m 36.0s"
    # d runs one tool, none finished yet.
    assert shown["d"] == "▶ delegate  [gpt-5-nano]  – tok  0 tools (1 running)  1m 35.0s"
    # s failed at seq 13 after starting at seq 6: 7 s, frozen.
    assert shown["s"] == "✗ scout  [claude-haiku]  – tok  7.00 s"
    assert shown["phase:p1"] == "▶ Plan and build"
    assert shown["phase:p1a"] == "▶ Sub step"


async def test_finished_phases_and_agents_change_their_mark_in_place():
    before = nested_state()
    after = reduce_all(before, stamp([ev.AgentFinished(id="w"), ev.PhaseFinished(id="p1a", status="done")],
                                     start_seq=before.last_seq + 1))  # fmt: skip
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(before, NOW)
        await pilot.pause()
        node_w = next(n for n in tree.root.children[0].children if n.data == "w")
        tree.update_state(after, NOW)
        await pilot.pause()
        shown = labels(tree)
        assert shown["w"].startswith("✓ worker") and shown["w"].endswith(format_duration(after.agents["w"].elapsed_ms(NOW)))
        assert shown["phase:p1a"] == "✓ Sub step"
        # The same node, relabelled: not a new one.
        assert next(n for n in tree.root.children[0].children if n.data == "w") is node_w


async def test_a_child_arriving_after_an_update_goes_under_its_parent():
    first = nested_state()
    later = reduce_all(first, stamp([
        ev.AgentStarted(id="d2", role="delegate", model="m", phase="p1", parent="d", label="grandchild"),
        ev.AgentStarted(id="s2", role="scout", model="m", phase="p1a", parent="s", label="sub of s"),
        ev.PhaseStarted(id="p1b", title="Another sub step", parent="p1"),
        ev.AgentStarted(id="b", role="worker", model="m", phase="p1b"),
        ev.AgentStarted(id="loose2", role="analyst", model="m", parent="loose"),
        ev.PhaseStarted(id="p2", title="Second"),
    ], start_seq=first.last_seq + 1))  # fmt: skip
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(first, NOW)
        await pilot.pause()
        tree.update_state(later, NOW)
        await pilot.pause()
        assert tree_shape(tree.root) == [
            ("phase:p1", [
                ("phase:p1a", [("s", [("s2", [])])]),
                ("phase:p1b", [("b", [])]),
                ("w", [("d", [("d2", [])])]),
            ]),
            ("phase:p2", []),
            ("loose", [("loose2", [])]),
        ]  # fmt: skip
        assert tree_shape(tree.root) == expected_shape(later)
        parent = tree.root.children[0].children[2].children[0]  # d
        assert parent.data == "d" and parent.allow_expand


async def test_a_child_naming_a_parent_that_starts_later_stays_where_the_reducer_put_it():
    state = fold(stamp([
        ev.RunCreated(run_id="r", task="t"),
        ev.PhaseStarted(id="p", title="P"),
        ev.AgentStarted(id="early", role="worker", model="m", phase="p", parent="late"),
        ev.AgentStarted(id="late", role="worker", model="m", phase="p"),
    ]))  # fmt: skip
    assert state.agents["late"].children == []
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(state, NOW)
        await pilot.pause()
        assert tree_shape(tree.root) == [("phase:p", [("early", []), ("late", [])])] == expected_shape(state)


def random_events(rng: random.Random, count: int) -> list:
    out: list = [ev.RunCreated(run_id="r", task="t")]
    phases: list[str] = []
    agents: list[str] = []
    for i in range(count):
        kind = rng.choice(["phase", "agent", "agent", "agent", "finish", "usage", "tool", "phase_end"])
        if kind == "phase":
            out.append(ev.PhaseStarted(id=f"p{i}", title=f"Phase {i}", parent=rng.choice([None, *phases])))
            phases.append(f"p{i}")
        elif kind == "agent":
            parent = rng.choice([None, None, *agents, "ghost"])
            out.append(ev.AgentStarted(id=f"a{i}", role="worker", model="m", phase=rng.choice([None, *phases]),
                                       parent=parent))  # fmt: skip
            agents.append(f"a{i}")
        elif kind == "finish" and agents:
            out.append(ev.AgentFinished(id=rng.choice(agents), status=rng.choice(["done", "failed"])))
        elif kind == "usage" and agents:
            out.append(ev.AgentUsage(agent=rng.choice(agents), input=rng.randint(0, 50_000), output=10))
        elif kind == "tool" and agents:
            agent = rng.choice(agents)
            out.append(ev.ToolStarted(agent=agent, call_id=f"c{i}", tool="bash"))
            if rng.random() < 0.7:
                out.append(ev.ToolFinished(agent=agent, call_id=f"c{i}", tool="bash", duration_ms=5))
        elif kind == "phase_end" and phases:
            out.append(ev.PhaseFinished(id=rng.choice(phases)))
    return stamp(out)


async def test_piecemeal_updates_build_the_same_tree_as_one_update():
    """Random runs fed in random batches: the tree matches the state after every batch, labels included."""
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        for seed in range(12):
            rng = random.Random(seed)
            events = random_events(rng, 80)
            once = AgentTree()
            piecemeal = AgentTree()
            await pilot.app.mount(once, piecemeal)
            state = RunState()
            start = 0
            while start < len(events):
                end = start + rng.randint(1, 12)
                state = reduce_all(state, events[start:end])
                start = end
                now = NOW + timedelta(seconds=start)
                piecemeal.update_state(state, now)
                assert tree_shape(piecemeal.root) == expected_shape(state), f"seed {seed}, events up to {end}"
            once.update_state(state, now)
            assert tree_shape(once.root) == tree_shape(piecemeal.root)
            assert labels(once) == labels(piecemeal), f"seed {seed}"
            await once.remove()
            await piecemeal.remove()


async def test_running_agents_tick_their_elapsed_time():
    state = nested_state()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(state, NOW)
        tree.update_state(state, NOW + timedelta(seconds=30))
        await pilot.pause()
        shown = labels(tree)
    assert shown["w"].endswith("2m 6.0s")
    assert shown["s"].endswith("7.00 s")  # finished: frozen


@pytest.mark.skipif(not hasattr(ev, "PhaseDeclared"), reason="the reducer has no phase.declared event")
async def test_a_declared_phase_shows_pending_until_it_starts():
    declared = nested_state([ev.PhaseDeclared(id="p9", title="Later"),
                             ev.PhaseDeclared(id="p9a", title="Later, part one", parent="p9")])  # fmt: skip
    assert declared.phases["p9"].status == "pending"
    started = reduce_all(declared, stamp([ev.PhaseStarted(id="p9", title="Later")], start_seq=declared.last_seq + 1))
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(declared, NOW)
        await pilot.pause()
        assert labels(tree)["phase:p9"] == "· Later" and labels(tree)["phase:p9a"] == "· Later, part one"
        assert tree_shape(tree.root) == expected_shape(declared)
        node = tree.node_for("phase:p9")
        tree.update_state(started, NOW)
        await pilot.pause()
        assert labels(tree)["phase:p9"] == "▶ Later" and tree.node_for("phase:p9") is node
        assert labels(tree)["phase:p9a"] == "· Later, part one"


async def test_a_pending_phase_shows_as_pending():
    # A PhaseNode marked pending by hand, whatever event the reducer has for it.
    state = nested_state()
    state = state.shallow_copy()
    state.phases = {**state.phases, "p9": PhaseNode("p9", "Later", None, status="pending")}
    state.root_phases = [*state.root_phases, "p9"]
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(state, NOW)
        await pilot.pause()
        assert labels(tree)["phase:p9"] == "· Later"
        assert [n.data for n in tree.root.children] == ["phase:p1", "phase:p9", "loose"]


# --- following -----------------------------------------------------------------------------------------------------


def running_states() -> tuple[RunState, RunState, RunState]:
    first = fold(stamp([
        ev.RunCreated(run_id="r", task="t"),
        ev.PhaseStarted(id="p1", title="One"),
        ev.AgentStarted(id="a1", role="worker", model="m", phase="p1"),
    ]))  # fmt: skip
    second = reduce_all(first, stamp([
        ev.AgentFinished(id="a1"),
        ev.PhaseStarted(id="p2", title="Two"),
        ev.AgentStarted(id="a2", role="worker", model="m", phase="p2"),
    ], start_seq=first.last_seq + 1))  # fmt: skip
    third = reduce_all(second, stamp([
        ev.AgentStarted(id="a3", role="delegate", model="m", phase="p2", parent="a2"),
    ], start_seq=second.last_seq + 1))  # fmt: skip
    return first, second, third


async def test_the_tree_follows_the_newest_running_agent_across_updates():
    first, second, third = running_states()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.focus()
        tree.update_state(first, NOW)
        await pilot.pause()
        assert tree.selected_agent == "a1" and tree.follow
        tree.update_state(second, NOW)
        await pilot.pause()
        assert tree.selected_agent == "a2" and tree.follow
        tree.update_state(third, NOW)
        tree.update_state(third, NOW + timedelta(seconds=1))  # a tick right after
        await pilot.pause()
        assert tree.selected_agent == "a3" and tree.follow
        assert tree.cursor_node is not None and tree.cursor_line == tree.cursor_node.line


async def test_updates_before_the_highlight_is_handled_keep_following():
    first, second, third = running_states()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        # Three moves before the tree handles any NodeHighlighted it posted.
        tree.update_state(first, NOW)
        tree.update_state(second, NOW)
        tree.update_state(third, NOW)
        await pilot.pause()
        assert tree.follow and tree.selected_agent == "a3"


@pytest.mark.parametrize("keys", [("up",), ("down", "up"), ("home",), ("shift+up",)])
async def test_moving_the_cursor_by_key_stops_following(keys):
    first, second, third = running_states()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.focus()
        tree.update_state(second, NOW)
        await pilot.pause()
        await pilot.press(*keys)
        assert not tree.follow
        where = tree.cursor_node
        tree.update_state(third, NOW)
        await pilot.pause()
        assert tree.cursor_node is where and tree.selected_agent != "a3"
        # Following again (F on the run screen) jumps to the newest running agent.
        tree.follow = True
        tree.update_state(third, NOW)
        await pilot.pause()
        assert tree.selected_agent == "a3" and tree.follow


async def test_clicking_a_node_stops_following():
    first, second, third = running_states()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(third, NOW)
        await pilot.pause()
        assert tree.selected_agent == "a3"
        await pilot.click(AgentTree, offset=(6, 1))  # line 1: a1, under phase p1
        await pilot.pause()
        assert not tree.follow and tree.selected_agent == "a1"


async def test_following_a_collapsed_phase_stops_at_the_phase():
    first, second, third = running_states()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(second, NOW)
        await pilot.pause()
        tree.root.children[1].collapse()  # p2, holding a2 and soon a3
        tree.update_state(third, NOW)
        await pilot.pause()
        assert tree.cursor_node is tree.root.children[1] and tree.follow


async def test_F_on_the_run_screen_follows_again(tmp_path):
    name = "aw_20260314_093000_fix_the_failing_duration_parser_test"
    run_dir = tmp_path / "runs" / name
    shutil.copytree(bundled_samples_root() / name, run_dir)
    app = AwTuiApp([run_dir.parent], open_path=run_dir, clock=lambda: NOW, watch=False)
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if getattr(app.screen, "opened", None) is not None:
                break
        tree = app.screen.query_one(AgentTree)
        await pilot.pause()
        last = next(reversed(app.screen.opened.state.agents))
        assert tree.follow and tree.selected_agent == last
        await pilot.press("up")
        assert not tree.follow and tree.selected_agent != last
        await pilot.press("F")
        await pilot.pause()
        assert tree.follow and tree.selected_agent == last


async def test_a_tick_repaints_only_the_lines_that_changed():
    state = nested_state()
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        tree.update_state(state, NOW)
        await pilot.pause()
        repainted = []
        tree.refresh = lambda *regions, **kwargs: repainted.extend(regions)  # type: ignore[method-assign]
        tree.update_state(state, NOW + timedelta(seconds=1))
        # w, d and loose run (their elapsed time moved); s (finished) and the phases did not change.
        lines = [tree.node_for(agent).line for agent in ("w", "d", "loose")]
        assert sorted(region.y for region in repainted) == sorted(lines)
        assert all(region.height == 1 and region.width == tree.size.width for region in repainted)
        repainted.clear()
        tree.update_state(state, NOW + timedelta(seconds=1))  # same clock: nothing to repaint
        assert repainted == []


async def test_another_run_or_a_replaced_log_starts_the_tree_over():
    first = nested_state()
    other = fold(stamp([ev.RunCreated(run_id="other", task="t"), ev.AgentStarted(id="x", role="worker", model="m")]))
    shorter = fold(stamp(NESTED_EVENTS[:4]))  # same run, its log cut: fewer agents than shown
    async with TreeApp().run_test(size=(120, 40)) as pilot:
        tree = pilot.app.query_one(AgentTree)
        for state in (first, other, first, shorter):
            tree.update_state(state, NOW)
            await pilot.pause()
            assert tree_shape(tree.root) == expected_shape(state)
        assert tree.selected_agent == "w"
