"""What the benchmarks share besides ``_common.py``: the declared values, the upstreams on
127.0.0.1, a throttling proxy, a stub AWS, and a small ASGI harness.

* The values: ``N`` generated parameters and secrets (``values_document``,
  ``declarations``), or the Lambda benchmarks' fixed 10 (``LAMBDA_VALUES``); either
  written as a ``--source file:PATH`` document, or seeded into moto.
* moto's server and the local server: ``tests/moto_server.py``'s ``MotoServer`` and
  ``tests/local_server.py``'s ``LocalServer`` (``local_server()`` gives it a clean
  environment and ``SESSION_TOKEN``).
* :class:`Proxy`: an HTTP proxy in front of either, in its own process (this module run
  as a script), that adds a fixed latency to every answer, counts requests per
  ``X-Amz-Target`` and per value name, and can throttle like AWS: a token bucket per
  target prefix, answering ``400 {"__type": "ThrottlingException"}`` when it is empty.
  Its own process, so that its work does not compete with the benchmark's event loop
  for the GIL; it is asked for its counters over HTTP (``/_proxy/...``). Without an
  upstream, it answers as a stub AWS.

Every wait is bounded; every subprocess is terminated by ``stop()`` / the ``with`` block.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.local_server import LocalServer
from tests.moto_server import HOP_BY_HOP, REGION, MotoServer, seed
from tests.processes import ReadyLineProcess, clean_environment

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
# The token the local server checks (what Lambda hands the function as AWS_SESSION_TOKEN).
SESSION_TOKEN = "bench-session-token"  # noqa: S105 - a made-up local token
CONTROL_TIMEOUT = 30.0
_DUMMY_KEY = "testing"  # moto accepts any credentials while IAM is not enforced
# The proxy child runs ``python -m benchmarks._upstreams`` here, to import ``tests``.
_ROOT = Path(__file__).resolve().parent.parent

# AWS's published default quotas (per account and Region), as token buckets:
# prefix of X-Amz-Target -> (transactions per second, burst).
SSM_DEFAULT_THROUGHPUT = ("AmazonSSM.", 40.0, 40.0)  # GetParameter(s)(ByPath), shared
SECRETS_BATCH_QUOTA = ("secretsmanager.BatchGetSecretValue", 100.0, 100.0)
SECRETS_GET_QUOTA = ("secretsmanager.GetSecretValue", 10_000.0, 10_000.0)


# -- the declared values -----------------------------------------------------------------


def parameter_names(count: int) -> list[str]:
    return [f"/bench/app/param-{i:02d}" for i in range(count)]


def secret_ids(count: int) -> list[str]:
    return [f"bench/app/secret-{i:02d}" for i in range(count)]


def parameter_value(name: str) -> str:
    return f"value-of-{name}-" + "p" * 32


def secret_value(secret_id: str) -> str:
    return json.dumps({"username": secret_id.rsplit("/", 1)[-1], "password": "s" * 24})


def declarations(parameters: int, secrets: int, *, ttl: float | None = None) -> dict[str, Any]:
    """``values=`` for the middleware: ``p00``... parameters, then ``s00``... secrets."""
    from parameters_secrets import Parameter, Secret

    values: dict[str, Any] = {
        f"p{i:02d}": Parameter(name, ttl=ttl) for i, name in enumerate(parameter_names(parameters))
    }
    values.update(
        {f"s{i:02d}": Secret(secret_id, ttl=ttl) for i, secret_id in enumerate(secret_ids(secrets))}
    )
    return values


def values_document(parameters: int, secrets: int) -> dict[str, Any]:
    """That many SecureString parameters and string secrets, with the standard values, in
    ``StaticSource.from_file``'s shape."""
    return {
        "parameters": {
            name: {"value": parameter_value(name), "type": "SecureString"}
            for name in parameter_names(parameters)
        },
        "secrets": {secret_id: secret_value(secret_id) for secret_id in secret_ids(secrets)},
    }


