"""The first request with 20 declared values (10 parameters, 10 secrets), over an upstream
with a fixed added latency: what it costs, in round trips of that upstream.

Two upstreams, each behind the delaying, counting proxy of ``_upstreams.py`` (its own
process; ``LATENCY`` added to every request):

* moto's server (the SSM and Secrets Manager JSON APIs), for ``AwsSource``;
* the local extension-compatible server (``python -m parameters_secrets serve --source
  file:...``), for ``ExtensionSource``: the extension's HTTP API, which has no batch call.

Variants, each timed on a really first request (a new middleware and source every run,
so a new cache, connection pool and connections):

a. the middleware with ``AwsSource``: one ``GetParameters`` (10 names) and one
   ``BatchGetSecretValue`` (10 ids), concurrently;
b. the same with batching off (``batch_parameters``/``batch_secrets`` = False): 20 single
   calls, concurrently, over at most 3 connections per service
   (``PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS``' default);
c. a boto3 loop: ``get_parameter`` x 10 then ``get_secret_value`` x 10, one after another
   (the client is built before the clock starts);
d. the middleware with ``ExtensionSource``: 20 GETs concurrently;
e. a loop of 20 GETs to the same server, one after another (``httpx.AsyncClient``, the
   token header): the per-value pattern of the extension's documentation.

The round trip (RTT) is the median time of one warm request through the proxy: a
``GetParameter`` for moto, a parameter GET for the local server. Each variant's median
first request is divided by it. Target: a first request with 20 values under 2 RTT.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from benchmarks._common import Table, median, millis
from benchmarks._upstreams import (
    SESSION_TOKEN,
    TOKEN_HEADER,
    Proxy,
    declarations,
    delayed_upstreams,
    ok_app,
    parameter_names,
    run_on_private_loop,
    secret_ids,
    timed_request,
)
from tests.moto_server import REGION

LATENCY = 0.050  # seconds added to every request by the proxy
PARAMETERS = 10
SECRETS = 10
RUNS = 7
QUICK_RUNS = 3
RTT_SAMPLES = 9

VARIANTS = {
    "aws_batched": ("a. middleware, AwsSource (batched, concurrent)", "moto"),
    "aws_singles": ("b. middleware, AwsSource, batching off (concurrent, 3 conns)", "moto"),
    "boto3_loop": ("c. boto3 loop, one call after another", "moto"),
    "extension": ("d. middleware, ExtensionSource (concurrent)", "local server"),
    "get_loop": ("e. loop of GETs to the extension API, one after another", "local server"),
}

Timed = Callable[[], Awaitable[tuple[float, bool]]]


def run(quick: bool = False) -> Table:
    runs = QUICK_RUNS if quick else RUNS
    started = time.perf_counter()
    library_logger = logging.getLogger("parameters_secrets")
    level = library_logger.level
    try:
        with delayed_upstreams(PARAMETERS, SECRETS, LATENCY) as (moto_proxy, local_proxy):
            result = run_on_private_loop(
                _measure(moto_proxy, local_proxy, runs, with_floor=not quick)
            )
    finally:
        library_logger.setLevel(level)
    return _table(*result, runs=runs, elapsed=time.perf_counter() - started)


async def _measure(
    moto_proxy: Proxy, local_proxy: Proxy, runs: int, *, with_floor: bool
) -> tuple[
    dict[str, float], dict[str, list[float]], dict[str, list[float]], dict[str, float], float
]:
    from parameters_secrets import Parameter, ParametersSecretsMiddleware, Settings
    from parameters_secrets.sources import AwsSource, ExtensionSource

    settings = Settings(log_level="error")  # the extension's defaults otherwise
    values = declarations(PARAMETERS, SECRETS)

    async def middleware_first_request(source: Any) -> tuple[float, bool]:
        middleware = ParametersSecretsMiddleware(
            ok_app, values=values, source=source, settings=settings
        )
        try:
            status, seconds = await timed_request(middleware)
        finally:
            await source.aclose()
        return seconds, status == 200

    async def aws_batched() -> tuple[float, bool]:
        return await middleware_first_request(
            AwsSource(endpoint_url=moto_proxy.url, settings=settings)
        )

    async def aws_singles() -> tuple[float, bool]:
        source = AwsSource(endpoint_url=moto_proxy.url, settings=settings)
        source.batch_parameters = source.batch_secrets = False
        return await middleware_first_request(source)

    boto3_started = time.perf_counter()
    ssm, secretsmanager = _boto3_clients(moto_proxy.url)
    boto3_clients_seconds = time.perf_counter() - boto3_started

    async def boto3_loop() -> tuple[float, bool]:
        # Blocking calls on the loop's thread: nothing else runs meanwhile.
        start = time.perf_counter()
        got = [
            ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            for name in parameter_names(PARAMETERS)
        ]
        got += [
            secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"]
            for secret_id in secret_ids(SECRETS)
        ]
        return time.perf_counter() - start, len(got) == PARAMETERS + SECRETS

    async def extension() -> tuple[float, bool]:
        return await middleware_first_request(
            ExtensionSource(port=local_proxy.port, token=SESSION_TOKEN, settings=settings)
        )

    async def get_loop() -> tuple[float, bool]:
        start = time.perf_counter()
        ok = True
        async with httpx.AsyncClient(
            base_url=local_proxy.url, headers={TOKEN_HEADER: SESSION_TOKEN}, trust_env=False
        ) as client:
            for name in parameter_names(PARAMETERS):
                response = await client.get(
                    "/systemsmanager/parameters/get",
                    params={"name": name, "withDecryption": "true"},
                )
                ok = ok and response.status_code == 200 and bool(response.json()["Parameter"])
            for secret_id in secret_ids(SECRETS):
                response = await client.get("/secretsmanager/get", params={"secretId": secret_id})
                ok = ok and response.status_code == 200 and bool(response.json()["SecretString"])
        return time.perf_counter() - start, ok

    variants: dict[str, Timed] = {
        "aws_batched": aws_batched,
        "aws_singles": aws_singles,
        "boto3_loop": boto3_loop,
        "extension": extension,
        "get_loop": get_loop,
    }
    proxies = {"moto": moto_proxy, "local server": local_proxy}

    # The round trip of one warm request through each proxy.
    rtts: dict[str, float] = {}
    one_parameter = [Parameter(parameter_names(1)[0]).request]
    for upstream, source in (
        ("moto", AwsSource(endpoint_url=moto_proxy.url, settings=settings)),
        ("local server", ExtensionSource(port=local_proxy.port, token=SESSION_TOKEN)),
    ):
        rtt_samples = []
        try:
            for _ in range(RTT_SAMPLES + 1):  # the first opens the connection: not counted
                start = time.perf_counter()
                (outcome,) = await source.fetch(one_parameter)
                rtt_samples.append(time.perf_counter() - start)
                if not isinstance(outcome, dict):
                    raise RuntimeError(f"the RTT probe failed: {outcome!r}")  # noqa: TRY004
        finally:
            await source.aclose()
        rtts[upstream] = median(rtt_samples[1:])

    # A warm-up of every variant (moto's and the server's own first-call costs), then
    # `runs` rounds, the order rotated each round; then the same with no added latency,
    # to tell waiting for round trips from CPU time.
    samples: dict[float, dict[str, list[float]]] = {}
    calls: dict[str, float] = {}
    for latency in (LATENCY, 0.0) if with_floor else (LATENCY,):
        for proxy in proxies.values():
            proxy.reset(latency=latency)
        for timed in variants.values():
            await timed()
        samples[latency] = await _rounds(variants, proxies, runs, calls if latency else {})
    for proxy in proxies.values():
        if proxy.stats().throttled:
            raise RuntimeError("the proxy throttled a request; no bucket was configured")
    return rtts, samples[LATENCY], samples.get(0.0, {}), calls, boto3_clients_seconds


async def _rounds(
    variants: dict[str, Timed], proxies: dict[str, Proxy], runs: int, calls: dict[str, float]
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    failures: list[str] = []
    for round_number in range(runs):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            proxy = proxies[VARIANTS[name][1]]
            before = proxy.stats().total
            seconds, ok = await variants[name]()
            calls[name] = calls.get(name, 0) + (proxy.stats().total - before) / runs
            samples[name].append(seconds)
            if not ok:
                failures.append(name)
    if failures:
        raise RuntimeError(f"some first requests failed: {sorted(set(failures))}")
    return samples


def _boto3_clients(endpoint_url: str) -> tuple[Any, Any]:
    import boto3

    session = boto3.session.Session(region_name=REGION)
    return (
        session.client("ssm", endpoint_url=endpoint_url),
        session.client("secretsmanager", endpoint_url=endpoint_url),
    )


def _table(
    rtts: dict[str, float],
    samples: dict[str, list[float]],
    samples_no_latency: dict[str, list[float]],
    calls: dict[str, float],
    boto3_clients_seconds: float,
    *,
    runs: int,
    elapsed: float,
) -> Table:
    table = Table(
        title=(
            f"First request, {PARAMETERS} parameters + {SECRETS} secrets, "
            f"{LATENCY * 1000:.0f} ms added per upstream request"
        ),
        columns=[
            "variant",
            "upstream",
            "upstream requests",
            "first request (median)",
            "min - max",
            "÷ RTT",
            "same, 0 ms added",
            "latency waits",
        ],
    )
    ratios: dict[str, float] = {}
    for name, (label, upstream) in VARIANTS.items():
        middle = median(samples[name])
        floor = median(samples_no_latency[name]) if samples_no_latency else None
        ratios[name] = middle / rtts[upstream]
        table.rows.append(
            [
                label,
                upstream,
                f"{calls[name]:.0f}",
                millis(middle),
                f"{millis(min(samples[name]))} - {millis(max(samples[name]))}",
                f"{ratios[name]:.2f}",
                "-" if floor is None else millis(floor),
                "-" if floor is None else f"{(middle - floor) / LATENCY:.1f}",
            ]
        )
    table.headline = {
        "AwsSource batched ÷ RTT": ratios["aws_batched"],
        "AwsSource unbatched ÷ RTT": ratios["aws_singles"],
        "boto3 sequential ÷ RTT": ratios["boto3_loop"],
        "ExtensionSource ÷ RTT": ratios["extension"],
        "sequential GETs ÷ RTT": ratios["get_loop"],
    }

    def verdict(name: str) -> str:
        return f"{'met' if ratios[name] < 2 else 'NOT met'} ({ratios[name]:.2f} RTT)"

    table.notes += [
        ("quick: no run with 0 ms added. " if not samples_no_latency else "")
        + f"latency waits = (median with {LATENCY * 1000:.0f} ms added - median with 0 ms "
        f"added) ÷ {LATENCY * 1000:.0f} ms: about how many round trips the request waits for "
        "one after another (an upper bound: work that overlapped with 0 ms added may not with "
        "latency); the rest of its time is CPU (client, proxies and servers share this "
        "machine).",
        f"RTT (median of {RTT_SAMPLES} warm single requests through the proxy): moto "
        f"{millis(rtts['moto'])} (GetParameter), local server {millis(rtts['local server'])} "
        f"(one GET); of which {LATENCY * 1000:.0f} ms is the proxy's added latency.",
        f"Target: first request with {PARAMETERS + SECRETS} values under 2 RTT: "
        f"AwsSource {verdict('aws_batched')}, ExtensionSource {verdict('extension')}.",
        f"Median of {runs} first requests per variant (new middleware, source, pool and "
        "connections each time; interleaved rounds, order rotated), after one warm-up each; "
        "times include building the HTTP client, signing and connecting on loopback.",
        f"c excludes building the two boto3 clients ({millis(boto3_clients_seconds)} here, "
        "import not included), which a cold start also pays.",
        "b: 10 GetParameter + 10 GetSecretValue over ≤ 3 connections per service, so about "
        "4 RTT; the extension's own calls to AWS are bounded the same way by its "
        "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS.",
        f"Python {platform.python_version()}, {platform.machine()}; {elapsed:.0f} s. "
        "Upstreams and proxies are subprocesses on 127.0.0.1 sharing the machine's CPUs.",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
