"""Fixtures: an isolated environment, a fake clock, and a real extension-compatible server."""

from __future__ import annotations

import asyncio
import logging
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.responses import JSONResponse

from parameters_secrets import LoadError
from parameters_secrets._settings import ENVIRONMENT
from tests import faults
from tests.extension_server import FakeExtension
from tests.moto_server import CountingProxy, MotoServer

TOKEN = "test-session-token"


def detail_503(error: LoadError) -> JSONResponse:
    """An ``on_failure`` that tells the caller what failed: ``could not load 'db' (Code)``.

    Tests use it to see which keys failed with which code; the default answer says only
    "Service Unavailable" (tests of it pass no ``on_failure``).
    """
    return JSONResponse({"detail": str(error)}, status_code=503)


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
        # Set on ECS, EKS and CodeBuild: they would change which credentials a test uses.
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ]:
        monkeypatch.delenv(variable, raising=False)
    logger = logging.getLogger("parameters_secrets")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True)
def event_loop_per_test() -> Iterator[asyncio.AbstractEventLoop]:
    """A current loop for Mangum to adopt, like a Lambda instance's; closed cleanly after.

    Mangum runs every invocation on the thread's current loop and never closes it. Each
    test gets its own, shut down as ``asyncio.run`` would: the sources' pooled
    connections close with it (they are released when their loop finalises its async
    generators).
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    if not loop.is_closed():
        # Let what the test left running finish (a pool closing), then close the pools
        # still open on this loop, as asyncio.run does.
        for _ in range(3):
            pending = asyncio.all_tasks(loop)
            if not pending:
                break
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def extension() -> Iterator[FakeExtension]:
    """The fake extension (the package's own server behind a recording, fault-injecting
    layer: ``tests/extension_server.py``), served on 127.0.0.1."""
    with FakeExtension(token=TOKEN) as server:
        yield server


# -- moto's server (tests/moto_server.py) ---------------------------------------------


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoServer]:
    """One permissive moto server for the whole session; use ``moto`` in tests."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto(moto_session: MotoServer) -> MotoServer:
    """The session's moto server (no IAM enforcement), emptied before each test."""
    moto_session.reset()
    return moto_session


@pytest.fixture(scope="session")
def moto_auth() -> Iterator[MotoServer]:
    """A moto server enforcing IAM (SigV4 and policies), shared by the session and never
    reset: give each test its own user with ``create_iam_user(moto_auth, actions)``."""
    with MotoServer(iam_auth=True) as server:
        yield server


@pytest.fixture
def moto_proxy(moto: MotoServer) -> Iterator[CountingProxy]:
    """A ``CountingProxy`` in front of ``moto``: point clients at ``moto_proxy.url``."""
    with CountingProxy(moto.url) as proxy:
        yield proxy


@pytest.fixture
def hanging(moto_proxy: CountingProxy) -> CountingProxy:
    """An AWS endpoint that never answers: every request reaches the proxy (in front of
    moto) and is held there (``faults.hang()``), until the client gives up."""
    moto_proxy.fail(faults.hang())
    return moto_proxy


def hung(upstream: CountingProxy) -> bool:
    """The upstream was asked, and the request met the hang (not a refusal, not an answer)."""
    return upstream.wait_for_total(1) and upstream.faults_met()[0] == faults.hang()


class SnapStartRuntime(types.ModuleType):
    """A stand-in for the Lambda runtime's ``snapshot_restore_py``: it records the hooks
    registered with it, and ``restore()`` runs them, as a SnapStart restore does."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.after_restore: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def register_after_restore(self, func: Callable[..., Any], *args: Any) -> Callable[..., Any]:
        self.after_restore.append((func, args))
        return func

    def restore(self) -> None:
        for func, args in self.after_restore:
            func(*args)


@pytest.fixture
def snapstart_runtime(monkeypatch: pytest.MonkeyPatch) -> SnapStartRuntime:
    """The SnapStart runtime's module, as the package imports it, replaced by a stand-in."""
    stand_in = SnapStartRuntime()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", stand_in)
    return stand_in