# The Lambda benchmarks' 10 values (bench_warm, bench_cold_start): 5 SSM parameters (one
# SecureString), 5 secrets; ``LAMBDA_VALUES`` is the same in ``values_document``'s shape.
LAMBDA_PARAMETERS: dict[str, dict[str, str]] = {
    f"/bench-app/prod/param-{i}": {
        "value": f"parameter-value-{i}-" + "x" * 24,
        "type": "SecureString" if i == 0 else "String",
    }
    for i in range(5)
}
LAMBDA_SECRETS: dict[str, str] = {
    f"bench-app/prod/secret-{i}": f'{{"username": "user{i}", "password": "pw-{i}-0123456789"}}'
    for i in range(5)
}
LAMBDA_VALUES: dict[str, Any] = {"parameters": LAMBDA_PARAMETERS, "secrets": LAMBDA_SECRETS}
# Request-state key -> (kind, name), in a stable order.
LAMBDA_KEYS: dict[str, tuple[str, str]] = {
    **{f"p{i}": ("parameter", name) for i, name in enumerate(LAMBDA_PARAMETERS)},
    **{f"s{i}": ("secret", name) for i, name in enumerate(LAMBDA_SECRETS)},
}


def write_values_file(directory: str | Path, document: Mapping[str, Any]) -> Path:
    """``document`` as a ``--source file:PATH`` file in ``directory``; returns its path."""
    path = Path(directory) / "bench-values.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def seed_values(moto: MotoServer, document: Mapping[str, Any]) -> None:
    """Create ``document``'s parameters and secrets in moto."""
    parameters = {
        name: (spec["value"], spec["type"]) for name, spec in document["parameters"].items()
    }
    seed(moto, parameters=parameters, secrets=document["secrets"])


# -- the environment ---------------------------------------------------------------------


@contextlib.contextmanager
def aws_environment() -> Iterator[None]:
    """Dummy credentials and a region for ``AwsSource``, restored afterwards."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(
        AWS_ACCESS_KEY_ID=_DUMMY_KEY, AWS_SECRET_ACCESS_KEY=_DUMMY_KEY, AWS_REGION=REGION
    )
    try:
        yield
    finally:
        for key in [key for key in os.environ if key.startswith("AWS_")]:
            del os.environ[key]
        os.environ.update(saved)


def moto_environment(url: str) -> dict[str, str]:
    """What an AWS SDK needs to talk to moto: endpoint, dummy credentials, region."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": _DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": _DUMMY_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def local_server(source: str, env: Mapping[str, str] | None = None) -> LocalServer:
    """``parameters-secrets serve --port 0 --source SOURCE`` in a clean environment with
    ``AWS_SESSION_TOKEN=SESSION_TOKEN``, log level ``warn``, and ``env``."""
    base = {"AWS_SESSION_TOKEN": SESSION_TOKEN, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "warn"}
    return LocalServer(source, clean_environment({**base, **(env or {})}))


@contextlib.contextmanager
def delayed_upstreams(
    parameters: int, secrets: int, latency: float
) -> Iterator[tuple[Proxy, Proxy]]:
    """Moto and the local server holding the same generated values, each behind a
    :class:`Proxy` adding ``latency`` per request: yields ``(moto_proxy, local_proxy)``."""
    with tempfile.TemporaryDirectory() as directory, aws_environment():
        values = values_document(parameters, secrets)
        values_file = write_values_file(directory, values)
        with (
            MotoServer() as moto,
            local_server(f"file:{values_file}") as local,
            Proxy(moto.url, latency=latency) as moto_proxy,
            Proxy(local.url, latency=latency) as local_proxy,
        ):
            seed_values(moto, values)
            yield moto_proxy, local_proxy


# -- the proxy: client side ----------------------------------------------------------------


