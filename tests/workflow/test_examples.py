"""The examples in examples/ run offline through the real CLI (`python -m aw_tui workflow run`), as a user would
run them from a checkout: the right agents in the right phases, results built from what the agents said, and a
resume answered from the journal alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import aw_tui
from aw_tui.engine.workflow import JOURNAL_FILE, RESULT_FILE
from aw_tui.model.state import RunState
from aw_tui.store.run import open_run

REPO = Path(aw_tui.__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DEEP = EXAMPLES / "deep_research.py"
DEEP_SCRIPT = EXAMPLES / "deep_research.script.json"
AUDIT = EXAMPLES / "package_audit.py"
AUDIT_SCRIPT = EXAMPLES / "package_audit.script.json"
SAMPLE = EXAMPLES / "sample_monorepo"


def workflow_run(cwd: Path, config_home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m aw_tui workflow run ARGV` in `cwd`, with empty config dirs."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(config_home),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "aw_tui", "workflow", "run", *argv], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def the_run(runs_root: Path) -> Path:
    runs = [p for p in runs_root.iterdir() if p.name.startswith("aw_")]
    assert len(runs) == 1, runs
    return runs[0]


def state_of(run_dir: Path) -> RunState:
    return open_run(run_dir, use_checkpoint=False).state


def result_of(run_dir: Path) -> Any:
    return json.loads((run_dir / "artifacts" / RESULT_FILE).read_text(encoding="utf-8"))["result"]


def model_calls(run_dir: Path) -> int:
    """llm.attempt events: one for every try at a model call, whoever made it."""
    with open(run_dir / "events.jsonl", encoding="utf-8") as events:
        return sum(1 for line in events if json.loads(line)["type"] == "llm.attempt")


def agents_by_phase(state: RunState) -> dict[str, list[str]]:
    """Phase title -> the labels of its agents, phases in tree order."""
    return {state.phases[p].title: [state.agents[a].label for a in state.phases[p].agents] for p in state.root_phases}


def resume_copy(run_dir: Path, tmp_path: Path, config_home: Path, workflow: Path, *extra: str) -> tuple[Path, str]:
    """Copy a finished run, run `workflow` again in the copy with --resume; (the copy, stdout)."""
    copy = tmp_path / "resumed" / run_dir.name
    shutil.copytree(run_dir, copy)
    done = workflow_run(tmp_path, config_home, str(workflow), "--resume", str(copy), *extra)
    return copy, done.stdout


def assert_resumed_from_the_journal_alone(original: Path, resumed: Path, calls: int, out: str) -> None:
    before = state_of(original)
    after = state_of(resumed)
    assert after.state == "FINISHED"
    assert f"FINISHED: {calls} agent call(s) ({calls} from the journal)" in out, out
    assert after.workflow_stats["agent_calls"] == calls
    assert after.workflow_stats["cached_calls"] == calls
    assert after.workflow_stats["output_tokens"] == 0
    assert model_calls(resumed) == model_calls(original)  # no model call was made
    assert sorted(after.agents) == sorted(before.agents)  # the same agents, none new
    assert result_of(resumed) == result_of(original)


# --- deep research ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """One offline run of the deep-research example, shared by the tests below (it takes a few seconds).

    The script is the shipped one with one check added: the synthesis agent's prompt must list the claim the
    verifiers dropped by majority among the rejected ones, with a verifier's objection."""
    base = tmp_path_factory.mktemp("deep")
    config_home = tmp_path_factory.mktemp("deep-config")
    script = json.loads(DEEP_SCRIPT.read_text(encoding="utf-8"))
    script["roles"]["synthesize"][0]["expect_contains"] = (
        "- SQLite cannot handle more than a few hundred writes per second. (objection: Outdated")
    (base / "script.json").write_text(json.dumps(script), encoding="utf-8")
    done = workflow_run(base, config_home, str(DEEP), "--model", "scripted", "--script", str(base / "script.json"),
                        "--runs-root", str(base / "runs"))  # fmt: skip
    return the_run(base / "runs"), done.stdout, config_home


def test_deep_research_has_the_seeds_shape_26_agents_in_four_phases(deep_run):
    run_dir, out, _ = deep_run
    assert "FINISHED: 26 agent call(s), 3,390 output tokens" in out, out
    state = state_of(run_dir)
    assert state.kind == "workflow" and state.state == "FINISHED" and state.title == "Deep research"
    stats = state.workflow_stats
    assert (stats["agent_calls"], stats["cached_calls"], stats["failed_calls"], stats["refused_calls"]) == (26, 0, 0, 0)
    assert model_calls(run_dir) == 26  # every agent answered on its first try
    phases = agents_by_phase(state)
    assert list(phases) == ["Scope", "Research", "Verify", "Synthesize"]
    assert all(state.phases[p].status == "done" for p in state.root_phases)
    assert phases["Scope"] == ["scope"]
    assert sorted(phases["Research"]) == sorted(
        [f"research {i}: {t}" for i, t in enumerate(
            ["Write concurrency", "Operations and durability", "Mitigations and alternatives"], 1)]
        + [f"claims {i}: {t}" for i, t in enumerate(
            ["Write concurrency", "Operations and durability", "Mitigations and alternatives"], 1)])  # fmt: skip
    assert sorted(phases["Verify"]) == sorted(f"verify C{c} vote {k}" for c in range(1, 7) for k in range(1, 4))
    assert phases["Synthesize"] == ["synthesize"]
    assert len(state.agents) == 26 and all(a.status == "done" for a in state.agents.values())
    assert sum(len(labels) for labels in phases.values()) == 1 + 3 + 3 + 6 * 3 + 1


