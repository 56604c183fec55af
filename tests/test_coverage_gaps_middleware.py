"""The middleware when the values cannot be loaded and the caller or on_failure behaves
unusually (found by branch coverage), driven as a server drives an ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import anyio
import pytest

from parameters_secrets import ConfigurationError, Parameter, ParametersSecretsMiddleware
from parameters_secrets.sources import StaticSource

pytestmark = pytest.mark.anyio

Message = dict[str, Any]


async def _never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the app ran though its values could not be loaded")


def failing(on_failure: Any = None) -> ParametersSecretsMiddleware:
    """A middleware whose one required value does not exist."""
    return ParametersSecretsMiddleware(
        _never_called,
        values={"key": Parameter("/missing")},
        source=StaticSource(parameters={}),
        on_failure=on_failure,
    )


async def call(app: Any, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    """What ``app`` sends for ``scope``, given the client's ``incoming`` messages."""
    sent: list[Message] = []
    pending = iter(incoming)

    async def receive() -> Message:
        return next(pending)

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(30):
        await app(scope, receive, send)
    return sent


def http_scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}


def test_an_on_failure_that_is_not_callable_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="on_failure must be a callable"):
        failing(on_failure="503.html")


async def test_an_answer_that_breaks_after_starting_its_response_is_not_followed_by_a_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def half_answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        raise RuntimeError("the failure page broke halfway")

    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        sent = await call(failing(lambda error: half_answer), http_scope(), [])
    # A second response.start would break the protocol: the server ends the response.
    assert [message["type"] for message in sent] == ["http.response.start"]
    assert sent[0]["status"] == 500
    assert "on_failure's answer raised RuntimeError" in caplog.text


class Later:
    """An awaitable that is not a coroutine (as a Future or a Task is)."""

    def __await__(self) -> Generator[None, None, None]:
        yield None


async def test_an_on_failure_returning_an_awaitable_that_is_not_a_coroutine_gives_the_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        sent = await call(failing(lambda error: Later()), http_scope(), [])
    assert sent[0]["status"] == 503
    assert "not an awaitable: is it an async function?" in caplog.text


async def test_a_websocket_client_gone_before_its_handshake_is_sent_nothing() -> None:
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    sent = await call(failing(), scope, [{"type": "websocket.disconnect", "code": 1001}])
    assert sent == []
