"""The ASGI middleware: a store's values on every request."""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Generic, TypeVar

from ._cache import CacheStats
from ._context import _current, values_dict
from ._declarations import Declaration
from ._settings import Settings
from ._sources import Source
from ._store import ParametersSecrets
from ._time_bounds import invocation_started
from ._types import ASGIApp, Message, Receive, Scope, Send
from .exceptions import ConfigurationError, LoadError

logger = logging.getLogger("parameters_secrets")

# Leave this much of the Lambda's remaining time to answer 503 instead of timing out.
_DEADLINE_MARGIN_SECONDS = 0.05
# What a refused request is told to wait: about when a failed value is asked again.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_BODY = b'{"detail":"Service Unavailable"}'
UNAVAILABLE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(UNAVAILABLE_BODY)).encode()),
    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    (b"cache-control", b"no-store"),
]

OnFailure = Callable[[LoadError], ASGIApp]
AppT = TypeVar("AppT")
FailureT = TypeVar("FailureT")


class StoreMiddleware(Generic[AppT, FailureT]):
    """What both middlewares hold: the app, the store, the excluded paths, ``on_failure``."""

    def __init__(
        self,
        app: AppT,
        *,
        values: Mapping[str, Declaration] | ParametersSecrets,
        source: Source | None = None,
        settings: Settings | None = None,
        exclude_paths: Collection[str] = (),
        on_failure: FailureT | None = None,
    ) -> None:
        self.app = app
        self.store = store_for(values, source, settings)
        self._excluded_paths = ExcludedPaths(exclude_paths)
        # Checked first on every request: no call at all when nothing is excluded.
        self._excluding = bool(self._excluded_paths.exact or self._excluded_paths.prefixes)
        if on_failure is not None and not callable(on_failure):
            raise ConfigurationError(f"on_failure must be a callable, not {on_failure!r}")
        self._on_failure = on_failure

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r})"

    @property
    def stats(self) -> CacheStats:
        """The store's cache counters."""
        return self.store.stats


class ParametersSecretsMiddleware(StoreMiddleware[ASGIApp, "OnFailure"]):
    """Put declared SSM parameters and Secrets Manager secrets on every request.

    Values are fetched on the first request (all at once), cached in process with the
    AWS Parameters and Secrets Lambda Extension's semantics, and set as
    ``scope["state"][key]`` (``request.state.key``) and in :func:`current_values`.
    A required value that cannot be loaded answers 503 without calling the app.

    Args:
        app: The ASGI app to wrap.
        values: A :class:`ParametersSecrets` store shared with the rest of the app (built
            at import, a bad declaration fails there); or the declarations themselves, key
            (a Python identifier) to :class:`Parameter`, :class:`Secret` or
            :class:`ParametersByPath`, for a store of the middleware's own.
        source: Where values come from (only with a mapping); default:
            ``PARAMETERS_SECRETS_SOURCE``, else the extension in Lambda, else AWS.
        settings: Cache settings (only with a mapping); default ``Settings.from_env()``.
        exclude_paths: Paths whose requests reach the app without loading values (health
            checks, docs); an entry ending in ``*`` is a prefix.
        on_failure: Given the :class:`LoadError`, returns the ASGI app (a Starlette
            ``Response`` is one) that answers an HTTP request whose values could not be
            loaded; default a 503 ``{"detail": "Service Unavailable"}`` with
            ``Retry-After``. If it raises, or returns something that is not an ASGI app,
            the default answer is sent and an ERROR logged. A websocket handshake is
            refused with the same 503 where the server supports denial responses
            (uvicorn, hypercorn, daphne), else accepted and closed with code 1011.

    Raises:
        ConfigurationError: A key, declaration or argument is not valid, or a setting is
            out of range.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Inline, not a method: this runs on every request (the warm path's cost).
        if scope["type"] not in ("http", "websocket") or (
            self._excluding
            and self._excluded_paths.match(scope.get("path", ""), scope.get("root_path", ""))
        ):
            await self.app(scope, receive, send)
            return
        store = self.store
        values = store.cached()  # the warm path: no await
        if values is None:
            try:
                values = await store.load(deadline=deadline(scope.get("aws.context")))
            except LoadError as error:
                await self._refuse(scope, receive, send, error)
                return
        scope.setdefault("state", {}).update(values_dict(values))
        token = _current.set(values)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: LoadError) -> None:
        # The keys and codes were logged (ERROR) by the store; the caller learns nothing.
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, receive, send)
            return
        answer = self._failure_answer(error)
        if answer is None or not await _answered_by(answer, scope, receive, send):
            await _send_unavailable(send, "http.")

    def _failure_answer(self, error: LoadError) -> ASGIApp | None:
        """What ``on_failure`` returns, if it is an ASGI app; else ``None`` (logged)."""
        if self._on_failure is None:
            return None
        try:
            answer: Any = self._on_failure(error)
        except Exception as exc:  # noqa: BLE001 - the user's callable failed: we answer 503
            logger.error("on_failure raised %s; answering 503", type(exc).__name__)
            return None
        return _asgi_app(answer)


def _asgi_app(answer: Any) -> ASGIApp | None:
    """``on_failure``'s answer, if it is an ASGI app; else ``None`` (logged)."""
    if inspect.isawaitable(answer):
        if inspect.iscoroutine(answer):
            answer.close()  # never awaited: no "coroutine was never awaited" warning
        logger.error(
            "on_failure must return an ASGI app (such as a Response), not an awaitable: "
            "is it an async function? answering 503"
        )
        return None
    if not callable(answer):
        logger.error(
            "on_failure must return an ASGI app (such as a Response), not %s; answering 503",
            type(answer).__name__,
        )
        return None
    return answer  # type: ignore[no-any-return]


