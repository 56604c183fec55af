"""The local extension-compatible server (``parameters-secrets serve``) at its edges
(found by branch coverage): its token, its counters, a failure that carries no error
status, and ASGI scopes that are not a request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import pytest

from parameters_secrets import FetchError, Settings
from parameters_secrets._cli import main
from parameters_secrets._declarations import ValueRequest
from parameters_secrets._server import ExtensionServer
from parameters_secrets._sources import Outcome
from parameters_secrets.sources import StaticSource

pytestmark = pytest.mark.anyio
TOKEN = "server-gaps-token"


class Answering:
    """A source answering every request with ``outcome``."""

    checks_records = True

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.closed = False

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        return [self.outcome for _ in requests]

    async def aclose(self) -> None:
        self.closed = True


def server_for(source: Any) -> ExtensionServer:
    return ExtensionServer(source, token=TOKEN, settings=Settings())


async def get_parameter(server: ExtensionServer, name: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server),
        base_url="http://127.0.0.1:2773",
        headers={"X-Aws-Parameters-Secrets-Token": TOKEN},
    ) as client:
        return await client.get("/systemsmanager/parameters/get", params={"name": name})


def test_a_server_without_a_token_is_refused() -> None:
    with pytest.raises(ValueError, match="the server needs a token"):
        ExtensionServer(StaticSource(), token="", settings=Settings())


async def test_the_server_counts_its_hits_and_fetches() -> None:
    server = server_for(StaticSource(parameters={"/p": "v"}))
    for _ in range(2):
        assert (await get_parameter(server, "/p")).status_code == 200
    assert (server.stats.fetches, server.stats.hits) == (1, 1)


@pytest.mark.parametrize("status", [None, 200, 302])
async def test_a_failure_without_an_error_status_is_answered_as_an_error(
    status: int | None,
) -> None:
    failure = FetchError("/p: the source broke", code="SourceError", status=status)
    response = await get_parameter(server_for(Answering(failure)), "/p")
    assert response.status_code >= 400
    assert response.json()["__type"] == "SourceError"


async def call(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[Any]:
    sent: list[Any] = []
    pending = iter(incoming)

    async def receive() -> dict[str, Any]:
        return next(pending)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


async def test_lifespan_starts_and_at_shutdown_closes_the_source() -> None:
    source = Answering({})
    messages = [
        {"type": "lifespan.startup"},
        {"type": "lifespan.unknown"},  # a message of a later ASGI version: ignored
        {"type": "lifespan.shutdown"},
    ]
    sent = await call(server_for(source), {"type": "lifespan"}, messages)
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert source.closed


async def test_a_websocket_client_gone_before_its_handshake_is_sent_nothing() -> None:
    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    sent = await call(server_for(Answering({})), scope, [{"type": "websocket.disconnect"}])
    assert sent == []


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_serve_refuses_a_port_outside_0_to_65535_in_one_line(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", port, "--source", "aws"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"parameters-secrets: --port must be 0 to 65535, not {port}"
