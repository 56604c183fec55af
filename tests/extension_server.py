"""A fake AWS Parameters and Secrets Lambda Extension for tests: the package's own local
server, behind a layer that records requests and injects faults.

The answers are ``parameters_secrets._server.ExtensionServer``'s, from values held in
``StaticSource``, with the server's cache off (``Settings(cache_enabled=False)``): every
request reaches the values, as every request to an extension whose cache is off reaches
AWS, and a value put here is answered at once. In front of the server, an ASGI layer
records each request (path, query, headers, method), counts requests per (kind, name),
and injects faults. The same app is reached two ways:

* in process, through ``transport()`` (``httpx.ASGITransport``): no socket and no thread,
  for the tests of parsing, retries and time bounds;
* over a socket on 127.0.0.1 (``start()``, or ``with``: an ephemeral port, a thread per
  connection; ``tests/loopback_http.py``), where the socket is the point: a refused
  connection (``stop()``), bodies that trickle or are cut off, a restart on the same port
  (``start(port=old_port)``), connection counts.

    with FakeExtension() as ext:
        ext.put_parameter("/app/key", "v1", type="SecureString")
        ...  # point the client at ext.port (or ext.url) with token ext.token
        assert ext.calls("parameter", "/app/key") == 1

    ext = FakeExtension()
    source = ExtensionSource(token=ext.token, transport=ext.transport())

``StaticSource`` holds one version of each name; the fake keeps every version put and
answers from one ``StaticSource`` per generation (the newest version of each name, then
the one before, ...), asked newest first: a version, label, stage or version id that only
an older version holds is answered by that version, as SSM and Secrets Manager answer it.

Faults are ``tests/faults.py``'s (``fail(faults.NOT_READY, times=3, match="/app/key")``:
``match`` is the name or secret id asked for), and ``call_log()`` tells which requests
each met: a test asserts that the fault it injected is what happened. A late or trickled
answer that the client stopped waiting for counts in ``cut_off``.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from starlette.types import Receive, Scope, Send

from parameters_secrets import FetchError, Settings
from parameters_secrets._declarations import Record, ValueRequest
from parameters_secrets._server import PARAMETER_PATHS, SECRET_PATHS, ExtensionServer
from parameters_secrets.sources import StaticSource
from tests import faults
from tests.faults import Fault, FaultRules
from tests.loopback_http import LoopbackASGIServer, ServedInThread

__all__ = ["FakeExtension", "RecordedRequest"]

Kind = Literal["parameter", "secret"]

DEFAULT_TOKEN = "test-session-token"


def _error_body(fault: Fault) -> tuple[list[tuple[bytes, bytes]], bytes]:
    return faults.aws_error(fault, content_type=b"application/json")


def _is_refused(fault: Fault) -> bool:
    return fault.kind == "refused"


def _is_answered(fault: Fault) -> bool:
    return fault.kind != "refused"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. ``query`` holds the first value of each key, decoded;
    ``raw_query`` is the query string as sent (to check parameter order)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_query: str = ""
    method: str = "GET"


def _recorded(
    method: str, path: str, raw_query: str, headers: Iterable[tuple[str, str]]
) -> RecordedRequest:
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(key, value)
    return RecordedRequest(
        path, query, {name.lower(): value for name, value in headers}, raw_query, method
    )


def _route(request: RecordedRequest) -> tuple[Kind | None, str | None]:
    """The API a request is for, and the name it asks for (``None``: none given)."""
    if request.method == "GET" and request.path in PARAMETER_PATHS:
        return "parameter", request.query.get("name")
    if request.method == "GET" and request.path in SECRET_PATHS:
        return "secret", request.query.get("secretId")
    return None, None


class _Versions:
    """The fake's values as a source: each request asked of the generations, newest first;
    the newest generation's error if none has it."""

    checks_records = True  # StaticSource's records

    def __init__(self, fake: FakeExtension) -> None:
        self._fake = fake

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Record | FetchError]:
        outcomes: list[Record | FetchError] = []
        for request in requests:
            generation, first_error = 0, None
            while (source := self._fake._generation(generation)) is not None:
                [outcome] = await source.fetch([request], deadline)
                if not isinstance(outcome, FetchError):
                    break
                first_error = first_error or outcome
                generation += 1
            else:
                assert first_error is not None  # generation 0 always exists
                outcome = first_error
            outcomes.append(outcome)
        return outcomes

    async def aclose(self) -> None:
        """Nothing to release."""


