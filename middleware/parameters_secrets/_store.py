"""The store: declarations, cache and source in one object, for requests and everything else."""

from __future__ import annotations

import keyword
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._cache import NOT_FOUND_TTL_SECONDS, Cache, CacheStats, Lookup
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
from .exceptions import ConfigurationError, FetchError, LoadError, ParametersSecretsError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._metrics import MetricsRecorder
    from ._model import TypedParametersSecrets
    from ._rotation import RotationFollower

ModelT = TypeVar("ModelT", bound="BaseModel")


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
        wall_clock: Seconds since the epoch, compared with a secret's ``NextRotationDate``
            (``follow_rotation``); for tests.

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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._declarations = _validated(values)
        self.settings = settings if settings is not None else Settings.from_env()
        self.settings.apply_log_level()
        self.source = source = self._chosen_source(source)
        self._ttls = {key: self._ttl(d) for key, d in self._declarations.items()}
        # A source that does not check its answers is held to the same check here.
        self._fetch_upstream = source.fetch if source.checks_records else self._fetch_checked
        self._rotation = self._follow_rotations(clock, wall_clock)
        if self._rotation is not None:
            self._fetch_upstream = self._rotation.fetch
        # The keys each request's record is transformed for, before it enters the cache.
        self._keys_of = _keys_by_request(self._declarations)
        # request -> (until when, the error): a value that failed its transform with no
        # previous one to serve, not asked for again before then (see _remember_refusal).
        self._refused: dict[ValueRequest, tuple[float, FetchError]] = {}
        # PARAMETERS_SECRETS_METRICS: off (None), nothing of it is imported.
        self._metrics = None if self.settings.metrics is None else self._start_metrics()
        self._cache = self._new_cache(clock)
        self._clock = clock
        # key -> (record, value): a transform runs once per fetched record, not per read.
        self._transformed: dict[str, tuple[Record, Any]] = {}
        # The warm path: every value, and until when all of them are fresh, rebuilt from
        # the cache whenever a lookup leaves every value fresh. Shared, read-only, by every
        # caller until then; replaced whole, so any thread reads a consistent pair.
        self._snapshot: tuple[Values, float] | None = None
        # The cache generation the snapshot was built from: under this lock, a snapshot
        # built from older entries never replaces one built from newer (see _publish).
        self._published_generation = -1
        self._publishing = threading.Lock()
        # Warm reads count their hits without a lock: one C call each.
        kinds = Counter(d.request.kind for d in self._declarations.values())
        self._count_snapshot_read = self._cache.hit_counter(len(self._declarations), kinds)
        self._count_value_read = self._cache.hit_counter(1)
        if self._metrics is not None:
            self._watch(self._metrics)
        # The sync methods' event loop: no thread until the first sync call misses.
        self._sync_loop = SyncLoop()
        # SnapStart: values loaded before a snapshot are never served after a restore.
        drop_after_restore(self)
        hook_snapstart()

    def _chosen_source(self, source: Source | None) -> Source:
        """``source``, checked, else the one the settings choose; logged."""
        if source is None:
            source, reason = choose_source(self.settings)
        else:
            reason = "passed as source="
        if not isinstance(source, Source):
            raise ConfigurationError(
                "source must have async fetch() and aclose() methods and a checks_records "
                "attribute (subclass parameters_secrets.sources.Source to inherit it), "
                f"not {source!r}"
            )
        logger.info("values from %r (%s)", source, reason)
        logger.debug("%r", self.settings)
        return source

    def _watch(self, metrics: MetricsRecorder) -> None:
        """Metrics on: they read the cache's counters, and warm reads count by kind."""
        metrics.watch(self._cache)
        # Hits by kind: one counter per key (not one per store) for a warm get().
        self._count_reads_of = {
            key: self._cache.hit_counter(1, {d.request.kind: 1})
            for key, d in self._declarations.items()
        }
        self._fresh_value = self._fresh_value_by_kind  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"ParametersSecrets(keys={list(self._declarations)}, source={self.source!r})"

    def drop_after_restore(self) -> None:
        """Forget every value loaded before a SnapStart snapshot (called by the restore
        hook; no upstream call): the next use fetches again."""
        self._snapshot = None
        self._cache.clear()
        self._transformed.clear()
        self._refused.clear()
        if self._rotation is not None:
            self._rotation.forget()
        self._publish(self._cache.generation, None)

    @property
    def stats(self) -> CacheStats:
        """The cache's counters: hits, upstream fetches, refreshes, stale serves, errors."""
        return self._cache.stats

    def cached(self) -> Values | None:
        """Every declared value if all are cached and fresh, else ``None``.

        Never fetches, never waits, never runs an event loop: the warm path of a request.
        """
        snapshot = self._snapshot  # one read: a consistent pair, whoever replaces it
        if snapshot is not None and self._clock() < snapshot[1]:
            self._count_snapshot_read()
            return snapshot[0]
        return None

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
        """The warm snapshot's values if they are fresh, else ``None``; not a read (no hits
        counted): for the typed model, to know whether values it got are the newest."""
        snapshot = self._snapshot
        return snapshot[0] if snapshot is not None and self._clock() < snapshot[1] else None

    def _fresh_value(self, key: str) -> tuple[Any] | tuple[()]:
        """``(value,)`` if ``key``'s value is cached and fresh, else ``()``."""
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot[1]:
            self._count_value_read()
            return (snapshot[0][key],)
        return self._peeked_value(key)

    def _fresh_value_by_kind(self, key: str) -> tuple[Any] | tuple[()]:
        """:meth:`_fresh_value` when metrics are on: hits counted by kind.

        (A method of its
        own, put in place at construction, so that with metrics off the warm path is
        exactly what it was.)"""
        snapshot = self._snapshot
        if snapshot is not None and self._clock() < snapshot[1]:
            self._count_reads_of[key]()
            return (snapshot[0][key],)
        return self._peeked_value(key)

    def _peeked_value(self, key: str) -> tuple[Any] | tuple[()]:
        lookups = self._cache.peek([(self._declarations[key].request, self._ttls[key])])
        if lookups is None:
            return ()
        values, failures, _ = self._interpret([key], lookups, log=False)
        return () if failures else (values[key],)

    def _take_snapshot(self) -> None:
        """Keep every value as the warm path's snapshot, if every one is fresh now (else
        none): read from the cache, so a lookup that began before a refresh cannot put
        back the older values it got."""
        generation = self._cache.generation  # before the look: never newer than it
        keys = list(self._declarations)
        lookups = self._cache.peek(
            [(self._declarations[k].request, self._ttls[k]) for k in keys], read=False
        )
        snapshot = None
        if lookups is not None:
            values, failures, until = self._interpret(keys, lookups, log=False)
            if not failures and until is not None:
                snapshot = (Values(values), until)
        self._publish(generation, snapshot)

    def _publish(self, generation: int, snapshot: tuple[Values, float] | None) -> None:
        """Make ``snapshot``, built from the cache as it was at ``generation`` or later,
        the warm path's, unless one built from a later generation is there already.

        Whoever changes the cache takes a snapshot after the change: so the snapshot
        served is never older than the last change that has returned (a refresh that has
        returned is never undone by a reader that looked at the cache before it)."""
        with self._publishing:
            if generation >= self._published_generation:
                self._snapshot = snapshot
                self._published_generation = generation

    # -- loading ------------------------------------------------------------------------

    async def _resolve(
        self, keys: Sequence[str], *, deadline: float | None = None, force: bool = False
    ) -> tuple[dict[str, Any], dict[str, FetchError], float | None]:
        """The values of ``keys``; the required ones that failed, with their errors; and
        until when all of them are fresh (``None``: one is not cached)."""
        if force:
            self._snapshot = None
            self._refused.clear()  # a value fixed upstream is asked for now
        started = time.monotonic()
        before = self._cache.stats if logger.isEnabledFor(logging.DEBUG) else None
        lookups = await self._cache.get_many(
            [(self._declarations[key].request, self._ttls[key]) for key in keys],
            deadline=deadline,
            force=force,
        )
        if before is not None and self._cache.stats != before:
            logger.debug("cache %s", self._cache.stats)
        resolved = self._interpret(keys, lookups, log=True, started=started)
        self._take_snapshot()
        return resolved

    def _interpret(
        self,
        keys: Sequence[str],
        lookups: Sequence[Lookup[Record]],
        *,
        log: bool,
        started: float | None = None,
    ) -> tuple[dict[str, Any], dict[str, FetchError], float | None]:
        """What the app sees of the cache's lookups: values (transformed, or defaults),
        the required ones that failed, and until when all are fresh. ``started``: when
        the load began (``time.monotonic()``), for how long a timed-out one waited."""
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
                    outcome = exc  # noqa: PLW2901 - a failed transform fails like a fetch
            if log:
                self._log_failure(key, declaration, outcome, started)
            if declaration.required:
                failures[key] = outcome
            else:
                values[key] = declaration.default
        return values, failures, (until if until > self._clock() else None)

    def _log_failure(
        self, key: str, declaration: Declaration, outcome: FetchError, started: float | None
    ) -> None:
        """An ERROR line for a required value that failed; a WARNING for an optional one
        that falls back to its default (none when it does not exist: that is what a
        default is for)."""
        if declaration.required:
            logger.error(
                "required value %r (%s) could not be loaded from %r (%s): %s%s",
                key,
                declaration.request.describe(),
                self.source,
                outcome.code,
                outcome,
                _waited(outcome, started),
            )
        elif not outcome.not_found:
            logger.warning(
                "optional value %r (%s) could not be loaded (%s); using its default",
                key,
                declaration.request.describe(),
                outcome.code,
            )

    # -- internals ----------------------------------------------------------------------

    def _new_cache(self, clock: Callable[[], float]) -> Cache[ValueRequest, Record]:
        """The cache of transformed records, as the settings ask."""
        return Cache(
            self._fetch_transformed,
            max_size=self.settings.cache_size,
            enabled=self.settings.cache_enabled,
            stale_if_error=self.settings.stale_if_error,
            clock=clock,
            bound=self._time_bound,
            expiry=self._rotation.expires_at if self._rotation is not None else None,
            observer=self._metrics,
        )

    def _start_metrics(self) -> MetricsRecorder:
        from ._metrics import recorder_for

        return recorder_for(self.settings.metrics)

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

    def _follow_rotations(
        self, clock: Callable[[], float], wall_clock: Callable[[], float]
    ) -> RotationFollower | None:
        """Between the cache and the source, for secrets declared ``follow_rotation``
        (none: nothing imported, nothing in the way)."""
        keys = [
            key
            for key, declaration in self._declarations.items()
            if isinstance(declaration, Secret) and declaration.follow_rotation
        ]
        if not keys:
            return None
        from ._rotation import follower_for

        return follower_for(
            self.source,
            self._fetch_upstream,
            settings=self.settings,
            clock=clock,
            wall_clock=wall_clock,
            keys=keys,
        )

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

    async def _fetch_transformed(
        self, requests: Sequence[ValueRequest], deadline: float | None
    ) -> list[Outcome]:
        """The source's outcomes, each record transformed for every key that uses it
        before the cache sees it: a record that fails a transform is a transient
        ``TransformFailed``, so a refresh serves the previous value stale, as for any
        transient failure, and only a first load fails."""
        refused = self._still_refused(requests)
        asked = [r for r in requests if r not in refused]
        answers = await self._fetch_upstream(asked, deadline) if asked else []
        outcomes = dict(zip(asked, answers, strict=True))
        return [
            refused[r] if r in refused else self._transform_record(r, outcomes[r]) for r in requests
        ]

    def _still_refused(self, requests: Sequence[ValueRequest]) -> dict[ValueRequest, FetchError]:
        """The requests whose value failed its transform lately: not asked for again yet
        (see :meth:`_remember_refusal`), with that failure."""
        now = self._clock()
        return {r: self._refused[r][1] for r in requests if self._refused.get(r, (0.0,))[0] > now}

    def _transform_record(self, request: ValueRequest, outcome: Outcome) -> Outcome:
        if isinstance(outcome, FetchError):
            return outcome
        for key in self._keys_of.get(request, ()):
            try:
                self._value(key, self._declarations[key], outcome)
            except FetchError as error:
                refusal = FetchError(
                    f"{request.describe()}: {error}", code=error.code, transient=True
                )
                self._remember_refusal(request, refusal)
                return refusal
        self._refused.pop(request, None)
        return outcome

    def _remember_refusal(self, request: ValueRequest, error: FetchError) -> None:
        """Remember a value that failed its transform as not-found answers are: for
        ``NOT_FOUND_TTL_SECONDS`` (or the shortest TTL of its keys). Without a previous
        value to serve, every request would ask upstream again for the same bad value; a
        forced refresh asks anyway (it clears this), and so does every request when the
        cache is off."""
        if not self.settings.cache_enabled or self.settings.cache_size <= 0:
            return
        ttl = min(self._ttls[key] for key in self._keys_of[request])
        self._refused[request] = (self._clock() + min(ttl, NOT_FOUND_TTL_SECONDS), error)

    def _value(self, key: str, declaration: Declaration, record: Record) -> Any:
        memo = self._transformed.get(key)
        if memo is not None and memo[0] is record:
            return memo[1]
        value = apply_transform(declaration, record)
        # Two threads may transform one record at once: either result is the same value.
        self._transformed[key] = (record, value)
        return value

    # -- typed config (pydantic): parameters_secrets._model -----------------------------

    @classmethod
    def from_model(
        cls,
        model: type[ModelT],
        *,
        source: Source | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> TypedParametersSecrets[ModelT]:
        """A store of the values a pydantic model's fields declare, and
        :meth:`model` / :meth:`model_sync` to get the validated model.

        Each field annotated ``Annotated[T, Parameter(...)]`` (or ``Secret``,
        ``ParametersByPath``) is a value, keyed by the field's name; fields without a
        declaration keep their defaults. Needs pydantic (extra ``[pydantic]``).

        Raises:
            ConfigurationError: ``model`` is not a pydantic model class, declares no value,
                or a field has two declarations, a declaration and a default, or neither.
        """
        from ._model import TypedParametersSecrets

        return TypedParametersSecrets(model, source=source, settings=settings, clock=clock)

    async def model(self) -> Any:
        """The validated model of a store built by :meth:`from_model`.

        Raises:
            ParametersSecretsError: This store was not built from a model.
        """
        raise self._not_from_a_model("model")

    def model_sync(self) -> Any:
        """:meth:`model` for code with no running event loop."""
        raise self._not_from_a_model("model_sync")

    def _not_from_a_model(self, method: str) -> ParametersSecretsError:
        return ParametersSecretsError(
            f"{method}() needs a store built by ParametersSecrets.from_model(YourModel); "
            "this one was built from a mapping of declarations: read it with load() or get()"
        )


def _waited(outcome: FetchError, started: float | None) -> str:
    """How long a load that timed out waited, for its ERROR line."""
    if outcome.code != "Timeout" or started is None:
        return ""
    waited = f"after {time.monotonic() - started:.1f} s"
    # "GetParameter timed out after 5.0 s"; else "... (timed out after 5.0 s)".
    return f" {waited}" if str(outcome).endswith("timed out") else f" (timed out {waited})"


def _keys_by_request(declarations: dict[str, Declaration]) -> dict[ValueRequest, list[str]]:
    """The keys each request's record is transformed for."""
    keys_of: dict[ValueRequest, list[str]] = {}
    for key, declaration in declarations.items():
        keys_of.setdefault(declaration.request, []).append(key)
    return keys_of


def _check_key(key: object) -> None:
    """A key must be an attribute name of the values object (and the app's state)."""
    if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
        raise ConfigurationError(f"values key {key!r} must be a Python identifier")
    if key.startswith("_"):
        # Starlette's State keeps its own attributes under "_" names.
        raise ConfigurationError(f"values key {key!r} must not start with an underscore")


def _validated(values: Mapping[str, Declaration]) -> dict[str, Declaration]:
    if isinstance(values, ParametersSecrets) or not isinstance(values, Mapping):
        raise ConfigurationError("values must be a mapping of key to Parameter or Secret")
    for key, declaration in values.items():
        _check_key(key)
        if not isinstance(declaration, (Parameter, Secret, ParametersByPath)):
            raise ConfigurationError(
                f"values[{key!r}] must be a Parameter, a Secret or a ParametersByPath, "
                f"not {type(declaration).__name__}"
            )
    return dict(values)
