"""A container credentials endpoint on 127.0.0.1, as ECS, EKS Pod Identity and Lambda
SnapStart serve one, for tests.

    with CredentialsEndpoint(token="t") as endpoint:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "t")
        ...
        assert endpoint.calls == 1

It checks the ``Authorization`` header against ``token`` (401 otherwise, with a body that
echoes what it got, so that a test can show it never reaches an error message), counts
calls, and hands out new keys on every call (``key-1``, ``key-2``...), or the ones queued
with ``issue()``. ``Expiration`` is ``clock() + lifetime``. ``hold()`` keeps answers back
until ``release()``; ``fail()`` answers an error or a body that is not credentials.

Standard library only; every wait is bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import cast

from tests.loopback_http import LoopbackHTTPServer, ServedInThread

__all__ = ["PATH", "CredentialsEndpoint"]

PATH = "/v1/credentials"
_HOLD_LIMIT = 30.0  # seconds an answer may be held back, at most


class _Server(LoopbackHTTPServer):
    endpoint: CredentialsEndpoint


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """No stderr logging."""

    def do_GET(self) -> None:
        endpoint = cast(_Server, self.server).endpoint
        status, body = endpoint._answer(self.path, self.headers.get("Authorization"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CredentialsEndpoint(ServedInThread):
    """The container credentials endpoint's HTTP API on an ephemeral loopback port.

    Args:
        token: The ``Authorization`` value it accepts; ``None``: any, or none.
        lifetime: Seconds from ``clock()`` to the ``Expiration`` it answers; ``None``:
            no ``Expiration`` at all.
        clock: Seconds since the epoch (share a fake clock with the provider under test).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        lifetime: float | None = 6 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.lifetime = lifetime
        self.clock = clock
        super().__init__()
        self.calls = 0
        self.authorizations: list[str | None] = []
        self.issued: list[str] = []  # access keys handed out, in order
        self._queue: list[tuple[str, str, str | None]] = []
        self._failure: tuple[int, bytes] | None = None
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    # -- lifecycle -------------------------------------------------------------------

    thread_name = "credentials-endpoint"

    def _make_server(self, port: int) -> _Server:
        server = _Server(_Handler, port)
        server.endpoint = self
        return server

    def stop(self) -> None:
        """Stop listening (the port then refuses connections) and end held answers."""
        self._open.set()
        super().stop()

    # -- behaviour -------------------------------------------------------------------

    def issue(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        """Hand out these keys on the next call (then the next queued, then new ones)."""
        with self._lock:
            self._queue.append((access_key, secret_key, token))

    def fail(self, status: int = 500, body: bytes | None = None) -> None:
        """Answer every call with ``status`` and ``body`` until ``recover()``."""
        with self._lock:
            self._failure = (status, body if body is not None else b'{"message": "down"}')

    def recover(self) -> None:
        with self._lock:
            self._failure = None

    def hold(self) -> None:
        """Keep every answer back until ``release()`` (the calls are counted meanwhile)."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    # -- called from handler threads -------------------------------------------------

    def _answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        with self._lock:
            self.calls += 1
            self.authorizations.append(authorization)
        self._open.wait(_HOLD_LIMIT)
        with self._lock:
            if path != PATH:
                return 404, b'{"message": "no such path"}'
            if self.token is not None and authorization != self.token:
                # Echo what was sent: a client must never copy this body into an error.
                return 401, json.dumps({"message": f"bad token {authorization!r}"}).encode()
            if self._failure is not None:
                return self._failure
            if self._queue:
                access_key, secret_key, token = self._queue.pop(0)
            else:
                number = len(self.issued) + 1
                access_key, secret_key, token = (
                    f"key-{number}",
                    f"secret-{number}",
                    f"session-{number}",
                )
            self.issued.append(access_key)
            answer: dict[str, str] = {
                "AccessKeyId": access_key,
                "SecretAccessKey": secret_key,
                "RoleArn": "arn:aws:iam::123456789012:role/task",
            }
            if token is not None:
                answer["Token"] = token
            if self.lifetime is not None:
                expiry = self.clock() + self.lifetime
                answer["Expiration"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
            return 200, json.dumps(answer).encode()
