"""What the Lambda benchmarks share: an HTTP API v2 event, a context, the 10 values,
and the two upstreams as subprocesses on 127.0.0.1 (the local extension-compatible
server, and moto's server).

Copied in part from ``tests/lambda_events.py`` and ``tests/moto_server.py``: benchmarks
do not import the test suite. Every wait is bounded; every subprocess is terminated.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
# The token the local server checks (what Lambda hands the function as AWS_SESSION_TOKEN).
SESSION_TOKEN = "bench-session-token"  # noqa: S105 - a local, made-up token
STARTUP_TIMEOUT = 30.0

# The 10 declared values: 5 SSM parameters (one SecureString), 5 secrets.
PARAMETERS: dict[str, dict[str, str]] = {
    f"/bench-app/prod/param-{i}": {
        "value": f"parameter-value-{i}-" + "x" * 24,
        "type": "SecureString" if i == 0 else "String",
    }
    for i in range(5)
}
SECRETS: dict[str, str] = {
    f"bench-app/prod/secret-{i}": f'{{"username": "user{i}", "password": "pw-{i}-0123456789"}}'
    for i in range(5)
}
# Request-state key -> (kind, name), in a stable order.
KEYS: dict[str, tuple[str, str]] = {
    **{f"p{i}": ("parameter", name) for i, name in enumerate(PARAMETERS)},
    **{f"s{i}": ("secret", name) for i, name in enumerate(SECRETS)},
}


def values_document() -> dict[str, Any]:
    """The values in ``StaticSource.from_file``'s shape (``--source file:PATH``)."""
    return {
        "parameters": {name: dict(spec) for name, spec in PARAMETERS.items()},
        "secrets": dict(SECRETS),
    }


# -- events and context --------------------------------------------------------------


class LambdaContext:
    """Shaped like ``awslambdaric``'s context object; remaining time counts down."""

    def __init__(self, *, remaining_ms: int = 30_000, function_name: str = "bench") -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = "512"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"2026/11/22/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_api_v2_event(path: str = "/") -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) GET event, as Lambda delivers it."""
    api_id = "f6g7h8i9j0"
    host = f"{api_id}.execute-api.{REGION}.amazonaws.com"
    epoch_ms = int(time.time() * 1000)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "*/*",
            "host": host,
            "user-agent": "python-benchmarks/1.0",
            "x-amzn-trace-id": "Root=1-6740a1b2-0123456789abcdef01234567",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": api_id,
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "python-benchmarks/1.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000)),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": False,
    }


# -- subprocesses ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[Any] | None) -> None:
    """Stop a child we started: terminate, then kill after a bounded wait."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def moto_environment(url: str) -> dict[str, str]:
    """What an AWS SDK needs to talk to moto: endpoint, dummy credentials, region."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AWS/Powertools/our settings, plus ``extra``."""
    prefixes = ("AWS_", "MOTO_", "POWERTOOLS_", "PARAMETERS_SECRETS_", "SSM_", "SECRETS_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(extra or {})
    return env


class _Child:
    """A subprocess with its output in a temporary file, stopped on exit."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        process, self.process = self.process, None
        terminate(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MotoServer(_Child):
    """``python -m moto.server`` on 127.0.0.1, seeded with the 10 values."""

    def __enter__(self) -> MotoServer:
        try:
            self._start()
            self.seed()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        env = clean_environment()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for _attempt in range(3):  # another process may take the free port first
            self.port = free_port()
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_until_ready(deadline):
                return
            log = self.log()
            self.stop()
            if time.monotonic() >= deadline:
                break
        raise RuntimeError(f"moto server did not start:\n{log}")

    def _wait_until_ready(self, deadline: float) -> bool:
        probe = f"{self.url}/moto-api/config"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(probe, timeout=1.0):  # noqa: S310 - loopback
                    return True
            except urllib.error.HTTPError:
                return True  # it answered
            except OSError:
                time.sleep(0.05)
        return False

    def seed(self) -> None:
        import boto3  # only the benchmarks' parent process needs it

        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=REGION,
        )
        ssm = session.client("ssm", endpoint_url=self.url)
        secretsmanager = session.client("secretsmanager", endpoint_url=self.url)
        for name, spec in PARAMETERS.items():
            ssm.put_parameter(Name=name, Value=spec["value"], Type=spec["type"], Overwrite=True)
        for name, value in SECRETS.items():
            secretsmanager.create_secret(Name=name, SecretString=value)


_READY = re.compile(r"ready on http://127\.0\.0\.1:(\d+)")


class ExtensionServer(_Child):
    """``python -m parameters_secrets serve --port 0 --source SOURCE`` on 127.0.0.1.

    Args:
        source: ``file:PATH`` or ``aws``.
        env: Extra environment (e.g. moto's endpoint and TTLs for ``aws``).
    """

    def __init__(self, source: str, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.source = source
        self.env = dict(env or {})
        self._lines: queue.Queue[str | None] = queue.Queue()

    def __enter__(self) -> ExtensionServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        env = clean_environment(
            {
                "AWS_SESSION_TOKEN": SESSION_TOKEN,
                "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "warn",
                **self.env,
            }
        )
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "parameters_secrets",
                "serve",
                "--port",
                "0",
                "--source",
                self.source,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        stdout = self.process.stdout
        assert stdout is not None
        # A thread drains stdout for the server's whole life, so it never blocks on it.
        threading.Thread(target=self._drain, args=(stdout,), daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"the local server did not start:\n{self.log()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"the local server exited:\n{self.log()}")
            match = _READY.search(line)
            if match:
                self.port = int(match.group(1))
                return

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._lines.put(raw.decode(errors="replace"))
        self._lines.put(None)


def write_values_file(directory: str | Path) -> Path:
    """The 10 values as a ``--source file:PATH`` document in ``directory``."""
    import json

    path = Path(directory) / "values.json"
    path.write_text(json.dumps(values_document(), indent=2), encoding="utf-8")
    return path
