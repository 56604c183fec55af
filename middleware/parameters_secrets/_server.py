"""A local stand-in for the extension's HTTP API, backed by AWS or a file.

The same two endpoints, the same token check, the AWS APIs' own JSON, and the same cache
and environment variables as the extension, on 127.0.0.1: for local development and for
tests of code that calls ``localhost:2773``.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from ._cache import Cache, CacheStats
from ._declarations import ParameterRequest, Record, SecretRequest, ValueRequest
from ._settings import Settings
from ._sources import Source
from ._sources.extension import TOKEN_HEADER
from ._types import Receive, Scope, Send
from .exceptions import FetchError

logger = logging.getLogger("parameters_secrets.server")

PARAMETER_PATHS = ("/systemsmanager/parameters/get", "/systemsmanager/parameters/get/")
SECRET_PATHS = ("/secretsmanager/get", "/secretsmanager/get/")
_STATUS_FOR_CODE = {"Timeout": 504, "ConnectionError": 502, "MalformedResponse": 502}


class ExtensionServer:
    """The extension's HTTP API as an ASGI app (served by ``parameters-secrets serve``).

    Args:
        source: Where values come from.
        token: The ``X-Aws-Parameters-Secrets-Token`` every request must carry.
        settings: The cache settings (TTLs, size, enabled).
    """

    def __init__(self, source: Source, *, token: str, settings: Settings) -> None:
        if not token:
            raise ValueError("the server needs a token")
        self.source = source
        self.settings = settings
        self._token = token.encode()
        self._cache: Cache[ValueRequest, Record] = Cache(
            source.fetch,
            max_size=settings.cache_size,
            enabled=settings.cache_enabled,
            stale_if_error=settings.stale_if_error,
        )

    @property
    def stats(self) -> CacheStats:
        """The cache's counters."""
        return self._cache.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await _refuse_websocket(receive, send)
            return
        if scope["type"] != "http":
            return  # nothing to answer: no server sends a response for another scope
        try:
            status, body = await self._answer(scope)
        except Exception:  # never a 500 with a traceback for what a client sent
            logger.exception("unexpected error answering %s", scope.get("path"))
            status, body = _error(500, "InternalFailure", "the server failed")
        await _send_json(send, status, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.source.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: Scope) -> tuple[int, Any]:
        path = scope.get("path", "")
        refusal = self._refusal(scope, path)
        if refusal is not None:
            return refusal
        request = _request(scope, path)
        if isinstance(request, FetchError):
            return _error(400, request.code, str(request))
        return await self._served(request)

    def _refusal(self, scope: Scope, path: str) -> tuple[int, Any] | None:
        """The error answer for a request this server does not take; ``None`` if it does."""
        if path not in PARAMETER_PATHS and path not in SECRET_PATHS:
            return _error(404, "NotFound", "unknown path")
        if scope.get("method") != "GET":
            return _error(405, "MethodNotAllowed", "only GET is supported")
        return self._header_refusal(scope)

    def _header_refusal(self, scope: Scope) -> tuple[int, Any] | None:
        """The error answer for a forwarded request or a wrong token; else ``None``."""
        headers = [(k.decode("latin-1").lower(), v) for k, v in scope.get("headers", [])]
        if any(name == "x-forwarded-for" for name, _ in headers):
            # As the extension does: a forwarded request did not come from this sandbox.
            return _error(400, "BadRequest", "X-Forwarded-For is not accepted")
        if not hmac.compare_digest(_token_given(headers), self._token):
            return _error(401, "Unauthorized", "missing or wrong X-Aws-Parameters-Secrets-Token")
        return None

    async def _served(self, request: ParameterRequest | SecretRequest) -> tuple[int, Any]:
        """The cache's answer to ``request``, shaped as the extension answers."""
        ttl = (
            self.settings.parameter_ttl if request.kind == "parameter" else self.settings.secret_ttl
        )
        ((outcome, _),) = await self._cache.get_many([(request, ttl)])
        if isinstance(outcome, FetchError):
            status = outcome.status or _STATUS_FOR_CODE.get(outcome.code, 400)
            status = max(status, 400)
            return _error(status, outcome.code, str(outcome))
        if isinstance(request, ParameterRequest):
            return 200, {"Parameter": dict(outcome), "ResultMetadata": {}}
        return 200, {**outcome, "ResultMetadata": {}}


def _token_given(headers: list[tuple[str, bytes]]) -> bytes:
    """The value of the request's token header; empty unless it is given exactly once."""
    tokens = [value for name, value in headers if name == TOKEN_HEADER.lower()]
    # Exactly one token: which of several copies counts differs between proxies.
    return tokens[0] if len(tokens) == 1 else b""


def _request(scope: Scope, path: str) -> ParameterRequest | SecretRequest | FetchError:
    """The request the query string asks for, or the error that says why it is invalid."""
    try:
        query = parse_qsl(
            scope.get("query_string", b"").decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
        )
    except UnicodeDecodeError:
        return FetchError("the query string is not UTF-8", code="ValidationException")
    return _parameter(query) if path in PARAMETER_PATHS else _secret(query)


async def _refuse_websocket(receive: Receive, send: Send) -> None:
    # The extension's API is HTTP only. Closing before accepting is how ASGI refuses a
    # handshake: the server answers 403, where returning without a word makes it a 500.
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})


def _first(query: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in query if key == name), None)


def _parameter(query: list[tuple[str, str]]) -> ParameterRequest | FetchError:
    name = _first(query, "name")
    if not name:
        return FetchError("name is required", code="ValidationException")
    decrypt = (_first(query, "withDecryption") or "false").lower()
    if decrypt not in ("true", "false"):
        return FetchError("withDecryption must be true or false", code="ValidationException")
    return _selected(name, _selector(query), decrypt=decrypt == "true")


def _selector(query: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The query's ``version`` or ``label``, whichever comes first, as ``(name, value)``."""
    # Version and label together: only the first after "?" is used, as the extension does.
    return next(((k, v) for k, v in query if k in ("version", "label")), None)


def _selected(
    name: str, selector: tuple[str, str] | None, *, decrypt: bool
) -> ParameterRequest | FetchError:
    """The request for ``name`` at the ``version`` or ``label`` the query selects."""
    if selector is None:
        return ParameterRequest(name, None, None, decrypt)
    if selector[0] == "version":
        version = _version(selector[1])
        if version is None:
            return FetchError("version must be a positive integer", code="ValidationException")
        return ParameterRequest(name, version, None, decrypt)
    if not selector[1]:
        return FetchError("label must not be empty", code="ValidationException")
    return ParameterRequest(name, None, selector[1], decrypt)


def _version(digits: str) -> int | None:
    """``digits`` as a version number (1 or more); ``None`` if it is not one."""
    # ASCII digits only, and few: int() takes "٣" and refuses 5,000-digit strings.
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 19) or int(digits) < 1:
        return None
    return int(digits)


def _secret(query: list[tuple[str, str]]) -> SecretRequest | FetchError:
    secret_id = _first(query, "secretId")
    if not secret_id:
        return FetchError("secretId is required", code="ValidationException")
    return SecretRequest(
        secret_id, _first(query, "versionStage") or None, _first(query, "versionId") or None
    )


def _error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, {"__type": code, "message": message}


async def _send_json(send: Send, status: int, body: Any) -> None:
    payload = json.dumps(body, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
