"""A refresh that has returned stays returned (issue 19, items 1 and 2).

The store keeps a snapshot of every fresh value for the warm path. Reader threads build
snapshots while another thread refreshes: a snapshot built from the cache as it was
before a refresh must never be published after that refresh returned. And a forced
refresh completes however many readers keep starting fetches of the same key.

The upstream is a source in this process whose value changes on every fetch
(``v<n>``, ``n`` counting the fetches begun), so an older value is told from a newer one.
"""

from __future__ import annotations

import contextvars
import itertools
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest

from parameters_secrets import FetchError, LoadError, Parameter, ParametersSecrets
from parameters_secrets.sources import Outcome, ParameterRequest, Source, ValueRequest

T = TypeVar("T")
JOIN_SECONDS = 60.0  # a thread still running after this long is hung

# Which kind of caller a fetch is made for: the sync road runs the fetch in a task that
# copies the caller's context, whatever thread or loop it runs on.
role: contextvars.ContextVar[str] = contextvars.ContextVar("role", default="reader")


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond: races that need a switch at one instruction
    happen far more often."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class RotatingSource(Source):
    """Answers every parameter with ``v<n>``, ``n`` counting the fetches begun; counts
    the fetches made for a refresher (``role``). ``on_fetch`` runs at each fetch's
    start; ``latency`` seconds is how long the upstream takes to answer."""

    checks_records = True

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.begun = 0
        self.for_refresher = 0
        self.on_fetch: Callable[[], None] = lambda: None
        # What a refresher's fetch answers instead of a value, if set.
        self.refresher_error: FetchError | None = None
        self._lock = threading.Lock()

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        with self._lock:
            self.begun += 1
            number = self.begun
            if role.get() == "refresher":
                self.for_refresher += 1
        self.on_fetch()
        if self.latency:
            await anyio.sleep(self.latency)  # the upstream's round trip, not a synchronisation
        else:
            await anyio.lowlevel.checkpoint()
        assert all(isinstance(r, ParameterRequest) for r in requests)
        if self.refresher_error is not None and role.get() == "refresher":
            return [self.refresher_error] * len(requests)
        return [{"Name": r.name, "Value": f"v{number}"} for r in requests]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        pass


def number(value: str) -> int:
    return int(value[1:])


class Readers:
    """``count`` threads calling ``work(index, round)`` in a bounded loop until stopped;
    each notes how many calls it completed."""

    def __init__(self, count: int, work: Callable[[int, int], object], rounds: int) -> None:
        self.stop = threading.Event()
        self.done = [0] * count
        self.errors: list[BaseException] = []
        self.progress = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, args=(i, work, rounds), daemon=True)
            for i in range(count)
        ]
        self.idents: set[int] = set()

    def _run(self, index: int, work: Callable[[int, int], object], rounds: int) -> None:
        try:
            for round_ in range(rounds):
                if self.stop.is_set():
                    return
                work(index, round_)
                with self.progress:
                    self.done[index] += 1
                    self.progress.notify_all()
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)
            with self.progress:
                self.done[index] = sys.maxsize
                self.progress.notify_all()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
            assert thread.ident is not None
            self.idents.add(thread.ident)

    def wait_for_each_to_finish_a_call(self, since: list[int]) -> None:
        """Until every reader has completed a call begun after ``since`` was noted."""
        with self.progress:
            finished = self.progress.wait_for(
                lambda: all(d >= s + 2 for d, s in zip(self.done, since, strict=True)),
                timeout=JOIN_SECONDS,
            )
        assert finished, "a reader made no progress"

    def join(self) -> None:
        self.stop.set()
        self.finish()

    def finish(self) -> None:
        """Wait for every reader to end its rounds."""
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        assert not any(thread.is_alive() for thread in self._threads), "a reader hung"
        assert not self.errors, self.errors


