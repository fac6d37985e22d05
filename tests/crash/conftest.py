"""The zygote (see zygote.py) is shared by the crash tests: it loads aw-tui and litellm once for all of them."""

from __future__ import annotations

import pytest

from tests.crash.kit import Zygote


@pytest.fixture(scope="package")
def zygote():
    forks = Zygote()  # it loads while other fixtures start; its first request waits until it is ready
    try:
        yield forks
    finally:
        forks.close()
