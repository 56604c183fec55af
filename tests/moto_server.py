"""moto's server in a subprocess, boto3 helpers to seed it, and a counting, faulty proxy.

    with MotoServer(iam_auth=True) as moto:
        access_key, secret_key = create_iam_user(moto, ["ssm:GetParameter"])
        put_parameter(moto, "/app/key", "v1", type="SecureString")
        with CountingProxy(moto.url) as proxy:
            ...  # point the client at proxy.url
            assert proxy.calls("AmazonSSM.GetParameter") == 1

moto runs as a separate process (``python -m moto.server``), not moto's in-process
``ThreadedMotoServer``: IAM enforcement is a process-wide switch in moto
(``moto.settings.INITIAL_NO_AUTH_ACTION_COUNT``), so an enforcing and a permissive
server can only coexist in separate processes, and boto3/moto stay out of the test
process's warnings. Everything listens on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import IO, Any, Literal, cast
from urllib.parse import urlsplit

from tests.loopback_http import LoopbackHTTPServer, ServedInThread
from tests.processes import clean_environment, free_port, terminate

__all__ = [
    "ACCOUNT",
    "DEFAULT_ACTIONS",
    "HOP_BY_HOP",
    "REGION",
    "CountingProxy",
    "FaultKind",
    "MotoServer",
    "ProxiedRequest",
    "assume_role",
    "create_iam_user",
    "create_secret",
    "put_parameter",
    "put_secret_value",
    "seed",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# Credentials moto accepts for anything while auth is not enforced.
SETUP_KEY = "testing"
DEFAULT_ACTIONS = ("ssm:GetParameter", "secretsmanager:GetSecretValue")
STARTUP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 30.0
_AUTH_ENFORCED = "0"  # IAM-check every request from the first one on
_AUTH_OFF = "inf"  # moto's default: never check
ParameterType = Literal["String", "StringList", "SecureString"]


def _post(url: str, body: bytes = b"", timeout: float = 10.0) -> bytes:
    # Not urllib's default form type: Flask would move a form body out of request.data.
    headers = {"Content-Type": "text/plain"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return cast(bytes, response.read())


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 and an ephemeral port.

    Args:
        iam_auth: Enforce IAM: every AWS request must be SigV4-signed by a known access
            key whose policies allow the action (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=0``).
            Set up users with ``create_iam_user``, which lifts enforcement meanwhile.
        startup_timeout: Seconds to wait for the server to answer.
    """

    def __init__(self, *, iam_auth: bool = False, startup_timeout: float = STARTUP_TIMEOUT):
        self.iam_auth = iam_auth
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._clients: dict[tuple[str, str, str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._process is None:
            raise RuntimeError("MotoServer is not running")
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> MotoServer:
        if self._process is not None:
            raise RuntimeError("MotoServer already started")
        env = clean_environment(
            {"INITIAL_NO_AUTH_ACTION_COUNT": _AUTH_ENFORCED if self.iam_auth else _AUTH_OFF}
        )
        deadline = time.monotonic() + self.startup_timeout
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        while True:  # another process may take the free port before moto binds it
            self.port = free_port()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_until_ready(deadline):
                return self
            exited = self._process.poll() is not None
            self._terminate()
            if not exited or time.monotonic() >= deadline:
                log = self._read_log()
                self.stop()
                raise RuntimeError(
                    f"moto server did not answer within {self.startup_timeout} s:\n{log}"
                )

    def _wait_until_ready(self, deadline: float) -> bool:
        assert self._process is not None
        probe = f"http://127.0.0.1:{self.port}/moto-api/config"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(probe, timeout=1.0):
                    return True
            except urllib.error.HTTPError:
                return True  # it answered
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        return False

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-4000:].decode(errors="replace")

    def _terminate(self) -> None:
        process, self._process = self._process, None
        terminate(process)

    def stop(self) -> None:
        self._terminate()
        self._clients.clear()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- moto's own API --------------------------------------------------------------

    def reset(self) -> None:
        """Forget every resource (parameters, secrets, IAM users...): ``/moto-api/reset``."""
        _post(f"{self.url}/moto-api/reset")

    def set_auth(self, enforced: bool) -> None:
        """Switch IAM enforcement at runtime (``/moto-api/reset-auth``)."""
        _post(
            f"{self.url}/moto-api/reset-auth", (_AUTH_ENFORCED if enforced else _AUTH_OFF).encode()
        )

    @contextlib.contextmanager
    def auth_suspended(self) -> Iterator[None]:
        """Unsigned setup calls on an enforcing server; enforcement resumes after."""
        if not self.iam_auth:
            yield
            return
        self.set_auth(False)
        try:
            yield
        finally:
            self.set_auth(True)

    def client(
        self,
        service: str,
        *,
        access_key: str = SETUP_KEY,
        secret_key: str = SETUP_KEY,
        region: str = REGION,
    ) -> Any:
        """A boto3 client for this server (cached per service, key and region)."""
        import boto3  # test-only, imported when used

        key = (service, access_key, secret_key, region)
        with self._lock:
            if key not in self._clients:
                session = boto3.session.Session(
                    aws_access_key_id=access_key,
                    aws_secret_access_key=secret_key,
                    region_name=region,
                )
                self._clients[key] = session.client(service, endpoint_url=self.url)
            return self._clients[key]


# -- seeding through boto3 -------------------------------------------------------------


def create_iam_user(
    server: MotoServer,
    actions: Iterable[str] = DEFAULT_ACTIONS,
    *,
    name: str | None = None,
    resource: str = "*",
) -> tuple[str, str]:
    """Create an IAM user allowed only ``actions`` on ``resource``; returns its
    ``(access_key, secret_key)``. Works on an enforcing server too."""
    name = name or f"user-{uuid.uuid4().hex[:12]}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": sorted(actions), "Resource": resource}],
    }
    with server.auth_suspended():
        iam = server.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="allow", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def assume_role(
    server: MotoServer,
    actions: Iterable[str] = DEFAULT_ACTIONS,
    *,
    name: str | None = None,
    resource: str = "*",
) -> tuple[str, str, str]:
    """Create a role allowed only ``actions`` and assume it; returns temporary
    ``(access_key, secret_key, session_token)``. Works on an enforcing server too."""
    name = name or f"role-{uuid.uuid4().hex[:12]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": sorted(actions), "Resource": resource}],
    }
    with server.auth_suspended():
        iam = server.client("iam")
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        iam.put_role_policy(RoleName=name, PolicyName="allow", PolicyDocument=json.dumps(policy))
        answer = server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="tests")
    credentials = answer["Credentials"]
    return (
        str(credentials["AccessKeyId"]),
        str(credentials["SecretAccessKey"]),
        str(credentials["SessionToken"]),
    )


