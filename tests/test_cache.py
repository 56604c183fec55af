"""The in-process cache: TTL, bypass, LRU bound, single flight, stale-if-error, counters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.lowlevel
import pytest

from parameters_secrets._cache import (
    NOT_FOUND_TTL_SECONDS,
    STALE_RETRY_SECONDS,
    Cache,
    CacheStats,
)
from parameters_secrets.exceptions import FetchError
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The cache's single flight is anyio's: it must hold on trio as on asyncio."""
    return str(request.param)


SECRET = "s3cr3t-Value-XYZ"


class CountingFetch:
    """An upstream that records every call's keys.

    Each successful fetch of a key answers ``"<key>#<n>"``, ``n`` counting that key's
    successful fetches, so a refreshed value differs from the one before it. ``errors``
    makes a key fail; ``raises`` makes the whole call raise; ``gate`` holds every call
    open until it is set; ``entered`` is set when a call begins.
    """

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.errors: dict[str, FetchError] = {}
        self.raises: Exception | None = None
        self.wrong_length = False
        self.gate: anyio.Event | None = None
        self.entered: anyio.Event | None = None
        self._served: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight = 0  # the most fetches of one key under way at once

    async def __call__(self, keys: Sequence[str], deadline: float | None) -> list[str | FetchError]:
        self.calls.append(list(keys))
        for key in keys:
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight[key])
        try:
            if self.entered is not None:
                self.entered.set()
            if self.gate is not None:
                await self.gate.wait()
        finally:
            for key in keys:
                self.in_flight[key] -= 1
        if self.raises is not None:
            raise self.raises
        outcomes: list[str | FetchError] = []
        for key in keys:
            if key in self.errors:
                outcomes.append(self.errors[key])
            else:
                self._served[key] = self._served.get(key, 0) + 1
                outcomes.append(f"{key}#{self._served[key]}")
        if self.wrong_length:
            outcomes.append("extra")
        return outcomes

    @property
    def keys_fetched(self) -> list[str]:
        return [key for call in self.calls for key in call]


def transient(code: str = "ThrottlingException") -> FetchError:
    return FetchError("upstream failed", code=code, transient=True, status=400)


def denied() -> FetchError:
    return FetchError("not allowed", code="AccessDeniedException", status=400)


def not_found() -> FetchError:
    return FetchError("no such parameter", code="ParameterNotFound", status=400)


@pytest.fixture
def fetch() -> CountingFetch:
    return CountingFetch()


@pytest.fixture
def cache(fetch: CountingFetch, clock: FakeClock) -> Cache[str, str]:
    return Cache(fetch, clock=clock)


async def get(cache: Cache[str, str], key: str, ttl: float = 300.0) -> str | FetchError:
    [(outcome, _)] = await cache.get_many([(key, ttl)])
    return outcome


async def get_many(
    cache: Cache[str, str], items: list[tuple[str, float]], *, force: bool = False
) -> list[str | FetchError]:
    """The outcomes of one lookup of several keys."""
    return [outcome for outcome, _ in await cache.get_many(items, force=force)]


async def wait_for(event: anyio.Event) -> None:
    with anyio.fail_after(5):
        await event.wait()


async def let_others_run() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


class Lookups:
    """Lookups started in a task group: each one's result, and a cancel scope per lookup."""

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        self._group = group
        self.results: list[list[str | FetchError] | None] = []
        self.scopes: list[anyio.CancelScope] = []

    def start(self, lookup: Callable[[], Awaitable[list[str | FetchError]]]) -> int:
        index = len(self.results)
        self.results.append(None)
        scope = anyio.CancelScope()
        self.scopes.append(scope)

        async def run() -> None:
            with scope:
                self.results[index] = await lookup()

        self._group.start_soon(run)
        return index


# --- TTL -----------------------------------------------------------------------------------


