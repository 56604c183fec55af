"""The extension's cache, in process: TTL, LRU bound, single flight, stale-if-error."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeAlias, TypeVar, Union

import anyio

from ._concurrency import STALLED_AFTER_SECONDS, Flight
from ._time_bounds import earliest
from .exceptions import FetchError

logger = logging.getLogger("parameters_secrets")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Outcome: TypeAlias = Union[V, FetchError]  # noqa: UP007 - a generic alias: mypy needs Union here
Fetch: TypeAlias = Callable[[Sequence[K], float | None], Awaitable[Sequence[Outcome[V]]]]
"""Fetch several keys from upstream at once: ``fetch(keys, deadline) -> outcomes``, one per
key, in order. ``deadline`` is a ``time.monotonic()`` instant, or ``None``."""
TimeBound: TypeAlias = Callable[[K, Union[float, None]], float]  # noqa: UP007
"""``bound(key, deadline)``: when a fetch of ``key`` must end (``time.monotonic()``), given
the caller's deadline; a caller waiting for another's fetch waits no longer."""
Expiry: TypeAlias = Callable[[K], Union[float, None]]  # noqa: UP007
"""``expiry(key)``, when a value just fetched for ``key`` is stored: the clock's instant
after which it is stale whatever the TTL, or ``None`` (the TTL alone)."""

# Without a time bound, a fetch and a wait for one still end (as sources' fetches do).
DEFAULT_BOUND_SECONDS = 10.0
# A lookup that keeps finding the fetch it waited for abandoned (leaders cancelled one
# after another) fetches itself after this many tries: bounded by count as well as time.
MAX_ROUNDS = 8

# A value that does not exist is remembered this long (or the TTL, if shorter), so that
# a missing optional value, or a missing required one answering 503, does not cost every
# request an upstream call; short, so that creating it is noticed soon.
NOT_FOUND_TTL_SECONDS = 10.0
# After a refresh failed and the stale value was served, wait this long (or the TTL, if
# shorter) before asking upstream again, so an outage does not cost every request a
# round trip to a failing or slow upstream.
STALE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was made.

    Attributes:
        hits: Values served from a fresh entry, without upstream.
        fetches: Values asked of upstream (a batch of ten counts ten).
        refreshes: Fetches that replaced a previous value.
        stale_serves: Refreshes that failed for a transient reason and fell back to the
            previous value (which is then served for a few more seconds).
        errors: Fetches that failed.
        size: Entries held now.
    """

    hits: int = 0
    fetches: int = 0
    refreshes: int = 0
    stale_serves: int = 0
    errors: int = 0
    size: int = 0


class CacheObserver(Protocol):
    """Told where the counters change (metrics export: ``_metrics``); ``None`` by default."""

    def counted(self, counter: str, key: Hashable, error: FetchError | None) -> None:
        """``counter`` (a :class:`CacheStats` field) grew by one for ``key``; under the
        cache's lock: quick, no I/O. Warm-path hits are not told: see ``hits_by``."""

    def fetched(self, keys: Sequence[Hashable], seconds: float) -> None:
        """One fetch round (one call of the source's fetch) settled ``keys``."""


Lookup: TypeAlias = tuple[Union[V, FetchError], Union[float, None]]  # noqa: UP007
"""What a lookup found: the outcome, and until when it may be reused without asking the
cache again (``None``: it is not cached, so the next lookup fetches)."""


