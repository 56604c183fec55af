"""One store from many threads: single flight across threads, and warm sync reads.

1. A cold ``load_sync()`` from ``THREADS`` threads started together on one store, 10
   values (5 parameters, 5 secrets) through ``ExtensionSource`` to the local
   extension-compatible server behind the counting proxy (``LATENCY`` per request).
   Side by side, the baseline a store without single flight across threads gives: each
   thread with a store of its own (what every thread paid before the store shared its
   fetches between threads). Reported: upstream requests per value, wall time until
   every thread has its values, and the median thread's time.
2. Warm sync reads: ``get_sync()`` of a fresh value, ``N_READS`` times, when every value
   is fresh and when another value has expired; and ``load_sync()`` of fresh values. The
   event loops created are counted (``asyncio.new_event_loop``): a warm read runs none.
   Side by side: one cold ``get_sync()`` (a private event loop and a fetch), the cost a
   warm read paid when it ran a loop.
"""

from __future__ import annotations

import asyncio
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import Table, median, micros, millis
from benchmarks._upstreams import (
    SESSION_TOKEN,
    Proxy,
    declarations,
    delayed_upstreams,
    parameter_names,
    secret_ids,
)

LATENCY = 0.050
PARAMETERS = 5
SECRETS = 5
THREADS = 50
REPEATS = 3
N_READS = 20_000
QUICK_READS = 2_000


def run(quick: bool = False) -> Table:
    started = time.perf_counter()
    with delayed_upstreams(PARAMETERS, SECRETS, LATENCY) as (_, local_proxy):
        bursts = {
            shared: [_burst(local_proxy, shared=shared) for _ in range(1 if quick else REPEATS)]
            for shared in (True, False)
        }
        reads = _warm_reads(local_proxy, QUICK_READS if quick else N_READS)
    return _table(bursts, reads, quick=quick, elapsed=time.perf_counter() - started)


def _store(proxy: Proxy, **declared: Any) -> Any:
    from parameters_secrets import ParametersSecrets, Settings
    from parameters_secrets.sources import ExtensionSource

    settings = Settings(log_level="warn")
    return ParametersSecrets(
        declared or declarations(PARAMETERS, SECRETS),
        source=ExtensionSource(port=proxy.port, token=SESSION_TOKEN, settings=settings),
        settings=settings,
    )


def _burst(proxy: Proxy, *, shared: bool) -> dict[str, float]:
    """THREADS threads loading at once: one store between them, or one store each."""
    proxy.reset()
    one = _store(proxy) if shared else None
    stores = [one or _store(proxy) for _ in range(THREADS)]
    go = threading.Event()
    times: list[float] = []
    failures: list[BaseException] = []

    def load(store: Any) -> None:
        go.wait(30)
        began = time.perf_counter()
        try:
            store.load_sync()
        except BaseException as exc:  # noqa: BLE001 - counted, reported in the table
            failures.append(exc)
        times.append(time.perf_counter() - began)

    threads = [threading.Thread(target=load, args=(s,), daemon=True) for s in stores]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join(60)
    wall = time.perf_counter() - began
    stats = proxy.stats()
    names = [*parameter_names(PARAMETERS), *secret_ids(SECRETS)]
    per_value = [stats.names.get(name, 0) for name in names]
    return {
        "wall": wall,
        "median_thread": median(times),
        "calls_min": min(per_value),
        "calls_max": max(per_value),
        "failures": len(failures),
        "hung": sum(thread.is_alive() for thread in threads),
    }


def _warm_reads(proxy: Proxy, reads: int) -> dict[str, tuple[float, float, float]]:
    """Per read, for each case: median seconds (of 5 batches), event loops made, and
    upstream requests."""
    from parameters_secrets import Parameter

    loops = 0
    new_event_loop = asyncio.new_event_loop

    def counted() -> asyncio.AbstractEventLoop:
        nonlocal loops
        loops += 1
        return new_event_loop()

    clock = [1000.0]
    names = parameter_names(2)
    store = _store(proxy)
    store = type(store)(
        {"short": Parameter(names[0], ttl=60), "long": Parameter(names[1], ttl=300)},
        source=store.source,
        settings=store.settings,
        clock=lambda: clock[0],
    )
    results: dict[str, tuple[float, float, float]] = {}

    def measure(name: str, read: Callable[[], Any], count: int) -> None:
        nonlocal loops
        loops = 0
        proxy.reset()
        batches = []
        for _ in range(5):
            began = time.perf_counter()
            for _ in range(count):
                read()
            batches.append((time.perf_counter() - began) / count)
        results[name] = (median(batches), loops / (5 * count), proxy.stats().total / (5 * count))

    asyncio.new_event_loop = counted  # type: ignore[assignment]
    try:
        store.load_sync()
        measure("get_sync, every value fresh", lambda: store.get_sync("long"), reads)
        measure("load_sync, every value fresh", store.load_sync, reads)
        clock[0] += 61  # "short" expired
        measure("get_sync of a fresh value, another expired", lambda: store.get_sync("long"), reads)

        def cold() -> None:
            clock[0] += 301  # both expired: a private loop and a fetch
            store.get_sync("long")

        measure("get_sync of an expired value (loop + fetch)", cold, 20)
    finally:
        asyncio.new_event_loop = new_event_loop  # type: ignore[assignment]
    return results


def _table(
    bursts: dict[bool, list[dict[str, float]]],
    reads: dict[str, tuple[float, float, float]],
    *,
    quick: bool,
    elapsed: float,
) -> Table:
    table = Table(
        title="One store from many threads",
        columns=[
            "case",
            "upstream requests",
            "wall time",
            "median thread / read",
            "event loops / failures",
        ],
    )
    labels = {
        True: f"{THREADS} threads, one store: load_sync() cold",
        False: f"{THREADS} threads, a store each (no sharing between threads)",
    }
    for shared, runs in bursts.items():
        low = min(int(r["calls_min"]) for r in runs)
        high = max(int(r["calls_max"]) for r in runs)
        problems = sum(int(r["failures"] + r["hung"]) for r in runs)
        table.rows.append(
            [
                labels[shared],
                (f"{low}" if low == high else f"{low}-{high}") + " per value",
                millis(median([r["wall"] for r in runs])),
                millis(median([r["median_thread"] for r in runs])),
                f"{problems} failed or hung",
            ]
        )
    for name, (seconds, loops, requests) in reads.items():
        table.rows.append(
            [name, f"{requests:g} per read", "", micros(seconds), f"{loops:g} per read"]
        )
    shared = median([r["wall"] for r in bursts[True]])
    alone = median([r["wall"] for r in bursts[False]])
    table.headline[f"{THREADS} threads cold: a store each / one shared store (wall)"] = (
        alone / shared
    )
    table.notes += [
        f"Upstream: the local server behind a proxy adding {LATENCY * 1000:.0f} ms per "
        f"request; {PARAMETERS} parameters and {SECRETS} secrets; medians of "
        f"{1 if quick else REPEATS} bursts.",
        "Warm reads: median of 5 batches; 'loops' is asyncio.new_event_loop() calls per "
        "read (0: the read ran no event loop).",
        f"{'quick; ' if quick else ''}Python {platform.python_version()}; {elapsed:.0f} s.",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