async def _answered_by(answer: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bool:
    """Whether ``on_failure``'s ``answer`` answered the request: it returned, or it raised
    (logged) after the response began, when nothing else can be sent."""
    sent = _Sent(send)
    try:
        await answer(scope, receive, sent)
    except Exception as exc:  # noqa: BLE001 - the user's answer failed: we answer 503
        logger.error("on_failure's answer raised %s", type(exc).__name__)
        return sent.started
    return True


class _Sent:
    """A ``send`` that notes whether a response has begun."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = True
        await self.send(message)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client went away
    if "websocket.http.response" in scope.get("extensions", {}):
        # The server can answer the handshake with an HTTP response: the same retryable 503.
        await _send_unavailable(send, "websocket.http.")
        return
    # Closing before accepting would make the server answer 403 (forbidden): accept, then
    # close with 1011 (the server met an unexpected condition).
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1011, "reason": "Service Unavailable"})


async def _send_unavailable(send: Send, prefix: str) -> None:
    await send({"type": f"{prefix}response.start", "status": 503, "headers": UNAVAILABLE_HEADERS})
    await send({"type": f"{prefix}response.body", "body": UNAVAILABLE_BODY})


def store_for(
    values: Mapping[str, Declaration] | ParametersSecrets,
    source: Source | None,
    settings: Settings | None,
) -> ParametersSecrets:
    """The store a middleware reads: the one given, or one made of the declarations."""
    if isinstance(values, ParametersSecrets):
        if source is not None or settings is not None:
            raise ConfigurationError(
                "give source= and settings= to the ParametersSecrets store, "
                "not to the middleware that uses it"
            )
        return values
    return ParametersSecrets(values, source=source, settings=settings)


class ExcludedPaths:
    """``exclude_paths``: exact paths, and prefixes (an entry ending in ``*``)."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, exclude_paths: Collection[str]) -> None:
        _check_exclude_paths(exclude_paths)
        self.exact = frozenset(p for p in exclude_paths if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in exclude_paths if p.endswith("*"))

    def match(self, path: str, root: str) -> bool:
        """Whether a request for ``path`` under the app's ``root`` path is excluded.

        ASGI servers differ on whether ``path`` includes ``root`` (Starlette puts it in;
        some servers do not): either form matches.
        """
        inner = path[len(root) :] if root and path.startswith(root) else path
        return (
            path in self.exact
            or inner in self.exact
            or any(p.startswith(self.prefixes) for p in (path, inner))
        )


def _check_exclude_paths(exclude_paths: Collection[str]) -> None:
    """Refuse ``exclude_paths`` unless it is a collection of paths (not one string)."""
    if isinstance(exclude_paths, (str, bytes)) or not all(
        isinstance(p, str) and p.startswith("/") for p in exclude_paths
    ):
        raise ConfigurationError(
            "exclude_paths must be a collection of paths starting with '/', "
            f"such as ('/health', '/docs*'), not {exclude_paths!r}"
        )


def deadline(context: object) -> float | None:
    """When the Lambda invocation runs out of time (``time.monotonic()``), less a margin
    to answer 503 in, if ``context`` is a usable Lambda context; else ``None``.

    A deadline only shortens a fetch: beyond the ceiling (the timeout setting, else
    10 s) the ceiling holds, so a context's ``1e15`` ms bounds nothing more than none.
    A usable context also means an invocation has begun: Lambda's INIT is over.
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        milliseconds = float(remaining())
    except Exception:  # noqa: BLE001 - any context: Mangum's test context raises NotImplementedError
        return None
    invocation_started()
    if not math.isfinite(milliseconds):  # NaN or infinite: no deadline, the ceiling holds
        return None
    return time.monotonic() + milliseconds / 1000 - _DEADLINE_MARGIN_SECONDS
