"""The SSM and Secrets Manager JSON APIs, in memory, for ``httpx.MockTransport``:
answering as they do, counting what they are asked, and failing the ways a network fails.
(The extension's HTTP API has its own fake, ``tests/extension_server.py``: the package's
local server behind a fault-injecting layer, in process or on a socket.)

    aws = MockAws()
    aws.put_parameter("/app/key", "v1")
    source = AwsSource(region=aws.region, transport=aws.transport())
    aws.fail("throttling", action="BatchGetSecretValue", times=2)
    ...
    assert aws.count("GetParameter") == 1

A fault is what our code sees of it: the exception httpx raises (``refused``: a connect
error; ``dropped``: a body cut off), an answer (``5xx``, ``throttling``, ``not_ready``, a
``malformed`` JSON body, a well-formed one with ``no_value``), or time (``slow``: nothing
for longer than any bound; ``trickle``: a body that comes one byte at a time). No socket
and no thread: the tests of our retries, parsing and time bounds are fast and
deterministic. ``tests/moto_server.py`` is the real socket. Every call is recorded with
the fault applied to it, so a test can check that the fault it injected is what happened.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

import anyio
import httpx

__all__ = [
    "ACCOUNT",
    "REGION",
    "SLOW_SECONDS",
    "TRICKLE_SECONDS",
    "Call",
    "Fault",
    "MockAws",
    "MockUpstream",
]

Fault = Literal[
    "refused",
    "slow",
    "trickle",
    "5xx",
    "throttling",
    "malformed",
    "no_value",
    "dropped",
    "not_ready",
]
REGION = "us-east-1"
ACCOUNT = "123456789012"
# Longer than any bound a test sets, yet finite: a bound that does not hold makes the
# test fail (the value arrives) rather than hang.
SLOW_SECONDS = 30.0
TRICKLE_SECONDS = 0.05  # between two bytes of a trickled body: 10 s for 200 bytes
_VALUE_FIELDS = frozenset({"Value", "SecretString", "SecretBinary"})


@dataclass(frozen=True)
class Call:
    """One request as the upstream saw it.

    Attributes:
        action: The AWS action (``GetParameter``, ``BatchGetSecretValue``...), or
            ``parameter`` / ``secret`` for the extension's two paths.
        names: The parameter names or secret ids it asked for.
        fault: The fault applied to it, if any.
    """

    action: str
    names: tuple[str, ...]
    fault: Fault | None


@dataclass
class _Injected:
    fault: Fault
    action: str | None
    name: str | None
    times: int | None


class MockUpstream:
    """An upstream in memory: values, faults and the record of calls (``MockAws``'s base)."""

    faults: frozenset[Fault] = frozenset()
    content_type = "application/json"

    def __init__(self) -> None:
        self.parameters: dict[str, list[tuple[str, str]]] = {}  # name -> [(value, type)]
        self.secrets: dict[str, str] = {}
        self.calls: list[Call] = []
        # Slow or trickled answers the client stopped waiting for (its time bound held).
        self.cut_off = 0
        self._injected: list[_Injected] = []

    # -- values ------------------------------------------------------------------------

    def put_parameter(self, name: str, value: str, *, type: str = "String") -> None:
        """Add a new version of a parameter."""
        self.parameters.setdefault(name, []).append((value, type))

    def put_secret(self, secret_id: str, string: str) -> None:
        """Set a secret's current ``SecretString``."""
        self.secrets[secret_id] = string

    # -- faults ------------------------------------------------------------------------

    def fail(
        self,
        fault: Fault,
        *,
        action: str | None = None,
        name: str | None = None,
        times: int | None = None,
    ) -> None:
        """Apply ``fault`` to the matching requests (``None``: every one) until
        :meth:`heal`, or to the next ``times`` of them. The oldest matching fault wins."""
        if fault not in self.faults:
            raise ValueError(f"{type(self).__name__} has no fault {fault!r}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        self._injected.append(_Injected(fault, action, name, times))

    def heal(self) -> None:
        """No more faults."""
        self._injected.clear()

    # -- counting ----------------------------------------------------------------------

    def count(self, action: str | None = None, name: str | None = None) -> int:
        """Requests received (any outcome) for ``action`` and naming ``name``."""
        return sum(
            1
            for call in self.calls
            if (action is None or call.action == action) and (name is None or name in call.names)
        )

    def transport(self) -> httpx.MockTransport:
        """A transport that sends every request here."""
        return httpx.MockTransport(self.handle)

    # -- answering ---------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` as the upstream would, with the fault that applies."""
        action, names, document = self._route(request)
        fault = self._take_fault(action, names)
        self.calls.append(Call(action, names, fault))
        if fault == "refused":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if fault == "slow":
            await self._wait(SLOW_SECONDS)
        if fault in ("5xx", "throttling", "not_ready"):
            status, content_type, body = self._error(fault)
            return httpx.Response(status, headers={"Content-Type": content_type}, content=body)
        status, answer = self._answer(action, document, request)
        if status == 200 and fault == "no_value":
            answer = _without_values(answer)
        body = json.dumps(answer).encode()
        headers = {"Content-Type": self.content_type}
        if status != 200:
            return httpx.Response(status, headers=headers, content=body)
        if fault == "malformed":  # a 200 whose JSON stops halfway
            return httpx.Response(200, headers=headers, content=body[: len(body) // 2])
        if fault == "dropped":
            return httpx.Response(200, headers=headers, content=self._dropped(body))
        if fault == "trickle":
            return httpx.Response(200, headers=headers, content=self._trickled(body))
        return httpx.Response(200, headers=headers, content=body)

    def _route(self, request: httpx.Request) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        raise NotImplementedError

    def _answer(
        self, action: str, document: dict[str, Any], request: httpx.Request
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def _error(self, fault: Fault) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def _take_fault(self, action: str, names: tuple[str, ...]) -> Fault | None:
        for index, injected in enumerate(self._injected):
            if injected.action is not None and injected.action != action:
                continue
            if injected.name is not None and injected.name not in names:
                continue
            if injected.times is not None:
                injected.times -= 1
                if injected.times == 0:
                    del self._injected[index]
            return injected.fault
        return None

    async def _wait(self, seconds: float) -> None:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            self.cut_off += 1
            raise

    async def _dropped(self, body: bytes) -> AsyncIterator[bytes]:
        # What httpx raises when a peer closes the connection before the whole body.
        yield body[: len(body) // 2]
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )

    async def _trickled(self, body: bytes) -> AsyncIterator[bytes]:
        for index in range(len(body)):
            yield body[index : index + 1]
            await self._wait(TRICKLE_SECONDS)


def _without_values(answer: Any) -> Any:
    """The same answer, every record without its value (a 200 with nothing usable)."""
    if isinstance(answer, dict):
        return {k: _without_values(v) for k, v in answer.items() if k not in _VALUE_FIELDS}
    if isinstance(answer, list):
        return [_without_values(item) for item in answer]
    return answer


def _parameter_record(name: str, versions: list[tuple[str, str]]) -> dict[str, Any]:
    value, type_ = versions[-1]
    return {
        "Name": name,
        "Type": type_,
        "Value": value,
        "Version": len(versions),
        "LastModifiedDate": 1_700_000_000.0,
        "ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}",
        "DataType": "text",
    }


def _version_id(version: int) -> str:
    return f"00000000-0000-4000-8000-{version:012d}"


def _secret_record(secret_id: str, string: str, version: int = 1) -> dict[str, Any]:
    return {
        "ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-AbCdEf",
        "Name": secret_id,
        "VersionId": _version_id(version),
        "SecretString": string,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000.0,
    }


class MockAws(MockUpstream):
    """SSM and Secrets Manager's JSON APIs at their AWS endpoints in ``region``: ``POST``
    with ``X-Amz-Target``, SigV4-signed for the right region and service.

    Args:
        region: The region whose endpoints it answers for.
    """

    faults = frozenset(get_args(Fault)) - {"not_ready"}  # the extension's own answer
    content_type = "application/x-amz-json-1.1"
    _SERVICES: ClassVar[dict[str, str]] = {"AmazonSSM": "ssm", "secretsmanager": "secretsmanager"}

    def __init__(self, region: str = REGION) -> None:
        super().__init__()
        self.region = region
        # secret id -> its AWSCURRENT version's number (1, 2, ...: one per put_secret),
        # and the NextRotationDate DescribeSecret answers (epoch seconds; absent: off).
        self.secret_versions: dict[str, int] = {}
        self.rotation_dates: dict[str, float] = {}

    def put_secret(self, secret_id: str, string: str) -> None:
        """Set a secret's current ``SecretString``: a new version, labelled AWSCURRENT."""
        super().put_secret(secret_id, string)
        self.secret_versions[secret_id] = self.secret_versions.get(secret_id, 0) + 1

    def _describe(self, secret_id: str) -> dict[str, Any]:
        record = self._current_secret(secret_id)
        answer = {
            "ARN": record["ARN"],
            "Name": secret_id,
            "VersionIdsToStages": {record["VersionId"]: ["AWSCURRENT"]},
        }
        if secret_id in self.rotation_dates:
            answer |= {"RotationEnabled": True, "NextRotationDate": self.rotation_dates[secret_id]}
        return answer

    def _current_secret(self, secret_id: str) -> dict[str, Any]:
        version = self.secret_versions.get(secret_id, 1)
        return _secret_record(secret_id, self.secrets[secret_id], version)

    def _route(self, request: httpx.Request) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        try:
            document = json.loads(request.content or b"{}")
        except ValueError:
            document = {}
        if not isinstance(document, dict):
            document = {}
        names: list[str] = []
        for key in ("Name", "SecretId"):
            if isinstance(document.get(key), str):
                names.append(document[key])
        for key in ("Names", "SecretIdList"):
            if isinstance(document.get(key), list):
                names += [str(name) for name in document[key]]
        return action, tuple(names), document

    def _refusal(self, request: httpx.Request) -> tuple[int, Any] | None:
        """Why AWS would not even look at ``request``, if it would not."""
        prefix = request.headers.get("X-Amz-Target", "").partition(".")[0]
        service = self._SERVICES.get(prefix)
        if request.method != "POST" or service is None:
            return 400, {"__type": "UnknownOperationException", "message": prefix}
        if urlsplit(str(request.url)).hostname != f"{service}.{self.region}.amazonaws.com":
            return 400, {"__type": "UnknownOperationException", "message": "wrong endpoint"}
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 Credential=") or (
            f"/{self.region}/{service}/aws4_request" not in authorization
        ):
            return 400, {"__type": "IncompleteSignatureException", "message": "not signed"}
        return None

    def _answer(
        self, action: str, document: dict[str, Any], request: httpx.Request
    ) -> tuple[int, Any]:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if action == "GetParameter":
            name = str(document.get("Name"))
            if name not in self.parameters:
                return 400, {"__type": "ParameterNotFound", "message": ""}
            return 200, {"Parameter": _parameter_record(name, self.parameters[name])}
        if action == "GetParameters":
            asked = [str(name) for name in document.get("Names", [])]
            return 200, {
                "Parameters": [
                    _parameter_record(n, self.parameters[n]) for n in asked if n in self.parameters
                ],
                "InvalidParameters": [n for n in asked if n not in self.parameters],
            }
        if action == "GetSecretValue":
            secret_id = str(document.get("SecretId"))
            if secret_id not in self.secrets:
                return 400, {"__type": "ResourceNotFoundException", "message": "not found"}
            return 200, self._current_secret(secret_id)
        if action == "DescribeSecret":
            secret_id = str(document.get("SecretId"))
            if secret_id not in self.secrets:
                return 400, {"__type": "ResourceNotFoundException", "message": "not found"}
            return 200, self._describe(secret_id)
        if action == "BatchGetSecretValue":
            asked = [str(i) for i in document.get("SecretIdList", [])]
            return 200, {
                "SecretValues": [self._current_secret(i) for i in asked if i in self.secrets],
                "Errors": [
                    {"SecretId": i, "ErrorCode": "ResourceNotFoundException", "Message": ""}
                    for i in asked
                    if i not in self.secrets
                ],
            }
        return 400, {"__type": "UnknownOperationException", "message": action}

    def _error(self, fault: Fault) -> tuple[int, str, bytes]:
        if fault == "5xx":
            error = {"__type": "InternalFailure", "message": "internal failure"}
            return 500, self.content_type, json.dumps(error).encode()
        error = {"__type": "ThrottlingException", "message": "Rate exceeded"}
        return 400, self.content_type, json.dumps(error).encode()
