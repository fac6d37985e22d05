"""Time by role and model, operator wait, and the comparison of several runs' ledgers (model/ledger.py)."""

from datetime import datetime, timedelta, timezone

from pytest import approx

from aw_tui.model.ledger import (
    Ledger,
    LedgerStep,
    StepTime,
    Usage,
    compare_ledgers,
    format_ratio,
    operator_wait_ms,
    step_time_by_model,
    step_time_by_role,
    step_time_total,
)

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)


def step(n, role, model, usage, *, wall=1000.0, tool=0.0, external=0.0):
    return LedgerStep(
        step=n, role=role, phase="WORKER_RUN" if role == "worker" else "ANALYST_PLAN", model=model,
        thinking_level="high", usage=usage, wall_ms=wall, tool_ms=tool, tool_ms_by_name={}, tool_counts={},
        tool_errors=0, state_after=None, started_at=T0, finished_at=T0 + timedelta(milliseconds=wall),
        artifact=None, external_ms=external,
    )  # fmt: skip


def ledger_of(*steps: LedgerStep) -> Ledger:
    ledger = Ledger()
    for s in steps:
        ledger.steps.append(s)
        ledger.add_usage(s.role, s.model, s.usage)
    return ledger


def test_step_time_by_role_and_model():
    ledger = ledger_of(
        step(1, "worker", "w", Usage(input=1), wall=3000, tool=1000),
        step(2, "analyst", "a", Usage(input=1), wall=2000, external=500),
        step(3, "worker", "w2", Usage(input=1), wall=5000, tool=4000),
        step(4, "scout", "w", Usage(input=1), wall=100),
    )
    by_role = step_time_by_role(ledger)
    assert list(by_role) == ["analyst", "worker", "scout"]
    assert by_role["worker"] == StepTime(steps=2, wall_ms=8000, llm_ms=3000, tool_ms=5000, external_ms=0)
    assert by_role["analyst"].external_ms == 500
    assert by_role["worker"].average_wall_ms == 4000
    by_model = step_time_by_model(ledger)
    assert list(by_model) == ["a", "w", "w2"]
    assert by_model["w"].steps == 2 and by_model["w"].wall_ms == 3100
    total = step_time_total(ledger)
    assert total.steps == 4 and total.wall_ms == 10_100
    assert StepTime().average_wall_ms == 0.0


def test_operator_wait_counts_overlapping_gates_once_and_open_gates_until_the_end():
    minute = timedelta(minutes=1)
    waits = [
        (T0, T0 + 2 * minute),  # 0..2
        (T0 + minute, T0 + 3 * minute),  # overlaps: 0..3 in all
        (T0 + 10 * minute, None),  # open: until the end
    ]
    assert operator_wait_ms(waits, T0 + 12 * minute) == 5 * 60_000
    # An open gate with no known end adds nothing; a gate resolved after the end is cut at the end.
    assert operator_wait_ms(waits, None) == 3 * 60_000
    assert operator_wait_ms([(T0, T0 + 5 * minute)], T0 + minute) == 60_000
    assert operator_wait_ms([], T0) == 0


def test_comparison_rows_rank_the_lowest_best_and_the_highest_worst():
    cheap = ledger_of(step(1, "analyst", "a", Usage(input=100, output=10, cost=0.1), wall=1000),
                      step(2, "worker", "w", Usage(input=1000, output=50, cost=0.01), wall=9000))  # fmt: skip
    dear = ledger_of(step(1, "analyst", "a", Usage(input=300, output=30, cost=0.3), wall=2000))
    same = ledger_of(step(1, "analyst", "a", Usage(input=100, output=10, cost=0.1), wall=1000),
                     step(2, "scout", "s", Usage(input=5, cost=0.02), wall=500))  # fmt: skip
    rows = {row.key: row for row in compare_ledgers([cheap, dear, same], end_to_end_ms=[60_000, None, 30_000])}

    cost = rows["cost"]
    assert cost.values == approx((0.11, 0.3, 0.12))
    assert cost.best == {0} and cost.worst == {1}
    assert cost.ratio(1) == approx(0.3 / 0.11)

    # A role a run never used is None (shown as a dash), not zero, and is left out of the ranking.
    assert rows["cost:worker"].values == (0.01, None, None)
    assert rows["cost:worker"].best == frozenset() and rows["cost:worker"].worst == frozenset()
    assert rows["cost:scout"].values == (None, None, 0.02)
    assert rows["cost:analyst"].best == {0, 2} and rows["cost:analyst"].worst == {1}
    # Float noise is no difference: 0.1 + 0.02 equals 0.12.
    noisy = ledger_of(step(1, "worker", "w", Usage(cost=0.1)), step(2, "worker", "w", Usage(cost=0.02)))
    exact = ledger_of(step(1, "worker", "w", Usage(cost=0.12)))
    assert compare_ledgers([noisy, exact])[0].best == frozenset()

    assert rows["in"].values == (1100, 300, 105)
    assert rows["in:analyst"].values == (100, 300, 100)
    assert rows["steps"].values == (2, 1, 2) and rows["steps"].best == {1}
    assert rows["wall"].values == (10_000, 2000, 1500)
    assert rows["wall:worker"].values == (9000, None, None)
    assert rows["end_to_end"].values == (60_000, None, 30_000)
    assert rows["end_to_end"].ratio(1) is None and rows["end_to_end"].ratio(2) == 0.5
    assert "cache_write" not in rows  # nobody wrote to a cache
    order = [row.key for row in compare_ledgers([cheap, dear])]
    assert order[:3] == ["cost", "cost:analyst", "cost:worker"]


def test_equal_values_are_not_highlighted():
    one = ledger_of(step(1, "worker", "w", Usage(input=10, cost=0.5)))
    two = ledger_of(step(1, "worker", "w", Usage(input=10, cost=0.5)))
    rows = compare_ledgers([one, two])
    assert all(row.best == frozenset() and row.worst == frozenset() for row in rows)
    assert rows[0].ratio(1) == 1.0


def test_formatted_values_and_ratios():
    unknown = ledger_of(step(1, "worker", "local", Usage(input=20_000, cost_known=False), wall=1500))
    known = ledger_of(step(1, "worker", "w", Usage(input=5, cost=0.25), wall=0))
    rows = {row.key: row for row in compare_ledgers([unknown, known])}
    assert rows["cost"].formatted(0) == "cost unknown" and rows["cost"].formatted(1) == "$0.250"
    assert rows["in"].formatted(0) == "20K"
    assert rows["wall"].formatted(0) == "1.50 s" and rows["wall"].formatted(1) == "–"
    assert rows["steps"].formatted(1) == "1"
    assert [format_ratio(r) for r in (25.4, 1.84, 1.0, 0.5, 0.004, 0)] == ["×25", "×1.8", "×1.0", "×0.50", "×<0.01", "×0"]