class Hold:
    """Reader threads that look at the store's cache while a hold is on stop right after
    the look, until ``release``: a reader that read the cache before a refresh's answer
    landed resumes only after that refresh has returned, and then publishes what it
    read. This widens the race deterministically, instead of waiting for the scheduler
    to switch threads at the wrong instruction."""

    def __init__(self, readers: set[int]) -> None:
        self._readers = readers
        self._condition = threading.Condition()
        self._holding = False
        self.held = 0  # readers held during the current hold
        self.total_held = 0

    def wrap(self, look: Callable[..., T]) -> Callable[..., T]:
        def held_after(*args: Any, **kwargs: Any) -> T:
            found = look(*args, **kwargs)
            if self._holding and threading.get_ident() in self._readers:
                with self._condition:
                    if self._holding:
                        self.held += 1
                        self.total_held += 1
                        self._condition.notify_all()
                        self._condition.wait_for(lambda: not self._holding, timeout=JOIN_SECONDS)
            return found

        return held_after

    def hold(self) -> None:
        with self._condition:
            self._holding, self.held = True, 0

    def wait_until_held(self, readers: int) -> None:
        with self._condition:
            # Bounded: if some reader does not get there, the refresh goes on without it.
            self._condition.wait_for(lambda: self.held >= readers, timeout=2.0)

    def release(self) -> None:
        with self._condition:
            self._holding = False
            self._condition.notify_all()


READERS = 8
REFRESHES = 10


@pytest.mark.usefixtures("fast_switching")
def test_no_read_after_refresh_sync_returns_serves_the_value_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = RotatingSource()
    store = ParametersSecrets({"k": Parameter("/k")}, source=source)
    store.load_sync()

    def read(index: int, round_: int) -> None:
        how = (index + round_) % 3
        if how == 0:
            values = store.cached()
            value = values["k"] if values is not None else store.load_sync()["k"]
        elif how == 1:
            value = store.get_sync("k")
        else:
            # On an event loop of this thread's own (the sync road's loop is the store's
            # thread): the reader builds and publishes its snapshot here, where it is held.
            value = anyio.run(store.load)["k"]
        assert value.startswith("v")

    readers = Readers(READERS, read, rounds=1_000_000)
    hold = Hold(readers.idents)
    # White-box, to place the readers: the store looks at its cache with peek() when it
    # builds a snapshot to publish (and for a get_sync() without one).
    monkeypatch.setattr(store._cache, "peek", hold.wrap(store._cache.peek))

    def hold_readers_during_the_fetch() -> None:
        if role.get() == "refresher":
            hold.hold()
            # The refresh emptied the snapshot: readers come to read the cache, which
            # still holds the value before this refresh, and are held there. One held
            # reader is the race (without the generation check, ~2 stale reads a
            # refresh); waiting for all would wait out the bound on most refreshes, as
            # a reader joining the refresh's fetch is never held.
            hold.wait_until_held(1)

    source.on_fetch = hold_readers_during_the_fetch
    stale: list[tuple[str, str, str]] = []
    readers.start()
    try:
        role.set("refresher")
        for _ in range(REFRESHES):
            refreshed = store.refresh_sync()["k"]
            since = list(readers.done)
            hold.release()
            # Every reader held mid-call finishes that call (and publishes what it read).
            readers.wait_for_each_to_finish_a_call(since)
            cached = store.cached()
            seen = {
                "cached": cached["k"] if cached is not None else refreshed,
                "get_sync": store.get_sync("k"),
                "load_sync": store.load_sync()["k"],
            }
            stale += [(how, value, refreshed) for how, value in seen.items() if value != refreshed]
    finally:
        hold.release()
        readers.join()
    assert source.for_refresher == REFRESHES
    # The race was set up: readers were held after reading the cache during most refreshes
    # (in some, every reader was waiting on the refresh's own fetch, and none was held).
    assert hold.total_held >= REFRESHES // 2
    assert stale == [], f"{len(stale)} stale reads after {REFRESHES} refreshes: {stale[:5]}"


