"""One store from any thread and any event loop at once (issue 12).

Callers of every kind (threads calling the sync methods, tasks on one loop, tasks on other
asyncio and trio loops, a Mangum handler) ask a store at the same time; the upstream is
the fake extension on 127.0.0.1 answering each request after a delay, so that every caller
arrives while the first fetch is still under way, and it counts what it is asked.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

import anyio
import anyio.lowlevel
import pytest
import trio
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parameters_secrets import (
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._concurrency import Flight, PerLoop, SyncLoop
from parameters_secrets.sources import (
    ExtensionSource,
    Outcome,
    ParameterRequest,
    Source,
    ValueRequest,
)
from tests import faults
from tests.conftest import TOKEN, FakeClock
from tests.extension_server import FakeExtension
from tests.lambda_events import LambdaContext, invoke

T = TypeVar("T")
DELAY = 0.3  # seconds the upstream takes to answer: every caller arrives meanwhile
JOIN_SECONDS = 30.0  # a thread still running after this long is hung

VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "flags": Parameter("/app/flags", transform="json"),
    "db": Secret("prod/db", transform="json"),
}
EXPECTED = {"api_key": "key-1", "flags": {"beta": True}, "db": {"password": "pw-1"}}
UPSTREAM: dict[str, tuple[Literal["parameter", "secret"], str]] = {
    "api_key": ("parameter", "/app/api-key"),
    "flags": ("parameter", "/app/flags"),
    "db": ("secret", "prod/db"),
}


@pytest.fixture
def slow_extension(extension: FakeExtension) -> FakeExtension:
    """The fake extension with the three values, answering every request after DELAY."""
    extension.put_parameter("/app/api-key", "key-1", type="SecureString")
    extension.put_parameter("/app/flags", json.dumps({"beta": True}))
    extension.put_secret("prod/db", string=json.dumps({"password": "pw-1"}))
    extension.fail(faults.delay(DELAY))
    return extension


def calls_per_key(extension: FakeExtension) -> dict[str, int]:
    return {key: extension.calls(*upstream) for key, upstream in UPSTREAM.items()}


def store_on(extension: FakeExtension, **kwargs: Any) -> ParametersSecrets:
    return ParametersSecrets(VALUES, source=ExtensionSource(extension.port, TOKEN), **kwargs)


def plain(values: Any) -> dict[str, Any]:
    """Values as plain JSON-like data, to compare with EXPECTED."""
    return {key: json.loads(json.dumps(values[key])) for key in values}


def in_threads(count: int, work: Callable[[], T], *, go: threading.Event | None = None) -> list[T]:
    """``work()`` in ``count`` threads started together; each one's result. Fails if one
    raised or is still running after JOIN_SECONDS."""
    start = go or threading.Event()
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        start.wait(JOIN_SECONDS)
        try:
            results[index] = work()
        except BaseException as exc:  # reported below, with the others
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    if go is None:
        start.set()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    hung = sum(thread.is_alive() for thread in threads)
    assert hung == 0, f"{hung} thread(s) hung"
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


class Started:
    """Threads started now, run against a shared ``go`` event; joined by ``results()``."""

    def __init__(self, go: threading.Event) -> None:
        self.go = go
        self._threads: list[threading.Thread] = []
        self._results: list[Any] = []
        self._lock = threading.Lock()

    def start(self, count: int, work: Callable[[], Any]) -> None:
        def run() -> None:
            self.go.wait(JOIN_SECONDS)
            try:
                result = work()
            except BaseException as exc:  # reported by results()
                result = exc
            with self._lock:
                self._results.append(result)

        for _ in range(count):
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            self._threads.append(thread)

    def results(self) -> list[Any]:
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        assert not any(thread.is_alive() for thread in self._threads), "a thread hung"
        errors = [r for r in self._results if isinstance(r, BaseException)]
        assert not errors, errors
        return self._results


# -- single flight across threads and loops ---------------------------------------------------


def test_fifty_threads_loading_a_cold_store_make_one_upstream_call_per_key(
    slow_extension: FakeExtension,
) -> None:
    store = store_on(slow_extension)
    results = in_threads(50, store.load_sync)
    assert [plain(values) for values in results] == [EXPECTED] * 50
    assert calls_per_key(slow_extension) == {"api_key": 1, "flags": 1, "db": 1}


def test_fifty_threads_refreshing_at_once_make_one_upstream_call_per_key(
    slow_extension: FakeExtension,
) -> None:
    store = store_on(slow_extension)
    store.load_sync()
    slow_extension.put_secret("prod/db", string=json.dumps({"password": "pw-2"}))
    results = in_threads(50, store.refresh_sync)
    assert {values["db"]["password"] for values in results} == {"pw-2"}
    # The load, then one refresh for all fifty callers.
    assert calls_per_key(slow_extension) == {"api_key": 2, "flags": 2, "db": 2}


def test_ten_tasks_on_a_loop_and_ten_threads_make_one_upstream_call_per_key(
    slow_extension: FakeExtension, event_loop_per_test: asyncio.AbstractEventLoop
) -> None:
    store = store_on(slow_extension)
    go = threading.Event()
    threads = Started(go)
    threads.start(10, store.load_sync)
    loaded: list[dict[str, Any]] = []

    async def main() -> None:
        async def load() -> None:
            loaded.append(plain(await store.load()))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(load)
            go.set()

    event_loop_per_test.run_until_complete(main())
    assert loaded == [EXPECTED] * 10
    assert [plain(values) for values in threads.results()] == [EXPECTED] * 10
    assert calls_per_key(slow_extension) == {"api_key": 1, "flags": 1, "db": 1}


def test_every_kind_of_caller_at_once_makes_one_upstream_call_per_key(
    slow_extension: FakeExtension,
) -> None:
    """A Mangum handler on this thread's loop, threads calling load_sync(), asyncio.run()
    and trio.run() in other threads, and FastAPI-style get_sync() calls, all at once."""
    store = store_on(slow_extension)

    async def password(request: Request) -> JSONResponse:
        return JSONResponse({"password": request.state.db["password"]})

    app = ParametersSecretsMiddleware(Starlette(routes=[Route("/", password)]), values=store)
    handler = Mangum(app, lifespan="off")
    go = threading.Event()
    threads = Started(go)
    threads.start(4, store.load_sync)
    threads.start(4, lambda: store.get_sync("db"))
    threads.start(3, lambda: asyncio.run(store.load()))
    threads.start(3, lambda: trio.run(store.load))
    go.set()
    response = invoke(handler, "http_api_v2", "/", context=LambdaContext(remaining_ms=20_000))
    assert response.status == 200
    assert response.json() == {"password": "pw-1"}
    results = threads.results()
    assert len(results) == 14
    for result in results:
        expected = EXPECTED["db"] if "password" in result else EXPECTED
        assert plain(result) == expected
    assert calls_per_key(slow_extension) == {"api_key": 1, "flags": 1, "db": 1}


def told_when_a_caller_waits(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set once a caller waits for another caller's fetch."""
    waiting = threading.Event()
    wait_for_flight = Flight.wait

    async def wait_and_tell(flight: Flight[Any], until: float) -> tuple[bool, Any]:
        waiting.set()
        return await wait_for_flight(flight, until)

    monkeypatch.setattr(Flight, "wait", wait_and_tell)
    return waiting


