"""A fake AWS Systems Manager Cloud Extensions runtime, built from AWS's documentation, for
``httpx.ASGITransport`` (no socket): the Parameter Store extension (``POST
/parameterstore``, SSM JSON 1.1, SigV4 for ``ssm`` checked against botocore's signer) and
the Secrets Manager extension (``GET /secretsmanager/get?secretId=``, the SSRF token in
``X-Aws-Parameters-Secrets-Token`` and SigV4 for ``secretsmanager``, as the runtime
requires by default; ``roleArn`` answers from ``role_secrets[role]``, as the runtime
keeps a cache per role). Errors carry ``X-Amzn-Errortype``, with ``message`` from the
extension and ``Message`` from the runtime. Faults are ``tests/faults.py``'s, answered
as the runtime answers (``Message``): ``fail(LOADING, times=n)`` is an extension still
loading; ``fail(faults.throttle(retry_after="5"), match="secretsmanager/get")`` a 429
with ``Retry-After`` (``match``: the operation). Counts every request by operation.

    fake = FakeCloudExtensions(credentials=("AKID", "secret", None), token="ssrf")
    fake.parameters["/app/key"] = "v"
    source = CloudExtensionsSource(region="us-east-1", credentials=..., transport=fake.transport())
"""

from __future__ import annotations

import datetime
import hmac
import json
import time
from collections import Counter
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl

import botocore.auth
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from tests import faults
from tests.faults import Fault, FaultRules

REGION = "us-east-1"
TOKEN_HEADER = "x-aws-parameters-secrets-token"
LOADING = faults.status(503, "ServiceUnavailableException", "the extension is loading")
_JSON = b"application/x-amz-json-1.1"


def _runtime_error(fault: Fault) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An error as the runtime words it (``Message``)."""
    code = (fault.aws_code or "").encode()
    headers = [(b"content-type", _JSON), (b"x-amzn-errortype", code)]
    return headers, json.dumps({"Message": fault.message}).encode()


def with_lambda_credentials(monkeypatch: pytest.MonkeyPatch, keys: tuple[str, str, str]) -> None:
    """The function's credentials and region in the environment, as on Lambda: what a
    caller signs with (runtimeCredentials authentication)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[1])
    monkeypatch.setenv("AWS_SESSION_TOKEN", keys[2])
    monkeypatch.setenv("AWS_REGION", REGION)


