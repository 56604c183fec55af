"""The sync road's cost per refresh: a new event loop per call against the store's one
long-lived loop.

``refresh_sync()`` of one parameter through ``ExtensionSource`` to the fake extension
(the package's own server behind the tests' recording layer, ``tests/extension_server.py``)
on 127.0.0.1, which counts the TCP connections it accepts. Two variants, measured
interleaved in one run, each on a store of its own:

* before: what ``refresh_sync()`` did until the store kept a loop, reproduced here: a
  private loop made for the call, run to completion, its async generators shut down (so
  its pool and connection close) and closed;
* after: ``store.refresh_sync()``: the call runs on the store's loop, whose pool keeps its
  connection.

Reported: median µs per refresh (of ``ROUNDS`` rounds of ``CALLS`` calls each, the
variants alternating), and connections opened per refresh.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import Table, median, micros

CALLS = 50
ROUNDS = 15
QUICK_ROUNDS = 3
NAME = "/bench/sync/refresh"


def run(quick: bool = False) -> Table:
    from tests.extension_server import FakeExtension

    started = time.perf_counter()
    with FakeExtension() as extension:
        extension.put_parameter(NAME, "value")
        before, after = _store(extension), _store(extension)
        variants: dict[str, Callable[[], Any]] = {
            "before: a new event loop per call": lambda: _refresh_on_a_new_loop(before),
            "after: the store's long-lived loop": after.refresh_sync,
        }
        for refresh in variants.values():  # warm up: imports, the first connection
            refresh()
        samples: dict[str, list[float]] = {name: [] for name in variants}
        connections: dict[str, int] = dict.fromkeys(variants, 0)
        for _ in range(QUICK_ROUNDS if quick else ROUNDS):
            for name, refresh in variants.items():
                opened = extension.connections
                began = time.perf_counter()
                for _ in range(CALLS):
                    refresh()
                samples[name].append((time.perf_counter() - began) / CALLS)
                connections[name] += extension.connections - opened
        asyncio.run(after.aclose())
    rounds = len(next(iter(samples.values())))
    return _table(samples, connections, rounds, quick, time.perf_counter() - started)


def _store(extension: Any) -> Any:
    from parameters_secrets import Parameter, ParametersSecrets, Settings
    from parameters_secrets.sources import ExtensionSource

    settings = Settings(log_level="warn")
    return ParametersSecrets(
        {"value": Parameter(NAME)},
        source=ExtensionSource(extension.port, extension.token, settings=settings),
        settings=settings,
    )


def _refresh_on_a_new_loop(store: Any) -> Any:
    """``refresh_sync()`` as ``run_blocking`` ran it: a private loop per call."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(store.refresh())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _table(
    samples: dict[str, list[float]],
    connections: dict[str, int],
    rounds: int,
    quick: bool,
    elapsed: float,
) -> Table:
    table = Table(
        title="Sync road: one refresh_sync() on a new loop per call vs the store's loop",
        columns=["variant", "median per refresh", "connections per refresh", "vs after"],
    )
    after = median(samples["after: the store's long-lived loop"])
    for name, times in samples.items():
        per_call = connections[name] / (rounds * CALLS)
        table.rows.append(
            [name, micros(median(times)), f"{per_call:.2f}", f"{median(times) / after:.2f}x"]
        )
    table.headline["sync refresh: new loop per call / store's loop"] = (
        median(samples["before: a new event loop per call"]) / after
    )
    table.notes += [
        "Upstream: the fake extension (the local server behind the tests' recording layer) "
        "on 127.0.0.1, plain HTTP, in this process; one parameter; no added latency. Over "
        "TLS (AWS directly) a new connection also costs a handshake, not measured here.",
        f"Median of {rounds} rounds of {CALLS} calls, the variants alternating.",
        f"{'quick; ' if quick else ''}Python {platform.python_version()}; {elapsed:.0f} s.",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
