"""The demo: the FastAPI example invoked as AWS Lambda would, offline, in one process.

    python -m examples.demo        (or: nox -s demo)

Values come from ``examples/local-values.json`` (``PARAMETERS_SECRETS_SOURCE=file:...``,
unless already set), so no network and no AWS account are needed. The demo calls the
example's Mangum ``handler`` with API Gateway HTTP API (v2) and REST API (v1) events and
prints, per invocation, the status, the body and the middleware's cache counters. Then
it shows a refresh after a TTL (with an injected clock: no sleeping), the 503 for a
required value that does not exist, and checks that no secret value was ever printed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from mangum import Mangum

from parameters_secrets import (
    CacheStats,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Settings,
)
from parameters_secrets.sources import Source, StaticSource

VALUES_FILE = Path(__file__).resolve().with_name("local-values.json")

EventKind = Literal["http_api_v2", "rest_v1"]
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# Everything the demo shows (printed lines, log lines, raw responses), for the final check.
_transcript: list[str] = []


_failures: list[str] = []


def check(condition: bool, what: str) -> None:  # noqa: FBT001 - as `assert` reads
    if not condition:
        _failures.append(what)


def say(line: str = "") -> None:
    _transcript.append(line)
    print(line, flush=True)


class _TranscriptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say(f"      log {record.levelname} {record.name}: {record.getMessage()}")


# --- Lambda events and context, shaped as API Gateway sends them ---------------------


class DemoContext:
    """The parts of Lambda's context object that Mangum and the middleware read."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "demo-app"
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:demo-app"
        self.memory_limit_in_mb = "512"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_api_v2_event(path: str) -> dict[str, Any]:
    """API Gateway HTTP API, payload format 2.0."""
    host = "f6g7h8i9j0.execute-api.us-east-1.amazonaws.com"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": host,
            "user-agent": "examples-demo/1.0",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "f6g7h8i9j0",
            "domainName": host,
            "domainPrefix": "f6g7h8i9j0",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "examples-demo/1.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def rest_v1_event(path: str) -> dict[str, Any]:
    """API Gateway REST API, proxy integration (payload format 1.0)."""
    host = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    headers = {
        "Accept": "application/json",
        "Host": host,
        "User-Agent": "examples-demo/1.0",
        "X-Forwarded-For": "203.0.113.7, 130.176.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    resource = "/" if path == "/" else "/{proxy+}"
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None if path == "/" else {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": resource,
            "httpMethod": "GET",
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": "/prod" + path,
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "a1b2c3d4e5",
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "examples-demo/1.0"},
            "domainName": host,
            "apiId": "a1b2c3d4e5",
        },
        "body": None,
        "isBase64Encoded": False,
    }


EVENTS: dict[EventKind, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "http_api_v2": ("HTTP API v2", http_api_v2_event),
    "rest_v1": ("REST API v1", rest_v1_event),
}


# --- invoking and printing ------------------------------------------------------------


def find_middleware(app: Any) -> ParametersSecretsMiddleware:
    """The middleware instance inside an app (Starlette builds its stack on first call)."""
    node = getattr(app, "middleware_stack", None) or app
    while node is not None:
        if isinstance(node, ParametersSecretsMiddleware):
            return node
        node = getattr(node, "app", None)
    raise LookupError("no ParametersSecretsMiddleware in the app (call it once first)")


