import math

import pytest

from aw_tui.model.formatting import counted, format_age, format_cost, format_duration, format_money, format_tokens


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (None, "–"),
        (0, "–"),
        (-5, "–"),
        (math.nan, "–"),
        (1, "1"),
        (999, "999"),
        (1000, "1,000"),
        (3200, "3,200"),
        (9999, "9,999"),
        (10_000, "10K"),
        (20_000, "20K"),
        (21_000, "21K"),
        (15_500, "16K"),  # halves round up, as JavaScript's Math.round
        (999_999, "1000K"),
        (1_000_000, "1.0M"),
        (1_200_000, "1.2M"),
    ],
)
def test_format_tokens_matches_the_seed(count, text):
    assert format_tokens(count) == text


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0, "–"),
        (-1, "–"),
        (None, "–"),
        (0.00123, "$0.00123"),
        (0.0123, "$0.0123"),
        (0.512, "$0.512"),
        (0.5, "$0.500"),
        (1.2, "$1.20"),
        (12.345, "$12.35"),
    ],
)
def test_format_money_matches_the_seed(usd, text):
    assert format_money(usd) == text


def test_unknown_cost_is_never_shown_as_zero():
    assert format_cost(0.0, cost_known=False) == "cost unknown"
    assert format_cost(0.5, cost_known=False) == "≥$0.500"
    assert format_cost(0.5, cost_known=True) == "$0.500"


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 ms"),
        (12.4, "12 ms"),
        (999, "999 ms"),
        (1000, "1.00 s"),
        (9_994, "9.99 s"),
        (12_340, "12.3 s"),
        (59_900, "59.9 s"),
        (60_000, "1m 0.0s"),
        (125_500, "2m 5.5s"),
        (-3, "0 ms"),
        (math.inf, "0 ms"),
    ],
)
def test_format_duration_matches_the_seed(ms, text):
    assert format_duration(ms) == text


def test_format_age():
    assert [format_age(s) for s in (5, 90, 7200, 200_000)] == ["5s", "1m", "2h", "2d"]


def test_sparkline_scales_to_the_peak_and_keeps_the_latest_values():
    from aw_tui.model.formatting import sparkline

    assert sparkline([0.0, 0.5, 1.0], 10) == "▁▅█"
    assert sparkline([9.0, 1.0, 0.0, 2.0], 3) == "▅▁█"  # the oldest value is dropped, the rest rescaled
    assert sparkline([0.0, 0.0], 5) == "▁▁"
    assert sparkline([], 5) == "" and sparkline([1.0], 0) == ""


@pytest.mark.parametrize(("count", "text"), [(0, "0 runs"), (1, "1 run"), (2, "2 runs"), (1000, "1000 runs")])
def test_counted_is_plural_unless_one(count, text):
    assert counted(count, "run") == text
