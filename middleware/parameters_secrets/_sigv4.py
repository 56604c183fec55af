"""AWS Signature Version 4 for the SSM and Secrets Manager JSON APIs, without botocore.

botocore costs ~37 ms of import on a cold start; this is the part of it a JSON API call
needs. It canonicalises a request exactly as botocore's ``SigV4Auth`` does for services
other than S3, and is checked against that signer, AWS's worked examples and moto's
IAM checks (tests/test_sigv4.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
# Headers a proxy or the HTTP client may add, drop or rewrite in transit: never signed
# (botocore's SIGNED_HEADERS_BLACKLIST).
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Credentials:
    """An access key pair and, for temporary credentials, a session token."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@lru_cache(maxsize=16)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The day's key for a region and service (cached: it changes once a day)."""
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_path(path: str) -> str:
    """The path as sent, dot segments and empty segments removed, URI-encoded once more.

    Services other than S3 sign the encoding of the path on the wire, so an escape in
    it (``%20``) is signed as ``%2520``; a raw character is encoded once.
    """
    segments = _resolved_segments(path)
    normalised = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalised += "/"
    return quote(normalised, safe="/~")


def _resolved_segments(path: str) -> list[str]:
    """The path's segments, ``.``, ``..`` and empty ones resolved."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    return segments


def canonical_query(query: str) -> str:
    """The query's ``name=value`` pairs as sent, sorted (a bare name gets ``=``).

    The query must already be encoded as SigV4 wants (RFC 3986 escapes, a space as
    ``%20`` not ``+``, as botocore's serializer writes it): it is not decoded and
    re-encoded, so the signature covers the exact bytes on the wire.
    """
    if not query:
        return ""
    pairs = sorted(part.partition("=")[::2] for part in query.split("&"))
    return "&".join(f"{name}={value}" for name, value in pairs)


def _host(url_host: str | None, scheme: str, port: int | None) -> str:
    host = url_host or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return host


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    timestamp: float | None = None,
) -> dict[str, str]:
    """Sign a request; returns the headers to send (the given ones plus the signature's).

    Args:
        method: The HTTP method.
        url: The full URL exactly as it will be sent (``str(httpx.URL(...))``): its path
            and query are signed as they are, not re-encoded.
        headers: Headers to sign and send. ``Host`` is signed from the URL if absent
            (and left to the HTTP client to send); ``User-Agent`` and hop-by-hop
            headers are sent but not signed. A ``Date`` header is replaced by the
            signing time and stands for ``X-Amz-Date``; an ``X-Amz-Content-SHA256``
            header is signed as the payload hash (``UNSIGNED-PAYLOAD``).
        body: The exact body bytes.
        credentials: Who signs.
        region: The signing region (``us-east-1``).
        service: The signing name (``ssm``, ``secretsmanager``).
        timestamp: Seconds since the epoch; default now.
    """
    moment = time.time() if timestamp is None else timestamp
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(moment))
    date = amz_date[:8]

    send = _headers_to_send(headers, credentials, moment, amz_date)
    parts = urlsplit(url)
    signed, payload_hash = _canonical_headers(send, parts.hostname, parts.scheme, parts.port)
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest() if payload_hash is None else payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = signing_key(credentials.secret_key, date, region, service)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    send["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return send


def _headers_to_send(
    headers: Mapping[str, str], credentials: Credentials, moment: float, amz_date: str
) -> dict[str, str]:
    """The headers to send, but the signature: a stale signature, date or token the caller
    passed (in any case) is replaced, so no second copy travels beside the signed one."""
    replaced = {"authorization", "x-amz-date"}
    if credentials.token:
        replaced.add("x-amz-security-token")
    send = {name: value for name, value in headers.items() if name.lower() not in replaced}
    send = _dated(send, moment, amz_date)
    if credentials.token:
        send["X-Amz-Security-Token"] = credentials.token
    return send


def _dated(send: dict[str, str], moment: float, amz_date: str) -> dict[str, str]:
    """``send`` with the signing time: in ``Date`` if the caller gave one (in any case,
    then replaced), else in ``X-Amz-Date``."""
    if any(name.lower() == "date" for name in send):
        send = {name: value for name, value in send.items() if name.lower() != "date"}
        send["Date"] = formatdate(int(moment))
    else:
        send["X-Amz-Date"] = amz_date
    return send


def _canonical_headers(
    send: Mapping[str, str], hostname: str | None, scheme: str, port: int | None
) -> tuple[dict[str, str], str | None]:
    """The signed headers (lower-case names, values trimmed with inner runs of white space
    collapsed, a name given twice, in two cases, signed as its values joined by ","), and
    the payload hash the caller gave in ``X-Amz-Content-SHA256``, if any."""
    signed: dict[str, str] = {}
    for name, value in send.items():
        lower = name.lower()
        if lower in UNSIGNED_HEADERS:
            continue
        folded = " ".join(value.split())
        signed[lower] = f"{signed[lower]},{folded}" if lower in signed else folded
    if "host" not in signed:
        signed["host"] = _host(hostname, scheme, port)
    return signed, _payload_hash(send)


def _payload_hash(send: Mapping[str, str]) -> str | None:
    """The payload hash the caller gave in ``X-Amz-Content-SHA256`` (its first copy, in
    any case), if any."""
    given = (value for name, value in send.items() if name.lower() == "x-amz-content-sha256")
    return next(given, None)
