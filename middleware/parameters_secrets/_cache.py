"""The extension's cache, in process: TTL, LRU bound, single flight, stale-if-error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar, Union

from .exceptions import FetchError

logger = logging.getLogger("parameters_secrets")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Outcome: TypeAlias = Union[V, FetchError]  # noqa: UP007 - a generic alias: mypy needs Union here
Fetch: TypeAlias = Callable[[Sequence[K], float | None], Awaitable[Sequence[Outcome[V]]]]
"""Fetch several keys from upstream at once: ``fetch(keys, deadline) -> outcomes``, one per
key, in order. ``deadline`` is a ``time.monotonic()`` instant, or ``None``."""

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
        refreshes: Fetches that replaced an expired entry.
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


class _Entry(Generic[V]):
    __slots__ = ("expires_at", "value")

    def __init__(self, value: V, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at

    def __repr__(self) -> str:  # never show a value
        return f"<cache entry expires_at={self.expires_at:.3f}>"


class Cache(Generic[K, V]):
    """A bounded, TTL'd cache in front of an upstream ``fetch``.

    * A key's TTL is given with each lookup; a TTL of 0 bypasses the cache for it, as do
      ``enabled=False`` and ``max_size=0``.
    * One upstream fetch per key at a time: concurrent lookups of a missing or expired key
      wait for the same fetch (single flight). Keys missing together are fetched together,
      so a source can batch them.
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
        clock: Seconds, monotonic; injectable for tests.
    """

    def __init__(
        self,
        fetch: Fetch[K, V],
        *,
        max_size: int = 1000,
        enabled: bool = True,
        stale_if_error: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_size = max_size
        self._enabled = enabled and max_size > 0
        self._stale_if_error = stale_if_error
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[Outcome[V]]] = OrderedDict()
        # Futures are bound to the loop that made them; see _in_flight_for_loop.
        self._in_flight: dict[K, asyncio.Future[Outcome[V]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run
        self._hits = self._fetches = self._refreshes = self._stale_serves = self._errors = 0
        # Bumped by every change to the entries, so a caller can tell that what it read
        # earlier (see ``expires_at``) still holds.
        self.generation = 0

    @property
    def stats(self) -> CacheStats:
        """The counters now."""
        return CacheStats(
            hits=self._hits,
            fetches=self._fetches,
            refreshes=self._refreshes,
            stale_serves=self._stale_serves,
            errors=self._errors,
            size=len(self._entries),
        )

    def clear(self) -> None:
        """Forget every entry (counters stay)."""
        self._entries.clear()
        self.generation += 1

    def expires_at(self, key: K, ttl: float) -> float | None:
        """When ``key``'s entry expires, or ``None`` if it is not cached (or ``ttl`` bypasses)."""
        entry = self._entries.get(key) if self._caches(ttl) else None
        return None if entry is None else entry.expires_at

    def count_hits(self, hits: int) -> None:
        """Count hits served from a copy the caller kept (see ``generation``)."""
        self._hits += hits

    async def get_many(
        self, items: Sequence[tuple[K, float]], *, deadline: float | None = None
    ) -> list[Outcome[V]]:
        """Look up ``(key, ttl)`` pairs; fetch what is missing or expired, all at once.

        Returns one outcome per item, in order: the value, or the :class:`FetchError` that
        prevented loading it.
        """
        now = self._clock()
        outcomes: list[Outcome[V] | None] = [None] * len(items)
        pending: dict[K, list[int]] = {}
        for index, (key, ttl) in enumerate(items):
            entry = self._entries.get(key) if self._caches(ttl) else None
            if entry is not None and now < entry.expires_at:
                self._entries.move_to_end(key)
                self._hits += 1
                outcomes[index] = entry.value
            else:
                pending.setdefault(key, []).append(index)
        if not pending:  # the warm path: nothing awaited
            return outcomes  # type: ignore[return-value]

        in_flight = self._in_flight_for_loop()
        ttls = dict(items)
        to_fetch = [key for key in pending if key not in in_flight]
        if to_fetch:
            loop = asyncio.get_running_loop()
            for key in to_fetch:
                in_flight[key] = loop.create_future()
            # A task of its own, so a cancelled request does not strand the other waiters.
            task = loop.create_task(self._fetch_and_settle(to_fetch, ttls, deadline))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiting = {key: in_flight[key] for key in pending}
        for key, future in waiting.items():
            outcome = await asyncio.shield(future)
            for index in pending[key]:
                outcomes[index] = outcome
        return outcomes  # type: ignore[return-value]

    def _caches(self, ttl: float) -> bool:
        return self._enabled and ttl > 0

    def _in_flight_for_loop(self) -> dict[K, asyncio.Future[Outcome[V]]]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new loop (asyncio.run per call, a test client's portal): futures from the
            # old one can never complete here.
            self._loop = loop
            self._in_flight = {}
        return self._in_flight

    async def _fetch_and_settle(
        self, keys: list[K], ttls: dict[K, float], deadline: float | None
    ) -> None:
        in_flight = self._in_flight
        try:
            try:
                results: Sequence[Outcome[V]] = await self._fetch(keys, deadline)
                if len(results) != len(keys):
                    raise RuntimeError("source returned a wrong number of results")
            except Exception as exc:
                # A source must return FetchErrors, not raise; if one raises anyway, every
                # key fails with a code that says so, and nothing else breaks.
                # No traceback: a source's exception message might quote a value.
                logger.error("source %r failed unexpectedly: %s", self._fetch, type(exc).__name__)
                error = FetchError(f"source failed: {type(exc).__name__}", code="SourceError")
                results = [error] * len(keys)
            now = self._clock()
            for key, result in zip(keys, results, strict=True):
                outcome = self._settle(key, result, ttls[key], now)
                future = in_flight.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(outcome)
        finally:
            # Cancelled (the loop is closing): release anyone still waiting.
            for key in keys:
                future = in_flight.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(
                        FetchError("the fetch was cancelled", code="Cancelled", transient=True)
                    )

    def _settle(self, key: K, result: Outcome[V], ttl: float, now: float) -> Outcome[V]:
        self._fetches += 1
        self.generation += 1
        entry = self._entries.get(key)
        previous = entry if entry is not None and not isinstance(entry.value, FetchError) else None
        if not isinstance(result, FetchError):
            if previous is not None:
                self._refreshes += 1
            if self._caches(ttl):
                self._store(key, result, now + ttl)
            return result
        self._errors += 1
        if result.not_found and self._caches(ttl):
            self._store(key, result, now + min(ttl, NOT_FOUND_TTL_SECONDS))
            return result
        if result.transient and self._stale_if_error and previous is not None and self._caches(ttl):
            self._stale_serves += 1
            previous.expires_at = now + min(ttl, STALE_RETRY_SECONDS)
            self._entries.move_to_end(key)
            logger.warning(
                "refreshing %s failed (%s); serving the previous value", key, result.code
            )
            return previous.value
        if not result.transient:
            # The value is gone or forbidden now: the old one must not be served again.
            self._entries.pop(key, None)
        return result

    def _store(self, key: K, value: Outcome[V], expires_at: float) -> None:
        self.generation += 1
        self._entries[key] = _Entry(value, expires_at)
        self._entries.move_to_end(key)
        if len(self._entries) <= self._max_size:
            return
        now = self._clock()
        for stale_key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            if len(self._entries) <= self._max_size:
                return
            if stale_key != key:
                del self._entries[stale_key]
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
