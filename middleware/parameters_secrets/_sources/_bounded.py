"""Upstream answers read within bounds: their size, and what their JSON may make us do.

Every body from upstream (the extension, AWS, Cloud Extensions, the container credentials
endpoint) is read as it arrives, never past a cap that no legitimate answer reaches, and
parsed so that nothing but a ``FetchError`` can come out of a hostile one: a 1 GiB answer
costs at most the cap in memory, and ``'[' * 100_000`` is a ``MalformedResponse``, not a
``RecursionError``. Both failures are transient, so a cached value is served stale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._json import loads
from ..exceptions import FetchError

if TYPE_CHECKING:
    from .._http import httpx

# The largest answer AWS can give is a BatchGetSecretValue page: 20 secrets of at most
# 64 KiB each. A SecretBinary grows by 4/3 in base64 (85 KiB); a SecretString grows at
# most 6-fold, if every character is a control character JSON escapes as \u00XX (384
# KiB): 20 x 384 KiB = 7.5 MiB, with names and ARNs (20 x ~1 KiB) still under 8 MiB.
# Real answers stay far below: a page of 20 binary secrets is 1.7 MiB, a GetParameters or
# GetParametersByPath page (10 parameters of 8 KiB) 80 KiB, the extension's answer one
# value. The cap also bounds what parsing a hostile answer under it can cost.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# Of an error answer only its code and the start of its message are read (``error_code``
# looks at 4,000 characters): the rest is not read, and the answer keeps its status.
MAX_ERROR_BYTES = 64 * 1024


class Answer:
    """An answer read within bounds: its status, headers and (capped) body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: httpx.Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        """The body as text (an error's message): undecodable bytes replaced."""
        return self.body.decode("utf-8", "replace")


async def send_bounded(client: httpx.AsyncClient, request: httpx.Request, *, what: str) -> Answer:
    """Send ``request`` and read its answer: a success's body up to
    :data:`MAX_ANSWER_BYTES` (beyond it, ``ResponseTooLarge``), an error's first
    :data:`MAX_ERROR_BYTES`. The connection of an answer not read to its end is closed.

    The caller's time bound covers the reading: it is awaited chunk by chunk.

    Raises:
        FetchError: ``ResponseTooLarge`` or ``MalformedResponse`` (transient).
        httpx.TransportError: The connection failed, or was cut off mid-answer.
    """
    # httpx inflates each compressed chunk whole (one chunk could become a gigabyte):
    # ask for none, and refuse one sent anyway (read_capped).
    request.headers["Accept-Encoding"] = "identity"
    response = await client.send(request, stream=True)
    try:
        if 200 <= response.status_code < 300:
            body = await read_capped(response, MAX_ANSWER_BYTES, what=what)
        else:
            body = await _read_prefix(response, MAX_ERROR_BYTES)
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, body)


async def read_capped(response: httpx.Response, cap: int, *, what: str) -> bytes:
    """``response``'s body, read as it comes; refused as soon as it exceeds ``cap``
    bytes (or says it will), and when it is compressed.

    Raises:
        FetchError: ``ResponseTooLarge`` or ``MalformedResponse`` (transient); the
            message names the cap, never the body.
    """
    _refuse_unread(response, cap, what=what)
    body = bytearray()
    # Not compressed: aiter_bytes passes the bytes through as they arrive.
    async for chunk in response.aiter_bytes():
        if len(body) + len(chunk) > cap:
            raise _too_large(what, cap)
        body += chunk
    return bytes(body)


def _refuse_unread(response: httpx.Response, cap: int, *, what: str) -> None:
    """Refuse ``response`` before its body is read: its declared length exceeds ``cap``,
    or it is compressed."""
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
        raise _too_large(what, cap)
    if _compressed(response):
        raise FetchError(
            f"{what} is compressed though no compression was asked for",
            code="MalformedResponse",
            transient=True,
        )


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of ``response``'s body (an error's): the rest unread;
    none of a compressed one."""
    body = bytearray()
    if _compressed(response):
        return b""
    async for chunk in response.aiter_bytes():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)


def _compressed(response: httpx.Response) -> bool:
    return response.headers.get("content-encoding", "identity").strip().lower() not in (
        "",
        "identity",
    )


def _too_large(what: str, cap: int) -> FetchError:
    return FetchError(
        f"{what} is more than {_size(cap)}: no legitimate answer is that long; not read further",
        code="ResponseTooLarge",
        transient=True,
    )


def _size(count: int) -> str:
    return f"{count // 2**20} MiB" if count % 2**20 == 0 else f"{count // 1024} KiB"


def parse_answer(body: bytes, *, what: str) -> Any:
    """``body`` as JSON, or a transient ``MalformedResponse`` naming ``what``."""
    try:
        return loads(body)
    except ValueError as exc:
        raise FetchError(
            f"{what} is not JSON ({exc})", code="MalformedResponse", transient=True
        ) from None
