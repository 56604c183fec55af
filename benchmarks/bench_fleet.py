"""A fleet cold-starting together against Parameter Store's default throughput quota.

N Lambda instances, each a separate ``ParametersSecretsMiddleware`` with its own cache and
its own ``AwsSource`` (own connection pool), all on one event loop in this process, send
their first request at the same moment. Each declares 20 values (10 parameters, 10
secrets). A first request answers 200 when every value loaded, else 503.

Each first request goes through the middleware as Mangum hands it over: with a Lambda
context in ``scope["aws.context"]`` whose ``get_remaining_time_in_millis()`` counts down
from ``DEADLINE`` (29 s, API Gateway's integration timeout; a function whose timeout is
set to match it). The middleware turns it into the fetch's deadline, less its 50 ms
margin, and ``AwsSource`` retries throttling until then: an instance that never got its
values answers 503 just before API Gateway would have answered 504. The 29 s count from
the invocation's start: a real cold start's init (imports, ~0.5 s), which API Gateway also
waits for, is not modelled.

Upstream: the proxy of ``_upstreams.py`` answering as a stub AWS (the JSON APIs' answers,
from memory: moto's server, one Python process, would be the bottleneck at these rates and
its CPU time would be measured instead), adding ``LATENCY`` to every request (throttled
ones included) and throttling like AWS's default quotas, with token buckets answering
``400 ThrottlingException`` when empty. A throttled call takes no token (as AWS's quota:
only the calls it serves count against the rate), so retries do not slow the fleet down
beyond the quota itself:

* SSM ``GetParameter``/``GetParameters``: 40 transactions per second, shared (burst 40);
* Secrets Manager ``BatchGetSecretValue``: 100 per second; ``GetSecretValue``: 10,000.

With batching, an instance makes 1 ``GetParameters`` (10 names) and 1
``BatchGetSecretValue`` call; without (``batch_parameters``/``batch_secrets`` = False,
what a role without the batch permissions gets), 10 ``GetParameter`` and 10
``GetSecretValue`` calls. A throttled ``BatchGetSecretValue`` is not retried: its secrets
are asked again one by one. The physical bound is how many instances the SSM quota can
serve before the deadline: its rate x 29 s / the SSM calls each instance needs (plus the
burst's 40 tokens, divided likewise).

Time runs ``TIME_SCALE`` times slower than in the world simulated: the added latency, the
Lambda context's remaining time and the waits of ``AwsSource``'s ``RetryPolicy`` (its
defaults' ``base_delay`` and ``max_delay`` times the scale, passed as
``AwsSource(retry=...)``) are multiplied by it, the quotas' rates divided by it (bursts
are token counts: unchanged), and reported times divided by it. The middleware's 50 ms
margin is not dilated (10 ms simulated). N real instances have N CPUs; here they share
one, and dilating time shrinks that distortion by the same factor. Two columns say how
well it held: "start spread", the simulated time between the first and the last instance
starting its request (a real fleet's would be about 0 here), and "harness CPU", this
process's CPU time over the wall time (near 100%: the harness, not the quota, was the
bottleneck, and arrivals were spread out more than a real fleet's, which makes success
rates look better than they would be).

Last, N = ``HIGHER_THROUGHPUT_SIZE`` with Parameter Store's "higher throughput" setting
(modelled as 3,000 TPS), batched, and with parameters batched but secrets fetched one by
one (``batch_secrets`` = False): ``BatchGetSecretValue``'s quota (100 TPS, not adjustable)
is far below ``GetSecretValue``'s (10,000 TPS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import platform
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._common import Table, median, millis, percentile
from benchmarks._upstreams import (
    SECRETS_BATCH_QUOTA,
    SECRETS_GET_QUOTA,
    SSM_DEFAULT_THROUGHPUT,
    Proxy,
    aws_environment,
    declarations,
    http_scope,
    ok_app,
    run_on_private_loop,
    timed_request,
)

LATENCY = 0.020  # a same-Region round trip to SSM, roughly (simulated seconds)
DEADLINE = 29.0  # API Gateway's integration timeout (simulated seconds)
PARAMETERS = 10
SECRETS = 10
TIME_SCALE = 5.0
FLEET_SIZES = (50, 100, 200, 500, 1000)
# Without batching, the SSM quota serves about 116 instances in 29 s. N = 50 shows the
# cost (seconds instead of milliseconds); N = 100 takes this harness 2 more minutes of
# throttled retries (14,000 calls) to show 100% again, with p99 near 25 s.
UNBATCHED_FLEET_SIZES = (50,)
QUICK_FLEET_SIZES = (20,)
QUICK_UNBATCHED_FLEET_SIZES = (10,)
# At N = 1,000, the 9,000 GetSecretValue calls of the BatchGetSecretValue fallback keep
# this one CPU busy (harness CPU 75%): every first request then takes about 6 s, all
# alike, which measures the harness, not the quota. At N = 200 the harness is still
# 70-85% busy: those times are an upper bound.
HIGHER_THROUGHPUT_SIZE = 200
DEFAULT_QUOTAS = (SSM_DEFAULT_THROUGHPUT, SECRETS_BATCH_QUOTA, SECRETS_GET_QUOTA)
HIGHER_THROUGHPUT = (("AmazonSSM.", 3000.0, 3000.0), SECRETS_BATCH_QUOTA, SECRETS_GET_QUOTA)
QUOTAS = {"default": DEFAULT_QUOTAS, "higher": HIGHER_THROUGHPUT}
BATCHING = {"both": "yes", "none": "no", "parameters": "parameters only"}


def run(quick: bool = False) -> Table:
    started = time.perf_counter()
    sizes = QUICK_FLEET_SIZES if quick else FLEET_SIZES
    unbatched_sizes = QUICK_UNBATCHED_FLEET_SIZES if quick else UNBATCHED_FLEET_SIZES
    scenarios: list[tuple[int, str, str]] = [(size, "both", "default") for size in sizes]
    scenarios += [(size, "none", "default") for size in unbatched_sizes]
    scenarios.sort(key=lambda scenario: scenario[0])
    if not quick:
        scenarios += [(HIGHER_THROUGHPUT_SIZE, b, "higher") for b in ("both", "parameters")]
    library_logger = logging.getLogger("parameters_secrets")
    level = library_logger.level
    try:
        with (
            aws_environment(),
            Proxy(None, latency=LATENCY * TIME_SCALE, buckets=_scaled(DEFAULT_QUOTAS)) as proxy,
        ):
            results = run_on_private_loop(_measure(proxy, scenarios))
    finally:
        library_logger.setLevel(level)
    return _table(results, quick=quick, elapsed=time.perf_counter() - started)


def _scaled(quotas: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    return [(prefix, rate / TIME_SCALE, burst) for prefix, rate, burst in quotas]


def _dilated_retry() -> Any:
    """``AwsSource``'s default ``RetryPolicy`` with its waits ``TIME_SCALE`` times longer."""
    from parameters_secrets.sources import RetryPolicy

    default = RetryPolicy()
    return dataclasses.replace(
        default,
        base_delay=default.base_delay * TIME_SCALE,
        max_delay=default.max_delay * TIME_SCALE,
    )