class _Entry(Generic[V]):
    __slots__ = ("expires_at", "fetch_number", "fetched_at", "hold_until", "longest_ttl", "value")

    def __init__(
        self,
        value: Outcome[V],
        fetched_at: float,
        ttl: float,
        fetch_number: int,
        expires_at: float = math.inf,
    ) -> None:
        self.value = value
        self.fetched_at = fetched_at
        self.fetch_number = fetch_number
        # The value's own end, whatever the TTL (a secret's next rotation): see ``expiry``.
        self.expires_at = expires_at
        # Set after a failed refresh: the previous value is served until then.
        self.hold_until = 0.0
        # The longest TTL any lookup gave this key: when it counts as expired for eviction.
        self.longest_ttl = ttl

    def fresh_until(self, ttl: float) -> float:
        # Each lookup brings its own TTL: two declarations of one value with different
        # TTLs share the entry, and each sees it expire after its own TTL.
        if isinstance(self.value, FetchError):  # not found: remembered briefly
            return self.fetched_at + min(ttl, NOT_FOUND_TTL_SECONDS)
        return max(min(self.fetched_at + ttl, self.expires_at), self.hold_until)

    def __repr__(self) -> str:  # never show a value
        return f"<cache entry fetched_at={self.fetched_at:.3f}>"


class _Tally:
    """Hits counted without the cache's lock, for the warm path: each call of
    ``count`` (``next`` of an ``itertools.count``: one C call, which the GIL does not
    split) counts ``hits``. Read under the cache's lock; a read takes one tick too."""

    __slots__ = ("by", "count", "hits", "reads", "ticks")

    def __init__(self, hits: int, by: Mapping[str, int]) -> None:
        self.hits = hits
        self.by = by  # how one call's hits divide between labels (metrics: kinds)
        self.ticks = itertools.count()
        self.count: Callable[[], object] = self.ticks.__next__
        self.reads = 0

    def calls(self) -> int:
        counted = next(self.ticks) - self.reads
        self.reads += 1
        return counted

    def total(self) -> int:
        return self.calls() * self.hits


class _Fetch(Flight[dict[K, Outcome[V]]]):
    """One upstream fetch under way, which lookups of its keys on any thread or loop
    wait for. Its outcome is ``None`` if its leader stopped without one."""

    __slots__ = ("forced", "number")

    def __init__(self, give_up_at: float, *, forced: bool, number: int) -> None:
        super().__init__(give_up_at)
        self.forced = forced
        # Fetches are numbered as they begin: an answer never replaces one asked later.
        self.number = number


def _described(key: object) -> object:
    # The library's keys describe themselves ("secret prod/db (AWSPREVIOUS)").
    describe = getattr(key, "describe", None)
    return describe() if callable(describe) else key


def default_bound(key: object, deadline: float | None) -> float:  # noqa: ARG001 - a bound's shape
    """:data:`DEFAULT_BOUND_SECONDS` from now, or the deadline if earlier (an infinite
    one is the ceiling; NaN is a ``ConfigurationError``); during Lambda's on-demand
    INIT, also before Lambda's INIT limit (see ``_time_bounds``)."""
    return earliest(time.monotonic(), DEFAULT_BOUND_SECONDS, deadline)


