"""Reach: values loaded during Lambda's INIT beside the extension, and parameters by path.

1. The first request of a new instance, 10 values (5 parameters, 5 secrets), upstreams
   behind the counting proxy (``LATENCY`` per request), side by side in one run:
   a. INIT-time load: ``config.load_sync()`` at module level while the extension does not
      serve yet (its port refuses connections, as during INIT): the default source's
      fallback asks AWS directly (moto), batched; then the first request through Mangum;
   b. the pattern without the fallback: nothing at INIT (the extension cannot answer
      there), the first request loads the 10 values through the extension (the local
      server), one GET per value, concurrently.
   Reported: the INIT load, the first request, their sum, and the upstream requests.
2. A path of ``PATH_SIZE`` parameters: one ``ParametersByPath`` against ``PATH_SIZE``
   ``Parameter`` declarations, a cold load each with ``AwsSource`` (moto behind the
   proxy): upstream requests and wall time (medians of ``REPEATS``).
"""

from __future__ import annotations

import platform
import socket
import time
import warnings
from typing import Any

from benchmarks._common import Table, median, millis
from benchmarks._upstreams import (
    SESSION_TOKEN,
    Proxy,
    aws_environment,
    declarations,
    delayed_upstreams,
)
from tests.lambda_events import LambdaContext, make_event
from tests.moto_server import MotoServer, seed

LATENCY = 0.050
PARAMETERS = 5
SECRETS = 5
PATH_SIZE = 50
REPEATS = 5


def run(quick: bool = False) -> Table:
    started = time.perf_counter()
    repeats = 1 if quick else REPEATS
    with delayed_upstreams(PARAMETERS, SECRETS, LATENCY) as (moto_proxy, local_proxy):
        first = {
            variant: [_first_request(variant, moto_proxy, local_proxy) for _ in range(repeats)]
            for variant in ("init", "first_request")
        }
    with aws_environment(), MotoServer() as moto, Proxy(moto.url, latency=LATENCY) as proxy:
        names = [f"/bench/path/p{i:02d}" for i in range(PATH_SIZE)]
        seed(moto, parameters={name: (f"v-{name}", "String") for name in names})
        paths = {
            variant: [_path_load(variant, proxy, names) for _ in range(repeats)]
            for variant in ("by_path", "singles")
        }
    return _table(first, paths, quick=quick, elapsed=time.perf_counter() - started)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_request(variant: str, moto_proxy: Proxy, local_proxy: Proxy) -> dict[str, float]:
    from mangum import Mangum

    from parameters_secrets import (
        ParametersSecrets,
        ParametersSecretsMiddleware,
        Settings,
    )
    from parameters_secrets.sources import AwsSource, ExtensionSource

    settings = Settings(log_level="warn")
    moto_proxy.reset()
    local_proxy.reset()
    if variant == "init":
        # The extension not listening yet; AWS directly as the fallback (moto's endpoint).
        fallback = AwsSource(endpoint_url=moto_proxy.url, settings=settings)
        source = ExtensionSource(
            port=_closed_port(), token=SESSION_TOKEN, settings=settings, fallback=fallback
        )
    else:
        source = ExtensionSource(port=local_proxy.port, token=SESSION_TOKEN, settings=settings)
    config = ParametersSecrets(declarations(PARAMETERS, SECRETS), source=source, settings=settings)
    began = time.perf_counter()
    if variant == "init":
        config.load_sync()  # module level, during INIT
    init = time.perf_counter() - began

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Mangum() on 3.12+
        handler = Mangum(ParametersSecretsMiddleware(app, values=config), lifespan="off")
    event = make_event("http_api_v2", "/")
    began = time.perf_counter()
    response = handler(event, LambdaContext())
    first = time.perf_counter() - began
    assert response["statusCode"] == 200, response
    return {
        "init": init,
        "first": first,
        "aws": moto_proxy.stats().total,
        "extension": local_proxy.stats().total,
    }


def _path_load(variant: str, proxy: Proxy, names: list[str]) -> dict[str, float]:
    from parameters_secrets import (
        Parameter,
        ParametersByPath,
        ParametersSecrets,
        Settings,
    )
    from parameters_secrets.sources import AwsSource

    settings = Settings(log_level="warn")
    values: dict[str, Any]
    if variant == "by_path":
        values = {"config": ParametersByPath("/bench/path")}
    else:
        values = {f"p{i:02d}": Parameter(name) for i, name in enumerate(names)}
    store = ParametersSecrets(
        values, source=AwsSource(endpoint_url=proxy.url, settings=settings), settings=settings
    )
    proxy.reset()
    began = time.perf_counter()
    loaded = store.load_sync()
    elapsed = time.perf_counter() - began
    count = len(loaded["config"]) if variant == "by_path" else len(loaded)
    assert count == len(names), count
    return {"wall": elapsed, "requests": proxy.stats().total}


def _table(
    first: dict[str, list[dict[str, float]]],
    paths: dict[str, list[dict[str, float]]],
    *,
    quick: bool,
    elapsed: float,
) -> Table:
    table = Table(
        title="Reach: INIT-time values beside the extension, parameters by path",
        columns=["case", "INIT load", "first request", "upstream requests"],
    )
    labels = {
        "init": "a. load_sync() at INIT (AWS directly while the extension is not serving)",
        "first_request": "b. nothing at INIT; the first request loads through the extension",
    }
    for variant, runs in first.items():
        aws = int(median([r["aws"] for r in runs]))
        extension = int(median([r["extension"] for r in runs]))
        table.rows.append(
            [
                labels[variant],
                millis(median([r["init"] for r in runs])) if variant == "init" else "-",
                millis(median([r["first"] for r in runs])),
                f"{aws} to AWS, {extension} to the extension",
            ]
        )
    path_labels = {
        "by_path": f"ParametersByPath over {PATH_SIZE} parameters (cold load)",
        "singles": f"{PATH_SIZE} Parameter declarations (cold load, GetParameters of 10)",
    }
    for variant, runs in paths.items():
        table.rows.append(
            [
                path_labels[variant],
                "-",
                millis(median([r["wall"] for r in runs])),
                f"{int(median([r['requests'] for r in runs]))} to AWS",
            ]
        )
    init_first = median([r["first"] for r in first["init"]])
    plain_first = median([r["first"] for r in first["first_request"]])
    table.headline["first request: loaded then / loaded at INIT"] = plain_first / init_first
    by_path = median([r["wall"] for r in paths["by_path"]])
    singles = median([r["wall"] for r in paths["singles"]])
    table.headline[f"cold load of {PATH_SIZE}: by path / declared one by one"] = by_path / singles
    table.notes += [
        f"Upstreams behind a proxy adding {LATENCY * 1000:.0f} ms per request; medians of "
        f"{1 if quick else REPEATS} runs, each a new store (a new instance).",
        "a pays its load during INIT, before the first request arrives; its first request "
        "only reads the cache.",
        "By path: GetParametersByPath pages (10 a page) follow one another, each waiting for "
        "the last one's NextToken (moto ends with an empty page); the singles are "
        "GetParameters batches of 10, sent at once. A path costs more round trips in time, "
        "and saves naming every parameter.",
        f"{'quick; ' if quick else ''}Python {platform.python_version()}; {elapsed:.0f} s.",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
