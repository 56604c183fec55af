"""SSM and Secrets Manager's JSON APIs in memory, for ``httpx.MockTransport``: the unit
tests of our parsing, retries and time bounds, where an answer must be scripted exactly
and no socket or thread may blur the count (integration tests use moto's server behind
``tests/moto_server.py``'s ``CountingProxy``; the extension has ``tests/extension_server.py``).

    aws = MockAws()
    aws.put_parameter("/app/key", "v1")
    source = AwsSource(region=aws.region, transport=aws.transport())
    aws.fail(faults.throttle(), match="BatchGetSecretValue", times=2)
    ...
    assert aws.count("GetParameter") == 1

Faults are ``tests/faults.py``'s (``match``: the action or a name asked for), played as
every fake plays them; every call is recorded with the fault it met.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from tests import faults
from tests.faults import Fault, FaultRules

__all__ = ["ACCOUNT", "REGION", "Call", "MockAws"]

REGION = "us-east-1"
ACCOUNT = "123456789012"
_JSON = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Call:
    """One request as the upstream saw it: the AWS action (``GetParameter``...), the
    names or secret ids it asked for, and the fault it met, if any."""

    action: str
    names: tuple[str, ...]
    fault: Fault | None


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


class MockAws:
    """SSM and Secrets Manager's JSON APIs at their AWS endpoints in ``region``: ``POST``
    with ``X-Amz-Target``, SigV4-signed for the right region and service.

    Args:
        region: The region whose endpoints it answers for.
    """

    _SERVICES: ClassVar[dict[str, str]] = {"AmazonSSM": "ssm", "secretsmanager": "secretsmanager"}

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.parameters: dict[str, list[tuple[str, str]]] = {}  # name -> [(value, type)]
        self.secrets: dict[str, str] = {}
        self.calls: list[Call] = []
        # Late or trickled answers the client stopped waiting for (its time bound held).
        self.cut_off = 0
        self._faults = FaultRules()
        # secret id -> its AWSCURRENT version's number (1, 2, ...: one per put_secret),
        # and the NextRotationDate DescribeSecret answers (epoch seconds; absent: off).
        self.secret_versions: dict[str, int] = {}
        self.rotation_dates: dict[str, float] = {}

    # -- values ------------------------------------------------------------------------

    def put_parameter(self, name: str, value: str, *, type: str = "String") -> None:
        """Add a new version of a parameter."""
        self.parameters.setdefault(name, []).append((value, type))

    def put_secret(self, secret_id: str, string: str) -> None:
        """Set a secret's current ``SecretString``: a new version, labelled AWSCURRENT."""
        self.secrets[secret_id] = string
        self.secret_versions[secret_id] = self.secret_versions.get(secret_id, 0) + 1

    # -- faults and counting -------------------------------------------------------------

    def fail(self, fault: Fault, *, times: int | None = None, match: str | None = None) -> None:
        """Make requests for action or name ``match`` (``None``: every one) meet ``fault``."""
        self._faults.add(fault, times=times, match=match)

    def heal(self) -> None:
        """No more faults."""
        self._faults.clear()

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
        """Answer ``request`` as AWS would, with the fault that applies."""
        action, names, document = self._route(request)
        fault = self._faults.take({action, *names})
        self.calls.append(Call(action, names, fault))
        status, answer = self._answer(action, document, request)
        body = json.dumps(answer).encode()
        if fault is None:
            return httpx.Response(status, headers={"Content-Type": _JSON}, content=body)

        async def right() -> faults.Answer:
            return status, [(b"content-type", _JSON.encode())], body

        return await faults.mock_response(fault, request, right, on_cut_off=self._cut)

    def _cut(self) -> None:
        self.cut_off += 1

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
