"""Test-wide settings: no network, no keys, no user config."""

import os

# litellm must read its bundled cost map, never fetch one; set before anything imports it.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """Every test gets empty config dirs, so the developer's own config never leaks in."""
    home = tmp_path_factory.mktemp("config-home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _forget_the_scripted_provider():
    """In-process runs install the scripted provider into litellm; leave litellm as other tests expect it."""
    yield
    import sys

    scripted = sys.modules.get("aw_tui.engine.scripted")
    if scripted is not None:
        scripted.uninstall_script()
