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

A fault applies to matching requests (``name``, ``times``, and a ``probability`` drawn
from its own seeded generator), and ``call_log()`` tells which requests it was applied
to: a test asserts that the fault it injected is what happened. A slow or trickled answer
that the client stopped waiting for counts in ``cut_off``.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl

import anyio
import httpx
from starlette.types import Message, Receive, Scope, Send

from parameters_secrets import FetchError, Settings
from parameters_secrets._declarations import Record, ValueRequest
from parameters_secrets._server import PARAMETER_PATHS, SECRET_PATHS, ExtensionServer
from parameters_secrets.sources import StaticSource
from tests.loopback_http import LoopbackASGIServer, ServedInThread

__all__ = ["ConnectionCut", "FakeExtension", "FaultMode", "RecordedRequest"]

FaultMode = Literal[
    "error_500",  # 500 InternalServerError
    "throttle",  # 400 ThrottlingException
    "slow",  # the right answer, after ``delay``
    "malformed_json",  # a 200 with the first half of the right answer's JSON
    "no_value",  # a 200 with the right answer's JSON, without its values
    "drop_mid_body",  # the right answer's head and half its body, then the connection is cut
    "not_ready",  # 400 "not ready to serve traffic, please wait", as text
    "access_denied",  # 400 AccessDeniedException
    "trickle",  # the right answer, one byte every ``delay`` seconds (0.2 s by default)
    # In process only (``transport()``): httpx.ConnectError. Over a socket, ``stop()``.
    "refused",
]
Kind = Literal["parameter", "secret"]

DEFAULT_TOKEN = "test-session-token"
TRICKLE_SECONDS = 0.2
_VALUE_FIELDS = frozenset({"Value", "SecretString", "SecretBinary"})
_JSON = b"application/json"


def _error(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": f"{message} (injected)"}).encode()


_FIXED_ANSWERS: dict[str, tuple[int, bytes, bytes]] = {  # mode: status, content type, body
    "error_500": (500, _JSON, _error("InternalServerError", "Internal server error")),
    "throttle": (400, _JSON, _error("ThrottlingException", "Rate exceeded")),
    "access_denied": (400, _JSON, _error("AccessDeniedException", "User is not authorized")),
    "not_ready": (400, b"text/plain; charset=utf-8", b"not ready to serve traffic, please wait"),
}


class ConnectionCut(httpx.RemoteProtocolError):
    """What httpx raises when a peer closes the connection before the whole body came.

    The fake raises it after sending half a body (``drop_mid_body``): in process,
    ``httpx.ASGITransport`` hands the app's exception to the client, so the client gets
    this very error; over a socket, the server cuts the connection instead, and httpx
    raises its own ``RemoteProtocolError``.
    """


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. ``query`` holds the first value of each key, decoded;
    ``raw_query`` is the query string as sent (to check parameter order)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_query: str = ""
    method: str = "GET"


@dataclass
class _Fault:
    mode: FaultMode
    times: int | None
    name: str | None
    delay: float
    probability: float = 1.0
    rng: random.Random | None = None

    def applies(self) -> bool:
        """Draw whether this matching request gets the fault (called under the lock)."""
        return self.rng is None or self.rng.random() < self.probability


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
        self._lock = threading.Lock()
        # name -> StaticSource's spec of each version, oldest first
        self._parameters: dict[str, list[dict[str, Any]]] = {}
        self._secrets: dict[str, list[dict[str, Any]]] = {}
        self._generations: list[StaticSource] = []  # built when asked; reset by any change
        self._answers = ExtensionServer(
            _Versions(self), token=token, settings=Settings(cache_enabled=False)
        )
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._calls: dict[tuple[str, str], int] = {}
        self._call_log: list[tuple[Kind, str, FaultMode | None]] = []
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

    def call_log(self) -> list[tuple[Kind, str, FaultMode | None]]:
        """``(kind, name, fault mode applied or None)`` for every request received on the
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
        mode: FaultMode,
        *,
        times: int | None = None,
        name: str | None = None,
        delay: float = 0.0,
        probability: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Make matching requests fail. ``times=None``: until ``clear_faults()``;
        ``name=None``: every request. ``delay`` is waited before any mode's answer (for
        ``trickle``, between two bytes). ``probability`` < 1: each matching request gets
        the fault with that probability, drawn from ``random.Random(seed)`` (a request
        that draws no fault does not count towards ``times``). Faults stack; the oldest
        matching one that applies is used."""
        if mode not in get_args(FaultMode):
            raise ValueError(f"unknown fault mode {mode!r}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        rng = random.Random(seed) if probability < 1.0 else None
        with self._lock:
            self._faults.append(_Fault(mode, times, name, delay, probability, rng))

    def clear_faults(self) -> None:
        with self._lock:
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
        else:
            await self._inject(fault, scope, receive, send)

    def _connection_accepted(self) -> None:
        with self._lock:
            self._connections += 1

    def _arrive(self, request: RecordedRequest, *, connecting: bool) -> _Fault | None:
        """Take the fault that applies to ``request`` at this stage, if any, and record
        the request where it ends: a connection refused (in process), or the app."""
        kind, name = _route(request)
        with self._lock:
            chosen = None if kind is None else self._take_fault(name, connecting=connecting)
            if connecting and chosen is None:
                return None  # the app records it
            self._requests.append(request)
            if kind is not None and name is not None:
                self._calls[(kind, name)] = self._calls.get((kind, name), 0) + 1
                self._call_log.append((kind, name, None if chosen is None else chosen.mode))
            return chosen

    def _take_fault(self, name: str | None, *, connecting: bool) -> _Fault | None:
        """The oldest fault for ``name`` at this stage that applies (under the lock)."""
        for index, fault in enumerate(self._faults):
            if (fault.mode == "refused") != connecting:
                continue
            if fault.name is not None and fault.name != name:
                continue
            if not fault.applies():
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[index]
            return fault
        return None

    async def _inject(self, fault: _Fault, scope: Scope, receive: Receive, send: Send) -> None:
        if fault.mode == "trickle":
            await self._trickle(scope, receive, send, fault.delay or TRICKLE_SECONDS)
            return
        if fault.delay > 0 and not await self._wait(fault.delay, receive):
            return  # the client is gone, or the server stopped: nobody to answer
        if fault.mode == "slow":
            await self._answers(scope, receive, send)
            return
        if fault.mode in _FIXED_ANSWERS:
            status, content_type, body = _FIXED_ANSWERS[fault.mode]
            await _answer(send, status, body, content_type)
            return
        status, headers, body = await self._right_answer(scope)
        if fault.mode == "malformed_json":
            await _answer(send, 200, body[: len(body) // 2])
        elif fault.mode == "no_value":
            await _answer(send, 200, json.dumps(_without_values(json.loads(body))).encode())
        else:  # drop_mid_body: a Content-Length the body never reaches
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            headers.append((b"content-length", str(len(body) + 4096).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            half = body[: len(body) // 2 or 1]
            await send({"type": "http.response.body", "body": half, "more_body": True})
            raise ConnectionCut("peer closed connection without sending complete message body")

    async def _right_answer(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """What the server answers ``scope``: status, headers and body."""
        start: Message = {}
        body: list[bytes] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                body.append(message.get("body", b""))

        await self._answers(scope, receive, keep)
        return start["status"], list(start.get("headers", [])), b"".join(body)

    async def _trickle(self, scope: Scope, receive: Receive, send: Send, every: float) -> None:
        status, headers, body = await self._right_answer(scope)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for index in range(len(body)):  # bounded by the body's length
            more = index < len(body) - 1
            try:
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[index : index + 1],
                        "more_body": more,
                    }
                )
            except OSError:  # the client gave up (over a socket)
                self._count_cut_off()
                return
            if more and not await self._wait(every, receive):
                return

    async def _wait(self, seconds: float, receive: Receive) -> bool:
        """Wait ``seconds``; ``False`` if the client went away first (over a socket: it
        closed its end, or the server stopped). In process, the client's time bound
        cancels the wait: counted, and passed on."""
        try:
            with anyio.move_on_after(seconds):
                while (await receive())["type"] != "http.disconnect":
                    pass  # the request's body: the server does not read it
                self._count_cut_off()
                return False
        except anyio.get_cancelled_exc_class():
            self._count_cut_off()
            raise
        return True

    def _count_cut_off(self) -> None:
        with self._lock:
            self._cut_off += 1


async def _answer(send: Send, status: int, body: bytes, content_type: bytes = _JSON) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _without_values(answer: Any) -> Any:
    """The same answer, every record without its value (a 200 with nothing usable)."""
    if isinstance(answer, dict):
        return {k: _without_values(v) for k, v in answer.items() if k not in _VALUE_FIELDS}
    if isinstance(answer, list):
        return [_without_values(item) for item in answer]
    return answer
