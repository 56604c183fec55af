"""Warm request cost through a real Mangum handler: what 10 values add to each request.

Four FastAPI apps, one process, one API Gateway HTTP API v2 event shape:

a. bare: the route returns a small JSON;
b. ParametersSecretsMiddleware with 10 values (5 parameters, 5 secrets) from
   ExtensionSource, pointed at the local extension-compatible server (a subprocess
   serving a generated values file): after the first request, values come from the
   in-process cache;
c. the extension's documented pattern: the route GETs each of the 10 values from the
   same local server on every request, one GET per value in turn with the token header:
   c with one shared ``httpx.AsyncClient``, c' with ``urllib.request`` as in AWS's
   documentation (a new connection per GET);
d. Powertools' cached ``get_parameter`` / ``get_secret`` (``max_age=300``), against moto's
   server (a subprocess) through ``AWS_ENDPOINT_URL``.

Every variant is invoked the same number of times, in interleaved rounds (the order
rotates each round) so machine drift hits all alike; medians and p90 per invocation
are reported, with each median's ratio to the bare app's.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request

from benchmarks._common import Table, median, micros, percentile
from benchmarks._upstreams import LAMBDA_KEYS as KEYS
from benchmarks._upstreams import LAMBDA_PARAMETERS as PARAMETERS
from benchmarks._upstreams import LAMBDA_SECRETS as SECRETS
from benchmarks._upstreams import (
    LAMBDA_VALUES,
    SESSION_TOKEN,
    TOKEN_HEADER,
    local_server,
    moto_environment,
    seed_values,
    write_values_file,
)
from tests.lambda_events import LambdaContext, make_event
from tests.moto_server import MotoServer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SLOW = {"per_request", "per_request_urllib"}  # ~10 round trips each: fewer samples

VARIANTS = {
    "bare": "a. bare FastAPI app",
    "middleware": "b. ParametersSecretsMiddleware, 10 values (ExtensionSource, cached)",
    "middleware_unread": "b'. the same, the route not reading the values",
    "middleware_context": "b''. the same, reading the values with current_values()",
    "per_request": "c. 10 GETs to the extension per request (shared httpx.AsyncClient)",
    "per_request_urllib": "c'. 10 GETs to the extension per request (urllib, as AWS's docs)",
    "powertools": "d. Powertools get_parameter/get_secret, max_age=300 (moto)",
}


def _mangum(app: Any) -> Handler:
    from mangum import Mangum

    with warnings.catch_warnings():
        # Mangum() looks up the current loop; Python 3.12+ warns when none is set yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler: Handler = Mangum(app, lifespan="off")
    return handler


def bare_app() -> Handler:
    app = FastAPI()

    # The same route shape as the middleware's (it takes the Request), minus the values:
    # the difference is what the middleware costs, not what FastAPI's injection costs.
    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        return {"ok": True, "chars": 0}

    return _mangum(app)


def middleware_app(port: int, *, read: str = "state") -> Handler:
    from parameters_secrets import (
        Parameter,
        ParametersSecretsMiddleware,
        Secret,
        current_values,
    )
    from parameters_secrets.sources import ExtensionSource

    values = {
        key: Parameter(name) if kind == "parameter" else Secret(name)
        for key, (kind, name) in KEYS.items()
    }
    app = FastAPI()
    app.add_middleware(
        ParametersSecretsMiddleware,
        values=values,
        source=ExtensionSource(port=port, token=SESSION_TOKEN),
    )

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        if read == "state":
            got = [getattr(request.state, key) for key in KEYS]
        elif read == "context":
            values = current_values()
            got = [values[key] for key in KEYS]
        else:
            got = []
        return {"ok": True, "chars": sum(len(v) for v in got)}

    return _mangum(app)


def per_request_app(port: int) -> Handler:
    import httpx

    base = f"http://127.0.0.1:{port}"
    headers = {TOKEN_HEADER: SESSION_TOKEN}
    clients: list[httpx.AsyncClient] = []  # one, made on Mangum's loop at first use

    async def get_value(client: httpx.AsyncClient, kind: str, name: str) -> str:
        if kind == "parameter":
            url = f"/systemsmanager/parameters/get?name={quote(name, safe='')}&withDecryption=true"
            response = await client.get(url, headers=headers)
            response.raise_for_status()
            return str(response.json()["Parameter"]["Value"])
        url = f"/secretsmanager/get?secretId={quote(name, safe='')}"
        response = await client.get(url, headers=headers)
        response.raise_for_status()
        return str(response.json()["SecretString"])

    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, Any]:
        if not clients:
            clients.append(httpx.AsyncClient(base_url=base, trust_env=False))
        got = [await get_value(clients[0], kind, name) for kind, name in KEYS.values()]
        return {"ok": True, "chars": sum(len(v) for v in got)}

    return _mangum(app)


def per_request_urllib_app(port: int) -> Handler:
    """The AWS documentation's snippet: ``urllib.request.urlopen`` per value (blocking,
    one new connection per GET), called from the route."""
    import json
    import urllib.request

    base = f"http://127.0.0.1:{port}"

    def get_value(kind: str, name: str) -> str:
        if kind == "parameter":
            path = f"/systemsmanager/parameters/get?name={quote(name, safe='')}&withDecryption=true"
        else:
            path = f"/secretsmanager/get?secretId={quote(name, safe='')}"
        request = urllib.request.Request(base + path)  # noqa: S310 - loopback http
        request.add_header(TOKEN_HEADER, SESSION_TOKEN)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
        return str(body["Parameter"]["Value"] if kind == "parameter" else body["SecretString"])

    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, Any]:
        got = [get_value(kind, name) for kind, name in KEYS.values()]
        return {"ok": True, "chars": sum(len(v) for v in got)}

    return _mangum(app)


def powertools_app() -> Handler:
    from aws_lambda_powertools.utilities import parameters

    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, Any]:
        got = [parameters.get_parameter(name, decrypt=True, max_age=300) for name in PARAMETERS]
        got += [str(parameters.get_secret(name, max_age=300)) for name in SECRETS]
        return {"ok": True, "chars": sum(len(v) for v in got)}

    return _mangum(app)


@contextlib.contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """Set ``extra`` in os.environ (Powertools' boto3 reads it), restore it after."""
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _forget_powertools_clients() -> None:
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()


def _invoke(handler: Handler) -> float:
    event = make_event("http_api_v2", "/")
    context = LambdaContext(function_name="bench")
    start = time.perf_counter_ns()
    response = handler(event, context)
    elapsed = time.perf_counter_ns() - start
    if response["statusCode"] != 200 or '"ok":true' not in response["body"]:
        raise RuntimeError(f"unexpected answer {response['statusCode']}: {response['body']!r}")
    return elapsed / 1e9


def measure(
    handlers: dict[str, Handler], *, warmup: int, rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Warm every handler, then time ``rounds * per_round`` invocations of each (an
    eighth of that for the slow per-request variants: 100 times slower, their medians
    need far fewer samples to settle)."""
    counts = {name: max(1, per_round // 8) if name in SLOW else per_round for name in handlers}
    for name, handler in handlers.items():
        for _ in range(max(1, warmup // 8) if name in SLOW else warmup):
            _invoke(handler)
    samples: dict[str, list[float]] = {name: [] for name in handlers}
    names = list(handlers)
    for round_number in range(rounds):
        shift = round_number % len(names)
        gc.collect()
        for name in names[shift:] + names[:shift]:
            handler = handlers[name]
            samples[name].extend(_invoke(handler) for _ in range(counts[name]))
    return samples


def run(quick: bool = False) -> Table:
    warmup, rounds, per_round = (40, 4, 40) if quick else (200, 20, 100)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as directory:
        values_file = write_values_file(directory, LAMBDA_VALUES)
        with (
            local_server(f"file:{values_file}") as server,
            MotoServer() as moto,
            _environment(moto_environment(moto.url)),
        ):
            seed_values(moto, LAMBDA_VALUES)
            _forget_powertools_clients()
            try:
                handlers = {
                    "bare": bare_app(),
                    "middleware": middleware_app(server.port),
                    "middleware_unread": middleware_app(server.port, read="none"),
                    "middleware_context": middleware_app(server.port, read="context"),
                    "per_request": per_request_app(server.port),
                    "per_request_urllib": per_request_urllib_app(server.port),
                    "powertools": powertools_app(),
                }
                samples = measure(handlers, warmup=warmup, rounds=rounds, per_round=per_round)
            finally:
                _forget_powertools_clients()
    elapsed = time.perf_counter() - started
    return _table(samples, rounds, elapsed)


def _table(samples: dict[str, list[float]], rounds: int, elapsed: float) -> Table:
    medians = {name: median(values) for name, values in samples.items()}
    bare = medians["bare"]
    table = Table(
        title="Warm request through Mangum (HTTP API v2 event), 10 values",
        columns=["variant", "median", "p90", "median / bare", "invocations"],
    )
    for name, label in VARIANTS.items():
        table.rows.append(
            [
                label,
                micros(medians[name]),
                micros(percentile(samples[name], 0.9)),
                f"{medians[name] / bare:.2f}x",
                str(len(samples[name])),
            ]
        )
    overhead = medians["middleware"] / bare - 1
    unread = medians["middleware_unread"] / bare - 1
    per_request_vs_middleware = medians["per_request"] / medians["middleware"]
    urllib_vs_middleware = medians["per_request_urllib"] / medians["middleware"]
    table.headline = {
        "middleware / bare": medians["middleware"] / bare,
        "middleware, values unread / bare": medians["middleware_unread"] / bare,
        "middleware, current_values() / bare": medians["middleware_context"] / bare,
        "per-request GETs (httpx) / bare": medians["per_request"] / bare,
        "per-request GETs (urllib) / bare": medians["per_request_urllib"] / bare,
        "Powertools cached / bare": medians["powertools"] / bare,
        "per-request GETs (httpx) / middleware": per_request_vs_middleware,
        "per-request GETs (urllib) / middleware": urllib_vs_middleware,
    }
    met = "met" if overhead < 0.10 else "NOT met"
    met_ratio = "met" if min(per_request_vs_middleware, urllib_vs_middleware) >= 10 else "NOT met"
    table.notes += [
        f"Timed invocations after a warm-up, interleaved in {rounds} rounds (order "
        f"rotated each round); Python {platform.python_version()}; {elapsed:.0f} s.",
        f"Target: warm overhead of the middleware < 10% of the bare app: {met} "
        f"(+{overhead * 100:.1f}%, +{micros(medians['middleware'] - bare)} per request, "
        f"reading the 10 values through Starlette's request.state included; the "
        f"middleware alone, b', +{unread * 100:.1f}%; reading with current_values(), b'', "
        f"+{(medians['middleware_context'] / bare - 1) * 100:.1f}%).",
        f"Target: the per-request extension pattern ≥ 10x slower than the middleware: "
        f"{met_ratio} ({per_request_vs_middleware:.1f}x with httpx.AsyncClient, "
        f"{urllib_vs_middleware:.1f}x with urllib).",
        "b and c use the same local server (`parameters-secrets serve --source file:...`, "
        "a subprocess on 127.0.0.1), whose own cache answers c's GETs: c is the cost of "
        "10 loopback HTTP round trips, as with the real extension's warm cache.",
        "c uses one shared httpx.AsyncClient (keep-alive) and awaits the 10 GETs in turn; "
        "c' is the AWS documentation's snippet (urllib.request.urlopen, a new connection "
        "per GET, blocking the loop); both send the token header, one GET per value.",
        "d: Powertools' in-memory cache answers after the first request; moto is only "
        "touched then.",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