class Table:
    """Invokes a handler and prints one row per invocation."""

    def __init__(self, handler: Handler, app: Any) -> None:
        self.handler = handler
        self.app = app
        self.count = 0
        say(
            f"  {'#':>2}  {'event':<11}  {'request':<14} {'status':>6}"
            f"  {'hits':>4} {'fetches':>7} {'refreshes':>9} {'errors':>6}  body"
        )

    def invoke(self, kind: EventKind, path: str, note: str = "") -> tuple[int, Any]:
        label, make_event = EVENTS[kind]
        raw = self.handler(make_event(path), DemoContext())
        _transcript.append(json.dumps(raw))
        body = raw.get("body") or ""
        if raw.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        stats: CacheStats = find_middleware(self.app).stats
        self.count += 1
        status = int(raw["statusCode"])
        say(
            f"  {self.count:>2}  {label:<11}  {'GET ' + path:<14} {status:>6}"
            f"  {stats.hits:>4} {stats.fetches:>7} {stats.refreshes:>9} {stats.errors:>6}"
            f"  {body}" + (f"   <- {note}" if note else "")
        )
        return status, json.loads(body)


class DemoClock:
    """A monotonic clock the demo moves by hand, so the TTL passes without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Upstream(Source):
    """Stands in for Parameter Store and Secrets Manager, so the demo can change a value.

    A source implements the ``Source`` protocol (async ``fetch`` and ``aclose``); this one
    delegates to a
    :class:`StaticSource` that :meth:`update_parameter` replaces.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.static = StaticSource(**data)

    def update_parameter(self, name: str, spec: Any) -> None:
        self.data = {**self.data, "parameters": {**self.data["parameters"], name: spec}}
        self.static = StaticSource(**self.data)

    async def fetch(self, requests: Sequence[Any], deadline: float | None = None) -> Sequence[Any]:
        return await self.static.fetch(requests, deadline)

    async def aclose(self) -> None:
        await self.static.aclose()


def app_like(example: FastAPI) -> FastAPI:
    """A new FastAPI app with the example's routes, ready for its own middleware."""
    app = FastAPI(openapi_url=None)
    app.include_router(example.router)
    return app


# --- the demo -------------------------------------------------------------------------


