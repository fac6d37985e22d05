"""One llmock server for the chaos suite, with a wire tap in front of it; each test gets it reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llmock.pytest_plugin import LLMock

from tests.chaos.kit import ServedRequest, TappedServer

DUMMY_KEY = "sk-chaos-dummy-key"


@pytest.fixture(scope="session")
def tapped_server() -> Iterator[TappedServer]:
    with TappedServer() as tapped:
        yield tapped


@pytest.fixture
def mock(tapped_server: TappedServer, monkeypatch: pytest.MonkeyPatch) -> LLMock:
    monkeypatch.setenv("OPENAI_API_KEY", DUMMY_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tapped_server.fresh()


@pytest.fixture
def served(tapped_server: TappedServer) -> list[ServedRequest]:
    """Per chat request of this test, in arrival order: what went over the wire."""
    return tapped_server.served
