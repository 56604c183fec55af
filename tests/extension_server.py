"""A fake AWS Parameters and Secrets Lambda Extension for tests.

A real HTTP/1.1 server on ``127.0.0.1`` (ephemeral port) that speaks the extension's
HTTP API, holds versioned parameters and secrets in memory, counts what it is asked,
and can be told to fail in the ways the real extension (or the AWS APIs behind it)
fails. It runs in a daemon thread, so it works whatever event loop the client uses.

    with FakeExtension() as ext:
        ext.put_parameter("/app/key", "v1", type="SecureString")
        ...  # point the client at ext.url (or ext.port) with token ext.token
        assert ext.calls("parameter", "/app/key") == 1

A fault can apply to a fraction of matching requests (``probability=``), drawn from its
own seeded generator, and ``call_log()`` tells which requests a fault was applied to.
``start(port=...)`` after ``stop()`` serves again on the same port (a restarted
extension), so a client that was refused can recover.

Standard library only.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from string import ascii_letters
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlsplit

from tests.loopback_http import LoopbackHTTPServer, ServedInThread

__all__ = ["FakeExtension", "FaultMode", "RecordedRequest"]

FaultMode = Literal[
    "error_500",
    "throttle",
    "slow",
    "malformed_json",
    "drop_mid_body",
    "not_ready",
    "access_denied",
    "trickle",  # the right answer, one byte every ``delay`` seconds (0.2 s by default)
]
Kind = Literal["parameter", "secret"]

DEFAULT_TOKEN = "test-session-token"
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
PARAMETER_PATHS = frozenset({"/systemsmanager/parameters/get", "/systemsmanager/parameters/get/"})
SECRET_PATHS = frozenset({"/secretsmanager/get", "/secretsmanager/get/"})
REGION = "us-east-1"
ACCOUNT = "123456789012"
TIMESTAMP = "2026-11-22T00:00:00.000Z"
NOT_READY_BODY = "not ready to serve traffic, please wait"
SECRET_NOT_FOUND = "Secrets Manager can't find the specified secret."


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. ``query`` holds the first value of each key, decoded;
    ``raw_query`` is the query string as sent (to check parameter order)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_query: str = ""
    method: str = "GET"


@dataclass
class _ParameterVersion:
    value: str
    type: str
    labels: set[str] = field(default_factory=set)


@dataclass
class _SecretVersion:
    version_id: str
    string: str | None
    binary: bytes | None
    stages: list[str] = field(default_factory=list)


@dataclass
class _Fault:
    mode: FaultMode
    times: int | None
    name: str | None
    delay: float
    probability: float = 1.0
    rng: random.Random | None = None

    def applies(self) -> bool:
        """Draw whether this matching request gets the fault (called under the lock)."""
        return self.rng is None or self.rng.random() < self.probability


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    drop_mid_body: bool = False
    trickle: float = 0.0  # seconds between bytes of the body


class _ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _json_reply(status: int, payload: Any) -> _Reply:
    return _Reply(status, json.dumps(payload).encode())


def _error_reply(code: str, message: str, status: int = 400) -> _Reply:
    return _json_reply(status, {"__type": code, "message": message})


def _text_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode(), content_type="text/plain; charset=utf-8")


def _parameter_arn(name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}"


def _secret_arn(secret_id: str) -> str:
    digest = hashlib.sha256(secret_id.encode()).digest()
    suffix = "".join(ascii_letters[b % len(ascii_letters)] for b in digest[:6])
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-{suffix}"


class _Server(LoopbackHTTPServer):
    def __init__(self, fake: FakeExtension, port: int = 0) -> None:
        self.fake = fake
        super().__init__(_Handler, port, on_accept=fake._connection_accepted)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeParametersSecretsExtension/1.0"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """No stderr logging."""

    @property
    def _fake(self) -> FakeExtension:
        return cast(_Server, self.server).fake

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))

    def _send(
        self, reply: _Reply, *, head: bool = False, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if reply.drop_mid_body:
            self.send_header("Content-Length", str(len(reply.body) + 4096))
            self.end_headers()
            self.wfile.write(reply.body[: max(1, len(reply.body) // 2)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if head:
            return
        if not reply.trickle:
            self.wfile.write(reply.body)
            return
        for index in range(len(reply.body)):  # bounded by the body's length
            try:
                self.wfile.write(reply.body[index : index + 1])
                self.wfile.flush()
            except OSError:  # the client gave up
                self.close_connection = True
                return
            if self._fake._stopping.wait(reply.trickle):
                self.close_connection = True
                return

    def _not_allowed(self) -> None:
        self._discard_body()
        split = urlsplit(self.path)
        self._fake._record(self._recorded(split.path, split.query), None, None)
        reply = _text_reply(405, "Method Not Allowed")
        self._send(reply, head=self.command == "HEAD", extra={"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def _recorded(self, path: str, raw_query: str) -> RecordedRequest:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(key, value)
        headers = {key.lower(): value for key, value in self.headers.items()}
        return RecordedRequest(path, query, headers, raw_query, self.command)

    def do_GET(self) -> None:
        self._discard_body()
        split = urlsplit(self.path)
        recorded = self._recorded(split.path, split.query)
        fake = self._fake
        kind: Kind | None
        if split.path in PARAMETER_PATHS:
            kind, name = "parameter", recorded.query.get("name")
        elif split.path in SECRET_PATHS:
            kind, name = "secret", recorded.query.get("secretId")
        else:
            kind, name = None, None
        fault = fake._record(recorded, kind, name)
        if kind is None:
            self._send(_text_reply(404, "Not Found"))
            return
        reply = fake._answer(kind, recorded, self.headers.get(TOKEN_HEADER), fault)
        if reply is None:  # stopped while slow: drop the connection
            self.close_connection = True
            return
        self._send(reply)


class FakeExtension(ServedInThread):
    """The extension's HTTP API on an ephemeral loopback port. See the module doc."""

    def __init__(self, *, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        super().__init__()
        self._lock = threading.RLock()
        self._parameters: dict[str, list[_ParameterVersion]] = {}
        self._secrets: dict[str, list[_SecretVersion]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._calls: dict[tuple[str, str], int] = {}
        self._call_log: list[tuple[Kind, str, FaultMode | None]] = []
        self._connections = 0

    # -- lifecycle -------------------------------------------------------------------

    thread_name = "fake-extension"

    def _make_server(self, port: int) -> _Server:
        return _Server(self, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- data ------------------------------------------------------------------------

    @staticmethod
    def parameter_arn(name: str) -> str:
        return _parameter_arn(name)

    @staticmethod
    def secret_arn(secret_id: str) -> str:
        return _secret_arn(secret_id)

    def put_parameter(
        self, name: str, value: str, *, type: str = "String", labels: Sequence[str] = ()
    ) -> int:
        """Append a new version; returns its number. ``labels`` move to this version."""
        if type not in ("String", "StringList", "SecureString"):
            raise ValueError(f"unknown parameter type {type!r}")
        if isinstance(labels, str):
            raise TypeError("labels must be a sequence of str, not a str")
        with self._lock:
            versions = self._parameters.setdefault(name, [])
            for version in versions:
                version.labels.difference_update(labels)
            versions.append(_ParameterVersion(value, type, set(labels)))
            return len(versions)

    def put_secret(
        self,
        secret_id: str,
        *,
        string: str | None = None,
        binary: bytes | None = None,
        stages: Sequence[str] = (),
    ) -> str:
        """Add a version staged AWSCURRENT (plus ``stages``, which move to it); the
        previous AWSCURRENT becomes AWSPREVIOUS. Returns the new VersionId."""
        if (string is None) == (binary is None):
            raise ValueError("give exactly one of string= or binary=")
        if isinstance(stages, str):
            raise TypeError("stages must be a sequence of str, not a str")
        version_id = str(uuid.uuid4())
        moving = {"AWSCURRENT", *stages}
        with self._lock:
            versions = self._secrets.setdefault(secret_id, [])
            for version in versions:
                had_current = "AWSCURRENT" in version.stages
                version.stages = [
                    s for s in version.stages if s not in moving and s != "AWSPREVIOUS"
                ]
                if had_current:
                    version.stages.append("AWSPREVIOUS")
            new_stages = ["AWSCURRENT", *(s for s in stages if s != "AWSCURRENT")]
            versions.append(_SecretVersion(version_id, string, binary, new_stages))
        return version_id

    def delete_parameter(self, name: str) -> None:
        with self._lock:
            del self._parameters[name]

    def delete_secret(self, secret_id: str) -> None:
        with self._lock:
            del self._secrets[secret_id]

    # -- counting --------------------------------------------------------------------

    def calls(self, kind: Kind, name: str) -> int:
        """Requests received (answered or failed) for ``name`` exactly as sent in the
        ``name`` / ``secretId`` query parameter."""
        with self._lock:
            return self._calls.get((kind, name), 0)

    @property
    def total_calls(self) -> int:
        """Requests received on the two API endpoints (any outcome)."""
        with self._lock:
            return sum(self._calls.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, any path or method, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """TCP connections accepted and not yet closed by either side."""
        server = self._server
        return 0 if server is None else server.open_connections

    @property
    def connections(self) -> int:
        """TCP connections accepted."""
        with self._lock:
            return self._connections

    def call_log(self) -> list[tuple[Kind, str, FaultMode | None]]:
        """``(kind, name, fault mode applied or None)`` for every request received on the
        two API endpoints with a name, in the order received (a copy)."""
        with self._lock:
            return list(self._call_log)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self._calls.clear()
            self._call_log.clear()
            self._connections = 0

    # -- faults ----------------------------------------------------------------------

    def fail(
        self,
        mode: FaultMode,
        *,
        times: int | None = None,
        name: str | None = None,
        delay: float = 0.0,
        probability: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Make matching requests fail. ``times=None``: until ``clear_faults()``;
        ``name=None``: every request. ``delay`` is waited before any mode's answer.
        ``probability`` < 1: each matching request gets the fault with that probability,
        drawn from ``random.Random(seed)`` (a request that draws no fault does not count
        towards ``times``). Faults stack; the oldest matching one that applies is used."""
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        rng = random.Random(seed) if probability < 1.0 else None
        with self._lock:
            self._faults.append(_Fault(mode, times, name, delay, probability, rng))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- called from handler threads ------------------------------------------------------

    def _connection_accepted(self) -> None:
        with self._lock:
            self._connections += 1

    def _record(
        self, request: RecordedRequest, kind: Kind | None, name: str | None
    ) -> _Fault | None:
        """Record and count a request; take the fault that applies to it, if any."""
        with self._lock:
            self._requests.append(request)
            if kind is None:
                return None
            chosen: _Fault | None = None
            for index, fault in enumerate(self._faults):
                if fault.name is not None and fault.name != name:
                    continue
                if not fault.applies():
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[index]
                chosen = fault
                break
            if name is not None:
                self._calls[(kind, name)] = self._calls.get((kind, name), 0) + 1
                self._call_log.append((kind, name, None if chosen is None else chosen.mode))
            return chosen

    def _answer(
        self, kind: Kind, request: RecordedRequest, token: str | None, fault: _Fault | None
    ) -> _Reply | None:
        if request.headers.get("x-forwarded-for") is not None:
            return _text_reply(400, "X-Forwarded-For header is not allowed")
        trickle = 0.0
        if fault is not None and fault.mode == "trickle":
            trickle, fault = fault.delay or 0.2, None
        if fault is not None:
            if fault.delay > 0 and self._stopping.wait(fault.delay):
                return None
            reply = self._fault_reply(fault.mode)
            if reply is not None:
                return reply
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return _text_reply(401, "Unauthorized: missing or invalid " + TOKEN_HEADER)
        try:
            if kind == "parameter":
                reply = _json_reply(200, self._get_parameter(request))
            else:
                reply = _json_reply(200, self._get_secret(request))
            return dataclasses.replace(reply, trickle=trickle) if trickle else reply
        except _ApiError as error:
            return _error_reply(error.code, error.message, error.status)

    @staticmethod
    def _fault_reply(mode: FaultMode) -> _Reply | None:
        if mode == "error_500":
            return _error_reply("InternalServerError", "Internal server error (injected)", 500)
        if mode == "throttle":
            return _error_reply("ThrottlingException", "Rate exceeded")
        if mode == "malformed_json":
            return _Reply(200, b'{"Parameter": {"Name": ')
        if mode == "drop_mid_body":
            body = json.dumps({"Parameter": {"Name": "dropped", "Value": "x" * 64}}).encode()
            return _Reply(200, body, drop_mid_body=True)
        if mode == "not_ready":
            return _text_reply(400, NOT_READY_BODY)
        if mode == "access_denied":
            return _error_reply("AccessDeniedException", "User is not authorized")
        return None  # slow: answer normally

    def _get_parameter(self, request: RecordedRequest) -> dict[str, Any]:
        raw_name = request.query.get("name", "")
        if not raw_name:
            raise _ApiError("ValidationException", "name is required")
        decrypt_raw = request.query.get("withDecryption", "false").lower()
        if decrypt_raw not in ("true", "false"):
            raise _ApiError("ValidationException", "withDecryption must be true or false")
        # SSM takes one selector: the first of version/label in the query wins.
        selector: str | None = None
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            if key in ("version", "label"):
                if key == "version" and not value.isdigit():
                    raise _ApiError("ValidationException", "version must be a positive integer")
                if key == "label" and (not value or value.isdigit()):
                    raise _ApiError("ValidationException", "invalid label")
                selector = value
                break
        name = raw_name
        resource = raw_name
        if raw_name.startswith("arn:"):
            marker = ":parameter"
            if marker not in raw_name:
                raise _ApiError("ValidationException", "invalid parameter ARN")
            resource = raw_name.split(marker, 1)[1]
        if ":" in resource:  # name:3 or name:label (names cannot contain ':')
            resource, suffix = resource.rsplit(":", 1)
            if selector is None:
                selector = suffix
        with self._lock:
            if raw_name.startswith("arn:"):
                candidates = [resource, resource.lstrip("/")]
                name = next((c for c in candidates if c in self._parameters), resource)
            else:
                name = resource
            versions = self._parameters.get(name)
            if not versions:
                raise _ApiError("ParameterNotFound", f"Parameter {name} not found.")
            if selector is None:
                number = len(versions)
            elif selector.isdigit():
                number = int(selector)
                if not 1 <= number <= len(versions):
                    raise _ApiError(
                        "ParameterVersionNotFound",
                        f"Systems Manager could not find version {selector} of {name}. "
                        "Verify the version and try again.",
                    )
            else:
                found = [i for i, v in enumerate(versions, 1) if selector in v.labels]
                if not found:
                    raise _ApiError("ParameterNotFound", f"Parameter {name}:{selector} not found.")
                number = found[0]
            version = versions[number - 1]
            value = version.value
            if version.type == "SecureString" and decrypt_raw != "true":
                seed = hashlib.sha256(f"{name}#{number}".encode()).digest()
                value = base64.b64encode(b"ciphertext:" + seed).decode()
            return {
                "Parameter": {
                    "ARN": _parameter_arn(name),
                    "DataType": "text",
                    "LastModifiedDate": TIMESTAMP,
                    "Name": name,
                    "Selector": None if selector is None else f":{selector}",
                    "SourceResult": None,
                    "Type": version.type,
                    "Value": value,
                    "Version": number,
                },
                "ResultMetadata": {},
            }

    def _get_secret(self, request: RecordedRequest) -> dict[str, Any]:
        secret_id = request.query.get("secretId", "")
        if not secret_id:
            raise _ApiError("ValidationException", "secretId is required")
        stage = request.query.get("versionStage") or None
        version_id = request.query.get("versionId") or None
        with self._lock:
            name = secret_id
            if secret_id.startswith("arn:"):
                name = next(
                    (
                        n
                        for n in self._secrets
                        if secret_id in (_secret_arn(n), _secret_arn(n)[:-7])
                    ),
                    secret_id,
                )
            versions = self._secrets.get(name)
            if not versions:
                raise _ApiError("ResourceNotFoundException", SECRET_NOT_FOUND)
            if stage is None and version_id is None:
                stage = "AWSCURRENT"
            matches = [
                v
                for v in versions
                if (version_id is None or v.version_id == version_id)
                and (stage is None or stage in v.stages)
            ]
            if not matches:
                raise _ApiError(
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret value for "
                    + (f"VersionId: {version_id}" if version_id else f"staging label: {stage}"),
                )
            version = matches[0]
            return {
                "ARN": _secret_arn(name),
                "CreatedDate": TIMESTAMP,
                "Name": name,
                "SecretBinary": (
                    None if version.binary is None else base64.b64encode(version.binary).decode()
                ),
                "SecretString": version.string,
                "VersionId": version.version_id,
                "VersionStages": list(version.stages),
                "ResultMetadata": {},
            }
