"""Single flight under load: upstream calls per value when many requests need it at once.

1. A burst of ``BURST`` simultaneous first requests (``httpx.ASGITransport`` and
   ``asyncio.gather``: concurrency inside one process, which Mangum does not do) to a new
   middleware declaring 10 values (5 parameters, 5 secrets), over an upstream with
   ``LATENCY`` added per request by the counting proxy of ``_upstreams.py``:
   ``ExtensionSource`` to the local extension-compatible server, and ``AwsSource`` to
   moto's server, batched and not. The proxy counts the requests naming each value.
   Expected: 1 per value, whatever the concurrency.
2. A TTL expiry under load: the same 10 values declared with ``ttl=TTL`` (1 s), then
   ``WORKERS`` concurrent clients sending requests back to back for ``DURATION`` seconds
   of real time (and at most ``MAX_PER_WORKER`` requests each). From the proxy's log:
   upstream calls per value, the most calls for one value within any TTL-long window
   (expected: 1), and the shortest gap between two calls for one value (expected: at
   least the TTL).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import platform
import time
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks._common import Table, median, millis, percentile
from benchmarks._upstreams import (
    SESSION_TOKEN,
    Proxy,
    ProxyStats,
    declarations,
    delayed_upstreams,
    ok_app,
    parameter_names,
    run_on_private_loop,
    secret_ids,
)

LATENCY = 0.050
PARAMETERS = 5
SECRETS = 5
BURST = 100
BURST_REPEATS = 3
TTL = 1.0
WORKERS = 50
DURATION = 3.6  # seconds of load: the values expire three times
QUICK_DURATION = 2.4
MAX_PER_WORKER = 2000

SOURCES = {
    "extension": "ExtensionSource → local server",
    "aws": "AwsSource → moto (batched)",
    "aws_singles": "AwsSource → moto (batching off)",
}


def run(quick: bool = False) -> Table:
    started = time.perf_counter()
    library_logger = logging.getLogger("parameters_secrets")
    level = library_logger.level
    try:
        with delayed_upstreams(PARAMETERS, SECRETS, LATENCY) as (moto_proxy, local_proxy):
            bursts, expiries = run_on_private_loop(_measure(moto_proxy, local_proxy, quick))
    finally:
        library_logger.setLevel(level)
    return _table(bursts, expiries, quick=quick, elapsed=time.perf_counter() - started)


def _source_factories(moto_proxy: Proxy, local_proxy: Proxy) -> dict[str, Callable[[], Any]]:
    from parameters_secrets import Settings
    from parameters_secrets.sources import AwsSource, ExtensionSource

    settings = Settings(log_level="warn")

    def aws_singles() -> Any:
        source = AwsSource(endpoint_url=moto_proxy.url, settings=settings)
        source.batch_parameters = source.batch_secrets = False
        return source

    return {
        "extension": lambda: ExtensionSource(
            port=local_proxy.port, token=SESSION_TOKEN, settings=settings
        ),
        "aws": lambda: AwsSource(endpoint_url=moto_proxy.url, settings=settings),
        "aws_singles": aws_singles,
    }


def _middleware(source: Any, ttl: float | None = None) -> Any:
    from parameters_secrets import ParametersSecretsMiddleware, Settings

    return ParametersSecretsMiddleware(
        ok_app,
        values=declarations(PARAMETERS, SECRETS, ttl=ttl),
        source=source,
        settings=Settings(log_level="warn"),
    )


def _client(middleware: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware), base_url="http://bench", timeout=60.0
    )


async def _measure(
    moto_proxy: Proxy, local_proxy: Proxy, quick: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    factories = _source_factories(moto_proxy, local_proxy)
    proxies = {"extension": local_proxy, "aws": moto_proxy, "aws_singles": moto_proxy}
    # Warm-up: the upstreams' own first-call costs.
    for name, factory in factories.items():
        await _burst(factory(), proxies[name], 1)

    bursts = {}
    for name, factory in factories.items():
        runs = [
            await _burst(factory(), proxies[name], BURST)
            for _ in range(1 if quick else BURST_REPEATS)
        ]
        bursts[name] = {
            "runs": len(runs),
            "ok": sum(r["ok"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "calls": sum(r["calls"] for r in runs) / len(runs),
            "per_key_max": max(r["per_key_max"] for r in runs),
            "per_key_mean": sum(r["per_key_mean"] for r in runs) / len(runs),
            "latencies": [latency for r in runs for latency in r["latencies"]],
            "max_in_flight": max(r["max_in_flight"] for r in runs),
        }

    duration = QUICK_DURATION if quick else DURATION
    expiries = {
        name: await _expiry_under_load(factories[name](), proxies[name], duration)
        for name in ("extension", "aws")
    }
    return bursts, expiries


async def _burst(source: Any, proxy: Proxy, concurrency: int) -> dict[str, Any]:
    middleware = _middleware(source)
    proxy.reset()
    latencies: list[float] = []

    async def one(client: httpx.AsyncClient) -> int:
        start = time.perf_counter()
        response = await client.get("/")
        latencies.append(time.perf_counter() - start)
        return response.status_code

    try:
        async with _client(middleware) as client:
            statuses = await asyncio.gather(*(one(client) for _ in range(concurrency)))
    finally:
        await source.aclose()
    stats = proxy.stats()
    per_key = _per_key(stats)
    return {
        "ok": sum(status == 200 for status in statuses),
        "requests": concurrency,
        "calls": stats.total,
        "per_key_max": max(per_key.values()),
        "per_key_mean": sum(per_key.values()) / len(per_key),
        "latencies": latencies,
        "max_in_flight": stats.max_in_flight,
    }


def _per_key(stats: ProxyStats) -> dict[str, int]:
    names = parameter_names(PARAMETERS) + secret_ids(SECRETS)
    return {name: stats.names.get(name, 0) for name in names}


async def _expiry_under_load(source: Any, proxy: Proxy, duration: float) -> dict[str, Any]:
    middleware = _middleware(source, ttl=TTL)
    latencies: list[float] = []
    statuses: list[int] = []
    try:
        async with _client(middleware) as client:
            first = await client.get("/")  # load the values; the clock starts now
            if first.status_code != 200:
                raise RuntimeError(f"the first request failed: {first.status_code}")
            proxy.reset()
            stop_at = time.monotonic() + duration

            async def worker() -> None:
                for _ in range(MAX_PER_WORKER):
                    if time.monotonic() >= stop_at:
                        return
                    start = time.perf_counter()
                    response = await client.get("/")
                    latencies.append(time.perf_counter() - start)
                    statuses.append(response.status_code)
                    # A warm request through ASGITransport never suspends (nothing to
                    # await), so without this one worker would hold the loop until the
                    # next refresh; a server yields between requests on its sockets.
                    await asyncio.sleep(0)

            began = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(WORKERS)))
            elapsed = time.monotonic() - began
    finally:
        await source.aclose()
    stats = proxy.stats(log=True)
    calls: dict[str, list[float]] = {}
    for stamp, _target, names in stats.log:
        for name in names:
            calls.setdefault(name, []).append(stamp)
    keys = parameter_names(PARAMETERS) + secret_ids(SECRETS)
    per_key = [len(calls.get(key, [])) for key in keys]
    gaps = [
        later - earlier for key in keys for earlier, later in itertools.pairwise(calls.get(key, []))
    ]
    per_window = [
        sum(1 for other in stamps if stamp <= other < stamp + TTL)
        for stamps in calls.values()
        for stamp in stamps
    ]
    return {
        "requests": len(statuses),
        "ok": sum(status == 200 for status in statuses),
        "elapsed": elapsed,
        "calls": stats.total,
        "per_key_min": min(per_key),
        "per_key_max": max(per_key),
        "per_window_max": max(per_window, default=0),
        "min_gap": min(gaps, default=float("nan")),
        "latencies": latencies,
        "stats": middleware.stats,
    }


def _table(
    bursts: dict[str, dict[str, Any]],
    expiries: dict[str, dict[str, Any]],
    *,
    quick: bool,
    elapsed: float,
) -> Table:
    table = Table(
        title=(
            f"Concurrency: {BURST} simultaneous first requests, then a {TTL:.0f} s TTL "
            f"expiring under {WORKERS} concurrent clients ({PARAMETERS + SECRETS} values, "
            f"{LATENCY * 1000:.0f} ms added per upstream request)"
        ),
        columns=[
            "scenario",
            "source",
            "requests (200)",
            "upstream requests",
            "calls per value",
            "max calls per value per TTL window",
            "latency p50 / p99 / max",
        ],
    )
    for name, burst in bursts.items():
        latencies = burst["latencies"]
        table.rows.append(
            [
                f"{BURST} simultaneous first requests"
                + (f" (x {burst['runs']} runs)" if burst["runs"] > 1 else ""),
                SOURCES[name],
                f"{burst['requests']} ({burst['ok']})",
                f"{burst['calls']:.0f} per run",
                f"{burst['per_key_mean']:.2f} (max {burst['per_key_max']})",
                "-",
                _latency_cell(latencies),
            ]
        )
    for name, expiry in expiries.items():
        windows = expiry["elapsed"] / TTL
        table.rows.append(
            [
                f"{expiry['elapsed']:.1f} s of load, TTL {TTL:g} s ({windows:.1f} TTLs)",
                SOURCES[name],
                f"{expiry['requests']} ({expiry['ok']})",
                str(expiry["calls"]),
                f"{expiry['per_key_min']}-{expiry['per_key_max']}",
                str(expiry["per_window_max"]),
                _latency_cell(expiry["latencies"]),
            ]
        )
    table.headline = {
        f"calls per value, {BURST} concurrent first requests ({name})": burst["per_key_max"]
        for name, burst in bursts.items()
    }
    table.headline.update(
        {
            f"max calls per value per TTL window under load ({name})": expiry["per_window_max"]
            for name, expiry in expiries.items()
        }
    )
    refresh_waits = {
        name: sum(1 for latency in expiry["latencies"] if latency > LATENCY / 2)
        for name, expiry in expiries.items()
    }
    table.notes += [
        "calls per value: requests the proxy received naming the value (a GetParameters or "
        "BatchGetSecretValue call names several), mean over the values (max).",
        "Expected: 1 call per value for the burst; under load, 1 call per value per TTL "
        "window, with the shortest gap between two calls for one value "
        + ", ".join(f"{millis(expiry['min_gap'])} ({name})" for name, expiry in expiries.items())
        + f" ≥ TTL {TTL:g} s.",
        "The refresh happens inside a request (no background task: Lambda freezes between "
        "invocations), so the requests that arrive while it is in flight wait for it: "
        + ", ".join(
            f"{refresh_waits[name]} of {expiry['requests']} requests took > "
            f"{LATENCY * 500:.0f} ms ({name})"
            for name, expiry in expiries.items()
        )
        + ".",
        f"Burst latency: from the start of the gather to each response; the {BURST} "
        "requests share one event loop, so p99 includes the others' CPU time.",
        f"Load: {WORKERS} workers, requests back to back, bounded by time and "
        f"{MAX_PER_WORKER} requests each; cache counters "
        + ", ".join(
            f"{name}: fetches {expiry['stats'].fetches}, refreshes {expiry['stats'].refreshes}, "
            f"hits {expiry['stats'].hits}"
            for name, expiry in expiries.items()
        )
        + ".",
        f"{'quick; ' if quick else ''}Python {platform.python_version()}; {elapsed:.0f} s.",
    ]
    return table


def _latency_cell(latencies: list[float]) -> str:
    if not latencies:
        return "-"
    return (
        f"{millis(median(latencies))} / {millis(percentile(latencies, 0.99))} / "
        f"{millis(max(latencies))}"
    )


if __name__ == "__main__":
    print(run().text())
