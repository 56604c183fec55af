"""A fleet cold-starting together against Parameter Store's default throughput quota.

N Lambda instances, each a separate ``ParametersSecretsMiddleware`` with its own cache and
its own ``AwsSource`` (own connection pool), all on one event loop in this process, send
their first request at the same moment. Each declares 20 values (10 parameters, 10
secrets). Upstream: the proxy of ``_upstreams.py`` answering as a stub AWS (the JSON APIs'
answers, from memory: moto's server, one Python process, would be the bottleneck at these
rates and its CPU time would be measured instead), adding ``LATENCY`` to every request and
throttling like AWS's default quotas, with token buckets answering
``400 ThrottlingException`` when empty:

* SSM ``GetParameter``/``GetParameters``: 40 transactions per second, shared (burst 40);
* Secrets Manager ``BatchGetSecretValue``: 100 per second; ``GetSecretValue``: 10,000.

With batching, an instance makes 1 ``GetParameters`` (10 names) and 1
``BatchGetSecretValue`` call; without (``batch_parameters``/``batch_secrets`` = False,
what a role without the batch permissions gets), 10 ``GetParameter`` and 10
``GetSecretValue`` calls. ``AwsSource`` retries throttling up to 4 attempts in all, with
exponential backoff and full jitter (50 ms base). A first request answers 200 when every
value loaded, else 503.

Time runs ``TIME_SCALE`` times slower than in the world simulated: the added latency and
``AwsSource``'s backoff constants are multiplied by it, the quotas' rates divided by it
(bursts are token counts: unchanged), and reported times divided by it. N real instances
have N CPUs; here they share one, and dilating time shrinks that distortion by the same
factor. The column "harness CPU" is this process's CPU time over the wall time: near 100%,
the harness, not the quota, was the bottleneck, and arrivals were spread out more than a
real fleet's (success rates then look better than they would be).

Last, the largest N with Parameter Store's "higher throughput" setting (modelled as
3,000 TPS), batched, and with parameters batched but secrets fetched one by one
(``batch_secrets`` = False): ``BatchGetSecretValue``'s quota (100 TPS, not adjustable) is
far below ``GetSecretValue``'s (10,000 TPS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import time
from collections.abc import Iterator, Sequence
from typing import Any

from benchmarks._common import Table, median, millis, percentile
from benchmarks._upstreams import (
    SECRETS_BATCH_QUOTA,
    SECRETS_GET_QUOTA,
    SSM_DEFAULT_THROUGHPUT,
    Proxy,
    aws_environment,
    declarations,
    ok_app,
    run_on_private_loop,
    timed_request,
)

LATENCY = 0.020  # a same-Region round trip to SSM, roughly (simulated seconds)
PARAMETERS = 10
SECRETS = 10
TIME_SCALE = 5.0
FLEET_SIZES = (50, 100, 200)
# Without batching, N=200 would cost about a minute of this process's CPU (9,000 calls,
# mostly throttled retries) to confirm what N=100 shows already: almost no instance's
# first request succeeds.
UNBATCHED_FLEET_SIZES = (50, 100)
QUICK_FLEET_SIZES = (20,)
DEFAULT_QUOTAS = (SSM_DEFAULT_THROUGHPUT, SECRETS_BATCH_QUOTA, SECRETS_GET_QUOTA)
BATCHING = {"both": "yes", "none": "no", "parameters": "parameters only"}
HIGHER_THROUGHPUT = (("AmazonSSM.", 3000.0, 3000.0), SECRETS_BATCH_QUOTA, SECRETS_GET_QUOTA)


def run(quick: bool = False) -> Table:
    started = time.perf_counter()
    sizes = QUICK_FLEET_SIZES if quick else FLEET_SIZES
    unbatched_sizes = QUICK_FLEET_SIZES if quick else UNBATCHED_FLEET_SIZES
    scenarios: list[tuple[int, str, str]] = [
        (size, batching, "default")
        for size in sizes
        for batching in ("both", "none")
        if batching == "both" or size in unbatched_sizes
    ]
    if not quick:
        scenarios += [(sizes[-1], batching, "higher") for batching in ("both", "parameters")]
    library_logger = logging.getLogger("parameters_secrets")
    level = library_logger.level
    try:
        with (
            aws_environment(),
            _dilated_backoff(TIME_SCALE),
            Proxy(None, latency=LATENCY * TIME_SCALE, buckets=_scaled(DEFAULT_QUOTAS)) as proxy,
        ):
            results = run_on_private_loop(_measure(proxy, scenarios))
    finally:
        library_logger.setLevel(level)
    return _table(results, quick=quick, elapsed=time.perf_counter() - started)


def _scaled(quotas: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    return [(prefix, rate / TIME_SCALE, burst) for prefix, rate, burst in quotas]


@contextlib.contextmanager
def _dilated_backoff(scale: float) -> Iterator[None]:
    """``AwsSource``'s backoff (module constants, read on every retry) times ``scale``."""
    from parameters_secrets._sources import aws

    saved = aws._BACKOFF_BASE, aws._BACKOFF_CAP
    aws._BACKOFF_BASE, aws._BACKOFF_CAP = saved[0] * scale, saved[1] * scale
    try:
        yield
    finally:
        aws._BACKOFF_BASE, aws._BACKOFF_CAP = saved


