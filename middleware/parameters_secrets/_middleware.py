"""The ASGI middleware: declared values on every request, from the in-process cache."""

from __future__ import annotations

import json
import keyword
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._cache import Cache, CacheStats
from ._context import Values, _current
from ._declarations import (
    Declaration,
    Parameter,
    Record,
    Secret,
    ValueRequest,
    apply_transform,
)
from ._settings import Settings, logger
from ._sources import Source, default_source
from ._types import ASGIApp, Receive, Scope, Send
from .exceptions import ConfigurationError, FetchError

# Leave this much of the Lambda's remaining time to answer 503 instead of timing out.
_DEADLINE_MARGIN_SECONDS = 0.05


class ParametersSecretsMiddleware:
    """Put declared SSM parameters and Secrets Manager secrets on every request.

    Values are fetched on the first request (all at once), cached in process with the
    AWS Parameters and Secrets Lambda Extension's semantics, and set as
    ``scope["state"][key]`` (``request.state.key``) and in :func:`current_values`.
    A required value that cannot be loaded answers 503 without calling the app.

    Args:
        app: The ASGI app to wrap.
        values: Key (a Python identifier) to :class:`Parameter` or :class:`Secret`.
        source: Where values come from; default: ``PARAMETERS_SECRETS_SOURCE``, else the
            extension in Lambda, else AWS directly.
        settings: Cache settings; default ``Settings.from_env()``.
        clock: Monotonic seconds for TTLs; for tests.

    Raises:
        ConfigurationError: A key or declaration is not valid, or a setting is out of range.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        values: Mapping[str, Declaration],
        source: Source | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._declarations = _validated(values)
        self.settings = settings if settings is not None else Settings.from_env()
        self.settings.apply_log_level()
        self.source = source if source is not None else default_source(self.settings)
        if not isinstance(self.source, Source):
            raise ConfigurationError(
                f"source must have async fetch() and aclose() methods, not {self.source!r}"
            )
        self._lookups = [(d.request, self._ttl(d)) for d in self._declarations.values()]
        self._cache: Cache[ValueRequest, Record] = Cache(
            self.source.fetch,
            max_size=self.settings.cache_size,
            enabled=self.settings.cache_enabled,
            stale_if_error=self.settings.stale_if_error,
            clock=clock,
        )
        # key -> (record, transformed value): transform once per fetched record.
        self._transformed: dict[str, tuple[Record, Any]] = {}
        # The warm path: the last complete set of values, good while the cache has not
        # changed and no entry has expired. Shared read-only by requests; each request
        # gets its own state dict and Values wrapper.
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_until = 0.0
        self._snapshot_generation = -1
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"ParametersSecretsMiddleware(keys={list(self._declarations)}, source={self.source!r})"
        )

    @property
    def stats(self) -> CacheStats:
        """The cache's counters: hits, upstream fetches, refreshes, stale serves, errors."""
        return self._cache.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        values, failures = await self._load(scope)
        if failures:
            await _refuse(scope, send, failures)
            return
        scope.setdefault("state", {}).update(values)
        token = _current.set(Values(values))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)

    def _ttl(self, declaration: Declaration) -> float:
        if declaration.ttl is not None:
            return declaration.ttl
        if isinstance(declaration, Parameter):
            return self.settings.parameter_ttl
        return self.settings.secret_ttl

    async def _load(self, scope: Scope) -> tuple[dict[str, Any], list[tuple[str, FetchError]]]:
        cache = self._cache
        if (
            self._snapshot is not None
            and cache.generation == self._snapshot_generation
            and self._clock() < self._snapshot_until
        ):
            cache.count_hits(len(self._lookups))
            return self._snapshot, []
        before = cache.stats if logger.isEnabledFor(logging.DEBUG) else None
        outcomes = await self._cache.get_many(self._lookups, deadline=_deadline(scope))
        values: dict[str, Any] = {}
        failures: list[tuple[str, FetchError]] = []
        for (key, declaration), outcome in zip(self._declarations.items(), outcomes, strict=True):
            if not isinstance(outcome, FetchError):
                try:
                    values[key] = self._value(key, declaration, outcome)
                    continue
                except FetchError as exc:
                    outcome = exc
            if declaration.required:
                failures.append((key, outcome))
            elif outcome.not_found:
                values[key] = declaration.default
            else:
                logger.warning(
                    "optional value %r (%s) could not be loaded (%s); using its default",
                    key,
                    declaration.request.describe(),
                    outcome.code,
                )
                values[key] = declaration.default
        for key, error in failures:
            logger.error(
                "required value %r (%s) could not be loaded: %s",
                key,
                self._declarations[key].request.describe(),
                error,
            )
        if before is not None and cache.stats != before:
            logger.debug("cache %s", cache.stats)
        self._keep_snapshot(values, failures)
        return values, failures

    def _keep_snapshot(self, values: dict[str, Any], failures: list[Any]) -> None:
        expiries = [self._cache.expires_at(key, ttl) for key, ttl in self._lookups]
        if failures or None in expiries:  # something failed, or is not cached at all
            self._snapshot = None
            return
        self._snapshot = values
        self._snapshot_until = min((e for e in expiries if e is not None), default=0.0)
        self._snapshot_generation = self._cache.generation

    def _value(self, key: str, declaration: Declaration, record: Record) -> Any:
        memo = self._transformed.get(key)
        if memo is not None and memo[0] is record:
            return memo[1]
        value = apply_transform(declaration, record)
        self._transformed[key] = (record, value)
        return value


def _validated(values: Mapping[str, Declaration]) -> dict[str, Declaration]:
    if not isinstance(values, Mapping):
        raise ConfigurationError("values must be a mapping of key to Parameter or Secret")
    for key, declaration in values.items():
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise ConfigurationError(f"values key {key!r} must be a Python identifier")
        if key.startswith("_"):
            # Starlette's State keeps its own attributes under "_" names.
            raise ConfigurationError(f"values key {key!r} must not start with an underscore")
        if not isinstance(declaration, (Parameter, Secret)):
            raise ConfigurationError(
                f"values[{key!r}] must be a Parameter or a Secret, not {type(declaration).__name__}"
            )
    return dict(values)


def _deadline(scope: Scope) -> float | None:
    """When the Lambda invocation runs out of time, if Mangum passed its context."""
    context = scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        milliseconds = float(remaining())
    except (TypeError, ValueError):
        return None
    return time.monotonic() + milliseconds / 1000 - _DEADLINE_MARGIN_SECONDS


async def _refuse(scope: Scope, send: Send, failures: list[tuple[str, FetchError]]) -> None:
    # Name the keys and AWS codes; nothing else leaves the process (no names, no values).
    detail = "could not load " + ", ".join(f"{key!r} ({error.code})" for key, error in failures)
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1011, "reason": detail[:120]})
        return
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
