"""The settings models and their pure helpers: defaults, validation wording, merging, keys, value text."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aw_tui.model.settings import (
    THINKING_LEVELS,
    BudgetSettings,
    LimitSettings,
    RoleSettings,
    RunsSettings,
    Settings,
    SettingValueError,
    UnknownSettingKey,
    field_for_key,
    flatten,
    format_value_text,
    get_value,
    is_optional_key,
    merge_layers,
    nest,
    parse_text_as,
    parse_value_text,
    validate_layer,
    valid_keys,
)

ALL_KEYS = [
    "analyst.model",
    "analyst.thinking",
    "analyst.context_limit",
    "analyst.api_base",
    "worker.model",
    "worker.thinking",
    "worker.context_limit",
    "worker.api_base",
    "runs.roots",
    "budget.max_cost_usd",
    "budget.max_tokens",
    "limits.max_worker_steps_before_operator",
    "limits.max_autonomous_hours",
    "tools.policy",
    "tools.bash_timeout_s",
    "tools.dangerous_patterns",
    "tools.allowed_patterns",
    "llm.max_attempts",
    "llm.max_retry_after_s",
    "llm.timeout_s",
    "llm.stream",
    "delegate.fast_model",
    "delegate.fast_thinking",
    "delegate.balanced_model",
    "delegate.balanced_thinking",
    "delegate.smart_model",
    "delegate.smart_thinking",
    "delegate.timeout_s",
    "delegate.max_depth",
]


def problem_texts(layer: dict) -> list[str]:
    return [str(problem) for problem in validate_layer(layer)]


# --- defaults ---------------------------------------------------------------------------------------------------


def test_defaults():
    settings = Settings()
    assert settings.analyst == RoleSettings(model="openai/gpt-5", thinking="high", context_limit=128_000)
    assert settings.analyst.api_base is None
    assert settings.worker == RoleSettings(model="openai/gpt-5-mini", thinking="low", context_limit=128_000)
    assert settings.runs.roots == ["./tmp"]
    assert settings.budget == BudgetSettings(max_cost_usd=None, max_tokens=None)
    assert settings.limits == LimitSettings(max_worker_steps_before_operator=None, max_autonomous_hours=24)


def test_role_settings_defaults_apart_from_model():
    role = RoleSettings(model="x/y")
    assert (role.thinking, role.context_limit, role.api_base) == ("high", 128_000, None)


def test_role_settings_needs_a_model():
    with pytest.raises(ValidationError):
        RoleSettings()  # type: ignore[call-arg]


def test_default_roots_are_not_shared_between_instances():
    first, second = RunsSettings(), RunsSettings()
    first.roots.append("elsewhere")
    assert second.roots == ["./tmp"]


def test_thinking_levels():
    assert THINKING_LEVELS == ("off", "minimal", "low", "medium", "high", "xhigh")


# --- partial layers ---------------------------------------------------------------------------------------------


def test_partial_role_table_keeps_that_roles_defaults():
    settings = Settings.model_validate({"worker": {"thinking": "high"}, "analyst": {"context_limit": 5}})
    assert settings.worker.model == "openai/gpt-5-mini"
    assert settings.worker.thinking == "high"
    assert settings.analyst.model == "openai/gpt-5"
    assert settings.analyst.thinking == "high"
    assert settings.analyst.context_limit == 5


def test_empty_layer_is_valid():
    assert validate_layer({}) == []
    assert Settings.model_validate({}) == Settings()


def test_a_full_valid_layer():
    layer = {
        "analyst": {"model": "anthropic/claude", "thinking": "xhigh", "context_limit": 200_000, "api_base": "http://x"},
        "worker": {"model": "ollama/qwen", "thinking": "off"},
        "runs": {"roots": ["a", "/b"]},
        "budget": {"max_cost_usd": 12.5, "max_tokens": 0},
        "limits": {"max_worker_steps_before_operator": 3, "max_autonomous_hours": 0.5},
    }
    assert validate_layer(layer) == []
    settings = Settings.model_validate(layer)
    assert settings.analyst.api_base == "http://x"
    assert settings.budget.max_tokens == 0
    assert settings.limits.max_worker_steps_before_operator == 3


def test_integer_accepted_for_a_float_field():
    assert Settings.model_validate({"limits": {"max_autonomous_hours": 2}}).limits.max_autonomous_hours == 2.0
    assert Settings.model_validate({"budget": {"max_cost_usd": 0}}).budget.max_cost_usd == 0.0


# --- validation wording -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (
            {"analyst": {"thinking": "huge"}},
            "analyst.thinking: must be one of off, minimal, low, medium, high, xhigh (got 'huge')",
        ),
        ({"worker": {"context_limit": 0}}, "worker.context_limit: must be greater than 0 (got 0)"),
        ({"worker": {"context_limit": "128000"}}, "worker.context_limit: must be an integer (got '128000')"),
        ({"worker": {"context_limit": 1.5}}, "worker.context_limit: must be an integer (got 1.5)"),
        ({"worker": {"context_limit": True}}, "worker.context_limit: must be an integer (got True)"),
        ({"analyst": {"model": 5}}, "analyst.model: must be a string (got 5)"),
        ({"analyst": {"model": ""}}, "analyst.model: must not be empty"),
        ({"budget": {"max_cost_usd": -1}}, "budget.max_cost_usd: must be at least 0 (got -1)"),
        ({"budget": {"max_cost_usd": float("inf")}}, "budget.max_cost_usd: must be a finite number (got inf)"),
        ({"budget": {"max_tokens": -5}}, "budget.max_tokens: must be at least 0 (got -5)"),
        (
            {"limits": {"max_worker_steps_before_operator": 0}},
            "limits.max_worker_steps_before_operator: must be at least 1 (got 0)",
        ),
        ({"limits": {"max_autonomous_hours": 0}}, "limits.max_autonomous_hours: must be greater than 0 (got 0)"),
        ({"limits": {"max_autonomous_hours": "1"}}, "limits.max_autonomous_hours: must be a number (got '1')"),
        ({"runs": {"roots": []}}, "runs.roots: must have at least 1 entry (got [])"),
        ({"runs": {"roots": "./tmp"}}, "runs.roots: must be a list (got './tmp')"),
        ({"runs": {"roots": ["ok", 3]}}, "runs.roots[1]: must be a string (got 3)"),
        ({"runs": {"roots": [""]}}, "runs.roots[0]: must not be empty"),
        ({"budget": 3}, "budget: must be a table (got 3)"),
        ({"analyst": "openai/gpt-5"}, "analyst: must be a table (got 'openai/gpt-5')"),
    ],
)
def test_problem_wording(layer, expected):
    assert problem_texts(layer) == [expected]


def test_unknown_key_in_a_section_lists_valid_keys_and_suggests():
    [problem] = validate_layer({"analyst": {"modle": "x"}})
    assert problem.key == "analyst.modle"
    assert problem.unknown_key
    text = str(problem)
    assert text.startswith("unknown key 'analyst.modle'; valid keys: ")
    assert ", ".join(ALL_KEYS) in text
    assert "did you mean 'analyst.model'?" in text


def test_unknown_section():
    [problem] = validate_layer({"workr": {"model": "x"}})
    assert str(problem).startswith("unknown key 'workr'; valid keys: ")
    assert "did you mean 'worker'?" in str(problem)


def test_unknown_key_with_nothing_close_has_no_suggestion():
    [problem] = validate_layer({"zzz": 1})
    assert "did you mean" not in str(problem)


def test_every_problem_in_a_layer_is_reported():
    keys = [problem.key for problem in validate_layer({"analyst": {"thinking": "huge", "context_limit": -1}, "x": 1})]
    assert keys == ["analyst.thinking", "analyst.context_limit", "x"]


# --- merge_layers -----------------------------------------------------------------------------------------------


def test_merge_later_layer_wins_key_by_key():
    user = {"analyst": {"model": "a", "thinking": "low"}, "budget": {"max_tokens": 10}}
    project = {"analyst": {"thinking": "high"}}
    assert merge_layers(user, project) == {
        "analyst": {"model": "a", "thinking": "high"},
        "budget": {"max_tokens": 10},
    }


def test_merge_lists_replace_rather_than_concatenate():
    assert merge_layers({"runs": {"roots": ["a", "b"]}}, {"runs": {"roots": ["c"]}}) == {"runs": {"roots": ["c"]}}


def test_merge_table_and_scalar_replace_each_other():
    assert merge_layers({"a": {"x": 1}}, {"a": 2}) == {"a": 2}
    assert merge_layers({"a": 2}, {"a": {"x": 1}}) == {"a": {"x": 1}}


def test_merge_three_layers_and_none():
    assert merge_layers() == {}
    assert merge_layers({"a": {"x": 1, "y": 1}}, {"a": {"y": 2, "z": 2}}, {"a": {"z": 3}}) == {
        "a": {"x": 1, "y": 2, "z": 3}
    }


def test_merge_does_not_modify_or_alias_its_inputs():
    user = {"runs": {"roots": ["a"]}, "analyst": {"model": "m"}}
    project = {"analyst": {"thinking": "low"}}
    merged = merge_layers(user, project)
    merged["runs"]["roots"].append("b")
    merged["analyst"]["model"] = "changed"
    assert user == {"runs": {"roots": ["a"]}, "analyst": {"model": "m"}}
    assert project == {"analyst": {"thinking": "low"}}


leaf = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3))
table = st.recursive(leaf, lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=4), max_leaves=10)
layers = st.dictionaries(st.text(max_size=3), table, max_size=4)


@given(layers, layers)
def test_merge_properties(first, second):
    merged = merge_layers(first, second)
    # every top-level key of either layer survives, and the later layer's non-table values always win
    assert set(merged) == set(first) | set(second)
    for key, value in second.items():
        if not isinstance(value, dict):
            assert merged[key] == value
    # merging a layer over itself changes nothing
    assert merge_layers(first, first) == merge_layers(first)
    assert merge_layers(first) == first


# --- keys -------------------------------------------------------------------------------------------------------


def test_valid_keys_in_declaration_order():
    assert valid_keys() == ALL_KEYS


def test_flatten_defaults():
    assert flatten(Settings()) == [
        ("analyst.model", "openai/gpt-5"),
        ("analyst.thinking", "high"),
        ("analyst.context_limit", 128_000),
        ("analyst.api_base", None),
        ("worker.model", "openai/gpt-5-mini"),
        ("worker.thinking", "low"),
        ("worker.context_limit", 128_000),
        ("worker.api_base", None),
        ("runs.roots", ["./tmp"]),
        ("budget.max_cost_usd", None),
        ("budget.max_tokens", None),
        ("limits.max_worker_steps_before_operator", None),
        ("limits.max_autonomous_hours", 24.0),
        ("tools.policy", "all-tools"),
        ("tools.bash_timeout_s", 120.0),
        ("tools.dangerous_patterns", []),
        ("tools.allowed_patterns", []),
        ("llm.max_attempts", 4),
        ("llm.max_retry_after_s", 60.0),
        ("llm.timeout_s", 600.0),
        ("llm.stream", False),
        ("delegate.fast_model", None),
        ("delegate.fast_thinking", "low"),
        ("delegate.balanced_model", None),
        ("delegate.balanced_thinking", "medium"),
        ("delegate.smart_model", None),
        ("delegate.smart_thinking", "high"),
        ("delegate.timeout_s", 900.0),
        ("delegate.max_depth", 2),
    ]


def test_field_for_key_gives_the_annotation():
    assert field_for_key("analyst.model").annotation is str
    assert field_for_key("worker.thinking").annotation == Literal["off", "minimal", "low", "medium", "high", "xhigh"]
    assert field_for_key("budget.max_tokens").annotation == int | None
    assert field_for_key("limits.max_autonomous_hours").annotation is float


@pytest.mark.parametrize("key", ["analyst.modle", "nope", "analyst.model.extra", "", ".model"])
def test_field_for_unknown_key_lists_valid_keys(key):
    with pytest.raises(UnknownSettingKey) as caught:
        field_for_key(key)
    assert f"unknown key '{key}'" in str(caught.value)
    assert ", ".join(ALL_KEYS) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_section_name_is_not_a_key():
    with pytest.raises(UnknownSettingKey) as caught:
        field_for_key("budget")
    assert str(caught.value) == (
        "'budget' is a table, not a single key; set one of budget.max_cost_usd, budget.max_tokens"
    )


def test_get_value_and_nest():
    assert get_value(Settings(), "worker.thinking") == "low"
    assert nest("runs.roots", ["a"]) == {"runs": {"roots": ["a"]}}
    with pytest.raises(UnknownSettingKey):
        get_value(Settings(), "worker.nope")


def test_optional_keys():
    assert [key for key in ALL_KEYS if is_optional_key(key)] == [
        "analyst.api_base",
        "worker.api_base",
        "budget.max_cost_usd",
        "budget.max_tokens",
        "limits.max_worker_steps_before_operator",
        "delegate.fast_model",
        "delegate.balanced_model",
        "delegate.smart_model",
    ]


# --- values as text ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("analyst.model", " anthropic/claude-opus ", "anthropic/claude-opus"),
        ("analyst.thinking", "medium", "medium"),
        ("analyst.context_limit", "200000", 200_000),
        ("analyst.context_limit", "200_000", 200_000),
        ("analyst.api_base", "http://localhost:4000", "http://localhost:4000"),
        ("analyst.api_base", "none", None),
        ("analyst.api_base", "NULL", None),
        ("budget.max_cost_usd", "2.5", 2.5),
        ("budget.max_cost_usd", "3", 3.0),
        ("budget.max_tokens", "null", None),
        ("limits.max_worker_steps_before_operator", "7", 7),
        ("runs.roots", '["a", "b c"]', ["a", "b c"]),
        ("runs.roots", "a, b c ,", ["a", "b c"]),
        ("runs.roots", "./runs", ["./runs"]),
    ],
)
def test_parse_value_text(key, raw, expected):
    assert parse_value_text(key, raw) == expected


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("analyst.context_limit", "lots", "must be an integer (got 'lots')"),
        ("analyst.context_limit", "1.5", "must be an integer (got '1.5')"),
        ("budget.max_cost_usd", "cheap", "must be a number (got 'cheap')"),
        ("analyst.model", "none", "cannot be cleared; it always has a value (got 'none')"),
        ("limits.max_autonomous_hours", "null", "cannot be cleared"),
        ("runs.roots", '["a", ', "is not a valid TOML array"),
    ],
)
def test_parse_value_text_refuses(key, raw, reason):
    with pytest.raises(SettingValueError) as caught:
        parse_value_text(key, raw)
    assert reason in str(caught.value)


def test_parse_value_text_unknown_key():
    with pytest.raises(UnknownSettingKey):
        parse_value_text("analyst.modle", "x")


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("Yes", True), ("on", True), ("1", True), ("false", False), ("OFF", False)]
)
def test_parse_text_as_bool(raw, expected):
    assert parse_text_as(bool, raw) is expected


def test_parse_text_as_bool_refuses_other_words():
    with pytest.raises(SettingValueError, match="must be true or false"):
        parse_text_as(bool, "maybe")


def test_parse_leaves_range_checks_to_validation():
    # shape only: the negative number parses, and validate_layer words the range problem
    value = parse_value_text("analyst.context_limit", "-3")
    assert value == -3
    assert problem_texts(nest("analyst.context_limit", value)) == [
        "analyst.context_limit: must be greater than 0 (got -3)"
    ]


def test_format_value_text():
    assert format_value_text(None) == "none"
    assert format_value_text(True) == "true"
    assert format_value_text(["./tmp", 'we"ird']) == '["./tmp", "we\\"ird"]'
    assert format_value_text(24.0) == "24.0"
    assert format_value_text("openai/gpt-5") == "openai/gpt-5"


def test_every_default_round_trips_through_text():
    for key, value in flatten(Settings()):
        assert parse_value_text(key, format_value_text(value)) == value


@given(st.lists(st.text(min_size=1).filter(lambda text: text.strip() == text and text.isprintable()), min_size=1))
def test_roots_round_trip_through_text(roots):
    assert parse_value_text("runs.roots", format_value_text(roots)) == roots
