"""Agent definitions: the frontmatter format, malformed files (reported with their path, skipped), where
definitions come from and which one wins, the built-ins, and the seed's portable cases (reference/seeds.md §6.4,
items 27 and 28)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aw_tui.engine.agentdefs import (
    BUILTIN_AGENTS,
    DefinitionError,
    UnknownAgent,
    load_agent_definitions,
    parse_connector,
    parse_definition,
    parse_list,
    project_agents_dir,
    user_agents_dir,
)
from aw_tui.model import events as ev
from tests.subagents.kit import make_runtime


def definition(name: str = "helper", **fields: str) -> str:
    head = {"name": name, "description": f"the {name} agent", **fields}
    lines = "".join(f"{key}: {value}\n" for key, value in head.items())
    return f"---\n{lines}---\nYou are {name}.\n"


def write(directory: Path, filename: str, text: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- the format ------------------------------------------------------------------------------------------------


def test_every_field_is_read():
    text = (
        "---\n"
        "# a comment line\n"
        "name: finder\n"
        'description: "Finds things: fast"\n'
        "tools: [read, 'grep', \"find\"]\n"
        "model: openai/gpt-5-mini\n"
        "thinking: Low\n"
        'connector: "## Found\\n\\n{output}"\n'
        "subagent_agents: scout\n"  # another tool's key: ignored, not an error
        "---\n\nYou find things.\n\nAlways cite paths.\n"
    )
    d = parse_definition(text, path=Path("/p/finder.md"), source="project")
    assert (d.name, d.description) == ("finder", "Finds things: fast")
    assert d.tools == ("read", "grep", "find")
    assert (d.model, d.thinking, d.effort) == ("openai/gpt-5-mini", "low", None)
    assert d.connector == "## Found\n\n{output}"
    assert d.prompt == "You find things.\n\nAlways cite paths."
    assert (d.source, d.where) == ("project", "/p/finder.md")


def test_defaults_inherit_and_tiers():
    d = parse_definition(definition())
    assert (d.tools, d.model, d.thinking, d.connector) == (None, None, None, None)
    inherit = parse_definition(definition(model="Inherit", thinking="inherit", tools="none"))
    assert (inherit.model, inherit.thinking, inherit.tools) == (None, None, ())
    tier = parse_definition(definition(model="$Smart", tools="read, safe_bash, read"))
    assert (tier.model, tier.effort) == ("$smart", "smart")
    assert tier.tools == ("read", "bash")  # pi's safe_bash is our bash; repeats dropped


def test_crlf_files_are_read_like_lf_files():
    # The seed's LF-only pattern skipped CRLF files without a word; here they simply work.
    d = parse_definition(definition(tools="read, ls").replace("\n", "\r\n"))
    assert (d.name, d.tools, d.prompt) == ("helper", ("read", "ls"), "You are helper.")


def test_lists():
    assert parse_list("a, b ,c,") == ["a", "b", "c"]
    assert parse_list('["a", \'b\']') == ["a", "b"]
    assert parse_list("[]") == []


def test_connector_escapes_as_in_the_seed():
    # seeds.md §6.4 item 27 (the file text, after the JS string escapes of the seed's test are undone)
    assert parse_connector('"## Key findings\\n\\n{output}"') == "## Key findings\n\n{output}"
    assert parse_connector('"C:\\\\nested\\n{output}"') == "C:\\nested\n{output}"
    assert parse_connector('"100\\% done\\n{output}"') == "100\\% done\n{output}"
    assert parse_connector("'tab\\there \\\"q\\\"'") == 'tab\there "q"'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("name: x\ndescription: y\n", "no frontmatter"),
        ("---\nname: x\ndescription: y\n", "not closed"),
        (definition().replace("name: helper\n", ""), "`name` is missing"),
        (definition().replace("description: the helper agent\n", ""), "`description` is missing"),
        (definition(name="two words"), "may hold only letters"),
        (definition(tools="read, web_search"), "unknown tool web_search"),
        (definition(thinking="huge"), "thinking 'huge' is not one of"),
        (definition(model="$cheap"), "names no effort"),
        (definition(model="gpt 5"), "contains spaces"),
        ("---\nname: a\nname: b\ndescription: d\n---\n", "line 3: 'name' is given twice"),
        ("---\nname: a\ndescription: d\ntools:\n  - read\n---\n", "line 5: nested or continued values"),
        ("---\nname: a\njust words\n---\n", "line 3: expected `key: value`"),
    ],
)
def test_malformed_definitions_say_why(text, reason):
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    assert reason in str(caught.value)


# --- finding them ----------------------------------------------------------------------------------------------


def test_builtins():
    catalog = load_agent_definitions(user_dir=Path("/nonexistent"))
    assert catalog.names() == ["reviewer", "scout", "worker"]
    scout = catalog.require("scout")
    assert scout.tools == ("read", "grep", "find", "ls")  # read-only reconnaissance
    assert scout.effort == "fast" and scout.source == "builtin" and scout.prompt
    assert "delegate" in catalog.require("worker").tools
    assert {"write", "edit"}.isdisjoint(catalog.require("reviewer").tools)
    assert all(d.description and d.prompt for d in BUILTIN_AGENTS)


def test_project_wins_over_user_which_wins_over_builtin(tmp_path, isolated_config):
    user = user_agents_dir()
    assert user == isolated_config / "aw-tui" / "agents"  # the config dir of aw_tui.store.config
    write(user, "scout.md", definition("scout", model="user/model"))
    write(user, "shared.md", definition("shared", model="user/model"))
    write(user, "mine.md", definition("mine"))
    workspace = tmp_path / "proj"
    write(workspace / ".aw-tui" / "agents", "shared.md", definition("shared", model="project/model"))
    catalog = load_agent_definitions(workspace)
    assert catalog.require("scout").model == "user/model"
    assert catalog.require("scout").source == "user"
    assert catalog.require("shared").model == "project/model"
    assert catalog.require("shared").source == "project"
    assert catalog.require("mine").source == "user"
    assert catalog.require("worker").source == "builtin"
    assert catalog.problems == []


def test_the_project_dir_is_found_from_a_subdirectory(tmp_path):
    project = tmp_path / "proj"
    write(project / ".aw-tui" / "agents", "deep.md", definition("deep"))
    sub = project / "src" / "pkg"
    sub.mkdir(parents=True)
    assert project_agents_dir(sub) == (project / ".aw-tui" / "agents").resolve()
    assert load_agent_definitions(sub).require("deep").source == "project"


def test_malformed_files_are_reported_with_their_path_and_skipped(tmp_path):
    agents = tmp_path / "proj" / ".aw-tui" / "agents"
    good = write(agents, "a_good.md", definition("good"))
    bad = write(agents, "b_bad.md", definition("bad", tools="read, teleport"))
    binary = write(agents, "c_binary.md", b"---\nname: \xff\n---\n")
    again = write(agents, "d_again.md", definition("good"))
    write(agents, "notes.txt", "not a definition, not looked at")
    catalog = load_agent_definitions(tmp_path / "proj")
    assert "good" in catalog.agents and "bad" not in catalog.agents
    assert catalog.require("good").path == good
    reported = {p.path: str(p) for p in catalog.problems}
    assert set(reported) == {bad, binary, again}
    assert reported[bad] == f"agent definition {bad}: unknown tool teleport; the tools are read, write, edit, bash, " \
                            "grep, find, ls, delegate; skipped"
    assert "not valid UTF-8" in reported[binary]
    assert f"already defined in {good}" in reported[again]


def test_a_runtime_reports_skipped_files_as_warning_log_events_once(tmp_path):
    bad = write(tmp_path / "ws" / ".aw-tui" / "agents", "bad.md", "no frontmatter here\n")
    runtime, recorder = make_runtime(tmp_path)
    assert "scout" in runtime.catalog.agents
    assert "scout" in runtime.derive(parent="x").catalog.agents  # derived runtimes share the catalog
    logs = recorder.of_type(ev.Log)
    assert len(logs) == 1
    assert logs[0].level == "warning"
    assert logs[0].message.startswith(f"agent definition {bad}: no frontmatter")


def test_unknown_agents_are_named_with_the_available_ones():
    # seeds.md §6.4 item 28: validateAgents
    catalog = load_agent_definitions(user_dir=Path("/nonexistent"))
    assert catalog.first_unknown(["scout", "nonexistent", "worker"]) == "nonexistent"
    assert catalog.first_unknown([]) is None
    with pytest.raises(UnknownAgent) as caught:
        catalog.require("ghost")
    assert str(caught.value) == "unknown agent 'ghost'; available agents: reviewer, scout, worker"
