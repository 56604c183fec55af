"""Real-shaped AWS Lambda HTTP events and context objects, for invoking Mangum handlers.

    response = invoke(handler, "http_api_v2", "/items", query={"q": "x"})
    assert response.status == 200 and response.json() == {...}

Event kinds and the Mangum 0.22 handler each one is inferred as:

- ``api_gateway_v1``: API Gateway REST API proxy integration (payload 1.0, with
  ``multiValueHeaders`` / ``multiValueQueryStringParameters``) -> ``APIGateway``
- ``http_api_v2``: API Gateway HTTP API, payload format 2.0 -> ``HTTPGateway``
- ``alb``: Application Load Balancer target group, multi-value headers off -> ``ALB``
- ``function_url``: Lambda function URL (payload 2.0) -> ``HTTPGateway``

Standard library only.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, quote, urlencode

__all__ = ["EVENT_KINDS", "EventKind", "LambdaContext", "LambdaResponse", "invoke", "make_event"]

EventKind = Literal["api_gateway_v1", "http_api_v2", "alb", "function_url"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)

REGION = "us-east-1"
ACCOUNT = "123456789012"
SOURCE_IP = "203.0.113.7"
USER_AGENT = "python-tests/1.0"
REST_API_ID = "a1b2c3d4e5"
HTTP_API_ID = "f6g7h8i9j0"
FUNCTION_URL_ID = "abcdefghijklmnopqrstuvwxyz234567"
TARGET_GROUP_ARN = (
    f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/demo-tg/0123456789abcdef"
)
_PATH_SAFE = "/:@!$&'()*+,;="


class LambdaContext:
    """Shaped like ``awslambdaric``'s context object (``memory_limit_in_mb`` is a str
    there, read from ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``). The remaining time counts
    down from construction."""

    def __init__(self, *, remaining_ms: int = 30_000, function_name: str = "demo") -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = "512"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"2026/11/22/[$LATEST]{uuid.uuid4().hex}"
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(function_name={self.function_name!r}, "
            f"aws_request_id={self.aws_request_id!r})"
        )


@dataclass
class LambdaResponse:
    """A handler's response, normalised: header names lower-cased, repeated headers
    joined with ``", "`` in ``headers`` and kept apart in ``multi_headers`` (v2
    ``cookies`` become ``set-cookie``), a base64 body decoded."""

    status: int
    headers: dict[str, str]
    body: str
    content: bytes = b""
    multi_headers: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def _split_path(path: str, query: Mapping[str, str] | None) -> tuple[str, list[tuple[str, str]]]:
    if not path.startswith("/"):
        path = "/" + path
    pairs: list[tuple[str, str]] = []
    if "?" in path:
        path, raw = path.split("?", 1)
        pairs.extend(parse_qsl(raw, keep_blank_values=True))
    if query:
        pairs.extend(query.items())
    return path, pairs


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _merge_headers(defaults: dict[str, str], given: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(defaults)
    for key, value in (given or {}).items():
        for existing in [k for k in merged if k.lower() == key.lower()]:
            del merged[existing]
        merged[key] = value
    return merged


def _body(body: str | bytes | None) -> tuple[str | None, bool]:
    if isinstance(body, bytes):
        return base64.b64encode(body).decode(), True
    return body, False


def _now() -> tuple[str, int]:
    epoch_ms = int(time.time() * 1000)
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000)), epoch_ms


def _api_gateway_v1(
    path: str,
    pairs: list[tuple[str, str]],
    method: str,
    headers: Mapping[str, str] | None,
    body: str | bytes | None,
) -> dict[str, Any]:
    host = f"{REST_API_ID}.execute-api.{REGION}.amazonaws.com"
    merged = _merge_headers(
        {
            "Accept": "*/*",
            "CloudFront-Forwarded-Proto": "https",
            "CloudFront-Is-Desktop-Viewer": "true",
            "CloudFront-Viewer-Country": "US",
            "Host": host,
            "User-Agent": USER_AGENT,
            "Via": "2.0 0123456789abcdef0123456789abcdef.cloudfront.net (CloudFront)",
            "X-Amz-Cf-Id": "Qx0vX5n1x6uQ1kQ3a2mVbV8Xo3Qj4RzQmY1m1pYy7nq0c8oE9d1hSg==",
            "X-Amzn-Trace-Id": "Root=1-6740a1b2-0123456789abcdef01234567",
            "X-Forwarded-For": f"{SOURCE_IP}, 130.176.0.1",
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https",
        },
        headers,
    )
    encoded_body, is_b64 = _body(body)
    request_time, epoch_ms = _now()
    multi_query = _multi(pairs)
    is_root = path == "/"
    return {
        "resource": "/" if is_root else "/{proxy+}",
        "path": quote(path, safe=_PATH_SAFE),
        "httpMethod": method,
        "headers": merged,
        "multiValueHeaders": {k: [v] for k, v in merged.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None if is_root else {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": "/" if is_root else "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "Bq3X1FzToAMFkWQ=",
            "requestTime": request_time,
            "path": "/prod" + path,
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": REST_API_ID,
            "requestTimeEpoch": epoch_ms,
            "requestId": str(uuid.uuid4()),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": SOURCE_IP,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": merged.get("User-Agent", USER_AGENT),
                "user": None,
            },
            "domainName": host,
            "apiId": REST_API_ID,
        },
        "body": encoded_body,
        "isBase64Encoded": is_b64,
    }


def _payload_v2(
    path: str,
    pairs: list[tuple[str, str]],
    method: str,
    headers: Mapping[str, str] | None,
    body: str | bytes | None,
    *,
    function_url: bool,
) -> dict[str, Any]:
    if function_url:
        api_id = FUNCTION_URL_ID
        host = f"{api_id}.lambda-url.{REGION}.on.aws"
    else:
        api_id = HTTP_API_ID
        host = f"{api_id}.execute-api.{REGION}.amazonaws.com"
    defaults = {
        "accept": "*/*",
        "host": host,
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": "Root=1-6740a1b2-0123456789abcdef01234567",
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    merged = {k.lower(): v for k, v in _merge_headers(defaults, headers).items()}
    cookie_header = merged.pop("cookie", None)
    cookies = [c.strip() for c in cookie_header.split(";") if c.strip()] if cookie_header else []
    raw_path = quote(path, safe=_PATH_SAFE)
    encoded_body, is_b64 = _body(body)
    request_time, epoch_ms = _now()
    request_context: dict[str, Any] = {
        "accountId": "anonymous" if function_url else ACCOUNT,
        "apiId": api_id,
        "domainName": host,
        "domainPrefix": api_id,
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": SOURCE_IP,
            "userAgent": merged.get("user-agent", USER_AGENT),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": request_time,
        "timeEpoch": epoch_ms,
    }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": urlencode(pairs, quote_via=quote),
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if pairs:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in _multi(pairs).items()}
    event["requestContext"] = request_context
    if encoded_body is not None:
        event["body"] = encoded_body
    event["isBase64Encoded"] = is_b64
    return event


def _alb(
    path: str,
    pairs: list[tuple[str, str]],
    method: str,
    headers: Mapping[str, str] | None,
    body: str | bytes | None,
) -> dict[str, Any]:
    defaults = {
        "accept": "*/*",
        "host": f"demo-alb-1234567890.{REGION}.elb.amazonaws.com",
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": "Root=1-6740a1b2-0123456789abcdef01234567",
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    merged = {k.lower(): v for k, v in _merge_headers(defaults, headers).items()}
    encoded_body, is_b64 = _body(body)
    # ALB passes the query as the client sent it (still percent-encoded); with
    # multi-value headers off, a repeated key keeps its last value.
    query = {quote(k, safe=""): quote(v, safe="") for k, v in pairs}
    return {
        "requestContext": {"elb": {"targetGroupArn": TARGET_GROUP_ARN}},
        "httpMethod": method,
        "path": quote(path, safe=_PATH_SAFE),
        "queryStringParameters": query,
        "headers": merged,
        "body": encoded_body if encoded_body is not None else "",
        "isBase64Encoded": is_b64,
    }


def make_event(
    kind: EventKind,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
) -> dict[str, Any]:
    """A fresh event of ``kind``. ``path`` may carry a query string (``/x?a=1&a=2``),
    merged before ``query``. A ``bytes`` body is sent base64-encoded, as AWS does for
    binary payloads. Given headers replace defaults case-insensitively."""
    path, pairs = _split_path(path, query)
    method = method.upper()
    if kind == "api_gateway_v1":
        return _api_gateway_v1(path, pairs, method, headers, body)
    if kind == "http_api_v2":
        return _payload_v2(path, pairs, method, headers, body, function_url=False)
    if kind == "function_url":
        return _payload_v2(path, pairs, method, headers, body, function_url=True)
    if kind == "alb":
        return _alb(path, pairs, method, headers, body)
    raise ValueError(f"unknown event kind {kind!r}")


def _normalise(raw: dict[str, Any]) -> LambdaResponse:
    multi: dict[str, list[str]] = {}
    for key, value in (raw.get("headers") or {}).items():
        multi.setdefault(key.lower(), []).append(value)
    for key, values in (raw.get("multiValueHeaders") or {}).items():
        multi.setdefault(key.lower(), []).extend(values)
    for cookie in raw.get("cookies") or []:
        multi.setdefault("set-cookie", []).append(cookie)
    body = raw.get("body") or ""
    content = base64.b64decode(body) if raw.get("isBase64Encoded") else body.encode()
    return LambdaResponse(
        status=int(raw["statusCode"]),
        headers={k: ", ".join(v) for k, v in multi.items()},
        body=content.decode("utf-8", errors="replace"),
        content=content,
        multi_headers=multi,
        raw=raw,
    )


def invoke(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    kind: EventKind,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    context: LambdaContext | None = None,
) -> LambdaResponse:
    """Build an event, call ``handler(event, context)`` and normalise its response."""
    event = make_event(kind, path, method=method, headers=headers, query=query, body=body)
    return _normalise(handler(event, context if context is not None else LambdaContext()))
