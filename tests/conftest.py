"""Fixtures: an isolated environment, a fake clock, and a real extension-compatible server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from parameters_secrets._settings import ENVIRONMENT
from tests.extension_server import FakeExtension

TOKEN = "test-session-token"


class FakeClock:
    """A monotonic clock that moves only when told: TTL tests never sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No extension variable, Lambda marker or credential leaks in from the machine."""
    for variable in [
        *ENVIRONMENT.values(),
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
    ]:
        monkeypatch.delenv(variable, raising=False)
    logger = logging.getLogger("parameters_secrets")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def extension() -> Iterator[FakeExtension]:
    """A real HTTP server on 127.0.0.1 speaking the extension's API, counting calls."""
    with FakeExtension(token=TOKEN) as server:
        yield server
