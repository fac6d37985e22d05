"""The delegate settings: efforts mapped to models and thinking levels, the timeout and the depth limit."""

from __future__ import annotations

import pytest

from aw_tui.model.settings import EFFORTS, Settings, effort_choice, validate_layer


def settings(**layer) -> Settings:
    return Settings.model_validate(layer)


def test_efforts_follow_the_roles_by_default():
    s = settings(analyst={"model": "big/a", "api_base": "http://a"}, worker={"model": "small/w", "context_limit": 5000})
    fast, balanced, smart = (effort_choice(s, e) for e in ("fast", "balanced", "smart"))
    assert (fast.model, fast.thinking, fast.context_limit) == ("small/w", "low", 5000)
    assert (balanced.model, balanced.thinking) == ("small/w", "medium")
    assert (smart.model, smart.thinking, smart.api_base) == ("big/a", "high", "http://a")
    assert EFFORTS == ("fast", "balanced", "smart")


def test_an_effort_model_of_its_own_wins_and_keeps_an_endpoint_only_when_it_is_a_roles_model():
    s = settings(
        analyst={"model": "big/a", "api_base": "http://a"},
        delegate={"fast_model": "tiny/f", "fast_thinking": "minimal", "balanced_model": "big/a"},
    )
    fast = effort_choice(s, "fast")
    assert (fast.model, fast.thinking, fast.api_base, fast.context_limit) == ("tiny/f", "minimal", None, None)
    balanced = effort_choice(s, "balanced")
    assert (balanced.model, balanced.api_base) == ("big/a", "http://a")  # the analyst's model, so its endpoint


def test_unknown_effort_is_refused():
    with pytest.raises(ValueError, match="unknown effort 'huge'"):
        effort_choice(Settings(), "huge")


def test_timeout_and_depth_defaults_and_checks():
    s = Settings()
    assert s.delegate.timeout_s == 900.0  # 15 minutes
    assert s.delegate.max_depth == 2
    assert [str(p) for p in validate_layer({"delegate": {"timeout_s": 0}})] == [
        "delegate.timeout_s: must be greater than 0 (got 0)"
    ]
    assert [str(p) for p in validate_layer({"delegate": {"max_depth": -1}})] == [
        "delegate.max_depth: must be at least 0 (got -1)"
    ]
    assert "must be one of off, minimal" in str(validate_layer({"delegate": {"smart_thinking": "max"}})[0])
    assert "unknown key 'delegate.fast'" in str(validate_layer({"delegate": {"fast": "x"}})[0])
