"""Cheaper scroll frames for a tall line-by-line widget (the agent tree of a 10,000-agent run).

Textual repaints a scrolled widget as if every visible row were new, though a one-line scroll shows only one new
row. Two costs of that are avoidable, and together they were about half of each frame of a held cursor key:

- The styled rows. Textual's StylesCache keeps a widget's finished rows (content plus background, border, tint and
  line filters) by screen row, and a scroll marks every row dirty, so each visible row is styled again. A Tree's
  content rows come from its own line cache, the same Strip object for the same unchanged tree line, so
  `RowReuseStylesCache` keeps finished rows keyed on that object: after a scroll only the new row and the rows
  that changed (the cursor's old and new line) are styled.
- The scrollbar. Each scroll sets the bar's position, which repaints the whole bar, though in a tree of thousands
  of lines the thumb moves one eighth of a cell only every few dozen lines. `ThumbScrollBar` repaints only when
  what it draws would change. A repaint starts its styled rows afresh, but it styles each distinct row (track
  above, thumb, track below, the thumb's two ends) once rather than every row: in a short tree the thumb moves
  at every line.

`ReusedScrollRows` puts both on a widget. Both lean on Textual internals (StylesCache, ScrollBarRender's thumb
arithmetic, App._start_widget); Textual is pinned to an exact version, and tests compare the results with
Textual's own rendering so that a Textual upgrade that breaks the assumptions fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import ceil
from typing import Any

from rich.console import RenderableType
from rich.terminal_theme import TerminalTheme
from textual._ansi_theme import DEFAULT_TERMINAL_THEME
from textual._styles_cache import StylesCache
from textual.color import Color
from textual.css.styles import StylesBase
from textual.geometry import Region, Size, Spacing
from textual.reactive import Reactive
from textual.scrollbar import ScrollBar
from textual.strip import Strip

EIGHTHS = 8  # ScrollBarRender draws the thumb's ends in eighths of a cell (its VERTICAL_BARS)


class RowReuseStylesCache(StylesCache):
    """A StylesCache that reuses a finished content row wherever its content strip is one it finished before.

    Only content rows are reused (not border, padding or outline rows: those depend on where they are), and only
    while everything else a content row is made from stays the same; any change there starts afresh."""

    def __init__(self) -> None:
        super().__init__()
        self._finished: dict[int, tuple[Strip, Strip]] = {}  # id(content strip) -> (that strip, the finished row)
        self._finished_for: tuple | None = None  # what the finished rows were made with
        self._content_rows = range(0)  # the screen rows holding content in the current render

    def clear(self) -> None:
        super().clear()
        self._finished.clear()

    def render(
        self,
        styles: StylesBase,
        size: Size,
        base_background: Color,
        background: Color,
        render_content_line: Callable[[int], Strip],
        filters: Sequence[Any],
        border_title: Any,
        border_subtitle: Any,
        content_size: Size | None = None,
        padding: Spacing | None = None,
        crop: Region | None = None,
        opacity: float = 1.0,
        ansi_theme: TerminalTheme = DEFAULT_TERMINAL_THEME,
        native_ansi: bool = False,
    ) -> list[Strip]:
        content_size = size if content_size is None else content_size
        padding = styles.padding if padding is None else padding
        outline = styles.outline
        made_with = (
            size, content_size, padding, base_background, background, opacity, ansi_theme, native_ansi,
            styles.border, outline, styles.tint, styles.text_opacity,
            styles.hatch if styles.has_rule("hatch") else None,
        )  # fmt: skip
        if made_with != self._finished_for:
            self._finished.clear()
            self._finished_for = made_with
        gutter = styles.gutter
        # Outline rows draw over the content's first and last columns and rows: leave those widgets as they are.
        has_outline = any(edge for edge, _color in outline)
        first = gutter.top
        self._content_rows = range(0) if has_outline else range(first, min(size.height - gutter.bottom,
                                                                           first + content_size.height))  # fmt: skip
        return super().render(styles, size, base_background, background, render_content_line, filters, border_title,
                              border_subtitle, content_size, padding, crop, opacity, ansi_theme, native_ansi)  # fmt: skip

    def render_line(
        self,
        styles: StylesBase,
        y: int,
        size: Size,
        content_size: Size,
        padding: Spacing,
        base_background: Color,
        background: Color,
        render_content_line: Callable[[int], Strip],
        *rest: Any,
    ) -> Strip:
        if y not in self._content_rows:
            return super().render_line(styles, y, size, content_size, padding, base_background, background,
                                       render_content_line, *rest)  # fmt: skip
        content = render_content_line(y - self._content_rows.start)
        finished = self._finished.get(id(content))
        if finished is not None and finished[0] is content:  # the strip itself is kept, so its id is not reused
            return finished[1]
        row = super().render_line(styles, y, size, content_size, padding, base_background, background,
                                  lambda _y: content, *rest)  # fmt: skip
        if len(self._finished) >= 4 * max(size.height, 1):  # forget the oldest (a row still shown is made again)
            del self._finished[next(iter(self._finished))]
        self._finished[id(content)] = (content, row)
        return row


def thumb_cells(size: int, virtual_size: int, window_size: int, position: float) -> tuple[int, int] | None:
    """Where ScrollBarRender.render_bar draws the thumb, in eighths of a cell (start, end); None for no thumb.

    The same arithmetic as Textual's, kept to what decides the drawing: two positions with the same result draw
    the same bar (tests check this against render_bar itself)."""
    if not (window_size and size and virtual_size and size != virtual_size):
        return None
    thumb_size = max(1, window_size / (virtual_size / size))
    start = int((size - thumb_size) * (position / (virtual_size - window_size)) * EIGHTHS)
    return start, start + ceil(thumb_size * EIGHTHS)


class ThumbScrollBar(ScrollBar):
    """A scrollbar that repaints when its thumb would be drawn elsewhere, not at every change of position."""

    position: Reactive[float] = Reactive(0.0, repaint=False)

    def __init__(self, vertical: bool = True, name: str | None = None, *, thickness: int = 1) -> None:
        super().__init__(vertical, name, thickness=thickness)
        self._drawn_thumb: tuple[int, int] | None = None
        self._styles_cache = RowReuseStylesCache()
        self._distinct_rows: dict[tuple, Strip] = {}  # a row's segments -> the one Strip handed out for them

    def render_line(self, y: int) -> Strip:
        # A bar has a handful of distinct rows (track above, thumb, track below, the thumb's two ends): handing out
        # one Strip object for each lets RowReuseStylesCache finish each once per repaint, not every row.
        row = super().render_line(y)
        if len(self._distinct_rows) > 64:  # colours changed (hover, grab, theme) often enough: start afresh
            self._distinct_rows.clear()
        return self._distinct_rows.setdefault(tuple(row), row)

    def _thumb(self) -> tuple[int, int] | None:
        # As ScrollBar._render_bar passes them on: the window counts only when smaller than what it shows.
        window = self.window_size if self.window_size < self.window_virtual_size else 0
        length = self.size.height if self.vertical else self.size.width
        return thumb_cells(length, ceil(self.window_virtual_size), ceil(window), self.position)

    def watch_position(self) -> None:
        if self._thumb() != self._drawn_thumb:
            self.refresh()

    def render(self) -> RenderableType:
        self._drawn_thumb = self._thumb()
        return super().render()


class ReusedScrollRows:
    """Mixin for a ScrollView widget: finished rows reused across scrolls, and a ThumbScrollBar for the vertical
    bar. Put it before the widget class in the bases."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._styles_cache = RowReuseStylesCache()

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        # Widget.vertical_scrollbar, with our bar: Textual makes the bar on first use and starts it as a child.
        if self._vertical_scrollbar is None:
            bar = ThumbScrollBar(vertical=True, name="vertical", thickness=self.scrollbar_size_vertical)
            bar.display = False
            self._vertical_scrollbar = bar
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar
