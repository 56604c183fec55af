"""The one vocabulary of upstream faults, for every fake in tests/.

A fault is what our code meets of an upstream that misbehaves. Every fake takes the same
:class:`Fault` values in ``fail(fault, *, times=None, match=None)`` and records, for
each request, the fault it met, so a test asserts that the fault it injected (not a
timeout, not something else) is what happened:

    from tests import faults

    extension.fail(faults.NOT_READY, times=3, match="/app/flags")
    proxy.fail(faults.throttle(), match="secretsmanager.BatchGetSecretValue")
    runtime.fail(faults.throttle(retry_after="0.5"), times=2)

The kinds: ``status`` (an error answer: ``status(code, aws_code, message)``, and
``throttle``), ``delay`` (the right answer, late; ``hang()``: later than any bound),
``trickle`` (the right answer a byte at a time), ``reset`` (the head and half the body,
then the connection is cut), ``refused`` (no connection: in process only; a fake on a
socket is stopped instead), ``malformed`` (a 200 whose body is not the answer: half of
it, or the bytes given), ``no_value`` (the right answer without its values) and ``huge``
(a 200 of ``size`` bytes). Any fault can come late: ``fault.after(seconds)``.

:class:`FaultRules` decides which request meets which fault (the fakes share it), and
:func:`inject` plays a fault as an ASGI app (``FakeExtension``, ``CountingProxy`` and
``FakeCloudExtensions`` are ASGI apps, so they share it too; ``InProcessMoto`` plays it
through :func:`mock_response`).

Which fake for which upstream (one each, all taking these faults):

* the Parameters and Secrets Lambda Extension: ``tests/extension_server.py``'s
  ``FakeExtension``, the package's own local server behind a fault layer; in process
  through ``transport()``, or on a socket (``start()``);
* SSM and Secrets Manager (and IAM, STS): moto. In process, ``tests/moto_in_process.py``'s
  ``InProcessMoto`` (moto's app behind ``httpx.MockTransport``: unit tests of parsing,
  retries and time bounds); on a socket, ``tests/moto_server.py``'s ``MotoServer`` (a
  subprocess) behind ``CountingProxy`` (integration tests, IAM enforced or not);
* the Systems Manager Cloud Extensions runtime: ``tests/cloud_extensions_fake.py``'s
  ``FakeCloudExtensions``, built from AWS's documentation (no other model of it exists);
* an answer no model gives (a status, a header, a body shape a parser must survive): an
  ``httpx.MockTransport`` handler scripted inside the one test that needs it.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, Literal

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ACCESS_DENIED",
    "HANG_SECONDS",
    "NOT_READY",
    "TRICKLE_SECONDS",
    "ConnectionCut",
    "Fault",
    "FaultRules",
    "delay",
    "hang",
    "huge",
    "inject",
    "malformed",
    "no_value",
    "refused",
    "reset",
    "server_error",
    "status",
    "throttle",
    "trickle",
]

Kind = Literal["status", "delay", "trickle", "reset", "refused", "malformed", "no_value", "huge"]
# Longer than any bound a test sets, yet finite: a bound that does not hold makes the
# test fail (the value arrives) rather than hang.
HANG_SECONDS = 30.0
TRICKLE_SECONDS = 0.05  # between two bytes of a trickled body
HUGE_PIECE = 64 * 1024  # a huge body is made as it is sent, this much at a time
_VALUE_FIELDS = frozenset({"Value", "SecretString", "SecretBinary"})


@dataclass(frozen=True)
class Fault:
    """One fault (see the module). ``wait``: seconds before the answer (``trickle``:
    between two bytes). ``aws_code`` ``None``: an error whose body is the text
    ``message``. ``chunked``: a huge body sent chunked rather than with a length."""

    kind: Kind
    status: int = 200
    aws_code: str | None = None
    message: str = ""
    wait: float = 0.0
    body: bytes | None = None
    retry_after: str | None = None
    size: int = 0
    chunked: bool = False

    def after(self, seconds: float) -> Fault:
        """The same fault, ``seconds`` late."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return replace(self, wait=seconds)


def status(
    code: int, aws_code: str | None = None, message: str = "", *, retry_after: str | None = None
) -> Fault:
    """An error answer: ``{"__type": aws_code, "message": message}`` (the upstream's own
    error shape), or the text ``message`` if ``aws_code`` is ``None``."""
    return Fault("status", code, aws_code, message, retry_after=retry_after)


def server_error(aws_code: str = "InternalFailure") -> Fault:
    """A 500 (AWS names it ``InternalFailure``; the extension ``InternalServerError``)."""
    return status(500, aws_code, "Internal failure")


def throttle(retry_after: str | None = None) -> Fault:
    """400 ``ThrottlingException`` (AWS's JSON APIs); with ``retry_after``, a 429 with
    that ``Retry-After`` (the Cloud Extensions runtime)."""
    code = 400 if retry_after is None else 429
    return status(code, "ThrottlingException", "Rate exceeded", retry_after=retry_after)


ACCESS_DENIED = status(400, "AccessDeniedException", "User is not authorized")
NOT_READY = Fault("status", 400, None, "not ready to serve traffic, please wait")


def delay(seconds: float) -> Fault:
    """The right answer, ``seconds`` late."""
    return Fault("delay").after(seconds)


def hang() -> Fault:
    """No answer within any bound a test sets (the right one after ``HANG_SECONDS``)."""
    return delay(HANG_SECONDS)


def trickle(every: float = TRICKLE_SECONDS) -> Fault:
    """The right answer, one byte every ``every`` seconds."""
    return Fault("trickle", wait=every)


def reset() -> Fault:
    """The right answer's head and half its body, then the connection is cut."""
    return Fault("reset")


def refused() -> Fault:
    """No connection (``httpx.ConnectError``): in process only."""
    return Fault("refused")


def malformed(body: bytes | None = None) -> Fault:
    """A 200 with ``body``; ``None``: the first half of the right answer's JSON."""
    return Fault("malformed", body=body)


def no_value() -> Fault:
    """A 200 with the right answer's JSON, every record without its value."""
    return Fault("no_value")


def huge(size: int, *, chunked: bool = False) -> Fault:
    """A 200 of ``size`` JSON-ish bytes, made as they are sent."""
    return Fault("huge", size=size, chunked=chunked)


# -- which request meets which fault -----------------------------------------------------


@dataclass
class _Rule:
    fault: Fault
    times: int | None
    match: str | None
    rng: random.Random | None
    probability: float


class FaultRules:
    """The faults injected into one fake (thread-safe). A rule applies to requests whose
    keys (a name, an action...: the fake says) include ``match`` (``None``: every one),
    the next ``times`` of them (``None``: until ``clear()``), each with ``probability``
    drawn from ``random.Random(seed)`` (a request that draws no fault does not count
    towards ``times``). Rules stack; the oldest that applies is used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def add(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        match: str | None = None,
        probability: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if not isinstance(fault, Fault):
            raise TypeError(f"a tests.faults.Fault, not {fault!r}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        rng = random.Random(seed) if probability < 1.0 else None
        with self._lock:
            self._rules.append(_Rule(fault, times, match, rng, probability))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(
        self, keys: Collection[str], accept: Callable[[Fault], bool] = lambda _: True
    ) -> Fault | None:
        """The fault the request with ``keys`` meets (of those ``accept`` allows here)."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not accept(rule.fault) or (rule.match is not None and rule.match not in keys):
                    continue
                if rule.rng is not None and rule.rng.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        del self._rules[index]
                return rule.fault
        return None


# -- a fault played as an ASGI app ------------------------------------------------------


class ConnectionCut(httpx.RemoteProtocolError):
    """What httpx raises when a peer closes the connection before the whole body came.

    ``reset`` raises it after sending half a body: in process, ``httpx.ASGITransport``
    hands the app's exception to the client, so the client gets this very error; over a
    socket (``tests/loopback_http.py``), the server cuts the connection instead.
    """


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
ErrorBody = Callable[[Fault], tuple[list[tuple[bytes, bytes]], bytes]]


def aws_error(
    fault: Fault, content_type: bytes = b"application/x-amz-json-1.1"
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An error in AWS's JSON shape (``__type``, ``message``), or a text one."""
    if fault.aws_code is None:
        return [(b"content-type", b"text/plain; charset=utf-8")], fault.message.encode()
    body = json.dumps({"__type": fault.aws_code, "message": fault.message}).encode()
    return [(b"content-type", content_type), (b"x-amzn-errortype", fault.aws_code.encode())], body


async def right_answer(app: ASGIApp, scope: Scope, body: bytes = b"") -> Answer:
    """What ``app`` answers ``scope`` (with request ``body``)."""
    start: Message = {}
    parts: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def keep(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        else:
            parts.append(message.get("body", b""))

    await app(scope, receive, keep)
    return start["status"], list(start.get("headers", [])), b"".join(parts)


async def inject(
    fault: Fault,
    scope: Scope,
    receive: Receive,
    send: Send,
    answer: Callable[[], Awaitable[Answer]],
    *,
    error_body: ErrorBody = aws_error,
    on_cut_off: Callable[[], None] = lambda: None,
) -> None:
    """Answer with ``fault``; ``answer()`` gives the right answer where the fault needs it.

    A wait ends early if the client goes (over a socket: it closed its end, or the server
    stopped); in process, the client's time bound cancels it. Either is ``on_cut_off``.
    """
    if fault.kind == "refused":
        raise ValueError("refused is a connection that never was: stop() the fake instead")
    if fault.kind == "trickle":
        await _trickle(await answer(), receive, send, fault.wait, on_cut_off)
        return
    if fault.wait > 0 and not await _wait(fault.wait, receive, on_cut_off):
        return  # nobody to answer
    if fault.kind == "status":
        headers, body = error_body(fault)
        if fault.retry_after is not None:
            headers = [*headers, (b"retry-after", fault.retry_after.encode())]
        await _send(send, fault.status, headers, body)
    elif fault.kind == "huge":
        await _huge(send, fault)
    elif fault.kind == "malformed" and fault.body is not None:
        await _send(send, 200, [(b"content-type", b"application/json")], fault.body)
    else:
        await _answered(fault, await answer(), send)


async def _answered(fault: Fault, right: Answer, send: Send) -> None:
    """``delay``, ``malformed`` (half), ``no_value`` and ``reset``: made of the right answer."""
    status_code, headers, body = right
    if fault.kind == "delay":
        await _send(send, status_code, _without_length(headers), body)
    elif fault.kind == "malformed":
        await _send(send, 200, _without_length(headers), body[: len(body) // 2] or b"{")
    elif fault.kind == "no_value":
        changed = json.dumps(_without_values(json.loads(body))).encode()
        await _send(send, status_code, _without_length(headers), changed)
    else:  # reset: a Content-Length the body never reaches
        headers = [*_without_length(headers), (b"content-length", str(len(body) + 4096).encode())]
        await send({"type": "http.response.start", "status": status_code, "headers": headers})
        half = body[: len(body) // 2 or 1]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionCut("peer closed connection without sending complete message body")


async def _send(
    send: Send, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _without_length(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (k, v) for k, v in headers if k.lower() not in (b"content-length", b"transfer-encoding")
    ]


async def _huge(send: Send, fault: Fault) -> None:
    framing = (
        (b"transfer-encoding", b"chunked")
        if fault.chunked
        else (b"content-length", str(fault.size).encode())
    )
    headers = [(b"content-type", b"application/json"), framing]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    piece = b'{"Value": "' + b"x" * (HUGE_PIECE - 11)
    for index in range(fault.size // HUGE_PIECE):  # bounded by the size
        more = index < fault.size // HUGE_PIECE - 1
        await send({"type": "http.response.body", "body": piece, "more_body": more})


async def _trickle(
    right: Answer, receive: Receive, send: Send, every: float, on_cut_off: Callable[[], None]
) -> None:
    status_code, headers, body = right
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    for index in range(len(body)):  # bounded by the body's length
        more = index < len(body) - 1
        try:
            await send(
                {"type": "http.response.body", "body": body[index : index + 1], "more_body": more}
            )
        except OSError:  # the client gave up (over a socket)
            on_cut_off()
            return
        if more and not await _wait(every, receive, on_cut_off):
            return


async def _wait(seconds: float, receive: Receive, on_cut_off: Callable[[], None]) -> bool:
    """Wait ``seconds``; ``False`` if the client went away first."""
    try:
        with anyio.move_on_after(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass  # the request's body: not read here
            on_cut_off()
            return False
    except anyio.get_cancelled_exc_class():
        on_cut_off()
        raise
    return True


def _without_values(answer: Any) -> Any:
    """The same answer, every record without its value (a 200 with nothing usable)."""
    if isinstance(answer, dict):
        return {k: _without_values(v) for k, v in answer.items() if k not in _VALUE_FIELDS}
    if isinstance(answer, list):
        return [_without_values(item) for item in answer]
    return answer


async def mock_response(
    fault: Fault,
    request: httpx.Request,
    answer: Callable[[], Awaitable[Answer]],
    *,
    error_body: ErrorBody = aws_error,
    on_cut_off: Callable[[], None] = lambda: None,
) -> httpx.Response:
    """``fault`` as an ``httpx.MockTransport`` handler answers ``request``: played by
    :func:`inject` in process, so a fault is the same whichever fake plays it."""
    if fault.kind == "refused":
        raise httpx.ConnectError("[Errno 111] Connection refused (injected)", request=request)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await inject(
            fault, scope, receive, send, answer, error_body=error_body, on_cut_off=on_cut_off
        )

    return await httpx.ASGITransport(app=app).handle_async_request(request)
