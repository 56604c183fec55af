"""The store: declarations, cache and source in one object, for requests and everything else."""

from __future__ import annotations

import keyword
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._cache import Cache, CacheStats, Lookup
from ._concurrency import SyncLoop, drop_after_restore, hook_snapstart
from ._context import Values
from ._declarations import (
    Declaration,
    Parameter,
    ParametersByPath,
    Record,
    Secret,
    ValueRequest,
    apply_transform,
)
from ._settings import Settings, logger
from ._sources import Outcome, Source, choose_source, give_up_time
from ._sources._records import checked_record
from .exceptions import ConfigurationError, FetchError, LoadError


class ParametersSecrets:
    """Declared SSM parameters and Secrets Manager secrets, cached with the extension's
    semantics, for a request or for any other code in the app.

    The middleware loads them for each request; a lifespan, a background task, a script
    or a plain Lambda handler in the same process reads the same values from the same
    cache. Nothing touches the network before the first load.

    One store may be used at once from any number of threads and event loops (Mangum's,
    ``asyncio.run``, trio, worker threads through the sync methods): however many callers
    miss a value at once, the source is asked once, and a caller waiting for another's
    fetch never blocks its own loop nor waits beyond its own time bound.

    Args:
        values: Key (a Python identifier) to :class:`Parameter`, :class:`Secret` or
            :class:`ParametersByPath`.
        source: Where values come from; default: ``PARAMETERS_SECRETS_SOURCE``, else the
            extension in Lambda (with AWS directly while it is not serving, unless
            ``PARAMETERS_SECRETS_EXTENSION_FALLBACK=none``), else AWS directly.
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
                "source must have async fetch() and aclose() methods and a checks_records "
                f"attribute (subclass parameters_secrets.Source to inherit it), not {source!r}"
            )
        self.source = source
        logger.info("parameters_secrets: values from %r (%s)", source, reason)
        logger.debug("parameters_secrets: %r", self.settings)
        self._ttls = {key: self._ttl(d) for key, d in self._declarations.items()}
        self._cache: Cache[ValueRequest, Record] = Cache(
            # A source that does not check its answers is held to the same check here.
            source.fetch if source.checks_records else self._fetch_checked,
            max_size=self.settings.cache_size,
            enabled=self.settings.cache_enabled,
            stale_if_error=self.settings.stale_if_error,
            clock=clock,
            bound=self._time_bound,
        )
        self._clock = clock
        # key -> (record, value): a transform runs once per fetched record, not per read.
        self._transformed: dict[str, tuple[Record, Any]] = {}
        # The warm path: every value, and until when all of them are fresh, rebuilt from
        # the cache whenever a lookup leaves every value fresh. Shared, read-only, by every
        # caller until then; replaced whole, so any thread reads a consistent pair.
        self._snapshot: tuple[Values, float] | None = None
        # The sync methods' event loop: no thread until the first sync call misses.
        self._sync_loop = SyncLoop()
        # SnapStart: values loaded before a snapshot are never served after a restore.
        drop_after_restore(self)
        hook_snapstart()

    def __repr__(self) -> str:
        return f"ParametersSecrets(keys={list(self._declarations)}, source={self.source!r})"

    def drop_after_restore(self) -> None:
        """Forget every value loaded before a SnapStart snapshot (called by the restore
        hook; no upstream call): the next use fetches again."""
        self._snapshot = None
        self._cache.clear()
        self._transformed.clear()

    @property
    def stats(self) -> CacheStats:
        """The cache's counters: hits, upstream fetches, refreshes, stale serves, errors."""
        return self._cache.stats

    def cached(self) -> Values | None:
        """Every declared value if all are cached and fresh, else ``None``.

        Never fetches, never waits, never runs an event loop: the warm path of a request.
        """
        snapshot = self._fresh_snapshot()
        if snapshot is not None:
            self._cache.count_hits(len(snapshot))
        return snapshot

    # -- async ------------------------------------------------------------------------

    async def load(self, *, deadline: float | None = None) -> Values:
        """Every declared value, fetched (all at once) where not cached.

        Args:
            deadline: When loading must end (a ``time.monotonic()`` instant), such as the
                Lambda invocation's end; the timeout settings bound it too.

        Raises:
            LoadError: A required value could not be loaded (and has no previous value).
        """
        values = self.cached()
        if values is not None:
            return values
        resolved, failures, _ = await self._resolve(list(self._declarations), deadline=deadline)
        if failures:
            raise LoadError(failures)
        return Values(resolved)

    async def get(self, key: str) -> Any:
        """One declared value.

        Raises:
            KeyError: ``key`` is not declared.
            LoadError: It is required and could not be loaded.
        """
        found = self._fresh_value(self._declared(key))
        if found:
            return found[0]
        values, failures, _ = await self._resolve([key])
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
        """Release the source's connections (those of the running event loop; the others
        close with their loops) and close the sync methods' event loop with its
        connections (a later sync call starts a new one)."""
        await self.source.aclose()
        await self._sync_loop.aclose()

    # -- sync ---------------------------------------------------------------------------

    def load_sync(self, *, deadline: float | None = None) -> Values:
        """:meth:`load` for code with no running event loop (a plain Lambda handler, a
        script, a WSGI app, a thread). Shares the store's cache; a warm read runs no event
        loop; a cache miss runs on the store's own loop, shared by every thread's sync
        calls (and so are its connections), and waits for it (never ``asyncio.run``).

        Raises:
            ParametersSecretsError: Called from inside a running event loop.
        """
        values = self.cached()
        if values is not None:
            return values
        return self._sync_loop.run("load", self._load_cold, deadline)

    def get_sync(self, key: str) -> Any:
        """:meth:`get` for code with no running event loop."""
        found = self._fresh_value(self._declared(key))
        if found:
            return found[0]
        return self._sync_loop.run("get", self.get, key)

    def refresh_sync(self, *keys: str) -> Values:
        """:meth:`refresh` for code with no running event loop."""
        return self._sync_loop.run("refresh", self.refresh, *keys)

    async def _load_cold(self, deadline: float | None) -> Values:
        return await self.load(deadline=deadline)

    # -- reading what is cached, without waiting ----------------------------------------

    def _fresh_snapshot(self) -> Values | None:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot[1]:
            return snapshot[0]
        return None

    def _fresh_value(self, key: str) -> tuple[Any] | tuple[()]:
        """``(value,)`` if ``key``'s value is cached and fresh, else ``()``."""
        snapshot = self._fresh_snapshot()
        if snapshot is None:
            lookups = self._cache.peek([(self._declarations[key].request, self._ttls[key])])
            if lookups is None:
                return ()
            values, failures, _ = self._interpret([key], lookups, log=False)
            return () if failures else (values[key],)
        self._cache.count_hits(1)
        return (snapshot[key],)

    def _take_snapshot(self) -> None:
        """Keep every value as the warm path's snapshot, if every one is fresh now: read
        from the cache, so a lookup that began before a refresh cannot put back the
        older values it got."""
        keys = list(self._declarations)
        lookups = self._cache.peek(
            [(self._declarations[k].request, self._ttls[k]) for k in keys], read=False
        )
        if lookups is None:
            return
        values, failures, until = self._interpret(keys, lookups, log=False)
        if not failures and until is not None:
            self._snapshot = (Values(values), until)

    # -- loading ------------------------------------------------------------------------

    async def _resolve(
        self, keys: Sequence[str], *, deadline: float | None = None, force: bool = False
    ) -> tuple[dict[str, Any], dict[str, FetchError], float | None]:
        """The values of ``keys``; the required ones that failed, with their errors; and
        until when all of them are fresh (``None``: one is not cached)."""
        if force:
            self._snapshot = None
        before = self._cache.stats if logger.isEnabledFor(logging.DEBUG) else None
        lookups = await self._cache.get_many(
            [(self._declarations[key].request, self._ttls[key]) for key in keys],
            deadline=deadline,
            force=force,
        )
        if before is not None and self._cache.stats != before:
            logger.debug("parameters_secrets: cache %s", self._cache.stats)
        resolved = self._interpret(keys, lookups, log=True)
        self._take_snapshot()
        return resolved

    def _interpret(
        self, keys: Sequence[str], lookups: Sequence[Lookup[Record]], *, log: bool
    ) -> tuple[dict[str, Any], dict[str, FetchError], float | None]:
        """What the app sees of the cache's lookups: values (transformed, or defaults),
        the required ones that failed, and until when all are fresh."""
        values: dict[str, Any] = {}
        failures: dict[str, FetchError] = {}
        until = math.inf
        for key, (outcome, fresh_until) in zip(keys, lookups, strict=True):
            declaration = self._declarations[key]
            until = min(until, -math.inf if fresh_until is None else fresh_until)
            if not isinstance(outcome, FetchError):
                try:
                    values[key] = self._value(key, declaration, outcome)
                    continue
                except FetchError as exc:
                    outcome = exc
            if declaration.required:
                failures[key] = outcome
                if log:
                    logger.error(
                        "required value %r (%s) could not be loaded from %r (%s): %s",
                        key,
                        declaration.request.describe(),
                        self.source,
                        outcome.code,
                        outcome,
                    )
            else:
                if log and not outcome.not_found:
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
        if isinstance(declaration, Secret):
            return self.settings.secret_ttl
        return self.settings.parameter_ttl

    def _time_bound(self, request: ValueRequest, deadline: float | None) -> float:
        """When a fetch of ``request`` must end: its timeout setting, the deadline, else
        the default ceiling (the same bound the sources apply)."""
        if request.kind == "parameter":
            return give_up_time(self.settings.parameter_timeout_ms, deadline)
        return give_up_time(self.settings.secret_timeout_ms, deadline)

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
        # Two threads may transform one record at once: either result is the same value.
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
        if not isinstance(declaration, (Parameter, Secret, ParametersByPath)):
            raise ConfigurationError(
                f"values[{key!r}] must be a Parameter, a Secret or a ParametersByPath, "
                f"not {type(declaration).__name__}"
            )
    return dict(values)