async def _measure(proxy: Proxy, scenarios: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    # Warm-up (this process's first calls: imports, code paths), unthrottled, not counted.
    proxy.reset(buckets=())
    await _fleet(proxy, 2, batching="both")
    await _fleet(proxy, 2, batching="none")
    results = []
    for size, batching, quota in scenarios:
        proxy.reset(buckets=_scaled(DEFAULT_QUOTAS if quota == "default" else HIGHER_THROUGHPUT))
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        statuses, latencies = await _fleet(proxy, size, batching=batching)
        wall = time.perf_counter() - wall_started
        cpu = time.process_time() - cpu_started
        stats = proxy.stats()
        results.append(
            {
                "size": size,
                "batching": batching,
                "quota": quota,
                "ok": sum(status == 200 for status in statuses),
                "unavailable": sum(status == 503 for status in statuses),
                "latencies": [seconds / TIME_SCALE for seconds in latencies],
                "ssm": stats.calls("AmazonSSM."),
                "ssm_throttled": stats.throttled_calls("AmazonSSM."),
                "secrets": stats.calls("secretsmanager."),
                "secrets_throttled": stats.throttled_calls("secretsmanager."),
                "total": stats.total,
                "wall": wall,
                "cpu_share": cpu / wall,
            }
        )
        await asyncio.sleep(0.5)  # let closed connections settle between scenarios
    return results


async def _fleet(proxy: Proxy, size: int, *, batching: str) -> tuple[list[int], list[float]]:
    """``batching``: "both", "parameters" (secrets one by one) or "none"."""
    from parameters_secrets import AwsSource, ParametersSecretsMiddleware, Settings

    # 503s log an ERROR per value; thousands of them would drown the table.
    settings = Settings(log_level="none")
    values = declarations(PARAMETERS, SECRETS)
    sources = []
    instances = []
    for _ in range(size):
        source = AwsSource(endpoint_url=proxy.url, settings=settings)
        source.batch_parameters = batching in ("both", "parameters")
        source.batch_secrets = batching == "both"
        sources.append(source)
        instances.append(
            ParametersSecretsMiddleware(ok_app, values=values, source=source, settings=settings)
        )
    try:
        outcomes = await asyncio.gather(*(timed_request(instance) for instance in instances))
    finally:
        await asyncio.gather(*(source.aclose() for source in sources))
    return [status for status, _ in outcomes], [seconds for _, seconds in outcomes]


def _table(results: list[dict[str, Any]], *, quick: bool, elapsed: float) -> Table:
    table = Table(
        title=(
            f"Fleet cold start: N instances x {PARAMETERS} parameters + {SECRETS} secrets, "
            f"first requests together, SSM at 40 TPS, {LATENCY * 1000:.0f} ms per call"
        ),
        columns=[
            "N",
            "batching",
            "SSM quota",
            "first request 200",
            "latency p50 / p99",
            "SSM calls (throttled)",
            "Secrets Manager calls (throttled)",
            "upstream calls",
            "harness CPU",
        ],
    )
    for result in results:
        size = result["size"]
        latencies = result["latencies"]
        table.rows.append(
            [
                str(size),
                BATCHING[result["batching"]],
                "40 TPS" if result["quota"] == "default" else "higher (3,000 TPS)",
                f"{result['ok']} ({result['ok'] / size:.0%})",
                f"{millis(median(latencies))} / {millis(percentile(latencies, 0.99))}",
                f"{result['ssm']} ({result['ssm_throttled']})",
                f"{result['secrets']} ({result['secrets_throttled']})",
                str(result["total"]),
                f"{result['cpu_share']:.0%}",
            ]
        )
        label = f"N={size} {'batched' if result['batching'] == 'both' else 'unbatched'}"
        if result["quota"] == "default":
            table.headline[f"success rate, {label}"] = result["ok"] / size
    table.notes += [
        "first request 200: instances whose first request loaded all 20 values (the others "
        "answered 503). Their next request asks again only for what they still lack.",
        "Throttled answers count as calls, as they do against the quota. Quotas modelled: "
        "SSM 40 TPS shared by GetParameter/GetParameters (burst 40); Secrets Manager "
        "BatchGetSecretValue 100 TPS, GetSecretValue 10,000 TPS.",
        f"Times are simulated: the run was {TIME_SCALE:g}x slower (latency and AwsSource's "
        "backoff x that, quota rates ÷ that), and reported times are divided back.",
        "Each instance: its own cache and connection pool (3 connections per service, the "
        "default PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS). All share one event loop "
        "and one CPU: harness CPU near 100% means the harness was the bottleneck and "
        "its requests were spread out more than a real fleet's.",
        f"{'quick; ' if quick else ''}Python {platform.python_version()}; {elapsed:.0f} s "
        "in all; wall time per scenario: "
        + ", ".join(
            f"N={r['size']} {r['batching']}"
            f"{'' if r['quota'] == 'default' else '+ht'} {r['wall']:.1f} s"
            for r in results
        )
        + ".",
    ]
    if not quick:
        table.notes.insert(
            1,
            f"Without batching, N = {', '.join(map(str, UNBATCHED_FLEET_SIZES))} only: a "
            "larger fleet costs this single-CPU harness about a minute to show the same "
            "near-0%.",
        )
    return table


if __name__ == "__main__":
    print(run().text())