@dataclass
class ProxyStats:
    """What the proxy received since its last reset."""

    targets: dict[str, int]  # X-Amz-Target ("" for GETs to the extension API) -> requests
    names: dict[str, int]  # value name -> requests naming it (a batch names several)
    throttled: int  # requests answered ThrottlingException by the proxy
    throttled_targets: dict[str, int]  # the same, per X-Amz-Target
    total: int
    connections: int  # TCP connections accepted
    max_in_flight: int  # most requests being answered at once
    log: list[tuple[float, str, list[str]]] = field(default_factory=list)  # (t, target, names)

    def calls(self, prefix: str) -> int:
        """Requests whose ``X-Amz-Target`` starts with ``prefix``."""
        return sum(count for target, count in self.targets.items() if target.startswith(prefix))

    def throttled_calls(self, prefix: str) -> int:
        """Of those, the ones answered ThrottlingException."""
        return sum(
            count for target, count in self.throttled_targets.items() if target.startswith(prefix)
        )


class Proxy(ReadyLineProcess):
    """The proxy: this module run as a proxy in front of ``upstream``; see the module doc.

    Args:
        upstream: ``http://127.0.0.1:PORT``; or ``None``: answer the AWS JSON API calls
            the sources make (``GetParameter(s)``, ``GetSecretValue``,
            ``BatchGetSecretValue``) from memory, every name existing with the standard
            value, so that no upstream's CPU time is measured (a stub AWS).
        latency: Seconds added before every answer (throttled ones included).
        buckets: ``(target prefix, transactions per second, burst)`` token buckets; a
            request whose ``X-Amz-Target`` starts with a prefix takes a token from the
            first such bucket, or is answered ``ThrottlingException``.
    """

    def __init__(
        self,
        upstream: str | None,
        *,
        latency: float = 0.0,
        buckets: Sequence[tuple[str, float, float]] = (),
    ) -> None:
        argv = [sys.executable, "-m", "benchmarks._upstreams"]
        if upstream is not None:
            parts = urlsplit(upstream)
            if parts.scheme != "http" or parts.hostname != "127.0.0.1":
                raise ValueError(f"upstream must be http://127.0.0.1:PORT, not {upstream!r}")
            argv += ["--upstream", upstream]
        argv += ["--latency", repr(latency)]
        for prefix, rate, burst in buckets:
            argv += ["--bucket", f"{prefix}={rate}/{burst}"]
        super().__init__(
            argv, clean_environment(), r"proxy: ready on http://127\.0\.0\.1:(\d+)", cwd=_ROOT
        )

    def _control(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback http
            f"{self.url}/_proxy/{path}", data=data, method="GET" if data is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT) as response:  # noqa: S310
            return json.loads(response.read())

    def stats(self, *, log: bool = False) -> ProxyStats:
        answer = self._control("stats?log=1" if log else "stats")
        answer["log"] = [(t, target, names) for t, target, names in answer.get("log", [])]
        return ProxyStats(**answer)

    def reset(self, *, latency: float | None = None, buckets: Sequence[Any] | None = None) -> None:
        """Forget counts and the log; refill the buckets (and replace them, if given)."""
        body: dict[str, Any] = {}
        if latency is not None:
            body["latency"] = latency
        if buckets is not None:
            body["buckets"] = [list(bucket) for bucket in buckets]
        self._control("reset", body)


# -- the proxy: server side (this module run as a script) ------------------------------------

_THROTTLED = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
_IDLE_SECONDS = 2.0  # reuse an upstream connection idle for less than this
_MAX_LOG = 200_000
_MAX_REQUESTS_PER_CONNECTION = 1_000_000  # bounded memory: requests logged with their time


