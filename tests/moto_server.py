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
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import httpx
from starlette.types import Receive, Scope, Send

from tests.faults import Answer, Fault, FaultRules, inject
from tests.loopback_http import LoopbackASGIServer, ServedInThread
from tests.processes import ReadyLineProcess, StartsAndStops, clean_environment

__all__ = [
    "ACCOUNT",
    "DEFAULT_ACTIONS",
    "HOP_BY_HOP",
    "REGION",
    "CountingProxy",
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
# What werkzeug (moto's server) prints once its socket listens.
_READY_PATTERN = r"Running on http://127\.0\.0\.1:(\d+)"
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


class MotoServer(StartsAndStops):
    """``python -m moto.server`` on 127.0.0.1 and an ephemeral port.

    Args:
        iam_auth: Enforce IAM: every AWS request must be SigV4-signed by a known access
            key whose policies allow the action (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=0``).
            Set up users with ``create_iam_user``, which lifts enforcement meanwhile.
        startup_timeout: Seconds to wait for the server to listen.
    """

    def __init__(self, *, iam_auth: bool = False, startup_timeout: float = STARTUP_TIMEOUT):
        self.iam_auth = iam_auth
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: ReadyLineProcess | None = None
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
        # Port 0: the kernel picks a free one, which werkzeug's startup line names once
        # the socket listens (so nothing can take it between choosing and binding).
        self._process = ReadyLineProcess(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            env,
            _READY_PATTERN,
            startup_timeout=self.startup_timeout,
        ).start()
        self.port = self._process.port
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()
        self._clients.clear()

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


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as the proxy received it (``target``: its ``X-Amz-Target``, or "";
    ``headers``: case-insensitive)."""

    method: str
    path: str
    headers: httpx.Headers
    body: bytes
    target: str


class CountingProxy(ServedInThread):
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (moto) that counts requests by
    ``X-Amz-Target`` and injects ``tests/faults.py``'s faults (``fail(fault, match=
    target)``). Requests pass through unchanged, ``Host`` included, so SigV4 signatures
    made for the proxy's URL still verify upstream.

    Args:
        upstream: ``http://host:port`` of the server to forward to.
    """

    thread_name = "counting-proxy"

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        super().__init__()
        self._lock = threading.Condition()
        self._counts: Counter[str] = Counter()
        self._requests: list[ProxiedRequest] = []
        self._met: list[Fault | None] = []  # the fault each request met, in step
        self._faults = FaultRules()
        self.connections = 0  # TCP connections accepted: proves pooling and its bound
        self.max_in_flight = 0  # most requests being answered at once
        self._in_flight = 0

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("CountingProxy is not running")
        return f"http://127.0.0.1:{self.port}"

    def _make_server(self, port: int) -> LoopbackASGIServer:
        return LoopbackASGIServer(self, port, on_accept=self._connection_accepted)

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

    def wait_for_total(self, total: int, timeout: float = REQUEST_TIMEOUT) -> bool:
        """Wait (bounded) until ``total`` requests were received in all."""
        with self._lock:
            return self._lock.wait_for(lambda: sum(self._counts.values()) >= total, timeout)

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

    def faults_met(self) -> list[Fault | None]:
        """For every request received, oldest first: the fault it met, or ``None``."""
        with self._lock:
            return list(self._met)

    def reset(self) -> None:
        """Forget counts and recorded requests (faults stay: ``clear_faults()``)."""
        with self._lock:
            self._counts.clear()
            self._requests.clear()
            self._met.clear()

    # -- faults ----------------------------------------------------------------------

    def fail(self, fault: Fault, *, times: int | None = None, match: str | None = None) -> None:
        """Make requests for target ``match`` (``None``: every request) meet ``fault``."""
        if fault.kind == "refused":
            raise ValueError("a proxy on a socket refuses by being stopped: stop()")
        self._faults.add(fault, times=times, match=match)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- the ASGI app (in the server's threads) ----------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = await _proxied(scope, receive)
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            fault = self._record(request)

            async def answer() -> Answer:
                return self._upstream(request)

            if fault is None:
                await _send(send, await answer())
            else:
                await inject(fault, scope, receive, send, answer)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _connection_accepted(self) -> None:
        with self._lock:
            self.connections += 1

    def _record(self, request: ProxiedRequest) -> Fault | None:
        fault = self._faults.take({request.target})
        with self._lock:
            self._counts[request.target] += 1
            self._requests.append(request)
            self._met.append(fault)
            self._lock.notify_all()
        return fault

    def _upstream(self, request: ProxiedRequest) -> Answer:
        """``request`` sent to moto as it came; its answer (a blocking call: each request
        has its own thread and loop here)."""
        connection = http.client.HTTPConnection(
            self._upstream_host, self._upstream_port, timeout=REQUEST_TIMEOUT
        )
        try:
            connection.putrequest(
                request.method, request.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in request.headers.multi_items():  # repeated names included
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            if request.body or request.method in ("POST", "PUT", "PATCH"):
                connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body or None)
            response = connection.getresponse()
            body = response.read()
            headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP
            ]
            return response.status, headers, body
        finally:
            connection.close()


async def _proxied(scope: Scope, receive: Receive) -> ProxiedRequest:
    body = b""
    while True:  # bounded: the request's body is read to its end once
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        path += "?" + scope["query_string"].decode("latin-1")
    headers = httpx.Headers(
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    )
    return ProxiedRequest(scope["method"], path, headers, body, headers.get("x-amz-target", ""))


async def _send(send: Send, answer: Answer) -> None:
    status, headers, body = answer
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