class Cache(Generic[K, V]):
    """A bounded, TTL'd cache in front of an upstream ``fetch``, for any thread and loop.

    * A TTL is given with each lookup; a TTL of 0 bypasses the cache for that lookup, as
      do ``enabled=False`` and ``max_size=0``.
    * One upstream fetch per key at a time, across every thread and event loop:
      concurrent lookups of a missing or expired key wait for the same fetch (single
      flight; see ``_concurrency``). Keys missing together are fetched together, so a
      source can batch them. The fetch runs in the first caller's task; if that caller is
      cancelled, a waiting caller fetches instead. A waiter waits no longer than its own
      time bound (``bound``), and then gets the previous value (``stale_if_error``) or a
      ``Timeout``.
    * "Not found" answers are remembered for ``NOT_FOUND_TTL_SECONDS`` at most; other
      errors are not cached.
    * An expired entry is kept until it is refreshed or evicted. If its refresh fails for a
      transient reason, the old value is served (``stale_if_error``) and a warning logged.
    * When full, expired entries go first, then the least recently used.

    Args:
        fetch: The upstream.
        max_size: The most entries to hold.
        enabled: False bypasses the cache for every key.
        stale_if_error: Serve an expired value when its refresh fails transiently.
        clock: Seconds, monotonic, for TTLs; injectable for tests. (Time bounds are
            always ``time.monotonic()``: they are real waits.)
        bound: When a fetch of a key must end, given a caller's deadline.
        expiry: When a value just fetched expires at the latest, whatever its TTL; a
            stale-if-error hold still applies after it.
        observer: Told where the counters change (metrics export).
    """

    def __init__(
        self,
        fetch: Fetch[K, V],
        *,
        max_size: int = 1000,
        enabled: bool = True,
        stale_if_error: bool = True,
        clock: Callable[[], float] = time.monotonic,
        bound: TimeBound[K] = default_bound,
        expiry: Expiry[K] | None = None,
        observer: CacheObserver | None = None,
    ) -> None:
        self._fetch = fetch
        self._expiry = expiry
        self._max_size = max_size
        self._enabled = enabled and max_size > 0
        self._stale_if_error = stale_if_error
        self._clock = clock
        self._bound = bound
        # Everything below is shared by every thread and loop, and only touched under
        # this lock (never held across an await).
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._flights: dict[K, _Fetch[K, V]] = {}
        self._numbers = itertools.count(1)
        # Bumped whenever an entry changes or goes: what was built from the entries under
        # an older generation may be older than they are now (the store's snapshot).
        self._generation = 0
        self._hits = self._fetches = self._refreshes = self._stale_serves = self._errors = 0
        self._tallies: list[_Tally] = []
        self._observer = observer

    @property
    def stats(self) -> CacheStats:
        """The counters now."""
        with self._lock:
            return CacheStats(
                hits=self._hits + sum(tally.total() for tally in self._tallies),
                fetches=self._fetches,
                refreshes=self._refreshes,
                stale_serves=self._stale_serves,
                errors=self._errors,
                size=len(self._entries),
            )

    @property
    def generation(self) -> int:
        """Grows whenever an entry changes or goes. Read it before :meth:`peek`: what was
        built from that look is no older than this generation's entries."""
        return self._generation

    def clear(self) -> None:
        """Forget every entry (counters stay), and abandon the fetches under way: whoever
        waits for one fetches again."""
        with self._lock:
            self._entries.clear()
            self._generation += 1
            flights, self._flights = list(self._flights.values()), {}
        for flight in flights:
            flight.settle(None)

    def hit_counter(self, hits: int, by: Mapping[str, int] | None = None) -> Callable[[], object]:
        """A function that counts ``hits`` values served from a copy of fresh entries (the
        store's snapshot) each time it is called: without a lock, for the warm path.
        ``by``: how each call's hits divide between labels, for :meth:`hits_by`."""
        tally = _Tally(hits, by or {})
        with self._lock:
            self._tallies.append(tally)
        return tally.count

    def hits_by(self) -> dict[str, int]:
        """The hits counted by :meth:`hit_counter` functions, by label (read when metrics
        are collected, never on the warm path)."""
        totals: dict[str, int] = {}
        with self._lock:
            for tally in self._tallies:
                calls = tally.calls()
                for label, hits in tally.by.items():
                    totals[label] = totals.get(label, 0) + calls * hits
        return totals

    def peek(
        self, items: Sequence[tuple[K, float]], *, read: bool = True
    ) -> list[Lookup[V]] | None:
        """Every ``(key, ttl)`` if each is cached and fresh, else ``None``. Never fetches,
        never waits: a warm read. ``read=False``: not counted as hits nor as a use for
        the LRU order (a look, not a read)."""
        now = self._clock()
        with self._lock:
            lookups, pending = self._look_up(items, now, force=False, count=read)
        return None if pending else lookups  # type: ignore[return-value]

    async def get_many(
        self,
        items: Sequence[tuple[K, float]],
        *,
        deadline: float | None = None,
        force: bool = False,
    ) -> list[Lookup[V]]:
        """Look up ``(key, ttl)`` pairs; fetch what is missing or expired, all at once.

        Args:
            items: The keys, each with the TTL of this lookup.
            deadline: When the fetch must end (``time.monotonic()``), passed to ``fetch``.
            force: Fetch every key now, whatever its TTL (still one fetch per key for
                every caller forcing at once).

        Returns:
            One :class:`Lookup` per item, in order: the value or the :class:`FetchError`
            that prevented loading it, and until when it is fresh.
        """
        now = self._clock()
        with self._lock:
            lookups, pending = self._look_up(items, now, force=force)
        if not pending:  # the warm path: nothing awaited
            return lookups  # type: ignore[return-value]
        ttls = _longest_ttls(items, pending)
        outcomes = await self._load(list(pending), ttls, deadline, force=force)
        with self._lock:
            entries = {key: self._entries.get(key) for key in pending}
        for key, indexes in pending.items():
            for index in indexes:
                lookups[index] = self._fetched(outcomes[key], entries[key], items[index][1])
        return lookups  # type: ignore[return-value]

    def _fetched(self, outcome: Outcome[V], entry: _Entry[V] | None, ttl: float) -> Lookup[V]:
        """A fetched ``outcome``, and until when it is fresh for ``ttl`` if the cache
        ``entry`` holds it (not when served by a fetch that did not cache it)."""
        if entry is None or entry.value is not outcome or not self._caches(ttl):
            return (outcome, None)
        return (outcome, entry.fresh_until(ttl))

    def _look_up(
        self, items: Sequence[tuple[K, float]], now: float, *, force: bool, count: bool = True
    ) -> tuple[list[Lookup[V] | None], dict[K, list[int]]]:
        """The fresh lookups, and the indexes of each key to fetch. Under the lock."""
        lookups: list[Lookup[V] | None] = [None] * len(items)
        pending: dict[K, list[int]] = {}
        # Inline, not a helper per key: this loop is the warm path's cost.
        for index, (key, ttl) in enumerate(items):
            entry = self._entries.get(key) if not force and self._caches(ttl) else None
            if entry is not None:
                fresh_until = entry.fresh_until(ttl)
                if now < fresh_until:
                    lookups[index] = (entry.value, fresh_until)
                    continue
            pending.setdefault(key, []).append(index)
        if pending:
            _fetch_repeats(items, lookups, pending)
        if count:
            self._count_hits(items, lookups)
        return lookups, pending

    def _count_hits(
        self, items: Sequence[tuple[K, float]], lookups: list[Lookup[V] | None]
    ) -> None:
        """Count each item found in the cache as a hit, and mark it used (LRU). Under the
        lock."""
        for (key, _), found in zip(items, lookups, strict=True):
            if found is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                self._observe("hits", key)

    def _caches(self, ttl: float) -> bool:
        return self._enabled and ttl > 0

    def _observe(self, counter: str, key: K, error: FetchError | None = None) -> None:
        if self._observer is not None:
            self._observer.counted(counter, key, error)

    async def _load(
        self, keys: list[K], ttls: dict[K, float], deadline: float | None, *, force: bool
    ) -> dict[K, Outcome[V]]:
        got: dict[K, Outcome[V]] = {}
        with self._lock:
            # Fetches numbered above this began after this lookup was asked.
            asked = next(self._numbers)
        remaining = keys
        for round_ in range(MAX_ROUNDS):
            with self._lock:
                if round_ and not force:
                    # A fetch we waited for was abandoned; another waiter may have fetched.
                    remaining = self._take_fresh(remaining, ttls, got)
                lead, waits = self._share_out(remaining, last_round=round_ == MAX_ROUNDS - 1)
                mine = self._take_off(lead, deadline, force=force) if lead else None
            if mine is not None:
                got.update(await self._lead(mine, lead, ttls, deadline))
            remaining = await self._wait_all(waits, deadline, force=force, asked=asked, got=got)
            if not remaining:
                break
        return got

    async def _wait_all(
        self,
        waits: dict[_Fetch[K, V], list[K]],
        deadline: float | None,
        *,
        force: bool,
        asked: int,
        got: dict[K, Outcome[V]],
    ) -> list[K]:
        """Wait for the other callers' fetches of ``waits``' keys, one after the other
        (:meth:`_wait`); the keys to look up again."""
        remaining: list[K] = []
        for flight, waiting in waits.items():
            # A forced lookup takes an answer from a forced fetch (every caller forcing
            # at once shares one) or from one that began after it was asked; after an
            # older ordinary fetch, it looks again, and then finds none that old.
            takes = not force or flight.forced or flight.number > asked
            remaining += await self._wait(flight, waiting, deadline, takes=takes, got=got)
        return remaining

    def _share_out(
        self, keys: list[K], *, last_round: bool
    ) -> tuple[list[K], dict[_Fetch[K, V], list[K]]]:
        """The keys this lookup fetches itself, and those it waits for another caller's
        fetch of (by fetch). Under the lock."""
        lead: list[K] = []
        waits: dict[_Fetch[K, V], list[K]] = {}
        for key in keys:
            flight = self._flights.get(key)
            # The last round fetches what is left itself: leaders that keep stopping
            # without an answer do not make this lookup fail.
            if flight is None or flight.stalled() or last_round:
                lead.append(key)
            else:
                waits.setdefault(flight, []).append(key)
        return lead, waits

    def _take_off(self, lead: list[K], deadline: float | None, *, force: bool) -> _Fetch[K, V]:
        """A new fetch of ``lead``, which later lookups of these keys wait for. Under the
        lock."""
        mine: _Fetch[K, V] = _Fetch(
            max(self._bound(key, deadline) for key in lead),
            forced=force,
            number=next(self._numbers),
        )
        for key in lead:
            self._flights[key] = mine
        return mine

    def _take_fresh(self, keys: list[K], ttls: dict[K, float], got: dict[K, Outcome[V]]) -> list[K]:
        now = self._clock()
        missing = []
        for key in keys:
            entry = self._entries.get(key) if self._caches(ttls[key]) else None
            if entry is not None and now < entry.fresh_until(ttls[key]):
                got[key] = entry.value
            else:
                missing.append(key)
        return missing

    async def _wait(
        self,
        flight: _Fetch[K, V],
        keys: list[K],
        deadline: float | None,
        *,
        takes: bool,
        got: dict[K, Outcome[V]],
    ) -> list[K]:
        """Wait for ``flight``'s outcome for ``keys``, each no longer than its own time
        bound, and take it if ``takes``. Returns the keys to look up again (their leader
        stopped without an answer, or its answer is too old for this lookup)."""
        bounds = {key: self._bound(key, deadline) for key in keys}
        waiting = keys
        for until in sorted(set(bounds.values())):
            settled, outcomes = await flight.wait(until)
            if settled:
                return _taken(outcomes if takes else None, waiting, got)
            self._give_up_waiting([key for key in waiting if bounds[key] <= until], got)
            waiting = [key for key in waiting if bounds[key] > until]
        return []

    def _give_up_waiting(self, keys: list[K], got: dict[K, Outcome[V]]) -> None:
        """What each of ``keys`` gets when another caller's fetch of it outlasts its bound."""
        for key in keys:
            got[key] = self._gave_up(key, "another caller's fetch of it did not end in time")

    def _gave_up(self, key: K, why: str) -> Outcome[V]:
        """What a caller that could not get a fresh answer in time gets: the previous
        value (``stale_if_error``), else a ``Timeout``."""
        with self._lock:
            entry = self._entries.get(key)
        if self._stale_if_error and entry is not None and not isinstance(entry.value, FetchError):
            return entry.value
        return FetchError(f"{_described(key)}: {why}", code="Timeout", transient=True)

    async def _lead(
        self, flight: _Fetch[K, V], keys: list[K], ttls: dict[K, float], deadline: float | None
    ) -> dict[K, Outcome[V]]:
        try:
            # The fetch ends by the flight's bound (the store's settings=, the ceiling, the
            # INIT window), whatever the source's own settings say.
            bound = flight.give_up_at if deadline is None else min(deadline, flight.give_up_at)
            started = time.perf_counter()
            results = await self._fetch_guarded(keys, bound, flight.give_up_at)
            # No await from here to settle(): a cancellation cannot split the settling.
            warnings: list[tuple[K, str]] = []
            with self._lock:
                settled = self._settle_all(flight, keys, results, ttls, warnings)
            flight.settle(settled)
            for key, code in warnings:
                logger.warning(
                    "refreshing %s failed (%s); serving the previous value", _described(key), code
                )
            if self._observer is not None:
                self._observer.fetched(keys, time.perf_counter() - started)
            return settled
        finally:
            if not flight.settled:  # cancelled: a waiter fetches instead
                with self._lock:
                    self._land(flight, keys)
                flight.settle(None)

    def _settle_all(
        self,
        flight: _Fetch[K, V],
        keys: list[K],
        results: Sequence[Outcome[V]],
        ttls: dict[K, float],
        warnings: list[tuple[K, str]],
    ) -> dict[K, Outcome[V]]:
        """Record each of ``flight``'s results and take it off its keys; what its callers
        get. Under the lock."""
        now = self._clock()
        settled = {
            key: self._settle(key, result, ttls[key], now, number=flight.number, warnings=warnings)
            for key, result in zip(keys, results, strict=True)
        }
        self._land(flight, keys)
        return settled

    def _land(self, flight: _Fetch[K, V], keys: list[K]) -> None:
        """Take ``flight`` off its keys (those another caller did not take over)."""
        for key in keys:
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _fetch_guarded(
        self, keys: list[K], deadline: float | None, give_up_at: float
    ) -> Sequence[Outcome[V]]:
        started = time.monotonic()
        try:
            # Sources end their fetches by the bound; this is for one that does not.
            with anyio.move_on_after(give_up_at + STALLED_AFTER_SECONDS - time.monotonic()):
                results = await self._fetch(keys, deadline)
                if len(results) != len(keys):
                    raise RuntimeError("source returned a wrong number of results")  # noqa: TRY301
                return results
        except Exception as exc:  # noqa: BLE001 - a broken source fails its keys, no more
            # A source must return FetchErrors, not raise; if one raises anyway, every key
            # fails with a code that says so, and nothing else breaks.
            # No traceback: a source's exception message might quote a value.
            logger.error("source %r failed unexpectedly: %s", self._fetch, type(exc).__name__)
            error = FetchError(f"source failed: {type(exc).__name__}", code="SourceError")
            return [error] * len(keys)
        logger.error(
            "source %r did not end its fetch by its time bound: timed out after %.1f s",
            self._fetch,
            time.monotonic() - started,
        )
        return [
            FetchError("the source did not answer in time", code="Timeout", transient=True)
        ] * len(keys)

    def _settle(
        self,
        key: K,
        result: Outcome[V],
        ttl: float,
        now: float,
        *,
        number: int,
        warnings: list[tuple[K, str]],
    ) -> Outcome[V]:
        """Record one fetched outcome; what the callers get. Under the lock."""
        self._fetches += 1
        self._observe("fetches", key)
        entry = self._entries.get(key)
        if entry is not None and entry.fetch_number > number:
            # A fetch asked later already answered (this one's leader was taken over).
            return result
        previous = entry if entry is not None and not isinstance(entry.value, FetchError) else None
        if not isinstance(result, FetchError):
            return self._settle_value(
                key, result, ttl, now, number=number, refresh=previous is not None
            )
        return self._settle_error(
            key, result, ttl, now, number=number, previous=previous, warnings=warnings
        )

    def _settle_value(
        self, key: K, value: V, ttl: float, now: float, *, number: int, refresh: bool
    ) -> Outcome[V]:
        """Record one fetched value (a ``refresh`` of a previous one, or not). Under the
        lock."""
        if refresh:
            self._refreshes += 1
            self._observe("refreshes", key)
        if self._caches(ttl):
            self._store(key, _Entry(value, now, ttl, number, self._expires_at(key)))
        return value

    def _settle_error(
        self,
        key: K,
        error: FetchError,
        ttl: float,
        now: float,
        *,
        number: int,
        previous: _Entry[V] | None,
        warnings: list[tuple[K, str]],
    ) -> Outcome[V]:
        """Record one failed fetch: remember a not-found, serve the ``previous`` value
        through a transient failure (``stale_if_error``), forget it after a lasting one.
        What the callers get. Under the lock."""
        self._errors += 1
        self._observe("errors", key, error)
        if error.not_found and self._caches(ttl):
            self._store(key, _Entry(error, now, ttl, number))
            return error
        if previous is not None and self._serves_through(error, ttl):
            warnings.append((key, error.code))
            return self._serve_stale(key, previous, ttl, now)
        # The value is gone or forbidden now: the old one must not be served again.
        if not error.transient and self._entries.pop(key, None) is not None:
            self._generation += 1
        return error

    def _serves_through(self, error: FetchError, ttl: float) -> bool:
        """Whether a previous value is served through ``error`` (``stale_if_error``): a
        transient failure, of a key cached for ``ttl``."""
        return error.transient and self._stale_if_error and self._caches(ttl)

    def _serve_stale(self, key: K, previous: _Entry[V], ttl: float, now: float) -> Outcome[V]:
        """Serve the previous value after a transient failure, and fetch again within
        :data:`STALE_RETRY_SECONDS`. Under the lock."""
        self._stale_serves += 1
        self._observe("stale_serves", key)
        previous.hold_until = now + min(ttl, STALE_RETRY_SECONDS)
        self._generation += 1
        previous.longest_ttl = max(previous.longest_ttl, ttl)
        self._entries.move_to_end(key)
        return previous.value

    def _expires_at(self, key: K) -> float:
        expires_at = self._expiry(key) if self._expiry is not None else None
        return math.inf if expires_at is None else expires_at

    def _store(self, key: K, entry: _Entry[V]) -> None:
        previous = self._entries.get(key)
        if previous is not None:
            entry.longest_ttl = max(entry.longest_ttl, previous.longest_ttl)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._generation += 1  # evictions below happen under the same generation
        if len(self._entries) > self._max_size:
            self._evict(key)

    def _evict(self, kept: K) -> None:
        """Down to ``max_size`` entries: expired ones first, then the least recently used;
        never ``kept`` (the one just stored) among the expired. Under the lock."""
        for stale_key in self._expired(kept):
            if len(self._entries) <= self._max_size:
                return
            del self._entries[stale_key]
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def _expired(self, kept: K) -> list[K]:
        """The keys whose entries are stale for their longest TTL, but ``kept``. Under the
        lock."""
        now = self._clock()
        return [
            k for k, e in self._entries.items() if k != kept and e.fresh_until(e.longest_ttl) <= now
        ]


