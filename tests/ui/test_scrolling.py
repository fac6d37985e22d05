"""Reused rows and the thumb-only scrollbar (aw_tui.ui.widgets.scrolling) draw exactly what Textual's own would.

The reference is the same AgentTree with Textual's StylesCache and ScrollBar put back. Both go through the same keys,
focus changes, a resize and a live update, and every checkpoint's screen must match cell for cell, colours
included. Further tests check that the reuse happens at all: a one-line scroll restyles a row or two, not every
visible one, and the scrollbar repaints only when its thumb moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import groupby

import pytest
from textual._styles_cache import StylesCache
from textual.app import App, ComposeResult
from rich.color import Color
from textual.containers import Horizontal
from textual.scrollbar import ScrollBarRender
from textual.widget import Widget
from textual.widgets import Input

from aw_tui.model import events as ev
from aw_tui.model.state import RunState, fold, reduce_all
from aw_tui.ui.widgets.agent_tree import AgentTree
from aw_tui.ui.widgets.scrolling import RowReuseStylesCache, ThumbScrollBar, thumb_cells
from tests.model.event_factory import stamp
from tests.ui.test_agent_tree import NOW

PHASES, AGENTS = 20, 100  # 2,020 lines: the thumb moves an eighth of a cell only every several lines


def big_state(phases: int = PHASES, agents: int = AGENTS) -> RunState:
    events: list = [ev.RunCreated(run_id="r", task="t")]
    for p in range(phases):
        events.append(ev.PhaseStarted(id=f"p{p}", title=f"Phase {p}"))
        for a in range(agents):
            agent = f"a{p}-{a}"
            events += [ev.AgentStarted(id=agent, role="worker", model="openai/gpt-5-mini", phase=f"p{p}"),
                       ev.AgentUsage(agent=agent, input=1000 + a, output=10 * a),
                       ev.AgentFinished(id=agent, status="failed" if a % 7 == 0 else "done")]  # fmt: skip
    return fold(stamp(events))


def later_state(state: RunState) -> RunState:
    """Some agents running again elsewhere, and one more phase: labels change and lines move."""
    extra = [ev.AgentStarted(id="late", role="delegate", model="m", phase="p1", parent="a1-3"),
             ev.PhaseStarted(id="p-new", title="Late phase"),
             ev.AgentStarted(id="newest", role="worker", model="m", phase="p-new")]  # fmt: skip
    return reduce_all(state, stamp(extra, start_seq=state.last_seq + 1))


class PlainAgentTree(AgentTree):
    """AgentTree drawn the way Textual draws any widget: the reference."""

    vertical_scrollbar = Widget.vertical_scrollbar

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._styles_cache = StylesCache()


class TreeBesideInput(App[None]):
    CSS = """
    AgentTree { width: 1fr; border: round $primary-darken-2; }
    AgentTree:focus { border: round $accent; }
    Input { width: 20; }
    """

    def __init__(self, tree_class: type[AgentTree]) -> None:
        super().__init__()
        self.tree_class = tree_class

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield self.tree_class(id="tree")
            yield Input()


def screen_cells(app: App) -> list[list[tuple]]:
    """What the screen shows, cell by cell (character, colours, attributes): independent of how segments split."""
    rows = []
    for strip in app.screen._compositor.render_strips():
        cells = []
        for segment in strip:
            style = segment.style
            look = None if style is None else (style.color, style.bgcolor, style.bold, style.dim, style.italic,
                                               style.underline, style.reverse, style.strike)  # fmt: skip
            cells += [(char, look) for char in segment.text]
        rows.append(cells)
    return rows


async def big_tree_at_top(pilot) -> AgentTree:
    tree = pilot.app.query_one(AgentTree)
    tree.update_state(big_state(), NOW)
    tree.focus()
    await pilot.press("home")
    await pilot.pause()
    return tree


async def checkpoints(tree_class: type[AgentTree]) -> list[list[list[tuple]]]:
    app = TreeBesideInput(tree_class)
    frames = []
    async with app.run_test(size=(100, 30)) as pilot:
        tree = await big_tree_at_top(pilot)

        async def keys(*pressed: str) -> None:
            await pilot.press(*pressed)
            await pilot.pause()
            frames.append(screen_cells(app))

        for _ in range(12):
            await keys("down", "down", "down")
        await keys("pagedown")
        await keys("up", "up")
        await keys("end")
        await keys("pageup", "pageup")
        await keys("tab")  # focus leaves: the border and the cursor line change colour
        await keys("shift+tab")
        await pilot.resize_terminal(84, 22)
        await pilot.pause()
        frames.append(screen_cells(app))
        await keys("home", "down", "down")
        tree.update_state(later_state(big_state()), NOW)
        await pilot.pause()
        frames.append(screen_cells(app))
        for _ in range(6):
            await keys("down", "down", "down", "down", "down")
    return frames


async def test_reused_rows_and_the_thumb_scrollbar_draw_what_textual_draws():
    ours = await checkpoints(AgentTree)
    reference = await checkpoints(PlainAgentTree)
    assert len(ours) == len(reference) == 27
    for step, (mine, theirs) in enumerate(zip(ours, reference)):
        assert mine == theirs, f"checkpoint {step} differs"
    assert len({str(frame) for frame in ours}) > 20  # the checkpoints really show different screens


@contextmanager
def restyled_rows(cache: RowReuseStylesCache) -> Iterator[list[int]]:
    """The content rows that `cache` styles (rather than reuses) inside the block."""
    styled: list[int] = []
    original = StylesCache.render_line

    def counted(self, styles, y, *args):
        if self is cache and y in cache._content_rows:
            styled.append(y)
        return original(self, styles, y, *args)

    StylesCache.render_line = counted  # type: ignore[method-assign]
    try:
        yield styled
    finally:
        StylesCache.render_line = original  # type: ignore[method-assign]


async def test_a_one_line_scroll_restyles_only_the_rows_that_changed():
    async with TreeBesideInput(AgentTree).run_test(size=(100, 30)) as pilot:
        tree = await big_tree_at_top(pilot)
        cache = tree._styles_cache
        assert isinstance(cache, RowReuseStylesCache)
        for _ in range(40):  # the cursor to the bottom row: from here each down key scrolls
            await pilot.press("down")
        await pilot.pause()
        scroll_before = tree.scroll_y
        with restyled_rows(cache) as styled_rows:
            await pilot.press("down")
            await pilot.pause()
        assert tree.scroll_y == scroll_before + 1
        # The row that came into view is the new cursor line; the old cursor line lost its highlight.
        assert 1 <= len(styled_rows) <= 2, styled_rows


async def test_the_scrollbar_repaints_only_when_its_thumb_moves():
    async with TreeBesideInput(AgentTree).run_test(size=(100, 30)) as pilot:
        tree = await big_tree_at_top(pilot)
        bar = tree.vertical_scrollbar
        assert isinstance(bar, ThumbScrollBar) and bar.display
        renders: list[tuple] = []
        original = ThumbScrollBar.render
        bar.render = lambda: (renders.append(bar._thumb()), original(bar))[1]  # type: ignore[method-assign]
        thumbs = []
        for line in range(1, 61):  # a line at a time, as a held cursor key scrolls
            tree.scroll_to(y=line, animate=False)
            await pilot.pause()
            thumbs.append(bar._thumb())
        moves = sum(1 for _ in groupby(thumbs)) - 1
        assert tree.scroll_y == 60 and 1 <= moves < 15
        assert len(renders) == moves  # one repaint per move of the thumb, none between
        assert renders[-1] == thumbs[-1]
        # A repaint styles each distinct row of the bar once (track, thumb, the thumb's ends), not every row.
        with restyled_rows(bar._styles_cache) as styled_rows:
            while bar._thumb() == thumbs[-1]:
                tree.scroll_to(y=tree.scroll_y + 1, animate=False)
                await pilot.pause()
        assert 1 <= len(styled_rows) <= 4, styled_rows


@pytest.mark.parametrize("size, virtual", [(5, 6), (5, 60), (28, 300), (28, 2020), (46, 4000), (3, 40)])
def test_thumb_cells_agree_with_textuals_scrollbar_drawing(size, virtual):
    """Positions with the same thumb_cells draw the same bar: Textual's render_bar is the judge."""
    window = min(size, virtual)
    colours = {"back_color": Color.parse("#333333"), "bar_color": Color.parse("#aa00aa")}
    drawn: dict[tuple | None, list] = {}
    steps = int((virtual - window) * 8)
    for step in range(steps + 1):
        position = step / 8
        bar = ScrollBarRender.render_bar(size, virtual, window, position, 1, True, **colours)
        look = [(segment.text, segment.style) for segment in bar.segments]
        key = thumb_cells(size, virtual, window, position)
        assert drawn.setdefault(key, look) == look, (position, key)
    assert len(drawn) > 1


def test_no_thumb_when_everything_fits():
    assert thumb_cells(20, 20, 20, 0) is None
    assert thumb_cells(20, 10, 0, 0) is None

