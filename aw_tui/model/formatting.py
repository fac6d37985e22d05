"""Display formats shared by the CLI, state.md and the TUI.

The token, money and duration formats follow the seed extension exactly (reference/seeds.md §1.3), so numbers
read the same in a run written by the original tool and in one written by aw-tui.
"""

from __future__ import annotations

import math
from datetime import datetime

DASH = "–"  # en dash: the seed's mark for "nothing" (zero or negative)


def round_half_up(value: float) -> int:
    # JavaScript's Math.round, which the seed uses; Python's round() rounds halves to even.
    return int(math.floor(value + 0.5))


def counted(count: int, noun: str) -> str:
    """"1 run", "0 runs", "3 runs": the count and its noun, plural unless the count is one (regular nouns only)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_tokens(count: float | int | None) -> str:
    """`–` for nothing, `1,000` below 10K, `20K` below a million, `1.2M` above."""
    try:
        if count is None or not math.isfinite(count) or count <= 0:
            return DASH
    except OverflowError:  # an int beyond every float: no count anyone spent, so nothing to show
        return DASH
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 10_000:
        return f"{round_half_up(count / 1000)}K"
    return f"{round_half_up(count):,}"


def format_money(usd: float | None) -> str:
    """`–`, `$0.00123`, `$0.0123`, `$0.512`, `$1.20`: more decimals the smaller the amount."""
    if usd is None or not math.isfinite(usd) or usd <= 0:
        return DASH
    if usd >= 1:
        return f"${usd:.2f}"
    if usd >= 0.1:
        return f"${usd:.3f}"
    if usd >= 0.01:
        return f"${usd:.4f}"
    return f"${usd:.5f}"


def format_cost(usd: float, cost_known: bool) -> str:
    """Money, honest about models missing from the cost map: never show `$0` for a cost we do not know."""
    if cost_known:
        return format_money(usd)
    if usd <= 0:
        return "cost unknown"
    return f"≥{format_money(usd)}"


def format_duration(ms: float | None) -> str:
    """`N ms` under a second, `x.xx s` under ten, `x.x s` under a minute, `Nm x.xs` beyond."""
    if ms is None or not math.isfinite(ms) or ms < 0:
        return "0 ms"
    if ms < 1000:
        return f"{round_half_up(ms)} ms"
    if ms < 60_000:
        seconds = ms / 1000
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes = int(ms // 60_000)
    seconds = (ms % 60_000) / 1000
    return f"{minutes}m {seconds:.1f}s"


def format_age(seconds: float) -> str:
    """A short age for lists: `12s`, `5m`, `3h`, `2d`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86_400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86_400)}d"


def iso(ts: datetime | None, timespec: str = "seconds") -> str:
    """ISO-8601 with a Z for UTC: how timestamps appear in files meant for people."""
    if ts is None:
        return DASH
    text = ts.isoformat(timespec=timespec)
    return text.replace("+00:00", "Z")


def one_line(text: str, limit: int | None = None) -> str:
    """`text` with every run of whitespace (newlines too) made one space, cut to `limit` characters with "…"."""
    flat = " ".join(text.split())
    if limit is None or len(flat) <= limit:
        return flat
    return flat[: limit - 1] + "…"


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int) -> str:
    """The last `width` values as block characters scaled to the largest of them (zero shows as the lowest)."""
    shown = values[-width:] if width > 0 else []
    peak = max(shown, default=0.0)
    if peak <= 0:
        return SPARK_BLOCKS[0] * len(shown)
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[min(top, max(0, round(value / peak * top)))] for value in shown)
