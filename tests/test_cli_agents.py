"""`aw-tui agents`: the agent definitions in force for a workspace (project over user over built-in), the files
that were skipped with why, and `aw-tui agents show NAME` with the whole prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aw_tui.engine.agentdefs import SCOUT_PROMPT
from tests.cli_kit import assert_one_error_line, run_main

MY_SCOUT = """---
name: scout
description: Our own scout, slower but thorough
tools: read, grep
model: openai/gpt-5-mini
thinking: low
---
You are the project's scout.

Read everything under src/ first.
"""

HELPER = """---
name: helper
description: A user-wide helper
model: $smart
---
You help.
"""


@pytest.fixture
def workspace(tmp_path: Path, isolated_config: Path) -> Path:
    project = tmp_path / "project"
    agents = project / ".aw-tui" / "agents"
    agents.mkdir(parents=True)
    (agents / "scout.md").write_text(MY_SCOUT)
    (agents / "broken.md").write_text("---\nname: broken\ndescription: never closed\n")
    (agents / "tooly.md").write_text("---\nname: tooly\ndescription: x\ntools: read, teleport\n---\nHi.\n")
    user = isolated_config / "aw-tui" / "agents"
    user.mkdir(parents=True)
    (user / "helper.md").write_text(HELPER)
    (user / "scout.md").write_text(MY_SCOUT.replace("Our own scout", "The user's scout"))
    return project


def listing(capsys, workspace: Path) -> dict:
    code, out, err = run_main(capsys, "agents", "--workspace", str(workspace), "--json")
    assert code == 0, err
    return json.loads(out)


def test_the_listing_shows_every_definition_with_where_it_comes_from(capsys, workspace):
    data = listing(capsys, workspace)
    agents = {a["name"]: a for a in data["agents"]}
    assert sorted(agents) == ["helper", "reviewer", "scout", "worker"]
    # The project's scout wins over the user's and the built-in one.
    scout = agents["scout"]
    assert scout["source"] == "project" and scout["overrides"] == ["built-in", "user"]
    assert scout["path"] == str(workspace / ".aw-tui" / "agents" / "scout.md")
    assert (scout["model"], scout["thinking"], scout["tools"]) == ("openai/gpt-5-mini", "low", ["read", "grep"])
    assert scout["description"] == "Our own scout, slower but thorough"
    assert agents["helper"]["source"] == "user" and agents["helper"]["model"] == "$smart"
    assert agents["reviewer"]["source"] == "built-in" and agents["reviewer"]["path"] is None
    assert "prompt" not in scout
    problems = {Path(p["path"]).name: p["problem"] for p in data["problems"]}
    assert set(problems) == {"broken.md", "tooly.md"}
    assert "not closed" in problems["broken.md"] and "teleport" in problems["tooly.md"]


def test_the_text_listing_has_a_row_per_agent_then_the_malformed_files(capsys, workspace):
    code, out, err = run_main(capsys, "agents", "--workspace", str(workspace))
    assert code == 0 and err == ""
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "project (over built-in, user)" in rows["scout"] and "Our own scout" in rows["scout"]
    assert "read, grep" in rows["scout"] and "openai/gpt-5-mini" in rows["scout"]
    assert "built-in" in rows["worker"] and "$balanced" in rows["worker"]
    assert "user" in rows["helper"] and "all the caller has" in rows["helper"]
    tail = out[out.index("Skipped 2 malformed file(s)"):]
    assert f"{workspace / '.aw-tui' / 'agents' / 'broken.md'}: the frontmatter is not closed" in tail
    assert "tooly.md: unknown tool teleport" in tail


def test_without_project_definitions_the_built_ins_are_listed(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    data = listing(capsys, empty)
    assert [(a["name"], a["source"]) for a in data["agents"]] == [
        ("reviewer", "built-in"), ("scout", "built-in"), ("worker", "built-in")]  # fmt: skip
    assert data["problems"] == []


def test_show_prints_one_definition_with_its_whole_prompt(capsys, workspace):
    code, out, err = run_main(capsys, "agents", "show", "scout", "--workspace", str(workspace))
    assert code == 0, err
    assert "source: project, over built-in, user" in out and "thinking: low" in out
    assert out.rstrip().endswith("You are the project's scout.\n\nRead everything under src/ first.")
    # The option may come before the action too.
    code, out, err = run_main(capsys, "agents", "--workspace", str(workspace), "show", "helper")
    assert code == 0, err
    assert "model: $smart (the smart effort:" in out and out.rstrip().endswith("You help.")


def test_show_of_a_built_in_and_as_json(capsys, tmp_path):
    code, out, err = run_main(capsys, "agents", "show", "scout", "--workspace", str(tmp_path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == "built-in" and data["prompt"] == SCOUT_PROMPT and data["model"] == "$fast"


def test_an_unknown_name_is_one_line_listing_the_known_ones(capsys, workspace):
    code, out, err = run_main(capsys, "agents", "show", "nobody", "--workspace", str(workspace))
    assert code == 1 and out == ""
    assert assert_one_error_line(err) == ("aw-tui: unknown agent 'nobody'; available agents: helper, reviewer, "
                                          "scout, worker")  # fmt: skip


def test_a_missing_workspace_is_exit_1(capsys, tmp_path):
    code, out, err = run_main(capsys, "agents", "--workspace", str(tmp_path / "nowhere"))
    assert code == 1 and out == ""
    assert "does not exist" in assert_one_error_line(err)
