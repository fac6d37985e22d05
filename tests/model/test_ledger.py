from datetime import datetime, timedelta, timezone

from aw_tui.model.ledger import Ledger, LedgerCompaction, LedgerStep, Usage, timing_summary, token_table_rows, tool_category

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)


def step(n, role, model, usage, *, wall=1000.0, tool=0.0, tools=None, counts=None, errors=0):
    return LedgerStep(
        step=n, role=role, phase="WORKER_RUN" if role == "worker" else "ANALYST_PLAN", model=model,
        thinking_level="high", usage=usage, wall_ms=wall, tool_ms=tool, tool_ms_by_name=tools or {},
        tool_counts=counts or {}, tool_errors=errors, state_after="WORKER_RUNNING", started_at=T0,
        finished_at=T0 + timedelta(milliseconds=wall), artifact=f"steps/{n:04d}.md",
    )


def seed_case_ledger():
    """reference/seeds.md §6.2 case 16."""
    ledger = Ledger()
    analyst = Usage(input=1000, output=200, cost=0.5)
    worker = Usage(input=20_000, output=3000, cost=0.0123)
    ledger.steps += [step(1, "analyst", "m1", analyst), step(2, "worker", "m2", worker)]
    ledger.add_usage("analyst", "m1", analyst)
    ledger.add_usage("worker", "m2", worker)
    return ledger


def test_token_table_rows_match_the_seed_case():
    rows = token_table_rows(seed_case_ledger())
    assert rows == [
        ("Analyst", "m1", "1,000", "200", "–", "–", "$0.500"),
        ("Worker", "m2", "20K", "3,000", "–", "–", "$0.0123"),
        ("Total", "", "21K", "3,200", "–", "–", "$0.512"),
    ]


def test_totals_by_model_role_and_pair():
    ledger = seed_case_ledger()
    ledger.add_usage("analyst", "m2", Usage(input=5, output=1, cost=0.001))
    assert ledger.by_model()["m2"] == Usage(input=20_005, output=3001, cost=0.0123 + 0.001)
    assert list(ledger.by_role()) == ["analyst", "worker"]
    assert ledger.by_role()["analyst"].input == 1005
    assert [(r, m) for r, m, _ in ledger.by_role_model()] == [("analyst", "m1"), ("analyst", "m2"), ("worker", "m2")]


def test_other_roles_sort_after_analyst_and_worker():
    ledger = Ledger()
    for role in ("scout", "worker", "delegate", "analyst"):
        ledger.add_usage(role, "m", Usage(input=1))
    assert [row[0] for row in token_table_rows(ledger)] == ["Analyst", "Worker", "Delegate", "Scout", "Total"]


def test_unknown_cost_propagates_to_totals():
    ledger = Ledger()
    ledger.add_usage("worker", "local/llama", Usage(input=10, cost_known=False))
    ledger.add_usage("analyst", "m1", Usage(input=10, cost=0.5))
    assert ledger.total.cost_known is False
    assert token_table_rows(ledger)[-1][-1] == "≥$0.500"
    assert token_table_rows(ledger)[1][-1] == "cost unknown"


def test_ledger_json_keeps_the_seed_shape_and_cumulative_counts():
    ledger = seed_case_ledger()
    extra = Usage(input=500, output=50, cost=0.1)
    ledger.steps.append(step(3, "analyst", "m1", extra))
    ledger.add_usage("analyst", "m1", extra)
    data = ledger.to_json({"task_id": "t", "task_title": "T", "artifact_dir": "d", "started_at": "x", "config": {}})
    assert data["totals"]["m1"] == {
        "in": 1500, "out": 250, "cache_read": 0, "cache_write": 0, "cost": 0.6, "reasoning": 0, "cost_known": True,
    }
    assert [s["cumulative_model_in"] for s in data["steps"]] == [1000, 20_000, 1500]
    assert data["steps"][0]["role"] == "ANALYST"
    assert data["steps"][0]["llm_ms"] == 1000.0
    assert data["compactions"] == []


def test_timing_summary_rows():
    ledger = Ledger()
    ledger.steps.append(step(1, "analyst", "m1", Usage(), wall=4000))
    ledger.steps.append(
        step(2, "worker", "m2", Usage(), wall=10_000, tool=6000, tools={"bash": 5000, "read": 1000},
             counts={"bash": 2, "read": 3}, errors=1)
    )
    ledger.compactions.append(LedgerCompaction(T0, T0, "m1", "ANALYST_PLAN", "analyst", 2000, 115_200, "failed", "x"))
    summary = timing_summary(ledger, T0, T0 + timedelta(seconds=20))
    assert summary.rows() == [
        ("End-to-end", "20.0 s", "100%"),
        ("Analyst LLM/review", "4.00 s", "20%"),
        ("Worker LLM/implementation", "4.00 s", "20%"),
        ("Shell/commands", "5.00 s", "25%"),
        ("File reads/search", "1.00 s", "5%"),
        ("Compaction (1 run, 1 failed)", "2.00 s", "10%"),
    ]
    assert summary.tool_calls_line() == "read×3, bash×2; tool errors: 1"


def test_tool_categories_follow_the_seed():
    assert tool_category("bash") == "Shell/commands"
    assert tool_category("grep") == "File reads/search"
    assert tool_category("edit") == "File edits/writes"
    assert tool_category("web_search") == "Web/search"
    assert tool_category("pdf_extract") == "PDF tools"
    assert tool_category("delegate") == "Other tools"