def _taken(
    outcomes: Mapping[K, Outcome[V]] | None, keys: list[K], got: dict[K, Outcome[V]]
) -> list[K]:
    """Take a settled fetch's ``outcomes`` for ``keys`` into ``got``; without them (its
    leader stopped without an answer, or the answer is too old for this lookup), the keys
    to look up again."""
    if outcomes is None:
        return keys
    for key in keys:
        got[key] = outcomes[key]
    return []


def _longest_ttls(items: Sequence[tuple[K, float]], pending: Mapping[K, object]) -> dict[K, float]:
    """Each ``pending`` key's longest TTL among the ``items`` that ask for it."""
    ttls: dict[K, float] = {}
    for key, ttl in items:
        if key in pending:
            ttls[key] = max(ttl, ttls.get(key, 0.0))
    return ttls


def _fetch_repeats(
    items: Sequence[tuple[K, float]],
    lookups: list[Lookup[V] | None],
    pending: dict[K, list[int]],
) -> None:
    """A key asked twice in one lookup (two declarations, two TTLs) gets one value: where
    it is to be fetched for one TTL, it is for every other (fresh for those) too."""
    for index, (key, _) in enumerate(items):
        if key in pending and lookups[index] is not None:
            lookups[index] = None
            pending[key].append(index)
