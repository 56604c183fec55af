"""The AWS Parameters and Secrets Lambda Extension's HTTP API (or the local stand-in)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from .._declarations import ParameterRequest, SecretRequest, ValueRequest
from .._settings import Settings
from ..exceptions import ConfigurationError, FetchError
from . import Outcome, give_up_time
from ._errors import error_code, is_transient

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
# The extension answers "400 not ready to serve traffic, please wait" until its own
# INIT is done, and a connection can be refused for a moment while it starts.
NOT_READY_BUDGET_SECONDS = 1.0
_FIRST_RETRY_DELAY = 0.01


class ExtensionSource:
    """Fetch values from the extension on ``127.0.0.1``, one pooled connection set.

    Args:
        port: The extension's port; default ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``
            (2773).
        token: The ``X-Aws-Parameters-Secrets-Token``; default ``AWS_SESSION_TOKEN``,
            read when a request is made.
        settings: Timeouts and the default port; default ``Settings.from_env()``.
    """

    def __init__(
        self, port: int | None = None, token: str | None = None, *, settings: Settings | None = None
    ) -> None:
        self._settings = settings if settings is not None else Settings.from_env()
        port = self._settings.http_port if port is None else port
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigurationError(f"port must be an integer 1 to 65535, not {port!r}")
        self.port = port
        self._token = token
        self._base_url = f"http://127.0.0.1:{port}"
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"ExtensionSource(port={self.port})"

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """Ask the extension for every request at once (it has no batch call)."""
        client = self._client_for_loop()
        return list(await asyncio.gather(*(self._get(client, r, deadline) for r in requests)))

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()

    def _client_for_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Connections belong to the loop that opened them: a new loop (asyncio.run per
            # invocation in Mangum < 0.21, a test client) needs a new client.
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                # Plain HTTP to loopback only: skip building a TLS context (18-35 ms) and
                # ignore HTTP(S)_PROXY, which must never see this hop.
                verify=False,  # noqa: S501 - never used: the URL is http://127.0.0.1
                trust_env=False,
                timeout=None,  # noqa: S113 - each request sets its own
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
            )
            self._client_loop = loop
        return self._client

    def _token_value(self) -> str | None:
        """The ``X-Aws-Parameters-Secrets-Token``: ``token=``, else ``AWS_SESSION_TOKEN``,
        else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, read now; ``None``: no header."""
        if self._token is not None:
            return self._token
        # Without AWS_SESSION_TOKEN (Lambda SnapStart, ECS, EKS) the container's token
        # is the one the Secrets Manager Agent accepts.
        return (
            os.environ.get("AWS_SESSION_TOKEN")
            or os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            or None
        )

    async def _get(
        self, client: httpx.AsyncClient, request: ValueRequest, deadline: float | None
    ) -> Outcome:
        if isinstance(request, ParameterRequest):
            path, timeout_ms = _parameter_path(request), self._settings.parameter_timeout_ms
        else:
            path, timeout_ms = _secret_path(request), self._settings.secret_timeout_ms
        start = time.monotonic()
        give_up_at = give_up_time(timeout_ms, deadline)
        token = self._token_value()
        headers = {TOKEN_HEADER: token} if token is not None else {}
        delay = _FIRST_RETRY_DELAY
        while True:
            remaining = None if give_up_at is None else give_up_at - time.monotonic()
            if remaining is not None and remaining <= 0:
                return _timeout(request)
            not_ready: str | None = None
            try:
                response = await client.get(path, headers=headers, timeout=remaining)
            except httpx.TimeoutException:
                return _timeout(request)
            except httpx.ConnectError:
                not_ready = "ConnectionError"
            except httpx.TransportError as exc:
                return FetchError(
                    f"{request.describe()}: the extension's answer was cut off "
                    f"({type(exc).__name__})",
                    code="ConnectionError",
                    transient=True,
                )
            else:
                if response.status_code == 400 and b"not ready" in response.content.lower():
                    not_ready = "ExtensionNotReady"
                else:
                    return _parse(request, response)
            now = time.monotonic()
            if now + delay > start + NOT_READY_BUDGET_SECONDS or (
                give_up_at is not None and now + delay >= give_up_at
            ):
                hint = (
                    f"nothing answers on 127.0.0.1:{self.port}: is the extension layer attached?"
                    if not_ready == "ConnectionError"
                    else "the extension is not ready to serve traffic"
                )
                return FetchError(f"{request.describe()}: {hint}", code=not_ready, transient=True)
            await asyncio.sleep(delay)
            delay *= 2


def _parameter_path(request: ParameterRequest) -> str:
    query = f"name={quote(request.name, safe='')}"
    if request.version is not None:
        query += f"&version={request.version}"
    if request.label is not None:
        query += f"&label={quote(request.label, safe='')}"
    query += f"&withDecryption={'true' if request.decrypt else 'false'}"
    return f"/systemsmanager/parameters/get?{query}"


def _secret_path(request: SecretRequest) -> str:
    query = f"secretId={quote(request.secret_id, safe='')}"
    if request.version_stage is not None:
        query += f"&versionStage={quote(request.version_stage, safe='')}"
    if request.version_id is not None:
        query += f"&versionId={quote(request.version_id, safe='')}"
    return f"/secretsmanager/get?{query}"


def _timeout(request: ValueRequest) -> FetchError:
    return FetchError(f"{request.describe()}: timed out", code="Timeout", transient=True)


def _parse(request: ValueRequest, response: httpx.Response) -> Outcome:
    status = response.status_code
    if status == 200:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        record = (
            body.get("Parameter")
            if isinstance(request, ParameterRequest) and isinstance(body, dict)
            else body
        )
        if isinstance(record, dict) and _has_value(request, record):
            return record
        return FetchError(
            f"{request.describe()}: the extension's answer is not the expected JSON",
            code="MalformedResponse",
            transient=True,
            status=status,
        )
    code, message = error_code(status, response.text)
    if status == 401:
        message = _refused_token_hint(response.request.headers.get(TOKEN_HEADER))
    transient = is_transient(status, code)
    return FetchError(
        f"{request.describe()}: {code} (HTTP {status}){': ' + message if message else ''}",
        code=code,
        transient=transient,
        status=status,
    )


def _refused_token_hint(sent: str | None) -> str:
    """What to check when the extension refuses the token: where the one sent came from."""
    if sent is None:
        return (
            f"no {TOKEN_HEADER} was sent: neither AWS_SESSION_TOKEN nor "
            "AWS_CONTAINER_AUTHORIZATION_TOKEN is set (on Lambda SnapStart there is no "
            "AWS_SESSION_TOKEN): pass ExtensionSource(token=...), or use AwsSource"
        )
    if sent == os.environ.get("AWS_SESSION_TOKEN"):
        return (
            f"the extension refused {TOKEN_HEADER} from AWS_SESSION_TOKEN: is it this "
            "function's own extension on this port, started with this token?"
        )
    if sent == os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        return (
            f"the extension refused {TOKEN_HEADER} from AWS_CONTAINER_AUTHORIZATION_TOKEN, "
            "sent because AWS_SESSION_TOKEN is not set (as on Lambda SnapStart): the "
            "Parameters and Secrets Lambda Extension checks AWS_SESSION_TOKEN, the Secrets "
            "Manager Agent accepts this one; else use AwsSource, which reads the container "
            "credentials endpoint itself"
        )
    return f"the extension refused the token given as ExtensionSource(token=...) in {TOKEN_HEADER}"


def _has_value(request: ValueRequest, record: dict[str, Any]) -> bool:
    if isinstance(request, ParameterRequest):
        return isinstance(record.get("Value"), str)
    return isinstance(record.get("SecretString"), str) or isinstance(
        record.get("SecretBinary"), str
    )