async def test_first_lookup_fetches_and_returns_the_value(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    assert await get(cache, "a") == "a#1"
    assert fetch.calls == [["a"]]


async def test_second_lookup_within_ttl_makes_no_fetch(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(59.999)
    assert await get(cache, "a", ttl=60) == "a#1"
    assert fetch.calls == [["a"]]


async def test_lookup_once_ttl_has_passed_refetches_the_new_value(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(60)
    assert await get(cache, "a", ttl=60) == "a#2"
    assert fetch.calls == [["a"], ["a"]]
    assert cache.stats.refreshes == 1


async def test_each_item_expires_after_its_own_ttl(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    items = [("short", 10.0), ("long", 100.0)]
    await get_many(cache, items)
    clock.advance(50)
    assert await get_many(cache, items) == ["short#2", "long#1"]
    assert fetch.calls == [["short", "long"], ["short"]]


# --- bypass --------------------------------------------------------------------------------


async def test_zero_ttl_fetches_on_every_lookup(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    assert [await get(cache, "a", ttl=0) for _ in range(3)] == ["a#1", "a#2", "a#3"]
    assert len(fetch.calls) == 3
    assert cache.stats.size == 0


async def test_zero_ttl_for_one_key_does_not_bypass_the_others(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    items = [("uncached", 0.0), ("cached", 300.0)]
    await get_many(cache, items)
    assert await get_many(cache, items) == ["uncached#2", "cached#1"]
    assert fetch.calls == [["uncached", "cached"], ["uncached"]]


@pytest.mark.parametrize(
    ("enabled", "max_size"), [(False, 1000), (True, 0)], ids=["disabled", "max_size_0"]
)
async def test_bypassed_cache_fetches_on_every_lookup(
    fetch: CountingFetch, clock: FakeClock, enabled: bool, max_size: int
) -> None:
    cache: Cache[str, str] = Cache(fetch, enabled=enabled, max_size=max_size, clock=clock)
    assert [await get(cache, "a") for _ in range(3)] == ["a#1", "a#2", "a#3"]
    assert fetch.calls == [["a"], ["a"], ["a"]]
    assert cache.stats == CacheStats(hits=0, fetches=3, size=0)


# --- LRU bound -----------------------------------------------------------------------------


async def test_full_cache_evicts_the_least_recently_used_entry(
    fetch: CountingFetch, clock: FakeClock
) -> None:
    cache: Cache[str, str] = Cache(fetch, max_size=2, clock=clock)
    await get(cache, "a")
    await get(cache, "b")
    await get(cache, "a")  # a is now more recently used than b
    await get(cache, "c")  # evicts b
    assert cache.stats.size == 2
    fetch.calls.clear()
    assert await get(cache, "a") == "a#1"
    assert await get(cache, "c") == "c#1"
    assert fetch.calls == []
    assert await get(cache, "b") == "b#2"
    assert fetch.calls == [["b"]]


async def test_full_cache_evicts_expired_entries_before_live_ones(
    fetch: CountingFetch, clock: FakeClock
) -> None:
    cache: Cache[str, str] = Cache(fetch, max_size=2, clock=clock)
    await get(cache, "live", ttl=300)
    await get(cache, "expiring", ttl=10)  # the most recently used, but soon expired
    clock.advance(20)
    await get(cache, "new", ttl=300)
    assert cache.stats.size == 2
    fetch.calls.clear()
    assert await get(cache, "live") == "live#1"
    assert await get(cache, "new") == "new#1"
    assert fetch.calls == []


async def test_full_cache_evicts_only_as_many_expired_entries_as_it_must(
    fetch: CountingFetch, clock: FakeClock
) -> None:
    cache: Cache[str, str] = Cache(fetch, max_size=3, clock=clock)
    await get(cache, "old", ttl=10)
    await get(cache, "older", ttl=10)
    await get(cache, "live", ttl=300)
    clock.advance(20)  # "old" and "older" expired
    await get(cache, "new", ttl=300)  # one over: one expired entry goes, the first found
    assert cache.stats.size == 3
    # The expired one kept is still there to serve while its upstream fails.
    fetch.errors["old"] = fetch.errors["older"] = transient()
    assert await get(cache, "older", ttl=10) == "older#1"
    assert await get(cache, "old", ttl=10) == fetch.errors["old"]


async def test_cache_never_holds_more_than_max_size(fetch: CountingFetch, clock: FakeClock) -> None:
    cache: Cache[str, str] = Cache(fetch, max_size=3, clock=clock)
    await get_many(cache, [(f"k{i}", 300.0) for i in range(10)])
    assert cache.stats.size == 3
    fetch.calls.clear()
    assert await get_many(cache, [(f"k{i}", 300.0) for i in range(7, 10)]) == [
        "k7#1",
        "k8#1",
        "k9#1",
    ]
    assert fetch.calls == []


# --- single flight and batching ------------------------------------------------------------


async def test_concurrent_lookups_of_one_key_make_one_fetch(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):  # a lost waiter would hang
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            for _ in range(50):
                lookups.start(lambda: get_many(cache, [("k", 300.0)]))
            await wait_for(fetch.entered)
            # These arrive while the fetch is under way: they must join it.
            for _ in range(50):
                lookups.start(lambda: get_many(cache, [("k", 300.0)]))
            await let_others_run()
            fetch.gate.set()
    assert lookups.results == [["k#1"]] * 100
    assert fetch.calls == [["k"]]
    assert cache.stats.hits == 0  # every one of them waited for the fetch
    assert cache.stats.fetches == 1


async def test_keys_missing_together_are_fetched_in_one_call(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    await get(cache, "a")
    outcomes = await get_many(cache, [("a", 300.0), ("b", 300.0), ("c", 300.0)])
    assert outcomes == ["a#1", "b#1", "c#1"]
    assert fetch.calls == [["a"], ["b", "c"]]


async def test_a_key_asked_twice_in_one_lookup_is_fetched_once(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    assert await get_many(cache, [("a", 300.0), ("a", 300.0)]) == ["a#1", "a#1"]
    assert fetch.calls == [["a"]]


async def test_lookup_joins_an_inflight_fetch_and_fetches_only_the_rest(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            lookups.start(lambda: get_many(cache, [("a", 300.0)]))
            await wait_for(fetch.entered)
            lookups.start(lambda: get_many(cache, [("a", 300.0), ("b", 300.0)]))
            await let_others_run()
            fetch.gate.set()
    assert lookups.results == [["a#1"], ["a#1", "b#1"]]
    assert fetch.calls == [["a"], ["b"]]


async def test_concurrent_forced_lookups_make_one_fetch_per_key(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    await get_many(cache, [("a", 300.0), ("b", 300.0)])
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            for _ in range(50):
                lookups.start(lambda: get_many(cache, [("a", 300.0), ("b", 300.0)], force=True))
            await wait_for(fetch.entered)
            await let_others_run()
            fetch.gate.set()
    assert lookups.results == [["a#2", "b#2"]] * 50
    assert fetch.calls == [["a", "b"], ["a", "b"]]


async def test_forced_lookup_does_not_take_a_fetch_that_began_before_it(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(60)
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            lookups.start(lambda: get_many(cache, [("a", 60.0)]))  # a refresh by TTL
            await wait_for(fetch.entered)
            # A forced lookup (after a rotation, say) must see a fetch that began after it.
            lookups.start(lambda: get_many(cache, [("a", 60.0)], force=True))
            await let_others_run()
            fetch.gate.set()
    assert lookups.results == [["a#2"], ["a#3"]]
    assert fetch.calls == [["a"], ["a"], ["a"]]
    assert fetch.most_in_flight == 1


async def test_each_lookup_of_a_shared_key_keeps_its_own_ttl(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    # Two declarations of one parameter with different TTLs share an entry.
    assert await get_many(cache, [("p", 10.0), ("p", 300.0)]) == ["p#1", "p#1"]
    clock.advance(11)
    assert await get(cache, "p", ttl=300) == "p#1"  # still fresh for the long TTL
    assert await get(cache, "p", ttl=10) == "p#2"  # expired for the short one
    clock.advance(11)
    assert await get_many(cache, [("p", 300.0), ("p", 10.0)]) == ["p#3", "p#3"]
    assert fetch.calls == [["p"], ["p"], ["p"]]


# --- errors and stale-if-error -------------------------------------------------------------


async def test_transient_refresh_failure_serves_the_previous_value(
    cache: Cache[str, str],
    fetch: CountingFetch,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(60)
    fetch.errors["a"] = transient()
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        assert await get(cache, "a", ttl=60) == "a#1"
    assert fetch.calls == [["a"], ["a"]]
    assert cache.stats.stale_serves == 1
    assert cache.stats.refreshes == 0
    [record] = [r for r in caplog.records if r.name == "parameters_secrets"]
    assert record.levelno == logging.WARNING
    assert "ThrottlingException" in record.getMessage()
    assert "a#1" not in record.getMessage()


async def test_after_a_stale_serve_upstream_is_not_retried_for_a_few_seconds(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(60)
    fetch.errors["a"] = transient()
    await get(cache, "a", ttl=60)
    clock.advance(STALE_RETRY_SECONDS - 0.001)
    assert await get(cache, "a", ttl=60) == "a#1"
    assert len(fetch.calls) == 2
    clock.advance(0.001)
    del fetch.errors["a"]
    assert await get(cache, "a", ttl=60) == "a#2"
    assert len(fetch.calls) == 3


async def test_stale_retry_delay_is_the_ttl_when_shorter(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    assert STALE_RETRY_SECONDS > 2
    await get(cache, "a", ttl=2)
    clock.advance(2)
    fetch.errors["a"] = transient()
    assert await get(cache, "a", ttl=2) == "a#1"
    clock.advance(2)
    assert await get(cache, "a", ttl=2) == "a#1"  # stale again, after asking upstream
    assert len(fetch.calls) == 3
    assert cache.stats.stale_serves == 2


async def test_non_transient_refresh_failure_drops_the_entry(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(60)
    fetch.errors["a"] = denied()
    outcome = await get(cache, "a", ttl=60)
    assert isinstance(outcome, FetchError)
    assert outcome.code == "AccessDeniedException"
    assert cache.stats.stale_serves == 0
    assert cache.stats.size == 0
    # Not cached either: the next lookup asks again, and a transient error now has
    # no previous value to fall back on.
    fetch.errors["a"] = transient()
    outcome = await get(cache, "a", ttl=60)
    assert isinstance(outcome, FetchError)
    assert outcome.code == "ThrottlingException"
    assert len(fetch.calls) == 3


async def test_without_stale_if_error_a_transient_refresh_failure_is_returned(
    fetch: CountingFetch, clock: FakeClock
) -> None:
    cache: Cache[str, str] = Cache(fetch, stale_if_error=False, clock=clock)
    await get(cache, "a", ttl=60)
    clock.advance(60)
    fetch.errors["a"] = transient()
    outcome = await get(cache, "a", ttl=60)
    assert isinstance(outcome, FetchError)
    assert outcome.code == "ThrottlingException"
    assert cache.stats.stale_serves == 0


async def test_transient_failure_without_previous_value_is_returned_and_not_cached(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.errors["a"] = transient()
    first = await get(cache, "a")
    assert isinstance(first, FetchError)
    assert first.code == "ThrottlingException"
    del fetch.errors["a"]
    assert await get(cache, "a") == "a#1"
    assert len(fetch.calls) == 2


@pytest.mark.parametrize(("ttl", "remembered"), [(300.0, NOT_FOUND_TTL_SECONDS), (4.0, 4.0)])
async def test_not_found_is_remembered_for_the_shorter_of_ttl_and_not_found_ttl(
    cache: Cache[str, str],
    fetch: CountingFetch,
    clock: FakeClock,
    ttl: float,
    remembered: float,
) -> None:
    fetch.errors["a"] = not_found()
    first = await get(cache, "a", ttl=ttl)
    assert isinstance(first, FetchError)
    assert first.not_found
    clock.advance(remembered - 0.001)
    assert await get(cache, "a", ttl=ttl) is first
    assert len(fetch.calls) == 1
    clock.advance(0.001)
    del fetch.errors["a"]
    assert await get(cache, "a", ttl=ttl) == "a#1"
    assert len(fetch.calls) == 2


async def test_not_found_on_refresh_replaces_the_previous_value(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    await get(cache, "a", ttl=60)
    clock.advance(60)
    fetch.errors["a"] = not_found()
    outcome = await get(cache, "a", ttl=60)
    assert isinstance(outcome, FetchError)
    assert outcome.code == "ParameterNotFound"
    assert cache.stats.stale_serves == 0


async def test_fetch_that_raises_fails_every_key_with_source_error(
    cache: Cache[str, str], fetch: CountingFetch, caplog: pytest.LogCaptureFixture
) -> None:
    fetch.raises = RuntimeError("boom")
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        outcomes = await get_many(cache, [("a", 300.0), ("b", 300.0)])
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert isinstance(outcome, FetchError)
        assert outcome.code == "SourceError"
        assert "boom" not in str(outcome)
    assert cache.stats.errors == 2
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    fetch.raises = None
    assert await get_many(cache, [("a", 300.0), ("b", 300.0)]) == ["a#1", "b#1"]


async def test_fetch_returning_the_wrong_number_of_outcomes_is_a_source_error(
    cache: Cache[str, str], fetch: CountingFetch, caplog: pytest.LogCaptureFixture
) -> None:
    fetch.wrong_length = True
    with caplog.at_level(logging.CRITICAL + 1, logger="parameters_secrets"):
        outcome = await get(cache, "a")
    assert isinstance(outcome, FetchError)
    assert outcome.code == "SourceError"
    assert cache.stats.size == 0


# --- cancellation --------------------------------------------------------------------------


async def test_cancelled_leader_hands_the_fetch_to_a_waiter(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):  # a stranded waiter would hang
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            leader = lookups.start(lambda: get_many(cache, [("a", 300.0)]))
            await wait_for(fetch.entered)
            for _ in range(3):
                lookups.start(lambda: get_many(cache, [("a", 300.0)]))
            await let_others_run()
            lookups.scopes[leader].cancel()
            await let_others_run()
            fetch.gate.set()
    assert lookups.results == [None, ["a#1"], ["a#1"], ["a#1"]]
    # The cancelled fetch stopped; one waiter fetched again; never two at once.
    assert fetch.calls == [["a"], ["a"]]
    assert fetch.most_in_flight == 1
    assert await get(cache, "a") == "a#1"


async def test_cancelled_waiter_does_not_disturb_the_fetch(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            lookups.start(lambda: get_many(cache, [("a", 300.0)]))
            await wait_for(fetch.entered)
            waiter = lookups.start(lambda: get_many(cache, [("a", 300.0)]))
            await let_others_run()
            lookups.scopes[waiter].cancel()
            fetch.gate.set()
    assert lookups.results == [["a#1"], None]
    assert fetch.calls == [["a"]]


async def test_cancelling_the_only_caller_leaves_nothing_behind(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            lookups.start(lambda: get_many(cache, [("a", 300.0)]))
            await wait_for(fetch.entered)
            lookups.scopes[0].cancel()
    assert fetch.in_flight == {"a": 0}  # the fetch stopped with its caller
    fetch.gate = None
    assert await get(cache, "a") == "a#1"  # and the next lookup fetches anew
    assert fetch.calls == [["a"], ["a"]]
    assert cache._flights == {}


# --- counters and repr ---------------------------------------------------------------------


async def test_stats_count_hits_fetches_refreshes_stale_serves_and_errors(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock
) -> None:
    assert cache.stats == CacheStats()
    await get(cache, "a", ttl=60)  # fetch
    await get(cache, "a", ttl=60)  # hit
    await get_many(cache, [("a", 60.0), ("b", 60.0)])  # hit a, fetch b
    assert cache.stats == CacheStats(hits=2, fetches=2, size=2)
    clock.advance(60)
    fetch.errors["b"] = transient()
    assert await get_many(cache, [("a", 60.0), ("b", 60.0)]) == ["a#2", "b#1"]
    assert cache.stats == CacheStats(
        hits=2, fetches=4, refreshes=1, stale_serves=1, errors=1, size=2
    )
    fetch.errors["c"] = denied()
    await get(cache, "c")
    assert cache.stats == CacheStats(
        hits=2, fetches=5, refreshes=1, stale_serves=1, errors=2, size=2
    )


async def test_clear_forgets_entries_but_keeps_counters(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    await get(cache, "a")
    await get(cache, "a")
    cache.clear()
    assert cache.stats == CacheStats(hits=1, fetches=1, size=0)
    assert await get(cache, "a") == "a#2"


async def test_reprs_never_show_a_cached_value(fetch: CountingFetch, clock: FakeClock) -> None:
    async def secret_fetch(keys: Sequence[str], deadline: float | None) -> list[str | FetchError]:
        await fetch(keys, deadline)
        return [SECRET for _ in keys]

    cache: Cache[str, str] = Cache(secret_fetch, clock=clock)
    assert await get(cache, "a") == SECRET
    entries = list(cache._entries.values())
    assert len(entries) == 1
    assert SECRET not in repr(entries[0])
    assert "fetched_at" in repr(entries[0])
    assert SECRET not in repr(cache)
    assert SECRET not in repr(cache.stats)


# --- event loops ---------------------------------------------------------------------------


def test_cache_works_from_two_event_loops_in_turn(fetch: CountingFetch, clock: FakeClock) -> None:
    cache: Cache[str, str] = Cache(fetch, clock=clock)
    first = asyncio.new_event_loop()
    try:
        assert first.run_until_complete(get_many(cache, [("a", 60.0)])) == ["a#1"]
    finally:
        first.close()
    second = asyncio.new_event_loop()
    try:
        assert second.run_until_complete(get_many(cache, [("a", 60.0), ("b", 60.0)])) == [
            "a#1",
            "b#1",
        ]
        clock.advance(60)
        assert second.run_until_complete(get_many(cache, [("a", 60.0)])) == ["a#2"]
    finally:
        second.close()
    assert fetch.calls == [["a"], ["b"], ["a"]]


def test_fetch_abandoned_by_a_closed_loop_is_redone_on_the_next_loop(
    fetch: CountingFetch, clock: FakeClock
) -> None:
    cache: Cache[str, str] = Cache(fetch, clock=clock)

    async def start_and_abandon() -> asyncio.Future[list[str | FetchError]]:
        fetch.gate = anyio.Event()  # never set
        fetch.entered = anyio.Event()
        waiter = asyncio.ensure_future(get_many(cache, [("a", 60.0)]))
        await wait_for(fetch.entered)
        return waiter

    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(start_and_abandon())
        # Shut the loop down as asyncio.run does: cancel what is left, let it finish.
        pending = asyncio.all_tasks(first)
        for task in pending:
            task.cancel()
        first.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        first.close()
    fetch.gate = fetch.entered = None
    second = asyncio.new_event_loop()
    try:
        assert second.run_until_complete(get_many(cache, [("a", 60.0)])) == ["a#1"]
    finally:
        second.close()
    assert fetch.calls == [["a"], ["a"]]


def test_fetch_still_in_flight_on_another_loop_does_not_block_this_loop(
    fetch: CountingFetch, clock: FakeClock
) -> None:
    cache: Cache[str, str] = Cache(fetch, clock=clock)
    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:

        async def start_and_leave_pending() -> asyncio.Task[list[str | FetchError]]:
            fetch.gate = anyio.Event()
            fetch.entered = anyio.Event()
            task = asyncio.ensure_future(get_many(cache, [("a", 60.0)]))
            await wait_for(fetch.entered)
            return task

        # The first loop stops with its fetch still under way (the gate is not set).
        pending = first.run_until_complete(start_and_leave_pending())
        gate, fetch.gate = fetch.gate, None
        with_timeout = asyncio.wait_for(get_many(cache, [("a", 60.0)]), 5)
        assert second.run_until_complete(with_timeout) == ["a#1"]
        assert fetch.calls == [["a"], ["a"]]
        # Let the first loop's fetch finish, so that nothing is left pending.
        assert gate is not None
        gate.set()
        assert first.run_until_complete(pending) == ["a#2"]
    finally:
        first.close()
        second.close()


async def test_a_waiter_whose_fetch_clear_abandoned_fetches_again(
    cache: Cache[str, str], fetch: CountingFetch
) -> None:
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            lookups = Lookups(group)
            lookups.start(lambda: get_many(cache, [("k", 300.0)]))
            await wait_for(fetch.entered)
            lookups.start(lambda: get_many(cache, [("k", 300.0)]))  # waits for the first
            await let_others_run()
            fetch.entered = anyio.Event()
            cache.clear()  # the waiter is released without an answer: it fetches itself
            await wait_for(fetch.entered)
            fetch.gate.set()
    assert fetch.calls == [["k"], ["k"]]
    assert sorted(str(result) for result in lookups.results) == ["['k#1']", "['k#2']"]


@pytest.mark.parametrize("cached_before", [False, True])
async def test_a_waiter_whose_deadline_comes_first_gets_the_old_value_or_a_timeout(
    cache: Cache[str, str], fetch: CountingFetch, clock: FakeClock, cached_before: bool
) -> None:
    if cached_before:
        await get(cache, "k", ttl=10.0)
        clock.advance(11.0)  # expired: the next lookup refreshes it
    fetch.gate = anyio.Event()
    fetch.entered = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(get, cache, "k", 10.0)  # the leader: no deadline of its own
            await wait_for(fetch.entered)
            # The leader's fetch is held open past this lookup's deadline.
            [(outcome, _)] = await cache.get_many([("k", 10.0)], deadline=time.monotonic())
            fetch.gate.set()
    if cached_before:
        assert outcome == "k#1"  # stale_if_error: the previous value
    else:
        assert isinstance(outcome, FetchError)
        assert (outcome.code, outcome.transient) == ("Timeout", True)
        assert "another caller's fetch of it did not end in time" in str(outcome)
    assert len(fetch.calls) == 1 + cached_before  # the waiter did not fetch itself