class _InProcess(httpx.AsyncBaseTransport):
    """The fake without a socket: ``refused`` here, before the app; all else in the app."""

    def __init__(self, fake: FakeExtension) -> None:
        self._fake = fake
        self._app = httpx.ASGITransport(app=fake)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        recorded = _recorded(
            request.method,
            request.url.path,
            request.url.query.decode("latin-1"),
            request.headers.multi_items(),
        )
        if self._fake._arrive(recorded, connecting=True) is not None:
            raise httpx.ConnectError("[Errno 111] Connection refused (injected)", request=request)
        return await self._app.handle_async_request(request)


class FakeExtension(ServedInThread):
    """The extension's HTTP API, in process or on a loopback port. See the module doc.

    Args:
        token: The ``X-Aws-Parameters-Secrets-Token`` it accepts.
    """

    thread_name = "fake-extension"

    def __init__(self, *, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        super().__init__()
        self._lock = threading.Condition()
        # name -> StaticSource's spec of each version, oldest first
        self._parameters: dict[str, list[dict[str, Any]]] = {}
        self._secrets: dict[str, list[dict[str, Any]]] = {}
        self._generations: list[StaticSource] = []  # built when asked; reset by any change
        self._answers = ExtensionServer(
            _Versions(self), token=token, settings=Settings(cache_enabled=False)
        )
        self._faults = FaultRules()
        self._requests: list[RecordedRequest] = []
        self._calls: dict[tuple[str, str], int] = {}
        self._call_log: list[tuple[Kind, str, Fault | None]] = []
        self._connections = 0
        self._cut_off = 0

    # -- reaching it -----------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport to this fake in process (no socket needed or used)."""
        return _InProcess(self)

    def _make_server(self, port: int) -> LoopbackASGIServer:
        return LoopbackASGIServer(self, port, on_accept=self._connection_accepted)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- data ------------------------------------------------------------------------

    def put_parameter(
        self, name: str, value: str, *, type: str = "String", labels: Sequence[str] = ()
    ) -> int:
        """Append a new version; returns its number. ``labels`` move to this version."""
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of str, not a str")
        with self._lock:
            versions = self._parameters.get(name, [])
            spec = {"value": value, "type": type, "version": len(versions) + 1}
            spec["labels"] = list(labels)
            StaticSource(parameters={name: spec})  # refuses what StaticSource cannot hold
            for version in versions:
                version["labels"] = [label for label in version["labels"] if label not in labels]
            versions.append(spec)
            self._parameters[name] = versions
            self._generations.clear()
            return len(versions)

    def put_secret(
        self,
        secret_id: str,
        *,
        string: str | None = None,
        binary: bytes | None = None,
        stages: Sequence[str] = (),
    ) -> str:
        """Add a version staged AWSCURRENT (plus ``stages``, which move to it); the
        previous AWSCURRENT becomes AWSPREVIOUS. Returns the new VersionId."""
        if (string is None) == (binary is None):
            raise ValueError("give exactly one of string= or binary=")
        if isinstance(stages, str):
            raise TypeError("stages must be a sequence of str, not a str")
        value = (
            {"string": string}
            if string is not None
            else {"binary": base64.b64encode(binary or b"").decode()}
        )
        version_id = str(uuid.uuid4())
        new_stages = ["AWSCURRENT", *(stage for stage in stages if stage != "AWSCURRENT")]
        spec = {**value, "version_id": version_id, "stages": new_stages}
        StaticSource(secrets={secret_id: spec})  # refuses what StaticSource cannot hold
        with self._lock:
            versions = self._secrets.setdefault(secret_id, [])
            for version in versions:
                was_current = "AWSCURRENT" in version["stages"]
                version["stages"] = [
                    s for s in version["stages"] if s not in new_stages and s != "AWSPREVIOUS"
                ]
                if was_current:
                    version["stages"].append("AWSPREVIOUS")
            versions.append(spec)
            self._generations.clear()
        return version_id

    def delete_parameter(self, name: str) -> None:
        with self._lock:
            del self._parameters[name]
            self._generations.clear()

    def delete_secret(self, secret_id: str) -> None:
        with self._lock:
            del self._secrets[secret_id]
            self._generations.clear()

    def _generation(self, index: int) -> StaticSource | None:
        """The ``index``-th newest version of every name that has that many (0: the newest
        of each, even of none); ``None`` past the oldest."""
        with self._lock:
            while len(self._generations) <= index:
                depth = len(self._generations)
                parameters = {
                    n: v[-1 - depth] for n, v in self._parameters.items() if len(v) > depth
                }
                secrets = {n: v[-1 - depth] for n, v in self._secrets.items() if len(v) > depth}
                if depth and not (parameters or secrets):
                    return None
                self._generations.append(StaticSource(parameters=parameters, secrets=secrets))
            return self._generations[index]

    # -- counting --------------------------------------------------------------------

    def calls(self, kind: Kind, name: str) -> int:
        """Requests received (answered or failed) for ``name`` exactly as sent in the
        ``name`` / ``secretId`` query parameter. In process, a refused one counts too."""
        with self._lock:
            return self._calls.get((kind, name), 0)

    @property
    def total_calls(self) -> int:
        """Requests received on the two API endpoints with a name (any outcome)."""
        with self._lock:
            return sum(self._calls.values())

    def wait_for_calls(self, total: int, timeout: float = 10.0) -> bool:
        """Wait (bounded) until ``total_calls`` reaches ``total``: a request sent over a
        socket is recorded in a server thread, in its own time."""
        with self._lock:
            return self._lock.wait_for(lambda: sum(self._calls.values()) >= total, timeout)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, any path or method, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """TCP connections accepted and not yet closed by either side."""
        server = self._server
        return 0 if server is None else server.open_connections

    @property
    def connections(self) -> int:
        """TCP connections accepted."""
        with self._lock:
            return self._connections

    @property
    def cut_off(self) -> int:
        """Slow or trickled answers cut off before their end: the client stopped waiting
        (its time bound held), or, over a socket, the server stopped."""
        with self._lock:
            return self._cut_off

    def call_log(self) -> list[tuple[Kind, str, Fault | None]]:
        """``(kind, name, fault met or None)`` for every request received on the
        two API endpoints with a name, in the order received (a copy)."""
        with self._lock:
            return list(self._call_log)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self._calls.clear()
            self._call_log.clear()
            self._connections = 0
            self._cut_off = 0

    # -- faults ----------------------------------------------------------------------

    def fail(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        match: str | None = None,
        probability: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Make matching requests meet ``fault`` (``tests/faults.py``; ``match``: the
        name or secret id asked for, ``None``: every request). ``refused`` works in
        process only (over a socket: ``stop()``)."""
        self._faults.add(fault, times=times, match=match, probability=probability, seed=seed)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- the ASGI app ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._answers(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        request = _recorded(
            scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers
        )
        fault = self._arrive(request, connecting=False)
        if fault is None:
            await self._answers(scope, receive, send)
            return

        async def answer() -> faults.Answer:
            return await faults.right_answer(self._answers, scope)

        await faults.inject(
            fault,
            scope,
            receive,
            send,
            answer,
            error_body=_error_body,
            on_cut_off=self._count_cut_off,
        )

    def _connection_accepted(self) -> None:
        with self._lock:
            self._connections += 1

    def _arrive(self, request: RecordedRequest, *, connecting: bool) -> Fault | None:
        """Take the fault that applies to ``request`` at this stage, if any, and record
        the request where it ends: a connection refused (in process), or the app."""
        kind, name = _route(request)
        stage = _is_refused if connecting else _is_answered
        chosen = None if kind is None else self._faults.take({name or ""}, stage)
        with self._lock:
            if connecting and chosen is None:
                return None  # the app records it
            self._requests.append(request)
            if kind is not None and name is not None:
                self._calls[(kind, name)] = self._calls.get((kind, name), 0) + 1
                self._call_log.append((kind, name, chosen))
                self._lock.notify_all()
            return chosen

    def _count_cut_off(self) -> None:
        with self._lock:
            self._cut_off += 1