class _Bucket:
    def __init__(self, prefix: str, rate: float, burst: float) -> None:
        self.prefix, self.rate, self.burst = prefix, rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _ProxyServer:
    def __init__(self, upstream: str | None, latency: float, buckets: list[_Bucket]) -> None:
        parts = urlsplit(upstream or "")
        self.stub = upstream is None
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.latency = latency
        self.buckets = buckets
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._reset_counts()

    def _reset_counts(self) -> None:
        self.targets: Counter[str] = Counter()
        self.names: Counter[str] = Counter()
        self.throttled = 0
        self.throttled_targets: Counter[str] = Counter()
        self.total = 0
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[tuple[float, str, list[str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for _ in range(_MAX_REQUESTS_PER_CONNECTION):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = [
                    (name.strip(), value.strip())
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                ]
                lower = {name.lower(): value for name, value in headers}
                if "chunked" in lower.get("transfer-encoding", "").lower():
                    body = await _read_chunked(reader)
                else:
                    length = int(lower.get("content-length") or 0)
                    body = await reader.readexactly(length) if length else b""
                status, out_headers, out_body = await self.answer(method, path, headers, body)
                writer.write(_response_head(status, out_headers, len(out_body)) + out_body)
                await writer.drain()
                if lower.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def answer(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if path.startswith("/_proxy/"):
            return self.control(path, body)
        lower = {name.lower(): value for name, value in headers}
        target = lower.get("x-amz-target", "")
        names = _names(path, body)
        self.total += 1
        self.targets[target] += 1
        self.names.update(names)
        if len(self.log) < _MAX_LOG:
            self.log.append((time.monotonic(), target, names))
        bucket = next((b for b in self.buckets if target.startswith(b.prefix)), None)
        allowed = bucket is None or bucket.take()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if not allowed:
                self.throttled += 1
                self.throttled_targets[target] += 1
                return 400, [("Content-Type", "application/x-amz-json-1.1")], _THROTTLED
            if self.stub:
                return _stub_answer(target, body)
            return await self.forward(method, path, headers, body)
        finally:
            self.in_flight -= 1

    async def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Plain HTTP/1.1 to the upstream over kept-alive connections (no client library:
        the proxy's own CPU time is kept small, it is not what is measured)."""
        for attempt in range(2):  # a kept-alive connection may have been closed meanwhile
            connection = self._idle_connection() if attempt == 0 else None
            reused = connection is not None
            try:
                reader, writer = connection or await self._connect()
            except OSError:
                break
            lines = [f"{method} {path} HTTP/1.1"]
            lines += [f"{n}: {v}" for n, v in headers if n.lower() not in HOP_BY_HOP]
            lines.append(f"Content-Length: {len(body)}")
            try:
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                status_line, *header_lines = head.decode("latin-1").split("\r\n")
                status = int(status_line.split(" ", 2)[1])
                out = [
                    (name.strip(), value.strip())
                    for name, _, value in (line.partition(":") for line in header_lines if line)
                ]
                lower = {name.lower(): value.lower() for name, value in out}
                if "chunked" in lower.get("transfer-encoding", ""):
                    answer = await _read_chunked(reader)
                elif "content-length" in lower:
                    answer = await reader.readexactly(int(lower["content-length"]))
                else:  # delimited by the end of the connection
                    answer = await reader.read()
                    lower["connection"] = "close"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                writer.close()
                if reused:
                    continue
                break
            if lower.get("connection") == "close" or len(self.idle) >= 200:
                writer.close()
            else:
                self.idle.append((reader, writer, time.monotonic()))
            return status, [(n, v) for n, v in out if n.lower() not in HOP_BY_HOP], answer
        message = json.dumps({"__type": "BadGateway", "message": "the upstream failed"})
        return 502, [("Content-Type", "application/json")], message.encode()

    def _idle_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self.idle:
            reader, writer, since = self.idle.pop()
            # Servers close idle connections after a few seconds (uvicorn: 5).
            if time.monotonic() - since < _IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, limit=2**20)

    def control(self, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(path)
        if parts.path == "/_proxy/stats":
            answer: dict[str, Any] = {
                "targets": dict(self.targets),
                "names": dict(self.names),
                "throttled": self.throttled,
                "throttled_targets": dict(self.throttled_targets),
                "total": self.total,
                "connections": self.connections,
                "max_in_flight": self.max_in_flight,
            }
            if dict(parse_qsl(parts.query)).get("log"):
                answer["log"] = self.log
        elif parts.path == "/_proxy/reset":
            config = json.loads(body or b"{}")
            if "latency" in config:
                self.latency = float(config["latency"])
            if "buckets" in config:
                self.buckets = [_Bucket(p, float(r), float(b)) for p, r, b in config["buckets"]]
            for bucket in self.buckets:
                bucket.tokens, bucket.stamp = bucket.burst, time.monotonic()
            self._reset_counts()
            answer = {"ok": True}
        else:
            return 404, [], b"{}"
        return 200, [("Content-Type", "application/json")], json.dumps(answer).encode()


def _stub_answer(target: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """What SSM or Secrets Manager would answer, every name existing (see ``Proxy``)."""
    request = json.loads(body or b"{}")
    action = target.rpartition(".")[2]
    answer: dict[str, Any]
    if action == "GetParameter":
        answer = {"Parameter": _stub_parameter(request["Name"])}
    elif action == "GetParameters":
        answer = {
            "Parameters": [_stub_parameter(name) for name in request["Names"]],
            "InvalidParameters": [],
        }
    elif action == "GetSecretValue":
        answer = _stub_secret(request["SecretId"])
    elif action == "BatchGetSecretValue":
        answer = {"SecretValues": [_stub_secret(i) for i in request["SecretIdList"]], "Errors": []}
    else:
        error = {"__type": "UnknownOperationException", "message": target}
        return 400, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(error).encode()
    return 200, [("Content-Type", "application/x-amz-json-1.1")], json.dumps(answer).encode()


def _stub_parameter(name: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "SecureString",
        "Value": parameter_value(name),
        "Version": 1,
        "LastModifiedDate": 1_700_000_000.0,
        "ARN": f"arn:aws:ssm:{REGION}:123456789012:parameter/{name.lstrip('/')}",
        "DataType": "text",
    }


def _stub_secret(secret_id: str) -> dict[str, Any]:
    return {
        "ARN": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{secret_id}-AbCdEf",
        "Name": secret_id,
        "VersionId": "00000000-0000-4000-8000-000000000001",
        "SecretString": secret_value(secret_id),
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000.0,
    }


def _names(path: str, body: bytes) -> list[str]:
    """The values a request names: the extension API's query, or the JSON API's body."""
    parts = urlsplit(path)
    if parts.query:
        query = dict(parse_qsl(parts.query))
        found = query.get("name") or query.get("secretId")
        return [found] if found else []
    if not body:
        return []
    try:
        document = json.loads(body)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    for key in ("Name", "SecretId"):
        if isinstance(document.get(key), str):
            return [document[key]]
    for key in ("Names", "SecretIdList"):
        if isinstance(document.get(key), list):
            return [str(name) for name in document[key]]
    return []


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    for _ in range(1_000_000):  # bounded
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if not size:
            break
        chunks.append(await reader.readexactly(size))
        await reader.readline()
    for _ in range(1000):  # trailers
        if not (await reader.readline()).strip():
            break
    return b"".join(chunks)


def _response_head(status: int, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _serve_proxy(upstream: str | None, latency: float, buckets: list[_Bucket]) -> None:
    proxy = _ProxyServer(upstream, latency, buckets)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"proxy: ready on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A delaying, counting, throttling proxy.")
    parser.add_argument("--upstream", default=None, help="default: answer as a stub AWS")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--bucket", action="append", default=[], help="PREFIX=RATE/BURST")
    args = parser.parse_args(argv)
    buckets = []
    for spec in args.bucket:
        prefix, _, numbers = spec.rpartition("=")
        rate, _, burst = numbers.partition("/")
        buckets.append(_Bucket(prefix, float(rate), float(burst or rate)))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_proxy(args.upstream, args.latency, buckets))


# -- harness: one ASGI request, timed -----------------------------------------------------


def http_scope(path: str = "/") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the middleware: 200, two bytes."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def timed_request(app: Any, scope: Scope | None = None) -> tuple[int, float]:
    """Send one GET straight through ``app`` (no server); returns (status, seconds).

    ``scope``: default ``http_scope()``; the fleet benchmark adds a Lambda context to it,
    as Mangum does."""
    status = 0

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    start = time.perf_counter()
    await app(http_scope() if scope is None else scope, receive, send)
    return status, time.perf_counter() - start


def run_on_private_loop(coroutine: Any) -> Any:
    """Run ``coroutine`` on a new event loop that is never made the thread's current one:
    ``asyncio.run()`` would unset the current loop, and Mangum handlers built earlier in the
    process (``run_all``) look it up on every invocation."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


if __name__ == "__main__":
    _main()