def test_a_waiter_keeps_its_loop_running_while_another_thread_fetches(
    event_loop_per_test: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = told_when_a_caller_waits(monkeypatch)
    source = GatedSource()  # the leader's fetch lasts until this test opens its gate
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    leader = Started(threading.Event())
    leader.start(1, lambda: store.get_sync("p"))
    leader.go.set()
    waited: list[Any] = []

    async def wait_for_the_leader() -> None:
        try:
            waited.append(await store.get("p"))
        except LoadError as error:  # reported by the assertions below
            waited.append(error)

    async def main() -> bool:
        assert await anyio.to_thread.run_sync(source.entered.wait, 10)  # the leader fetches
        async with anyio.create_task_group() as group:
            group.start_soon(wait_for_the_leader)
            assert await anyio.to_thread.run_sync(waiting.wait, 10)
            # This task runs again only on a loop the waiter left free: a wait that blocked
            # the loop would hold it until the gate gave up (10 s), and be over by now.
            still_waiting = not waited
            source.gate.set()
        return still_waiting

    still_waiting = event_loop_per_test.run_until_complete(main())
    assert still_waiting, f"the waiter's loop did not run while it waited: {waited}"
    assert waited == ["value-1"]  # the leader's value, not a fetch of its own
    assert leader.results() == ["value-1"]
    assert source.fetches == 1


def test_a_waiter_gives_up_by_its_own_time_bound_not_the_leaders(
    slow_extension: FakeExtension, event_loop_per_test: asyncio.AbstractEventLoop
) -> None:
    slow_extension.clear_faults()
    slow_extension.fail(faults.delay(3.0))
    store = store_on(slow_extension)
    leader = Started(threading.Event())
    leader.start(1, store.load_sync)  # no deadline: the leader waits up to 10 s
    leader.go.set()

    async def main() -> LoadError:
        assert await anyio.to_thread.run_sync(slow_extension.wait_for_calls, 3)
        deadline = anyio.current_time() + 0.3  # asyncio's clock is time.monotonic
        with pytest.raises(LoadError) as failed:
            await store.load(deadline=deadline)
        return failed.value

    error = event_loop_per_test.run_until_complete(main())
    # It gave up on its own bound while the leader's fetch was still under way.
    assert slow_extension.total_calls == 3
    assert leader._results == []
    assert {code.code for code in error.failures.values()} == {"Timeout"}
    assert "did not end in time" in str(error.failures["db"])
    assert [plain(values) for values in leader.results()] == [EXPECTED]
    assert calls_per_key(slow_extension) == {"api_key": 1, "flags": 1, "db": 1}


class GatedSource(Source):
    """A source whose fetches wait for ``gate`` (a thread-safe event), counting them and
    the most under way at once."""

    checks_records = True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fetches = 0
        self.under_way = 0
        self.most_under_way = 0
        self._lock = threading.Lock()

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        with self._lock:
            self.fetches += 1
            self.under_way += 1
            self.most_under_way = max(self.most_under_way, self.under_way)
        self.entered.set()
        try:
            # Set from another thread; a cancelled fetch stops waiting for it at once.
            opened = await anyio.to_thread.run_sync(self.gate.wait, 10, abandon_on_cancel=True)
            assert opened
        finally:
            with self._lock:
                self.under_way -= 1
        assert all(isinstance(r, ParameterRequest) for r in requests)
        return [{"Name": r.name, "Value": f"value-{self.fetches}"} for r in requests]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        pass


def test_a_cancelled_leader_on_one_loop_hands_the_fetch_to_a_waiting_thread(
    event_loop_per_test: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = told_when_a_caller_waits(monkeypatch)
    source = GatedSource()
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    waiter = Started(threading.Event())

    async def lead_then_cancel() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(store.get, "p")
            assert await anyio.to_thread.run_sync(source.entered.wait, 10)
            waiter.start(1, lambda: store.get_sync("p"))
            waiter.go.set()
            assert await anyio.to_thread.run_sync(waiting.wait, 10)  # the thread waits on it
            group.cancel_scope.cancel()

    event_loop_per_test.run_until_complete(lead_then_cancel())
    source.gate.set()
    assert waiter.results() == ["value-2"]  # it fetched itself
    assert (source.fetches, source.most_under_way) == (2, 1)


def test_a_failed_leader_gives_every_waiting_thread_its_error(
    slow_extension: FakeExtension,
) -> None:
    slow_extension.clear_faults()
    slow_extension.fail(faults.server_error("InternalServerError").after(DELAY))
    store = store_on(slow_extension)

    def load() -> str:
        try:
            store.load_sync()
        except LoadError as error:
            return ",".join(sorted({e.code for e in error.failures.values()}))
        return "loaded"

    assert in_threads(20, load) == ["InternalServerError"] * 20
    assert calls_per_key(slow_extension) == {"api_key": 1, "flags": 1, "db": 1}


# -- thread safety under a fast switch interval -------------------------------------------


class EchoSource(Source):
    """Answers every parameter ``/k/<name>`` with ``value-of-<name>``, yielding to other
    tasks first; counts nothing (the stress test checks values, not calls)."""

    checks_records = True

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        await anyio.lowlevel.checkpoint()
        return [
            {"Name": r.name, "Value": "value-of-" + r.name.rsplit("/", 1)[-1]}  # type: ignore[union-attr]
            for r in requests
        ]

    async def aclose(self) -> None:
        pass


@pytest.fixture
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("fast_switching")
def test_sixteen_threads_mixing_every_method_on_a_small_cache_see_only_right_values() -> None:
    names = [f"k{i}" for i in range(8)]
    # TTLs of 1 to 3 s on a clock running a thousand times faster: entries expire all
    # the time; and the cache holds 3 of the 8, so they are evicted all the time too.
    values = {name: Parameter(f"/k/{name}", ttl=1 + i % 3) for i, name in enumerate(names)}
    clock_lock = threading.Lock()
    now = [0.0]

    def fast_clock() -> float:
        with clock_lock:
            now[0] += 0.001
            return now[0]

    store = ParametersSecrets(
        values, source=EchoSource(), settings=Settings(cache_size=3), clock=fast_clock
    )
    rounds = 150

    def sync_reader(seed: int) -> Callable[[], int]:
        def run() -> int:
            rng = random.Random(seed)
            for _ in range(rounds):
                name = rng.choice(names)
                if rng.random() < 0.3:
                    refreshed = store.refresh_sync(name, rng.choice(names))
                    assert refreshed[name] == f"value-of-{name}"
                else:
                    assert store.get_sync(name) == f"value-of-{name}"
                store.stats  # noqa: B018 - read while others write
            return rounds

        return run

    def async_reader(seed: int) -> Callable[[], int]:
        async def main() -> int:
            rng = random.Random(seed)
            for _ in range(rounds):
                name = rng.choice(names)
                choice = rng.random()
                if choice < 0.2:
                    assert (await store.refresh(name))[name] == f"value-of-{name}"
                elif choice < 0.4:
                    loaded = await store.load()
                    assert {k: loaded[k] for k in names} == {n: f"value-of-{n}" for n in names}
                else:
                    assert await store.get(name) == f"value-of-{name}"
            return rounds

        return lambda: asyncio.run(main())

    go = threading.Event()
    threads = Started(go)
    for seed in range(10):
        threads.start(1, sync_reader(seed))
    for seed in range(10, 16):
        threads.start(1, async_reader(seed))
    go.set()
    assert threads.results() == [rounds] * 16
    assert store.stats.size <= 3


# -- warm reads --------------------------------------------------------------------------------


def short_and_long(extension: FakeExtension, clock: FakeClock) -> ParametersSecrets:
    """A store of two values, "short" (60 s) and "long" (300 s), on a fake clock."""
    extension.put_parameter("/short", "s1")
    extension.put_parameter("/long", "l1")
    return ParametersSecrets(
        {"short": Parameter("/short", ttl=60), "long": Parameter("/long", ttl=300)},
        source=ExtensionSource(extension.port, TOKEN),
        clock=clock,
    )


def test_warm_reads_after_an_expiry_run_no_event_loop_and_make_no_call(
    extension: FakeExtension, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = short_and_long(extension, clock)
    store.load_sync()
    clock.advance(61)  # "short" expired: the store's snapshot of every value is gone
    loops = 0  # calls run on the store's sync loop (its one loop is made already)
    run_on_loop = SyncLoop.run

    def counted(self: SyncLoop, *args: Any) -> Any:
        nonlocal loops
        loops += 1
        return run_on_loop(self, *args)

    monkeypatch.setattr(SyncLoop, "run", counted)
    for _ in range(2000):
        assert store.get_sync("long") == "l1"
    assert (loops, extension.total_calls) == (0, 2)
    assert store.get_sync("short") == "s1"  # expired: one run on the loop, one call
    assert (loops, extension.total_calls) == (1, 3)
    # Every value is fresh again: the fast path is back, for every read.
    assert store.cached() is not None
    for _ in range(2000):
        assert store.load_sync()["short"] == "s1"
        assert store.get_sync("short") == "s1"
    assert (loops, extension.total_calls) == (1, 3)


def test_async_get_after_an_expiry_rebuilds_the_fast_path(
    extension: FakeExtension, clock: FakeClock, event_loop_per_test: asyncio.AbstractEventLoop
) -> None:
    store = short_and_long(extension, clock)

    async def main() -> None:
        await store.load()
        clock.advance(61)
        assert store.cached() is None
        assert await store.get("short") == "s1"
        assert store.cached() is not None
        await store.aclose()

    event_loop_per_test.run_until_complete(main())
    assert extension.total_calls == 3


# -- the sync methods keep their rule ---------------------------------------------------------


def test_sync_methods_on_a_cold_store_inside_a_loop_still_name_the_async_method(
    event_loop_per_test: asyncio.AbstractEventLoop,
) -> None:
    store = ParametersSecrets({"p": Parameter("/p")}, source=GatedSource())

    async def main() -> str:
        with pytest.raises(Exception, match=r"use 'await store.get\(\)'") as raised:
            store.get_sync("p")
        return type(raised.value).__name__

    assert event_loop_per_test.run_until_complete(main()) == "ParametersSecretsError"


def test_a_value_that_does_not_exist_fails_every_thread_with_its_code_after_one_call(
    slow_extension: FakeExtension,
) -> None:
    slow_extension.delete_secret("prod/db")
    store = store_on(slow_extension)

    def load() -> str:
        with pytest.raises(LoadError) as failed:
            store.load_sync()
        return failed.value.failures["db"].code

    assert in_threads(10, load) == ["ResourceNotFoundException"] * 10
    assert calls_per_key(slow_extension) == {"api_key": 1, "flags": 1, "db": 1}


# -- what belongs to one loop (PerLoop, on anyio's RunVar) -------------------------------------


class _Pool:
    """A stand-in for a connection pool: knows whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ended_loops_are_not_kept_alive_by_their_pools(backend: str) -> None:
    """A loop's pool refers to its loop (through its closer): held for the loop by anyio,
    it must not keep an ended loop, and everything on it, in memory."""
    per_loop = PerLoop(_Pool, _Pool.aclose)
    loops: list[weakref.ref[object]] = []
    pools: list[_Pool] = []

    async def use() -> None:
        pools.append(await per_loop.get())
        assert await per_loop.get() is pools[-1]  # one per loop
        loops.append(weakref.ref(anyio.lowlevel.current_token().native_token))

    for _ in range(30):
        anyio.run(use, backend=backend)
    gc.collect()
    assert all(pool.closed for pool in pools)
    assert [loop for loop in loops if loop() is not None] == []


def test_a_pool_whose_owner_was_collected_in_a_cycle_still_closes_with_its_loop() -> None:
    pools: list[_Pool] = []

    class Owner:
        def __init__(self) -> None:
            self.per_loop = PerLoop(_Pool, _Pool.aclose)
            self.itself = self  # a web app usually is a reference cycle

    async def use() -> None:
        owner = Owner()
        pools.append(await owner.per_loop.get())
        del owner
        gc.collect()  # the owner is gone; its pool is still this loop's
        assert not pools[0].closed

    asyncio.run(use())
    assert pools[0].closed