def main() -> int:
    os.environ.setdefault("PARAMETERS_SECRETS_SOURCE", f"file:{VALUES_FILE}")
    logging.getLogger("parameters_secrets").addHandler(_TranscriptHandler())
    logging.getLogger("parameters_secrets").propagate = False

    from examples import fastapi_app  # after the environment names the source

    data = json.loads(VALUES_FILE.read_text(encoding="utf-8"))
    api_key = data["parameters"]["/demo-app/prod/api-key"]["value"]
    db_secret = data["secrets"]["demo-app/prod/db"]["json"]
    secrets = [api_key, db_secret["password"]]

    started = time.perf_counter()
    say("asgi-parameters-secrets demo: examples/fastapi_app.py behind Mangum, offline")
    say(f"source: PARAMETERS_SECRETS_SOURCE={os.environ['PARAMETERS_SECRETS_SOURCE']}")
    settings = Settings.from_env()
    say("declared in examples/fastapi_app.py:")
    for key, declaration in fastapi_app.VALUES.items():
        if isinstance(declaration, Parameter):
            kind, name, default_ttl = "Parameter", declaration.name, settings.parameter_ttl
        else:
            kind, name, default_ttl = "Secret", declaration.secret_id, settings.secret_ttl
        ttl = declaration.ttl if declaration.ttl is not None else default_ttl
        say(
            f"  {key:<16} {kind:<9}  {name:<31} transform={declaration.transform!s:<5}"
            f"  ttl={ttl:g} s"
        )

    say()
    say("1. The example's own handler. The first request fetches the 4 declared values")
    say("   (all at once); the next ones are served from the in-process cache.")
    table = Table(fastapi_app.handler, fastapi_app.app)
    table.invoke("http_api_v2", "/", "cold: 4 fetches")
    table.invoke("rest_v1", "/", "warm: 4 hits, no fetch")
    table.invoke("http_api_v2", "/injected", "Value('api_key') injected; key not echoed")
    table.invoke("rest_v1", "/injected")
    first = find_middleware(fastapi_app.app).stats
    declared = len(fastapi_app.VALUES)
    check(first.fetches == declared and first.hits == 3 * declared, "warm requests hit the cache")

    say()
    say("2. Refresh after the TTL. `flags` is declared with ttl=60. Rather than sleep 60 s,")
    say("   the same routes run under a second store whose clock (a constructor")
    say("   argument) the demo moves by hand, with an upstream the demo can")
    say("   change: flags.beta is set to false upstream at t=+30 s; requests keep the cached")
    say("   value until the TTL passes, then the next request refetches flags (only flags).")
    clock = DemoClock()
    upstream = Upstream(data)
    refreshing = app_like(fastapi_app.app)
    refreshing.add_middleware(
        ParametersSecretsMiddleware,
        values=ParametersSecrets(
            fastapi_app.VALUES, source=upstream, settings=settings, clock=clock
        ),
    )
    table = Table(Mangum(refreshing, lifespan="off"), refreshing)
    table.invoke("http_api_v2", "/", "t=+0 s: cold")
    clock.now = 30.0
    upstream.update_parameter("/demo-app/prod/flags", {"json": {"beta": False, "max_items": 25}})
    _, body = table.invoke("rest_v1", "/", "t=+30 s: changed upstream, still cached")
    check(body["beta"] is True, "a value is cached until its TTL")
    clock.now = 61.0
    _, body = table.invoke("http_api_v2", "/", "t=+61 s: past flags' TTL: refreshed")
    check(body["beta"] is False, "the request after the TTL sees the new value")
    table.invoke("rest_v1", "/", "t=+61 s: cached again")
    refreshed = find_middleware(refreshing).stats
    check(refreshed.refreshes == 1, "exactly one value (flags) was refreshed")

    say()
    say("3. A required value that does not exist: an app that also declares")
    say("   `webhook_secret` = Parameter('/demo-app/prod/webhook-secret'), which is not in")
    say("   the file. The route is never called; the answer is a bare 503 (the caller is")
    say("   told nothing); the ERROR log line names the key and the AWS error code (the")
    say("   not-found answer is remembered for a few seconds).")
    missing = app_like(fastapi_app.app)
    missing.add_middleware(
        ParametersSecretsMiddleware,
        values={
            **fastapi_app.VALUES,
            "webhook_secret": Parameter("/demo-app/prod/webhook-secret"),
        },
    )
    table = Table(Mangum(missing, lifespan="off"), missing)
    status_v2, _ = table.invoke("http_api_v2", "/", "503, logged at ERROR")
    status_v1, _ = table.invoke("rest_v1", "/", "503 again, upstream not asked")
    check(status_v2 == status_v1 == 503, "a missing required value answers 503")
    failed = find_middleware(missing).stats
    reading = (
        "Reading the counters: they count values and upstream calls, not responses."
        f" `errors` ({failed.errors}) counts upstream fetches that failed (the one not-found"
        " answer for webhook_secret), not 503s: two requests got a 503. The second 503"
        f" came from the remembered not-found answer, counted in `hits` ({failed.hits}) with"
        f" the {declared} cached values; `fetches` stayed at {failed.fetches}."
    )
    for line in textwrap.wrap(reading, width=84):
        say(f"   {line}")
    check(
        (failed.errors, failed.fetches, failed.hits) == (1, declared + 1, declared + 1),
        "the second 503 is answered from the cache: one upstream error for two 503s",
    )

    say()
    say("4. Secrets stay secret: the API key and the database password appear nowhere in")
    say("   this output, the log lines or the raw Lambda responses.")
    leaked = [secret for secret in secrets if any(secret in line for line in _transcript)]
    say(f"   secret values found in the output: {len(leaked)}")
    check(not leaked, "no secret value in the output")

    say()
    for failure in _failures:
        say(f"FAILED: {failure}")
    say(f"{'FAILED' if _failures else 'done'} in {time.perf_counter() - started:.2f} s")
    return 1 if _failures else 0


if __name__ == "__main__":
    sys.exit(main())