def put_parameter(
    server: MotoServer,
    name: str,
    value: str,
    *,
    type: ParameterType = "String",
    overwrite: bool = False,
    region: str = REGION,
) -> int:
    """Put a parameter (a new version with ``overwrite=True``); returns its version."""
    with server.auth_suspended():
        answer = server.client("ssm", region=region).put_parameter(
            Name=name, Value=value, Type=type, Overwrite=overwrite
        )
    return int(answer["Version"])


def create_secret(
    server: MotoServer,
    name: str,
    *,
    string: str | None = None,
    binary: bytes | None = None,
    region: str = REGION,
) -> tuple[str, str]:
    """Create a secret with one of ``string`` / ``binary``; returns ``(arn, version_id)``."""
    if (string is None) == (binary is None):
        raise ValueError("give exactly one of string= or binary=")
    value: dict[str, Any] = {"SecretString": string} if binary is None else {"SecretBinary": binary}
    with server.auth_suspended():
        answer = server.client("secretsmanager", region=region).create_secret(Name=name, **value)
    return str(answer["ARN"]), str(answer["VersionId"])


def put_secret_value(
    server: MotoServer,
    secret_id: str,
    *,
    string: str | None = None,
    binary: bytes | None = None,
    stages: Iterable[str] = (),
    region: str = REGION,
) -> str:
    """Add a version (AWSCURRENT, plus ``stages``); returns its VersionId."""
    if (string is None) == (binary is None):
        raise ValueError("give exactly one of string= or binary=")
    value: dict[str, Any] = {"SecretString": string} if binary is None else {"SecretBinary": binary}
    if stages:
        value["VersionStages"] = ["AWSCURRENT", *stages]
    with server.auth_suspended():
        answer = server.client("secretsmanager", region=region).put_secret_value(
            SecretId=secret_id, **value
        )
    return str(answer["VersionId"])