class _LambdaContext:
    """What the middleware reads of the Lambda context Mangum puts in the scope."""

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


async def _measure(proxy: Proxy, scenarios: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    # Warm-up (this process's first calls: imports, code paths), unthrottled, not counted.
    proxy.reset(buckets=())
    await _fleet(proxy, 2, batching="both")
    await _fleet(proxy, 2, batching="none")
    results = []
    for size, batching, quota in scenarios:
        proxy.reset(buckets=_scaled(QUOTAS[quota]))
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        outcomes = await _fleet(proxy, size, batching=batching)
        wall = time.perf_counter() - wall_started
        cpu = time.process_time() - cpu_started
        stats = proxy.stats()
        starts = [started for _, _, started in outcomes]
        results.append(
            {
                "size": size,
                "batching": batching,
                "quota": quota,
                "ok": sum(status == 200 for status, _, _ in outcomes),
                "latencies": [seconds / TIME_SCALE for _, seconds, _ in outcomes],
                "start_spread": (max(starts) - min(starts)) / TIME_SCALE,
                "ssm": stats.calls("AmazonSSM."),
                "ssm_throttled": stats.throttled_calls("AmazonSSM."),
                "secrets": stats.calls("secretsmanager."),
                "secrets_throttled": stats.throttled_calls("secretsmanager."),
                "wall": wall,
                "cpu_share": cpu / wall,
            }
        )
        await asyncio.sleep(0.5)  # let closed connections settle between scenarios
    return results


async def _fleet(proxy: Proxy, size: int, *, batching: str) -> list[tuple[int, float, float]]:
    """Each instance's first request: (status, seconds, when it started).

    ``batching``: "both", "parameters" (secrets one by one) or "none"."""
    from parameters_secrets import ParametersSecretsMiddleware, Settings
    from parameters_secrets.sources import AwsSource

    # 503s log an ERROR per value; thousands of them would drown the table.
    settings = Settings(log_level="none")
    values = declarations(PARAMETERS, SECRETS)
    retry = _dilated_retry()
    sources = []
    instances = []
    for _ in range(size):
        source = AwsSource(endpoint_url=proxy.url, settings=settings, retry=retry)
        source.batch_parameters = batching in ("both", "parameters")
        source.batch_secrets = batching == "both"
        sources.append(source)
        instances.append(
            ParametersSecretsMiddleware(ok_app, values=values, source=source, settings=settings)
        )
    try:
        return await asyncio.gather(*(_first_request(instance) for instance in instances))
    finally:
        await asyncio.gather(*(source.aclose() for source in sources))


async def _first_request(instance: Any) -> tuple[int, float, float]:
    started = time.perf_counter()
    scope = http_scope()
    scope["aws.context"] = _LambdaContext(DEADLINE * TIME_SCALE)
    status, seconds = await timed_request(instance, scope)
    return status, seconds, started


def _bound(quota: str, batching: str) -> tuple[float, int]:
    """(SSM transactions per second, SSM calls per instance) of a scenario."""
    rate = QUOTAS[quota][0][1]
    return rate, (PARAMETERS + 9) // 10 if batching != "none" else PARAMETERS


def _table(results: list[dict[str, Any]], *, quick: bool, elapsed: float) -> Table:
    table = Table(
        title=(
            f"Fleet cold start: N instances x {PARAMETERS} parameters + {SECRETS} secrets, "
            f"first requests together with a {DEADLINE:g} s Lambda deadline, SSM at 40 TPS, "
            f"{LATENCY * 1000:.0f} ms per call"
        ),
        columns=[
            "N",
            "batching",
            "SSM quota",
            "first request 200",
            f"physical bound (TPS x {DEADLINE:g} s / SSM calls each)",
            "time to first answer p50 / p99",
            "SSM calls (throttled)",
            "Secrets Manager calls (throttled)",
            "start spread",
            "harness CPU",
        ],
    )
    for result in results:
        size = result["size"]
        latencies = result["latencies"]
        rate, calls = _bound(result["quota"], result["batching"])
        table.rows.append(
            [
                f"{size:,}",
                BATCHING[result["batching"]],
                "40 TPS" if result["quota"] == "default" else "higher (3,000 TPS)",
                f"{result['ok']:,} ({result['ok'] / size:.1%})",
                f"{rate * DEADLINE / calls:,.0f} ({rate:,.0f} x {DEADLINE:g} / {calls})",
                f"{millis(median(latencies))} / {millis(percentile(latencies, 0.99))}",
                f"{result['ssm']:,} ({result['ssm_throttled']:,})",
                f"{result['secrets']:,} ({result['secrets_throttled']:,})",
                millis(result["start_spread"]),
                f"{result['cpu_share']:.0%}",
            ]
        )
        label = f"N={size} {'batched' if result['batching'] == 'both' else 'unbatched'}"
        if result["quota"] == "default":
            table.headline[f"success rate, {label}"] = result["ok"] / size
    goal = next(
        (r for r in results if (r["size"], r["batching"], r["quota"]) == (500, "both", "default")),
        None,
    )
    if goal is not None:
        share = goal["ok"] / goal["size"]
        table.notes.append(
            f"Target: at N = 500, batched, at least 99% of first requests answered 200: "
            f"{'met' if share >= 0.99 else 'NOT met'} ({share:.1%})."
        )
    table.notes += [
        "first request 200: instances whose first request loaded all 20 values within the "
        f"deadline (the others answered 503 at about {DEADLINE:g} s). Their next request "
        "asks again only for what they still lack.",
        "Quotas modelled as token buckets: SSM 40 TPS shared by GetParameter/GetParameters "
        "(burst 40); Secrets Manager BatchGetSecretValue 100 TPS (burst 100), "
        "GetSecretValue 10,000 TPS. A throttled call takes no token, as with AWS's quotas, "
        "but counts in the calls columns (in parentheses).",
        f"physical bound: how many instances the SSM quota serves in {DEADLINE:g} s; the "
        "bucket's burst adds 40 ÷ (SSM calls each). Secrets Manager is not the bound: a "
        "throttled BatchGetSecretValue falls back to GetSecretValue (10,000 TPS).",
        f"Lambda deadline: each first request carries a Lambda context with {DEADLINE:g} s "
        "remaining (API Gateway's limit), as Mangum passes it; AwsSource retries throttling "
        "with its default RetryPolicy (full jitter) until then; other failures would be "
        "tried 3 times.",
        f"Times are simulated: the run was {TIME_SCALE:g}x slower (latency, the Lambda "
        "context's remaining time and RetryPolicy's waits x that, quota rates ÷ that), and "
        "reported times are divided back.",
        "Each instance: its own cache and connection pool (3 connections per service, the "
        "default PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS). All share one event loop "
        "and one CPU: start spread is the simulated time between the first and the last "
        "instance starting its request (a real fleet: about 0); harness CPU near 100% "
        "means the harness was the bottleneck and its requests were spread out more than "
        "a real fleet's.",
        f"{'quick; ' if quick else ''}Python {platform.python_version()}; {elapsed:.0f} s "
        "in all; wall time per scenario: "
        + ", ".join(
            f"N={r['size']} {r['batching']}"
            f"{'' if r['quota'] == 'default' else '+ht'} {r['wall']:.1f} s"
            for r in results
        )
        + ".",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
