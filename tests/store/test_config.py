"""The user and project config files: where they are, how they layer, how they fail, how they are written."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from aw_tui.model.settings import Settings, valid_keys
from aw_tui.store import config as config_module
from aw_tui.store.config import (
    ConfigError,
    LoadedConfig,
    describe,
    find_project_root,
    load_config,
    project_config_path,
    read_layer,
    set_config_value,
    user_config_path,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home and XDG config dir, so no test can read or write the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return home


@pytest.fixture
def user_file(home: Path, tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "aw-tui" / "config.toml"


@pytest.fixture
def project(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root holding .aw-tui/, and the process cwd inside it."""
    root = tmp_path / "proj"
    (root / ".aw-tui").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def bare_dir(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no .aw-tui anywhere above it, as cwd."""
    directory = tmp_path / "bare"
    directory.mkdir()
    if find_project_root(directory) is not None:
        pytest.skip(f"an ancestor of {directory} holds .aw-tui/; the no-project case cannot be tested here")
    monkeypatch.chdir(directory)
    return directory


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def project_file(root: Path) -> Path:
    return root / ".aw-tui" / "config.toml"


# --- where the files are ----------------------------------------------------------------------------------------


def test_user_path_follows_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert user_config_path() == tmp_path / "cfg" / "aw-tui" / "config.toml"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])
def test_user_path_defaults_to_dot_config_in_home(tmp_path, monkeypatch, xdg):
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert user_config_path() == tmp_path / "h" / ".config" / "aw-tui" / "config.toml"


def test_project_root_found_by_walking_up(project):
    deep = project / "src" / "pkg" / "deeper"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == project
    assert project_config_path(deep) == project / ".aw-tui" / "config.toml"


def test_nearest_project_root_wins(project):
    inner = project / "sub"
    (inner / ".aw-tui").mkdir(parents=True)
    (inner / "x").mkdir()
    assert find_project_root(inner / "x") == inner
    assert find_project_root(project / ".aw-tui") == project


def test_an_aw_tui_file_is_not_a_project_marker(bare_dir):
    (bare_dir / ".aw-tui").write_text("not a directory")
    assert find_project_root(bare_dir) is None


def test_without_a_project_the_file_would_go_in_the_start_directory(bare_dir):
    nested = bare_dir / "a" / "b"
    nested.mkdir(parents=True)
    assert find_project_root(nested) is None
    assert project_config_path(nested) == nested / ".aw-tui" / "config.toml"


def test_default_start_is_cwd(project):
    sub = project / "sub"
    sub.mkdir()
    os.chdir(sub)  # monkeypatch.chdir in the fixture restores the original cwd afterwards
    assert find_project_root() == project
    assert load_config().project_root == project


# --- loading ----------------------------------------------------------------------------------------------------


def test_no_files_gives_defaults(bare_dir, user_file):
    loaded = load_config(bare_dir)
    assert loaded.settings == Settings()
    assert loaded.user_path == user_file
    assert loaded.project_path == bare_dir / ".aw-tui" / "config.toml"
    assert (loaded.user_exists, loaded.project_exists) == (False, False)
    assert loaded.project_root == bare_dir
    assert loaded.cwd == bare_dir
    assert not (bare_dir / ".aw-tui").exists()  # loading never creates anything


def test_project_overrides_user_key_by_key(project, user_file):
    write(
        user_file,
        """
[analyst]
model = "user/analyst"
thinking = "low"

[worker]
context_limit = 64000

[budget]
max_cost_usd = 5
""",
    )
    write(
        project_file(project),
        """
[analyst]
thinking = "xhigh"

[budget]
max_tokens = 1000
""",
    )
    loaded = load_config(project)
    assert (loaded.user_exists, loaded.project_exists) == (True, True)
    settings = loaded.settings
    assert settings.analyst.model == "user/analyst"  # only the user set it
    assert settings.analyst.thinking == "xhigh"  # both set it: the project wins
    assert settings.worker.context_limit == 64000
    assert settings.worker.model == "openai/gpt-5-mini"  # nobody set it
    assert settings.budget.max_cost_usd == 5.0
    assert settings.budget.max_tokens == 1000
    assert loaded.source_of("analyst.model") == "user"
    assert loaded.source_of("analyst.thinking") == "project"
    assert loaded.source_of("budget.max_tokens") == "project"
    assert loaded.source_of("worker.model") == "default"


def test_project_list_replaces_user_list(project, user_file):
    write(user_file, '[runs]\nroots = ["/u1", "/u2"]\n')
    write(project_file(project), '[runs]\nroots = ["/p"]\n')
    assert load_config(project).settings.runs.roots == ["/p"]


def test_loading_from_a_subdirectory_uses_the_project_file(project):
    write(project_file(project), '[worker]\nmodel = "local/w"\n')
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    loaded = load_config(sub)
    assert loaded.settings.worker.model == "local/w"
    assert loaded.project_root == project
    assert loaded.cwd == sub


def test_describe_lists_every_key_with_text_and_source(project, user_file):
    write(user_file, '[analyst]\nmodel = "u/a"\n[runs]\nroots = ["a", "b"]\n')
    write(project_file(project), "[budget]\nmax_cost_usd = 2.5\n")
    rows = describe(load_config(project))
    assert [key for key, _, _ in rows][:3] == ["analyst.model", "analyst.thinking", "analyst.context_limit"]
    by_key = {key: (text, source) for key, text, source in rows}
    assert len(by_key) == len(valid_keys())
    assert by_key["analyst.model"] == ("u/a", "user")
    assert by_key["analyst.thinking"] == ("high", "default")
    assert by_key["analyst.api_base"] == ("none", "default")
    assert by_key["runs.roots"] == ('["a", "b"]', "user")
    assert by_key["budget.max_cost_usd"] == ("2.5", "project")
    assert by_key["limits.max_autonomous_hours"] == ("24.0", "default")


# --- runs roots -------------------------------------------------------------------------------------------------


def test_default_root_is_relative_to_cwd(project):
    sub = project / "sub"
    sub.mkdir()
    loaded = load_config(sub)
    assert loaded.settings.runs.roots == ["./tmp"]
    assert loaded.runs_roots() == [(sub / "tmp").resolve()]


def test_project_roots_are_relative_to_the_project_root(project):
    write(project_file(project), '[runs]\nroots = ["runs", "../shared", "/abs/runs"]\n')
    sub = project / "deep" / "er"
    sub.mkdir(parents=True)
    loaded = load_config(sub)
    assert loaded.settings.runs.roots == ["runs", "../shared", "/abs/runs"]  # as written
    assert loaded.runs_roots() == [
        (project / "runs").resolve(),
        (project.parent / "shared").resolve(),
        Path("/abs/runs"),
    ]


def test_user_roots_are_relative_to_cwd_and_expand_home(project, user_file, home):
    write(user_file, '[runs]\nroots = ["mine", "~/aw-runs"]\n')
    sub = project / "sub"
    sub.mkdir()
    assert load_config(sub).runs_roots() == [(sub / "mine").resolve(), (home / "aw-runs").resolve()]


def test_project_roots_win_over_user_roots_for_resolution_too(project, user_file):
    write(user_file, '[runs]\nroots = ["from-user"]\n')
    write(project_file(project), '[runs]\nroots = ["from-project"]\n')
    sub = project / "sub"
    sub.mkdir()
    assert load_config(sub).runs_roots() == [(project / "from-project").resolve()]


# --- bad input --------------------------------------------------------------------------------------------------


def load_error(cwd: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(cwd)
    return str(caught.value)


def test_bad_value_in_user_file_is_blamed_on_the_user_file(project, user_file):
    write(user_file, '[analyst]\nthinking = "huge"\n')
    write(project_file(project), '[analyst]\nmodel = "fine"\n')
    message = load_error(project)
    assert message == (
        f"{user_file}: analyst.thinking: must be one of off, minimal, low, medium, high, xhigh (got 'huge')"
    )
    assert str(project_file(project)) not in message


def test_bad_value_in_project_file_is_blamed_on_the_project_file(project, user_file):
    write(user_file, '[analyst]\nthinking = "low"\n')
    write(project_file(project), "[analyst]\ncontext_limit = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(project)
    assert str(caught.value) == f"{project_file(project)}: analyst.context_limit: must be greater than 0 (got -1)"
    assert caught.value.path == project_file(project)
    assert [problem.key for problem in caught.value.problems] == ["analyst.context_limit"]


def test_project_value_that_would_hide_a_bad_user_value_still_reports_the_user_file(project, user_file):
    # Each file must be valid alone: a project override does not excuse a broken user file.
    write(user_file, '[worker]\nthinking = "huge"\n')
    write(project_file(project), '[worker]\nthinking = "low"\n')
    assert load_error(project).startswith(f"{user_file}: worker.thinking: must be one of")


def test_toml_syntax_error_names_file_and_line(project):
    path = write(project_file(project), '[analyst]\nmodel = "ok"\nthinking = \n')
    message = load_error(project)
    assert message.startswith(f"{path}: line 3, column ")
    assert "invalid TOML" in message


def test_duplicate_key_is_a_syntax_error(project, user_file):
    write(user_file, '[analyst]\nmodel = "a"\nmodel = "b"\n')
    message = load_error(project)
    assert message.startswith(f"{user_file}: line 3")
    assert "invalid TOML" in message


def test_unknown_key_is_named_with_the_valid_keys(project):
    path = write(project_file(project), '[analyst]\nmodle = "x"\n')
    message = load_error(project)
    assert message.startswith(f"{path}: unknown key 'analyst.modle'; valid keys: analyst.model, analyst.thinking")
    assert "limits.max_autonomous_hours" in message
    assert "did you mean 'analyst.model'?" in message


def test_unknown_section(project, user_file):
    write(user_file, '[analysts]\nmodel = "x"\n')
    assert load_error(project).startswith(f"{user_file}: unknown key 'analysts'; valid keys: ")


def test_wrong_type(project):
    path = write(project_file(project), "[worker]\ncontext_limit = \"big\"\n")
    assert load_error(project) == f"{path}: worker.context_limit: must be an integer (got 'big')"


def test_section_that_is_not_a_table(project):
    path = write(project_file(project), 'budget = "lots"\n')
    assert load_error(project) == f"{path}: budget: must be a table (got 'lots')"


def test_roots_not_a_list(project):
    path = write(project_file(project), '[runs]\nroots = "./runs"\n')
    assert load_error(project) == f"{path}: runs.roots: must be a list (got './runs')"


def test_every_problem_gets_its_own_line_naming_the_file(project):
    path = write(project_file(project), '[analyst]\nthinking = "huge"\ncontext_limit = 0\n')
    lines = load_error(project).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: analyst.") for line in lines)


def test_unreadable_file(project, monkeypatch):
    path = write(project_file(project), '[analyst]\nmodel = "x"\n')
    real_read_bytes = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert load_error(project) == f"{path}: cannot be read: permission denied"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_for_real(project, user_file):
    write(user_file, "")
    user_file.chmod(0)
    try:
        assert load_error(project) == f"{user_file}: cannot be read: permission denied"
    finally:
        user_file.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_a_directory_where_the_file_should_be(project, user_file):
    user_file.mkdir(parents=True)
    assert load_error(project) == f"{user_file}: is a directory, not a TOML file"


def test_file_that_is_not_utf8(project):
    path = project_file(project)
    path.write_bytes(b'[analyst]\nmodel = "\xff"\n')
    message = load_error(project)
    assert message.startswith(f"{path}: is not valid UTF-8")


def test_read_layer_of_missing_file(tmp_path):
    assert read_layer(tmp_path / "missing.toml") == ({}, False)


def test_config_error_is_an_exception_with_the_path():
    error = ConfigError(Path("/x/config.toml"), ["broken"])
    assert isinstance(error, Exception)
    assert str(error) == "/x/config.toml: broken"
    assert error.path == Path("/x/config.toml")


# --- set_config_value -------------------------------------------------------------------------------------------


def read_toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_set_creates_the_project_file_where_there_is_none(bare_dir):
    written = set_config_value("analyst.model", "anthropic/claude", cwd=bare_dir)
    assert written == bare_dir / ".aw-tui" / "config.toml"
    assert read_toml(written) == {"analyst": {"model": "anthropic/claude"}}
    assert load_config(bare_dir).settings.analyst.model == "anthropic/claude"


def test_set_defaults_to_cwd(bare_dir):
    written = set_config_value("worker.thinking", "medium")
    assert written == bare_dir / ".aw-tui" / "config.toml"


def test_set_writes_to_the_found_project_root(project):
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    written = set_config_value("worker.thinking", "medium", cwd=sub)
    assert written == project_file(project)
    assert not (sub / ".aw-tui").exists()


def test_set_global_writes_the_user_file(project, user_file):
    written = set_config_value("worker.model", "w/global", global_=True, cwd=project)
    assert written == user_file
    assert read_toml(user_file) == {"worker": {"model": "w/global"}}
    assert not project_file(project).exists()
    loaded = load_config(project)
    assert loaded.settings.worker.model == "w/global"
    assert loaded.source_of("worker.model") == "user"


def test_set_keeps_the_other_keys(project):
    write(
        project_file(project),
        '[analyst]\nmodel = "a"\nthinking = "low"\n\n[runs]\nroots = ["r"]\n\n[budget]\nmax_tokens = 5\n',
    )
    set_config_value("analyst.thinking", "xhigh", cwd=project)
    set_config_value("limits.max_autonomous_hours", "2", cwd=project)
    assert read_toml(project_file(project)) == {
        "analyst": {"model": "a", "thinking": "xhigh"},
        "runs": {"roots": ["r"]},
        "budget": {"max_tokens": 5},
        "limits": {"max_autonomous_hours": 2.0},
    }


@pytest.mark.parametrize(
    ("key", "raw", "stored"),
    [
        ("analyst.context_limit", "200000", 200_000),
        ("analyst.context_limit", "200_000", 200_000),
        ("budget.max_cost_usd", "12.5", 12.5),
        ("budget.max_cost_usd", "3", 3.0),
        ("budget.max_tokens", "0", 0),
        ("limits.max_worker_steps_before_operator", "4", 4),
        ("limits.max_autonomous_hours", "0.25", 0.25),
        ("analyst.api_base", "http://localhost:4000", "http://localhost:4000"),
        ("runs.roots", '["a", "b c"]', ["a", "b c"]),
        ("runs.roots", "a, b", ["a", "b"]),
        ("runs.roots", "/only/one", ["/only/one"]),
    ],
)
def test_set_parses_the_value_for_the_field_type(project, key, raw, stored):
    path = set_config_value(key, raw, cwd=project)
    section, name = key.split(".")
    value = read_toml(path)[section][name]
    assert value == stored
    assert type(value) is type(stored)
    assert getattr(getattr(load_config(project).settings, section), name) == stored


@pytest.mark.parametrize("word", ["none", "null", "None"])
def test_set_none_removes_an_optional_key(project, word):
    write(project_file(project), '[budget]\nmax_cost_usd = 9.0\nmax_tokens = 100\n')
    set_config_value("budget.max_cost_usd", word, cwd=project)
    assert read_toml(project_file(project)) == {"budget": {"max_tokens": 100}}


def test_clearing_the_last_key_of_a_section_drops_the_section(project):
    write(project_file(project), '[analyst]\napi_base = "http://x"\n\n[worker]\nmodel = "w"\n')
    set_config_value("analyst.api_base", "none", cwd=project)
    assert read_toml(project_file(project)) == {"worker": {"model": "w"}}


def test_clearing_an_absent_key_is_harmless(bare_dir):
    path = set_config_value("budget.max_tokens", "none", cwd=bare_dir)
    assert read_toml(path) == {}


def test_project_set_overrides_user_value(project, user_file):
    set_config_value("analyst.thinking", "low", global_=True, cwd=project)
    set_config_value("analyst.thinking", "medium", cwd=project)
    loaded = load_config(project)
    assert loaded.settings.analyst.thinking == "medium"
    assert loaded.source_of("analyst.thinking") == "project"


ORIGINAL = '# my settings\n[analyst]\nmodel = "keep/me"\n'


@pytest.mark.parametrize(
    ("key", "raw", "expected_message_part"),
    [
        (
            "analyst.thinking",
            "huge",
            "analyst.thinking: must be one of off, minimal, low, medium, high, xhigh (got 'huge')",
        ),
        ("analyst.context_limit", "lots", "analyst.context_limit: must be an integer (got 'lots')"),
        ("analyst.context_limit", "0", "analyst.context_limit: must be greater than 0 (got 0)"),
        ("budget.max_cost_usd", "-1", "budget.max_cost_usd: must be at least 0 (got -1.0)"),
        ("budget.max_cost_usd", "nan", "budget.max_cost_usd: must be a finite number"),
        ("limits.max_worker_steps_before_operator", "0", "max_worker_steps_before_operator: must be at least 1"),
        ("analyst.model", "none", "analyst.model: cannot be cleared"),
        ("analyst.model", "  ", "analyst.model: must not be empty"),
        ("runs.roots", "[]", "runs.roots: must have at least 1 entry"),
        ("runs.roots", ",", "runs.roots: must have at least 1 entry"),
        ("runs.roots", "[1, 2]", "runs.roots[0]: must be a string (got 1)"),
        ("runs.roots", '["a", ', "runs.roots: is not a valid TOML array"),
        ("analyst.modle", "x", "unknown key 'analyst.modle'; valid keys: analyst.model"),
        ("analyst", "x", "'analyst' is a table, not a single key; set one of analyst.model"),
    ],
)
def test_set_refuses_a_bad_value_and_leaves_the_file_alone(project, key, raw, expected_message_part):
    path = write(project_file(project), ORIGINAL)
    with pytest.raises(ConfigError) as caught:
        set_config_value(key, raw, cwd=project)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected_message_part in message
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]  # no temp file left behind


def test_set_refuses_without_creating_anything(bare_dir):
    with pytest.raises(ConfigError):
        set_config_value("analyst.thinking", "huge", cwd=bare_dir)
    assert not (bare_dir / ".aw-tui").exists()


def test_set_refuses_to_rewrite_a_file_with_a_syntax_error(project):
    broken = '[analyst\nmodel = "x"\n'
    path = write(project_file(project), broken)
    with pytest.raises(ConfigError) as caught:
        set_config_value("analyst.thinking", "low", cwd=project)
    assert str(caught.value).startswith(f"{path}: line 1")
    assert path.read_text(encoding="utf-8") == broken


def test_set_refuses_while_another_key_in_the_file_is_unknown(project):
    original = '[analyst]\nmodle = "x"\n'
    path = write(project_file(project), original)
    with pytest.raises(ConfigError, match="unknown key 'analyst.modle'"):
        set_config_value("analyst.thinking", "low", cwd=project)
    assert path.read_text(encoding="utf-8") == original


def test_set_can_repair_the_bad_value_it_replaces(project):
    write(project_file(project), '[analyst]\nthinking = "huge"\nmodel = "m"\n')
    with pytest.raises(ConfigError):
        load_config(project)
    set_config_value("analyst.thinking", "high", cwd=project)
    assert load_config(project).settings.analyst == Settings().analyst.model_copy(update={"model": "m"})


def test_set_replaces_a_section_that_was_not_a_table(project):
    write(project_file(project), 'budget = 3\n')
    set_config_value("budget.max_tokens", "10", cwd=project)
    assert read_toml(project_file(project)) == {"budget": {"max_tokens": 10}}


def test_set_keeps_the_file_mode(project):
    path = write(project_file(project), ORIGINAL)
    path.chmod(0o640)
    set_config_value("analyst.thinking", "low", cwd=project)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_set_writes_through_a_temp_file_and_replace(project, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(source, destination):
        calls.append((Path(source), Path(destination)))
        # at the moment of the swap the new content is complete on disk
        assert "xhigh" in Path(source).read_text(encoding="utf-8")
        real_replace(source, destination)

    monkeypatch.setattr(config_module.os, "replace", spy)
    path = set_config_value("worker.thinking", "xhigh", cwd=project)
    [(source, destination)] = calls
    assert destination == path
    assert source.parent == path.parent
    assert not source.exists()


def test_failed_write_leaves_the_old_file_and_no_temp_file(project, monkeypatch):
    path = write(project_file(project), ORIGINAL)

    def fail(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(config_module.os, "replace", fail)
    with pytest.raises(ConfigError) as caught:
        set_config_value("worker.thinking", "xhigh", cwd=project)
    assert str(caught.value) == f"{path}: cannot be written: No space left on device"
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_round_trip_of_every_described_value(project):
    # what `aw-tui config` prints can be fed back to `aw-tui config set` unchanged
    write(
        project_file(project),
        '[analyst]\napi_base = "http://h"\n[runs]\nroots = ["a b", "c"]\n[budget]\nmax_cost_usd = 1.5\n',
    )
    before = load_config(project)
    for key, text, _ in describe(before):
        set_config_value(key, text, cwd=project)
    after = load_config(project)
    assert after.settings == before.settings
    # every key with a value now comes from the project file; "none" cleared the unset optional ones
    sources = {key: source for key, _, source in describe(after)}
    assert sources["analyst.api_base"] == sources["runs.roots"] == sources["limits.max_autonomous_hours"] == "project"
    assert sources["worker.api_base"] == sources["budget.max_tokens"] == "default"


def test_loaded_config_is_a_plain_record(bare_dir):
    loaded = load_config(bare_dir)
    assert isinstance(loaded, LoadedConfig)
    with pytest.raises(AttributeError):
        loaded.settings = Settings()  # type: ignore[misc]