def seed(
    server: MotoServer,
    *,
    parameters: Mapping[str, str | tuple[str, ParameterType]] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> None:
    """Put many parameters (name -> value, or ``(value, type)``; overwritten if they
    exist) and create many string secrets (name -> value)."""
    for name, spec in (parameters or {}).items():
        if isinstance(spec, str):
            put_parameter(server, name, spec, overwrite=True)
        else:
            put_parameter(server, name, spec[0], type=spec[1], overwrite=True)
    for name, string in (secrets or {}).items():
        create_secret(server, name, string=string)


# -- a counting proxy that can fail ----------------------------------------------------

FaultKind = Literal["error", "throttle", "drop", "malformed"]
# Headers a proxy does not pass on (it sets its own Content-Length).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_JSON = "application/x-amz-json-1.1"
_FAULT_ANSWERS: dict[str, tuple[int, dict[str, str]]] = {
    "error": (500, {"__type": "InternalFailure", "message": "Internal failure (injected)"}),
    "throttle": (400, {"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}),
}


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as the proxy received it (``target``: its ``X-Amz-Target``, or "")."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    target: str


@dataclass
class _Fault:
    target: str | None
    kind: FaultKind | None
    latency: float
    times: int | None


class _ProxyServer(LoopbackHTTPServer):
    def __init__(self, proxy: CountingProxy, port: int = 0) -> None:
        self.proxy = proxy
        super().__init__(_ProxyHandler, port, on_accept=proxy._connection_accepted)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT  # an idle keep-alive connection does not pin a thread forever
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """No stderr logging."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _forward(self) -> None:
        proxy = cast(_ProxyServer, self.server).proxy
        with proxy._lock:
            proxy._in_flight += 1
            proxy.max_in_flight = max(proxy.max_in_flight, proxy._in_flight)
        try:
            self._forward_counted(proxy)
        finally:
            with proxy._lock:
                proxy._in_flight -= 1

    def _forward_counted(self, proxy: CountingProxy) -> None:
        body = self._read_body()
        request = ProxiedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=body,
            target=self.headers.get("X-Amz-Target", ""),
        )
        fault = proxy._record(request)
        if fault is not None and fault.latency > 0 and proxy._stopping.wait(fault.latency):
            self.close_connection = True  # stopped while waiting
            return
        kind = None if fault is None else fault.kind
        if kind in _FAULT_ANSWERS:
            status, error = _FAULT_ANSWERS[kind]
            self._answer(status, [("Content-Type", _JSON)], json.dumps(error).encode())
            return
        status, headers, answer = proxy._upstream(request, self.headers.items())
        if kind == "malformed":  # a 200 whose JSON body stops halfway
            self._answer(200, [("Content-Type", _JSON)], answer[: len(answer) // 2] or b"{")
            return
        if kind == "drop":  # headers and half the body, then the connection goes
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer) + 1024))
            self.end_headers()
            self.wfile.write(answer[: len(answer) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._answer(status, headers, answer, head=self.command == "HEAD")

    def _answer(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, head: bool = False
    ) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _forward


class CountingProxy(ServedInThread):
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (moto) that counts requests by
    ``X-Amz-Target`` and injects faults. Requests pass through unchanged, ``Host``
    included, so SigV4 signatures made for the proxy's URL still verify upstream.

    Args:
        upstream: ``http://host:port`` of the server to forward to.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        super().__init__()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._requests: list[ProxiedRequest] = []
        self._met: list[_Fault | None] = []  # the fault each request met, in step
        self._faults: list[_Fault] = []
        self.connections = 0  # TCP connections accepted: proves pooling and its bound
        self.max_in_flight = 0  # most requests being answered at once
        self._in_flight = 0

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("CountingProxy is not running")
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------

    thread_name = "counting-proxy"

    def _make_server(self, port: int) -> _ProxyServer:
        return _ProxyServer(self, port)

    # -- counting --------------------------------------------------------------------

    def calls(self, target: str) -> int:
        """Requests received with this ``X-Amz-Target`` (e.g. ``"AmazonSSM.GetParameters"``),
        whatever their outcome, faulted ones included."""
        with self._lock:
            return self._counts[target]

    @property
    def total(self) -> int:
        """Every request received."""
        with self._lock:
            return sum(self._counts.values())

    @property
    def counts(self) -> dict[str, int]:
        """Requests received per target (a copy; "" for requests without a target)."""
        with self._lock:
            return dict(self._counts)

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def faults_met(self) -> list[tuple[FaultKind | None, float] | None]:
        """For every request received, oldest first: the fault it met as ``(kind,
        latency)`` (see ``fail()``), or ``None``."""
        with self._lock:
            return [None if f is None else (f.kind, f.latency) for f in self._met]

    def reset(self) -> None:
        """Forget counts and recorded requests (faults stay: ``clear_faults()``)."""
        with self._lock:
            self._counts.clear()
            self._requests.clear()
            self._met.clear()

    # -- faults ----------------------------------------------------------------------

    def fail(
        self,
        target: str | None,
        kind: FaultKind | None = None,
        *,
        latency: float = 0.0,
        times: int | None = None,
    ) -> None:
        """Inject a fault into requests for ``target`` (``None``: every request).

        ``kind``: ``"error"`` answers 500 ``InternalFailure``, ``"throttle"`` 400
        ``ThrottlingException`` (AWS JSON error bodies, not forwarded); ``"drop"``
        forwards, then sends the headers and half the body and closes the connection;
        ``"malformed"`` forwards, then answers 200 with the first half of the body (JSON
        cut off, with a matching ``Content-Length``);
        ``None`` forwards normally. ``latency`` seconds are waited first, in any case.
        ``times``: the next N matching requests, or ``None`` until ``clear_faults()``.
        Faults stack; the oldest matching one applies.
        """
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            self._faults.append(_Fault(target, kind, latency, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- called from handler threads -------------------------------------------------

    def _connection_accepted(self) -> None:
        with self._lock:
            self.connections += 1

    def _record(self, request: ProxiedRequest) -> _Fault | None:
        with self._lock:
            self._counts[request.target] += 1
            self._requests.append(request)
            chosen = None
            for index, fault in enumerate(self._faults):
                if fault.target is not None and fault.target != request.target:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        del self._faults[index]
                chosen = fault
                break
            self._met.append(chosen)
            return chosen

    def _upstream(
        self, request: ProxiedRequest, raw_headers: Iterable[tuple[str, str]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self._upstream_host, self._upstream_port, timeout=REQUEST_TIMEOUT
        )
        try:
            connection.putrequest(
                request.method, request.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in raw_headers:  # repeated names included
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            if request.body or request.method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body or None)
            response = connection.getresponse()
            body = response.read()
            headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP
            ]
            return response.status, headers, body
        finally:
            connection.close()