class FakeCloudExtensions:
    """The runtime's two extensions, in memory; see the module's docstring."""

    def __init__(
        self, *, credentials: tuple[str, str, str | None], token: str, region: str = REGION
    ) -> None:
        self.credentials = credentials
        self.token = token
        self.region = region
        self.parameters: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.role_secrets: dict[str, dict[str, str]] = {}  # roleArn -> secrets
        self.calls: Counter[str] = Counter()
        self.signatures_checked = 0
        self.roles_asked: list[str] = []
        self.asked_at: list[float] = []  # when each Secrets Manager request came
        self._faults = FaultRules()
        self.faults_met: list[Fault | None] = []  # for each request, the fault it met

    def fail(self, fault: Fault, *, times: int | None = None, match: str | None = None) -> None:
        """Make requests for operation ``match`` (``GetParameter``, ``GetParameters``,
        ``secretsmanager/get``; ``None``: every one) meet ``fault``."""
        self._faults.add(fault, times=times, match=match)

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        fault = self._faults.take({self._count(scope, headers)})
        self.faults_met.append(fault)

        async def answer() -> faults.Answer:
            status, error_type, answer = self._answer(scope, headers, body)
            response_headers = [(b"content-type", _JSON)]
            if error_type is not None:
                response_headers.append((b"x-amzn-errortype", error_type.encode()))
            return status, response_headers, json.dumps(answer).encode()

        if fault is None:
            status, response_headers, payload = await answer()
            start = {"type": "http.response.start", "status": status, "headers": response_headers}
            await send(start)
            await send({"type": "http.response.body", "body": payload})
        else:
            await faults.inject(fault, scope, receive, send, answer, error_body=_runtime_error)

    def _count(self, scope: Any, headers: dict[str, str]) -> str:
        """Count the request by operation; return the operation."""
        if scope["path"] == "/parameterstore":
            operation = headers.get("x-amz-target", "").removeprefix("AmazonSSM.")
        else:
            operation = scope["path"].removeprefix("/")
            self.asked_at.append(time.monotonic())
        self.calls[operation] += 1
        return operation

    def _answer(
        self, scope: Any, headers: dict[str, str], body: bytes
    ) -> tuple[int, str | None, Any]:
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/parameterstore":
            operation = headers.get("x-amz-target", "").removeprefix("AmazonSSM.")
            if not self._signed_right(scope, headers, body):
                return 400, "AccessDeniedException", {"Message": "SIGNATURE_MISMATCH"}
            return self._parameter_store(operation, json.loads(body))
        if method == "GET" and path == "/secretsmanager/get":
            return self._secrets_manager(scope, headers)
        return 400, "ValidationException", {"Message": "unknown operation"}

    def _secrets_manager(self, scope: Any, headers: dict[str, str]) -> tuple[int, str | None, Any]:
        if "x-forwarded-for" in headers:
            return 400, "BadRequestException", {"message": "X-Forwarded-For is refused"}
        if "authorization" not in headers:
            return 401, "MissingAuthenticationToken", {"Message": "the request is not signed"}
        if not self._signed_right(scope, headers, b"", method="GET", service="secretsmanager"):
            return 403, "SignatureDoesNotMatch", {"Message": "the signature does not match"}
        given = headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return 403, "InvalidSsrfTokenException", {"message": "missing or wrong token"}
        query = dict(parse_qsl(scope["query_string"].decode()))
        secret_id = query.get("secretId", "")
        secrets = self.secrets
        if "roleArn" in query:
            self.roles_asked.append(query["roleArn"])
            secrets = self.role_secrets.get(query["roleArn"], {})
        if secret_id not in secrets:
            message = "Secrets Manager can't find the specified secret."
            return 400, "ResourceNotFoundException", {"message": message}
        return 200, None, self._secret(secret_id, secrets[secret_id])

    def _signed_right(
        self,
        scope: Any,
        headers: dict[str, str],
        body: bytes,
        *,
        method: str = "POST",
        service: str = "ssm",
    ) -> bool:
        """Recompute the signature with botocore's SigV4Auth at the request's own time."""
        authorization = headers.get("authorization", "")
        if "Signature=" not in authorization:
            return False
        moment = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        url = f"http://{headers['host']}{scope['path']}"
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode()
        unsigned = {
            k: v
            for k, v in headers.items()
            if k not in ("authorization", "x-amz-date", "x-amz-security-token")
            and k in authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        }
        request = AWSRequest(method=method, url=url, headers=unsigned, data=body)
        access_key, secret_key, token = self.credentials
        auth = botocore.auth.SigV4Auth(
            BotoCredentials(access_key, secret_key, token), service, self.region
        )
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=moment):
            auth.add_auth(request)
        self.signatures_checked += 1
        return hmac.compare_digest(request.headers["Authorization"], authorization)

    def _parameter_store(self, operation: str, body: dict[str, Any]) -> tuple[int, str | None, Any]:
        if operation == "GetParameter":
            name = body["Name"]
            if name not in self.parameters:
                return 400, "ParameterNotFound", {"Message": f"{name} not found"}
            return 200, None, {"Parameter": self._parameter(name)}
        if operation == "GetParameters":
            names = body["Names"]
            found = [self._parameter(n) for n in names if n in self.parameters]
            invalid = [n for n in names if n not in self.parameters]
            return 200, None, {"Parameters": found, "InvalidParameters": invalid}
        return 400, "ValidationException", {"Message": f"{operation} is not an operation"}

    def _parameter(self, name: str) -> dict[str, Any]:
        return {
            "Name": name,
            "Type": "String",
            "Value": self.parameters[name],
            "Version": 1,
            "ARN": f"arn:aws:ssm:{self.region}:123456789012:parameter{name}",
            "DataType": "text",
        }

    def _secret(self, secret_id: str, value: str) -> dict[str, Any]:
        return {
            "ARN": f"arn:aws:secretsmanager:{self.region}:123456789012:secret:{secret_id}-AbCdEf",
            "Name": secret_id,
            "VersionId": "v1",
            "SecretString": value,
            "VersionStages": ["AWSCURRENT"],
        }