def test_deep_research_keeps_the_claims_a_majority_kept_and_reports_them(deep_run):
    run_dir, _, _ = deep_run
    logs = [log.message for log in state_of(run_dir).logs]
    verdicts = {m.split()[0]: m.split()[1:3] for m in logs if m[:1] == "C" and m[1:2].isdigit()}
    assert verdicts == {
        "C1": ["confirmed", "(3/3"], "C2": ["confirmed", "(3/3"], "C3": ["confirmed", "(2/3"],
        "C4": ["dropped", "(1/3"], "C5": ["confirmed", "(3/3"], "C6": ["dropped", "(0/3"],
    }  # fmt: skip
    assert "verify: 4 of 6 claim(s) confirmed" in logs
    report = result_of(run_dir)
    assert isinstance(report, str) and report.startswith("# ")
    for confirmed in ("one write transaction at a time", "readers and the writer do not block each other",
                      "same machine", "BEGIN IMMEDIATE"):  # fmt: skip
        assert confirmed in report
    misconceptions = report.split("## Common misconceptions", 1)[1]
    assert "few hundred writes per second" in misconceptions and "BEGIN CONCURRENT" in misconceptions


def test_deep_research_resumed_answers_all_26_calls_from_the_journal(deep_run, tmp_path):
    run_dir, _, config_home = deep_run
    assert len((run_dir / "artifacts" / JOURNAL_FILE).read_text().splitlines()) == 26
    resumed, out = resume_copy(run_dir, tmp_path, config_home, DEEP)
    assert_resumed_from_the_journal_alone(run_dir, resumed, 26, out)


# --- package audit -----------------------------------------------------------------------------------------------


def run_audit(tmp_path: Path, config_home: Path, workspace: Path = SAMPLE) -> tuple[Path, str]:
    done = workflow_run(tmp_path, config_home, str(AUDIT), "--workspace", str(workspace), "--model", "scripted",
                        "--script", str(AUDIT_SCRIPT), "--runs-root", str(tmp_path / "runs"))  # fmt: skip
    return the_run(tmp_path / "runs"), done.stdout


def test_package_audit_reads_each_package_and_ranks_the_planted_issues_first(tmp_path, isolated_config):
    run_dir, out = run_audit(tmp_path, isolated_config)
    assert "FINISHED: 4 agent call(s)" in out, out
    state = state_of(run_dir)
    assert state.state == "FINISHED" and state.title == "Package audit"
    assert state.workflow_stats["agent_calls"] == 4 and state.workflow_stats["failed_calls"] == 0
    phases = agents_by_phase(state)
    # docs/ has neither __init__.py nor pyproject.toml: not a package. Discover runs no agent.
    assert list(phases) == ["Discover", "Audit", "Summarize"]
    assert phases["Discover"] == [] and phases["Summarize"] == ["rank findings"]
    assert sorted(phases["Audit"]) == ["audit:billing", "audit:ingest", "audit:notifier"]
    assert all(state.phases[p].status == "done" for p in state.root_phases)
    assert "discover: 3 package(s) under .: billing, ingest, notifier" in [log.message for log in state.logs]
    # The audit agents really read the sample's files with the read tool (and the script's expect_contains made
    # each answer wait for the planted problem to be in what the tool returned).
    audit_phase = next(p for p in state.phases.values() if p.title == "Audit")
    audits = [state.agents[a] for a in audit_phase.agents]
    assert all(a.tool_counts == {"read": 2} and a.tool_errors == 0 for a in audits), [a.tool_counts for a in audits]
    result = result_of(run_dir)
    ranked = result["ranked"]
    assert [r["rank"] for r in ranked] == list(range(1, 7))
    where = [(r["file"], r["line"], r["severity"]) for r in ranked]
    assert where[:3] == [("billing/gateway.py", 7, "high"), ("notifier/send.py", 12, "high"),
                         ("ingest/parse.py", 14, "medium")]  # fmt: skip
    assert Counter(r["package"] for r in ranked) == {"billing": 2, "ingest": 2, "notifier": 2}
    planted = {"billing/gateway.py": "API_TOKEN", "notifier/send.py": "while True", "ingest/parse.py": "except:"}
    for file, line, _ in where[:3]:
        assert planted[file] in (SAMPLE / file).read_text().splitlines()[line - 1]  # the cited line is the one


def test_package_audit_resumed_answers_all_4_calls_from_the_journal(tmp_path, isolated_config):
    run_dir, _ = run_audit(tmp_path, isolated_config)
    resumed, out = resume_copy(run_dir, tmp_path, isolated_config, AUDIT)
    assert_resumed_from_the_journal_alone(run_dir, resumed, 4, out)


def test_package_audit_answers_from_what_the_read_tool_returned(tmp_path, isolated_config):
    # Fix the bare except in a copy: the scripted ingest auditor expects to have read "except:", so it fails, the
    # workflow carries on without that package, and the ranking leaves the ids it no longer knows out.
    sample = tmp_path / "sample"
    shutil.copytree(SAMPLE, sample)
    parse = sample / "ingest" / "parse.py"
    parse.write_text(parse.read_text().replace("except:", "except (KeyError, ArithmeticError):"))
    run_dir, _ = run_audit(tmp_path, isolated_config, workspace=sample)
    state = state_of(run_dir)
    assert state.state == "FINISHED" and state.workflow_stats["failed_calls"] == 1
    assert "audit:ingest gave no result; its package is left out of the ranking" in [m.message for m in state.logs]
    assert [r["package"] for r in result_of(run_dir)["ranked"]] == ["billing", "notifier", "billing", "notifier"]
