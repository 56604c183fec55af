"""The store: declarations, cache and source in one object, for requests and everything else."""

from __future__ import annotations

import asyncio
import keyword
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import sniffio

from ._cache import Cache, CacheStats
from ._context import Values
from ._declarations import Declaration, Parameter, Record, Secret, ValueRequest, apply_transform
from ._settings import Settings, logger
from ._sources import Outcome, Source, choose_source
from ._sources._records import checked_record
from .exceptions import ConfigurationError, FetchError, LoadError, ParametersSecretsError

T = TypeVar("T")


class ParametersSecrets:
    """Declared SSM parameters and Secrets Manager secrets, cached with the extension's
    semantics, for a request or for any other code in the app.

    The middleware loads them for each request; a lifespan, a background task, a script
    or a plain Lambda handler in the same process reads the same values from the same
    cache. Nothing touches the network before the first load.

    Args:
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
        values: Mapping[str, Declaration],
        *,
        source: Source | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._declarations = _validated(values)
        self.settings = settings if settings is not None else Settings.from_env()
        self.settings.apply_log_level()
        if source is None:
            source, reason = choose_source(self.settings)
        else:
            reason = "passed as source="
        if not isinstance(source, Source):
            raise ConfigurationError(
                f"source must have async fetch() and aclose() methods, not {source!r}"
            )
        self.source = source
        logger.info("parameters_secrets: values from %r (%s)", source, reason)
        logger.debug("parameters_secrets: %r", self.settings)
        self._ttls = {key: self._ttl(d) for key, d in self._declarations.items()}
        # The built-in sources check their answers (checks_records); a custom one's are
        # checked here, so that it is held to the same.
        fetch = source.fetch if getattr(source, "checks_records", False) else self._fetch_checked
        self._cache: Cache[ValueRequest, Record] = Cache(
            fetch,
            max_size=self.settings.cache_size,
            enabled=self.settings.cache_enabled,
            stale_if_error=self.settings.stale_if_error,
            clock=clock,
        )
        self._clock = clock
        # key -> (record, value): a transform runs once per fetched record, not per read.
        self._transformed: dict[str, tuple[Record, Any]] = {}
        # The warm path: the last complete set of values, good until the first of them
        # expires. Shared, read-only, by every request until then.
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_until = 0.0
        self._snapshot_hits = 0
        # Bumped by every refresh: a load that began before it must not keep its values.
        self._refreshes = 0

    def __repr__(self) -> str:
        return f"ParametersSecrets(keys={list(self._declarations)}, source={self.source!r})"

    @property
    def stats(self) -> CacheStats:
        """The cache's counters: hits, upstream fetches, refreshes, stale serves, errors."""
        stats = self._cache.stats
        return replace(stats, hits=stats.hits + self._snapshot_hits)

    # -- async ------------------------------------------------------------------------

    async def load(self) -> Values:
        """Every declared value, fetched (all at once) where not cached.

        Raises:
            LoadError: A required value could not be loaded (and has no previous value).
        """
        snapshot = self._current()
        if snapshot is None:
            snapshot = await self._load_expired(None)
        return Values(snapshot)

    async def get(self, key: str) -> Any:
        """One declared value.

        Raises:
            KeyError: ``key`` is not declared.
            LoadError: It is required and could not be loaded.
        """
        snapshot = self._snapshot_values()
        if snapshot is not None:
            self._snapshot_hits += 1
            return snapshot[self._declared(key)]
        values, failures, _ = await self._resolve([self._declared(key)])
        if failures:
            raise LoadError(failures)
        return values[key]

    async def refresh(self, *keys: str) -> Values:
        """Fetch ``keys`` (every declared key if none is given) from the source now,
        whatever their TTL, and return their new values.

        However many callers refresh a key at once, the source is asked once. Behind the
        extension, the extension may still answer from its own cache; with
        :class:`AwsSource`, this reaches AWS.

        Raises:
            KeyError: A key is not declared.
            LoadError: A required value could not be loaded (and has no previous value).
        """
        names = [self._declared(key) for key in keys] or list(self._declarations)
        values, failures, _ = await self._resolve(names, force=True)
        if failures:
            raise LoadError(failures)
        return Values(values)

    async def aclose(self) -> None:
        """Release the source's connections."""
        await self.source.aclose()

    # -- sync ---------------------------------------------------------------------------

    def load_sync(self) -> Values:
        """:meth:`load` for code with no running event loop (a plain Lambda handler, a
        script). Shares the store's cache; never calls ``asyncio.run``.

        Raises:
            ParametersSecretsError: Called from inside a running event loop.
        """
        snapshot = self._current()
        if snapshot is not None:
            return Values(snapshot)
        return self._run_sync("load", self.load)

    def get_sync(self, key: str) -> Any:
        """:meth:`get` for code with no running event loop."""
        snapshot = self._snapshot_values()
        if snapshot is not None:
            self._snapshot_hits += 1
            return snapshot[self._declared(key)]
        return self._run_sync("get", self.get, key)

    def refresh_sync(self, *keys: str) -> Values:
        """:meth:`refresh` for code with no running event loop."""
        return self._run_sync("refresh", self.refresh, *keys)

    def _run_sync(self, name: str, method: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        try:
            library: str | None = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        if library is not None:
            raise ParametersSecretsError(
                f"{name}_sync() was called inside a running event loop ({library}): "
                f"use 'await store.{name}()' there"
            )
        # A private loop, never made the thread's current one, so that a Mangum handler
        # in the same process keeps its own (asyncio.run would unset it). Connections
        # opened here close with this loop (shutdown_asyncgens).
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(method(*args))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    # -- for the middleware -----------------------------------------------------------

    def _current(self) -> dict[str, Any] | None:
        """Every value, if all are loaded and none has expired; else ``None``. No await:
        the warm path of a request."""
        snapshot = self._snapshot_values()
        if snapshot is not None:
            self._snapshot_hits += len(snapshot)
        return snapshot

    def _snapshot_values(self) -> dict[str, Any] | None:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < self._snapshot_until:
            return snapshot
        return None

    async def _load_expired(self, deadline: float | None) -> dict[str, Any]:
        """Every value through the cache (the snapshot is gone); a new snapshot if all are
        cached and no refresh ran meanwhile.

        Raises:
            LoadError: A required value could not be loaded.
        """
        refreshes = self._refreshes
        values, failures, until = await self._resolve(list(self._declarations), deadline=deadline)
        if failures:
            self._snapshot = None
            raise LoadError(failures)
        if refreshes == self._refreshes and until is not None:
            self._snapshot, self._snapshot_until = values, until
        return values

    async def _resolve(
        self, keys: Sequence[str], *, deadline: float | None = None, force: bool = False
    ) -> tuple[dict[str, Any], dict[str, FetchError], float | None]:
        """The values of ``keys``; the required ones that failed, with their errors; and
        until when all of them are fresh (``None``: one is not cached)."""
        declarations = [(key, self._declarations[key]) for key in keys]
        if force:
            self._refreshes += 1
            self._snapshot = None
        before = self._cache.stats if logger.isEnabledFor(logging.DEBUG) else None
        lookups = await self._cache.get_many(
            [(d.request, self._ttls[key]) for key, d in declarations],
            deadline=deadline,
            force=force,
        )
        if before is not None and self._cache.stats != before:
            logger.debug("parameters_secrets: cache %s", self._cache.stats)
        values: dict[str, Any] = {}
        failures: dict[str, FetchError] = {}
        until = math.inf
        for (key, declaration), (outcome, fresh_until) in zip(declarations, lookups, strict=True):
            until = min(until, -math.inf if fresh_until is None else fresh_until)
            if not isinstance(outcome, FetchError):
                try:
                    values[key] = self._value(key, declaration, outcome)
                    continue
                except FetchError as exc:
                    outcome = exc
            if declaration.required:
                failures[key] = outcome
                logger.error(
                    "required value %r (%s) could not be loaded (%s): %s",
                    key,
                    declaration.request.describe(),
                    outcome.code,
                    outcome,
                )
            else:
                if not outcome.not_found:
                    logger.warning(
                        "optional value %r (%s) could not be loaded (%s); using its default",
                        key,
                        declaration.request.describe(),
                        outcome.code,
                    )
                values[key] = declaration.default
        return values, failures, (until if until > self._clock() else None)

    # -- internals ----------------------------------------------------------------------

    def _declared(self, key: str) -> str:
        if key not in self._declarations:
            raise KeyError(f"{key!r} is not declared (declared: {', '.join(self._declarations)})")
        return key

    def _ttl(self, declaration: Declaration) -> float:
        if declaration.ttl is not None:
            return declaration.ttl
        if isinstance(declaration, Parameter):
            return self.settings.parameter_ttl
        return self.settings.secret_ttl

    async def _fetch_checked(
        self, requests: Sequence[ValueRequest], deadline: float | None
    ) -> list[Outcome]:
        outcomes = await self.source.fetch(requests, deadline)
        return [
            outcome if isinstance(outcome, FetchError) else checked_record(request, outcome)
            for request, outcome in zip(requests, outcomes, strict=True)
        ]

    def _value(self, key: str, declaration: Declaration, record: Record) -> Any:
        memo = self._transformed.get(key)
        if memo is not None and memo[0] is record:
            return memo[1]
        value = apply_transform(declaration, record)
        self._transformed[key] = (record, value)
        return value


def _validated(values: Mapping[str, Declaration]) -> dict[str, Declaration]:
    if isinstance(values, ParametersSecrets) or not isinstance(values, Mapping):
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
