"""The ASGI middleware: a store's values on every request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping

from ._cache import CacheStats
from ._context import Values, _current
from ._declarations import Declaration
from ._settings import Settings
from ._sources import Source
from ._store import ParametersSecrets
from ._types import ASGIApp, Receive, Scope, Send
from .exceptions import ConfigurationError, LoadError

logger = logging.getLogger("parameters_secrets")

# Leave this much of the Lambda's remaining time to answer 503 instead of timing out.
_DEADLINE_MARGIN_SECONDS = 0.05
# What a refused request is told to wait: about when a failed value is asked again.
RETRY_AFTER_SECONDS = 5
_UNAVAILABLE = b'{"detail":"Service Unavailable"}'

OnFailure = Callable[[LoadError], ASGIApp]


class ParametersSecretsMiddleware:
    """Put declared SSM parameters and Secrets Manager secrets on every request.

    Values are fetched on the first request (all at once), cached in process with the
    AWS Parameters and Secrets Lambda Extension's semantics, and set as
    ``scope["state"][key]`` (``request.state.key``) and in :func:`current_values`.
    A required value that cannot be loaded answers 503 without calling the app.

    Args:
        app: The ASGI app to wrap.
        values: Key (a Python identifier) to :class:`Parameter` or :class:`Secret`; or a
            :class:`ParametersSecrets` store shared with the rest of the app.
        source: Where values come from (only with a mapping); default:
            ``PARAMETERS_SECRETS_SOURCE``, else the extension in Lambda, else AWS.
        settings: Cache settings (only with a mapping); default ``Settings.from_env()``.
        exclude_paths: Paths whose requests reach the app without loading values (health
            checks, docs); an entry ending in ``*`` is a prefix.
        on_failure: Given the :class:`LoadError`, returns the ASGI app (a Starlette
            ``Response`` is one) that answers an HTTP request whose values could not be
            loaded; default a 503 ``{"detail": "Service Unavailable"}`` with
            ``Retry-After``. A websocket is closed with code 1011 either way.

    Raises:
        ConfigurationError: A key, declaration or argument is not valid, or a setting is
            out of range.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        values: Mapping[str, Declaration] | ParametersSecrets,
        source: Source | None = None,
        settings: Settings | None = None,
        exclude_paths: Collection[str] = (),
        on_failure: OnFailure | None = None,
    ) -> None:
        self.app = app
        if isinstance(values, ParametersSecrets):
            if source is not None or settings is not None:
                raise ConfigurationError(
                    "give source= and settings= to the ParametersSecrets store, "
                    "not to the middleware that uses it"
                )
            self.store = values
        else:
            self.store = ParametersSecrets(values, source=source, settings=settings)
        self._exact_paths, self._path_prefixes = _paths(exclude_paths)
        if on_failure is not None and not callable(on_failure):
            raise ConfigurationError(f"on_failure must be a callable, not {on_failure!r}")
        self._on_failure = on_failure

    def __repr__(self) -> str:
        return f"ParametersSecretsMiddleware(store={self.store!r})"

    @property
    def stats(self) -> CacheStats:
        """The store's cache counters."""
        return self.store.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._excluded(scope):
            await self.app(scope, receive, send)
            return
        store = self.store
        values = store._current()  # the warm path: no await
        if values is None:
            try:
                values = await store._load_expired(_deadline(scope))
            except LoadError as error:
                await self._refuse(scope, receive, send, error)
                return
        scope.setdefault("state", {}).update(values)
        token = _current.set(Values(values))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)

    def _excluded(self, scope: Scope) -> bool:
        if not (self._exact_paths or self._path_prefixes):
            return False
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        # Starlette puts the root path in "path"; some servers do not.
        inner = path[len(root) :] if root and path.startswith(root) else path
        return (
            path in self._exact_paths
            or inner in self._exact_paths
            or any(p.startswith(self._path_prefixes) for p in (path, inner))
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: LoadError) -> None:
        # The keys and codes were logged (ERROR) by the store; the caller learns nothing.
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": "Service Unavailable"})
            return
        if self._on_failure is not None:
            answer = self._on_failure(error)
            await answer(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAVAILABLE)).encode()),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAVAILABLE})


def _paths(exclude_paths: Collection[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    if isinstance(exclude_paths, (str, bytes)) or not all(
        isinstance(p, str) and p.startswith("/") for p in exclude_paths
    ):
        raise ConfigurationError(
            "exclude_paths must be a collection of paths starting with '/', "
            f"such as ('/health', '/docs*'), not {exclude_paths!r}"
        )
    exact = frozenset(p for p in exclude_paths if not p.endswith("*"))
    prefixes = tuple(p[:-1] for p in exclude_paths if p.endswith("*"))
    return exact, prefixes


def _deadline(scope: Scope) -> float | None:
    """When the Lambda invocation runs out of time, if Mangum passed a usable context."""
    context = scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        milliseconds = float(remaining())
    except Exception:  # any context: Mangum's own test context raises NotImplementedError
        return None
    if milliseconds != milliseconds:  # NaN
        return None
    return time.monotonic() + milliseconds / 1000 - _DEADLINE_MARGIN_SECONDS