def test_a_refresh_that_drops_the_value_is_not_undone_by_a_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The value became forbidden: refresh_sync() raises, and the old value must not be
    served again, not even from a snapshot a reader built from the cache before."""
    source = RotatingSource()
    store = ParametersSecrets({"k": Parameter("/k")}, source=source)
    store.load_sync()
    # Each reader on an event loop of its own thread, where it publishes what it read.
    readers = Readers(READERS, lambda i, r: anyio.run(store.load), rounds=1_000_000)
    hold = Hold(readers.idents)
    monkeypatch.setattr(store._cache, "peek", hold.wrap(store._cache.peek))

    def hold_readers_during_the_fetch() -> None:
        if role.get() == "refresher":
            hold.hold()
            hold.wait_until_held(READERS)

    source.on_fetch = hold_readers_during_the_fetch
    source.refresher_error = FetchError("denied", code="AccessDeniedException")
    readers.start()
    try:
        role.set("refresher")
        with pytest.raises(LoadError) as failed:
            store.refresh_sync()
        since = list(readers.done)
        hold.release()
        readers.wait_for_each_to_finish_a_call(since)
        cached = store.cached()
    finally:
        hold.release()
        readers.join()
    assert failed.value.failures["k"].code == "AccessDeniedException"
    assert hold.total_held >= 1
    # None, or a value readers fetched after the refresh (v2 on): never v1.
    assert cached is None or cached["k"] != "v1"


@pytest.mark.usefixtures("fast_switching")
def test_warm_reads_from_many_threads_count_every_hit() -> None:
    store = ParametersSecrets({"a": Parameter("/a"), "b": Parameter("/b")}, source=RotatingSource())
    store.load_sync()
    before = store.stats.hits

    def read(index: int, round_: int) -> None:
        assert store.cached() is not None  # two hits
        assert store.get_sync("a") == "v1"  # one
        if round_ % 100 == 0:
            store.stats  # noqa: B018 - read while others count

    readers = Readers(8, read, rounds=2_000)
    readers.start()
    readers.finish()
    assert not readers.errors, readers.errors
    assert store.stats.hits - before == 8 * 2_000 * 3


HAMMERING_READERS = 16
FORCED_REFRESHES = 30


@pytest.mark.parametrize("ttl", [0, 0.001])
def test_a_forced_refresh_completes_however_many_readers_keep_fetching(ttl: float) -> None:
    # Every reader's lookup is a fetch (TTL 0) or nearly (1 ms): there is nearly always
    # an ordinary fetch of the key under way when a refresh is asked.
    source = RotatingSource(latency=0.001)
    store = ParametersSecrets({"k": Parameter("/k", ttl=ttl)}, source=source)
    reads = itertools.count()

    def read(index: int, round_: int) -> None:
        next(reads)
        assert store.get_sync("k").startswith("v")

    readers = Readers(HAMMERING_READERS, read, rounds=100_000)
    outcomes: list[str] = []
    readers.start()
    try:
        role.set("refresher")
        for _ in range(FORCED_REFRESHES):
            asked_after = source.begun
            try:
                refreshed = number(store.refresh_sync()["k"])
            except LoadError as error:
                outcomes.append(f"LoadError {error.failures['k'].code}")
                continue
            # A value fetched before the refresh was asked is not a refresh.
            outcomes.append("refreshed" if refreshed > asked_after else "an older value")
    finally:
        readers.join()
    assert outcomes == ["refreshed"] * FORCED_REFRESHES
    # A refresh fetches itself at most once: it leads, or it joins a fetch that began
    # after it was asked (a reader's).
    assert source.for_refresher <= FORCED_REFRESHES
    total_reads = next(reads)
    assert source.begun <= total_reads + FORCED_REFRESHES


def test_forcing_callers_at_once_among_readers_share_one_fetch_each_time() -> None:
    """Eight threads refreshing at once, repeatedly, while readers fetch at TTL 0: each
    round of refreshes adds about one upstream fetch for all eight, and each gets a value
    fetched after its round began."""
    source = RotatingSource(latency=0.005)
    store = ParametersSecrets({"k": Parameter("/k", ttl=0)}, source=source)
    readers = Readers(4, lambda i, r: store.get_sync("k"), rounds=100_000)
    begun_before_round: list[int] = []
    barrier = threading.Barrier(
        8, action=lambda: begun_before_round.append(source.begun), timeout=JOIN_SECONDS
    )
    newer: list[bool] = []
    lock = threading.Lock()

    def refresher() -> None:
        role.set("refresher")
        for round_ in range(5):
            barrier.wait()
            value = number(store.refresh_sync()["k"])
            with lock:
                newer.append(value > begun_before_round[round_])

    threads = [threading.Thread(target=refresher, daemon=True) for _ in range(8)]
    readers.start()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_SECONDS)
    finally:
        readers.join()
    assert not any(thread.is_alive() for thread in threads)
    assert newer == [True] * 40
    # 5 rounds of 8 refreshes at once: one fetch per round for the refreshers that lead
    # (the others join it, or a reader's that began after they asked). Threads released
    # by one barrier do not all ask at the same instant: allow one straggler fetch each.
    assert source.for_refresher <= 5 * 2
