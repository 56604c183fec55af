"""The local extension-compatible server under hostile input.

In process, ``ExtensionServer`` gets raw ASGI scopes that hypothesis makes up: any path
(percent-encoded, unicode, ``..``, very long), query (invalid UTF-8, duplicate keys,
``%00``, huge), method and headers (the token duplicated, as a prefix or extension of the
real one, as lookalike text beyond latin-1 or bytes that are not UTF-8; ``X-Forwarded-For``
in any case). Then a real
``python -m parameters_secrets serve`` (uvicorn) gets malformed HTTP on raw sockets.

Never a 500, never a crash, never a value without the right token; and the token is
compared by ``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac
import importlib.util
import json
import re
import socket
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parameters_secrets import Settings
from parameters_secrets._server import ExtensionServer
from parameters_secrets.sources import StaticSource
from tests.local_server import LocalServer
from tests.processes import clean_environment

pytestmark = pytest.mark.anyio

TOKEN = "hostile-suite-token-5d2c"
TOKEN_B = TOKEN.encode()
VALUE = "Hostile-Secret-Value-41f0"  # every stored value contains it
HEADER = b"x-aws-parameters-secrets-token"
P = "/systemsmanager/parameters/get"
S = "/secretsmanager/get"
KNOWN_PATHS = (P, P + "/", S, S + "/")
VALUES_FILE: dict[str, dict[str, Any]] = {
    "parameters": {
        "/hostile/key": {"value": VALUE, "type": "SecureString"},
        "/hostile/plain": f"plain-{VALUE}",
        "/hostile/versioned": {"value": f"v3-{VALUE}", "version": 3, "labels": ["release"]},
    },
    "secrets": {"hostile/db": {"json": {"password": VALUE}}},
}
NOT_FOUND_OR_INVALID = {
    "ValidationException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ParameterVersionLabelNotFound",
    "ResourceNotFoundException",
}


def new_server() -> ExtensionServer:
    source = StaticSource(parameters=VALUES_FILE["parameters"], secrets=VALUES_FILE["secrets"])
    return ExtensionServer(source, token=TOKEN, settings=Settings())


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    server: ExtensionServer,
    *,
    method: str = "GET",
    path: str = S,
    query: bytes = b"secretId=hostile%2Fdb",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Answer:
    """One raw ASGI request; checks that exactly one well-formed JSON answer was sent."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": quote(path, safe="/%").encode("ascii", "replace"),
        "query_string": query,
        "root_path": "",
        "headers": [(HEADER, TOKEN_B)] if headers is None else headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 2773),
    }
    await server(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    body = sent[1]["body"]
    response_headers = dict(sent[0]["headers"])
    assert response_headers[b"content-type"] == b"application/json"
    assert response_headers[b"content-length"] == str(len(body)).encode()
    json.loads(body)  # always JSON
    return Answer(sent[0]["status"], body)


# -- hostile input, in process ---------------------------------------------------------

PATH_SUFFIXES = ["/..", "/../get", "/.", "//", "%2F", "%00", "\x00", "?x", "#", "/%2e%2e/", ";a"]
hostile_paths = st.one_of(
    st.builds(lambda p, s: p + s, st.sampled_from(KNOWN_PATHS), st.sampled_from(PATH_SUFFIXES)),
    st.builds(lambda p, s: s + p, st.sampled_from(KNOWN_PATHS), st.sampled_from(["/..", "/x/.."])),
    st.sampled_from(
        [
            "/secretsmanager/get/../get",
            "/systemsmanager/parameters/../parameters/get",
            "/SECRETSMANAGER/GET",
            "/secretsmanager%2Fget",
            "/secretsmanager//get",
            "/secretsmanager/get\u2215",
            "/secretsmanager/\uff47et",  # a fullwidth g
            "",
            "*",
        ]
    ),
    st.text(max_size=40),
    st.text(max_size=30).map(lambda t: "/" + quote(t)),
    st.integers(1_000, 200_000).map(lambda n: S + "/" + "a" * n),
)
# Weighted towards the real paths, GET and the token, so that most examples get past
# routing and the token check into query parsing and the cache.


def mostly(usual: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """``usual`` three times in four, else ``hostile``."""
    return st.tuples(st.integers(0, 3), usual, hostile).map(lambda t: t[1] if t[0] else t[2])


paths = mostly(st.sampled_from(KNOWN_PATHS), hostile_paths)
QUERY_KEYS = [
    "name",
    "secretId",
    "version",
    "label",
    "withDecryption",
    "versionStage",
    "versionId",
    "Name",
    "SECRETID",
    "name\x00",
    "",
]
QUERY_VALUES = [
    "/hostile/key",
    "/hostile/plain",
    "/hostile/versioned",
    "hostile/db",
    "3",
    "1",
    "0",
    "-1",
    "release",
    "true",
    "TRUE",
    "false",
    "maybe",
    "",
    "\x00",
    "/hostile/key\x00",
    "AWSCURRENT",
    "AWSPREVIOUS",
]
# Digits beyond ASCII, where str.isdigit() and int() disagree: superscripts, circled,
# Arabic-Indic, fullwidth, mathematical; then any decimal or other digit.
TRICKY_DIGITS = "\u00b2\u00b3\u00b9\u2460\u2468\u2079\u0663\u06f3\uff15\U0001d7d8"
unicode_digits = st.one_of(
    st.text(st.sampled_from(TRICKY_DIGITS), min_size=1, max_size=3),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3),
)
query_pairs = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(QUERY_KEYS), st.text(max_size=8)),
        st.one_of(
            st.sampled_from(QUERY_VALUES),
            st.text(max_size=20),
            unicode_digits,
        ),
    ),
    max_size=8,
)
# Good for either path: each endpoint ignores the other's parameters.
GOOD_QUERIES = [
    b"secretId=hostile%2Fdb&name=%2Fhostile%2Fkey&withDecryption=true",
    b"name=%2Fhostile%2Fplain&secretId=hostile%2Fdb&versionStage=AWSCURRENT",
    b"name=%2Fhostile%2Fversioned&label=release&secretId=hostile%2Fdb",
]
hostile_queries = st.one_of(
    st.binary(max_size=200),  # anything, invalid UTF-8 included
    query_pairs.map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()),
    query_pairs.map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8")),
    st.builds(
        lambda selector, value: f"name=%2Fhostile%2Fversioned&{selector}={quote(value)}".encode(),
        st.sampled_from(["version", "label"]),
        st.one_of(unicode_digits, st.text(max_size=6), st.integers(-5, 10**6).map(str)),
    ),
    st.sampled_from(
        [
            b"name=%00",
            b"name=%2Fhostile%2Fkey%00",
            b"name=%2Fhostile%2Fkey&name=%2Fhostile%2Fplain",
            b"secretId=hostile%2Fdb&secretId=other",
            b"name=%FF%FE",
            b"name=%C0%AF",
            b"name=%",
            b"%",
            b"&&&",
            b"=",
            b"name",
            b"name=%2Fhostile%2Fversioned&version=3&version=x",
            b"name=%2Fhostile%2Fversioned&label=release&version=3",
        ]
    ),
    st.integers(10_000, 1_000_000).map(lambda n: b"name=" + b"A" * n),
    st.integers(1_000, 50_000).map(lambda n: b"&".join([b"name=%2Fhostile%2Fkey"] * n)),
)
hostile_methods = st.one_of(
    st.sampled_from(
        ["GET", "get", "Get", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
    ),
    st.sampled_from(["GET ", " GET", "G\x00ET", "", "GETX"]),
    st.text(max_size=10),
)
methods = mostly(st.just("GET"), hostile_methods)
queries = st.tuples(st.booleans(), st.sampled_from(GOOD_QUERIES), hostile_queries).map(
    lambda t: t[1] if t[0] else t[2]
)
TOKEN_NAMES = [
    HEADER,
    b"X-Aws-Parameters-Secrets-Token",
    b"X-AWS-PARAMETERS-SECRETS-TOKEN",
    b"x-aws-parameters-secrets-token ",
    b"x-aws-parameters-secrets_token",
    b"x-aws-parameters-secrets-tokens",
    b"aws-parameters-secrets-token",
]
token_values = st.one_of(
    st.just(TOKEN_B),
    st.just(b""),
    st.integers(0, len(TOKEN_B) - 1).map(lambda n: TOKEN_B[:n]),  # shorter: a prefix
    st.integers(1, len(TOKEN_B) - 1).map(lambda n: TOKEN_B[n:]),  # a suffix
    st.binary(min_size=1, max_size=6).map(lambda extra: TOKEN_B + extra),  # longer
    st.binary(min_size=1, max_size=6).map(lambda extra: extra + TOKEN_B),
    st.sampled_from(
        [
            TOKEN.upper().encode(),
            b" " + TOKEN_B,
            TOKEN_B + b" ",
            TOKEN_B + b"\x00",
            TOKEN.encode("utf-16-le"),
            TOKEN_B.replace(b"-", b"\xad"),  # latin-1 soft hyphens: not UTF-8
            TOKEN.replace("-", "\u2011").encode(),  # non-breaking hyphens, UTF-8: a lookalike
            b"\xff\xfe" + TOKEN_B,
            TOKEN_B + b", " + TOKEN_B,
        ]
    ),
    st.binary(max_size=40),
)
XFF_NAMES = [
    b"x-forwarded-for",
    b"X-Forwarded-For",
    b"X-FORWARDED-FOR",
    b"x-Forwarded-FOR",
    b"x-forwarded-for ",
    b"x_forwarded_for",
    b"forwarded",
    b"x-forwarded-host",
    b"x-real-ip",
]
header_lines = st.one_of(
    st.tuples(st.sampled_from(TOKEN_NAMES), token_values),
    st.tuples(st.sampled_from(XFF_NAMES), st.binary(max_size=30)),
    st.tuples(st.binary(max_size=20), st.binary(max_size=40)),
)
header_lists = st.builds(
    lambda base, extra, swap: (extra + base) if swap else (base + extra),
    st.sampled_from([[(HEADER, TOKEN_B)], []]),
    st.lists(header_lines, max_size=5),
    st.booleans(),
)


def lowered(name: bytes) -> str:
    return name.decode("latin-1").lower()


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=methods, path=paths, query=queries, headers=header_lists)
async def test_hostile_requests_never_get_a_500_or_a_value_without_the_right_token(
    method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    answer = await call(new_server(), method=method, path=path, query=query, headers=headers)

    tokens = [value for name, value in headers if lowered(name) == HEADER.decode()]
    forwarded = any(lowered(name) == "x-forwarded-for" for name, _ in headers)
    event(f"status {answer.status}")
    assert answer.status != 500
    if path not in KNOWN_PATHS:
        assert (answer.status, answer.json()["__type"]) == (404, "NotFound")
    elif method != "GET":
        assert (answer.status, answer.json()["__type"]) == (405, "MethodNotAllowed")
    elif forwarded:
        assert (answer.status, answer.json()["__type"]) == (400, "BadRequest")
    elif tokens != [TOKEN_B]:  # missing, wrong, or sent more than once
        assert (answer.status, answer.json()["__type"]) == (401, "Unauthorized")
    else:
        assert answer.status in (200, 400)
        if answer.status == 400:
            assert answer.json()["__type"] in NOT_FOUND_OR_INVALID
    # The value goes only to a GET of a known path with exactly the right token, once.
    if VALUE.encode() in answer.body or answer.status == 200:
        assert answer.status == 200
        assert path in KNOWN_PATHS
        assert method == "GET"
        assert not forwarded
        assert tokens == [TOKEN_B]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (b"name=%2Fhostile%2Fversioned&version=%FF", "ValidationException"),
        (b"name=%2Fhostile%2Fversioned&version=0", "ValidationException"),
        (b"name=%2Fhostile%2Fversioned&version=-3", "ValidationException"),
        (b"name=%2Fhostile%2Fversioned&version=" + b"9" * 4300, "ValidationException"),
        (b"name=%2Fhostile%2Fversioned&version=" + b"9" * 19, "ParameterVersionNotFound"),
        (b"name=%2Fhostile%2Fversioned&label=", "ValidationException"),
        (b"name=%2Fhostile%2Fkey%00", "ParameterNotFound"),
        (b"name=%2Fhostile%2Fkey&withDecryption=tru%C3%A9", "ValidationException"),
    ],
)
async def test_odd_selectors_are_client_errors(query: bytes, code: str) -> None:
    answer = await call(new_server(), path=P, query=query)
    assert (answer.status, answer.json()["__type"]) == (400, code)


@pytest.mark.parametrize(
    "version",
    [b"%C2%B2", b"1" * 4301, b"%D9%A3"],
    ids=["superscript-two", "4301-digits", "arabic-indic-three"],
)
async def test_non_ascii_or_oversized_version_is_a_validation_error(version: bytes) -> None:
    answer = await call(
        new_server(), path=P, query=b"name=%2Fhostile%2Fversioned&version=" + version
    )
    assert (answer.status, answer.json()["__type"]) == (400, "ValidationException")


async def test_duplicate_tokens_are_refused_in_any_order() -> None:
    server = new_server()
    right_twice = await call(server, headers=[(HEADER, TOKEN_B), (HEADER, TOKEN_B)])
    assert right_twice.status == 401
    wrong_then_right = await call(server, headers=[(HEADER, b"wrong"), (HEADER, TOKEN_B)])
    right_then_wrong = await call(server, headers=[(HEADER, TOKEN_B), (HEADER, b"wrong")])
    assert right_then_wrong.status in (400, 401)
    assert wrong_then_right.status in (400, 401)


@pytest.mark.parametrize("name", XFF_NAMES[:4])
@pytest.mark.parametrize("value", [b"203.0.113.9", b"", b"127.0.0.1", b"\xff", b"a, b, c"])
async def test_x_forwarded_for_in_any_case_with_any_value_is_refused(
    name: bytes, value: bytes
) -> None:
    headers = [(HEADER, TOKEN_B), (name, value)]
    answer = await call(new_server(), headers=headers)
    assert (answer.status, answer.json()["__type"]) == (400, "BadRequest")
    assert VALUE.encode() not in answer.body


# -- the token is compared in constant time --------------------------------------------

TOKEN_CASES = {
    "right": TOKEN_B,
    "wrong": b"x" * len(TOKEN_B),
    "shorter": TOKEN_B[:-1],
    "longer": TOKEN_B + b"0",
    "empty": b"",
    "missing": None,
}


@pytest.fixture
def compare_digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every ``hmac.compare_digest`` call, passed through to the real one."""
    calls: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    return calls


@pytest.mark.parametrize("case", list(TOKEN_CASES))
async def test_token_is_compared_with_hmac_compare_digest(
    case: str, compare_digest_calls: list[tuple[Any, Any]]
) -> None:
    given = TOKEN_CASES[case]
    headers = [] if given is None else [(HEADER, given)]
    answer = await call(new_server(), headers=headers)
    assert answer.status == (200 if case == "right" else 401)
    assert len(compare_digest_calls) == 1
    assert sorted(compare_digest_calls[0]) == sorted([given or b"", TOKEN_B])


@pytest.mark.parametrize(("case", "forced"), [("right", False), ("wrong", True), ("shorter", True)])
async def test_compare_digest_alone_decides(
    case: str, forced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forced the other way, the answer follows compare_digest: no other comparison decides.
    def forcing(a: Any, b: Any) -> bool:
        return forced

    monkeypatch.setattr(hmac, "compare_digest", forcing)
    answer = await call(new_server(), headers=[(HEADER, TOKEN_CASES[case] or b"")])
    assert answer.status == (200 if forced else 401)


# -- the real command, malformed HTTP on raw sockets -----------------------------------


@dataclass
class Served:
    port: int
    server: LocalServer
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``python -m parameters_secrets serve --port 0 --source file:...``, for the module;
    its log (stderr) kept whole in a file, its ready line read from its stdout."""
    directory = tmp_path_factory.mktemp("hostile")
    values = directory / "values.json"
    values.write_text(json.dumps(VALUES_FILE))
    log = directory / "server.log"
    env = clean_environment({"AWS_SESSION_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"})
    with log.open("wb") as output:
        server = LocalServer(f"file:{values}", env, startup_timeout=20, stderr=output)
        try:
            server.start()
        except RuntimeError as error:
            raise AssertionError(f"{error}\n{log.read_text(errors='replace')}") from None
    try:
        yield Served(server.port, server, log)
    finally:
        server.stop()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data``; read until the server closes (every case asks it to)."""
    return exchange_or_reset(port, data, timeout)[0]


def exchange_or_reset(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send ``data``; read until the server closes: what came back, and whether the
    connection was reset. A server that refuses a request before reading all of it
    closes with bytes unread, and the kernel then resets the connection, which may
    discard its answer before the client reads it (a race, not a server fault)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), True
    return b"".join(chunks), False


def parse_responses(data: bytes) -> list[RawResponse]:
    """HTTP/1.1 responses one after another (Content-Length or chunked bodies)."""
    responses = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"incomplete response head: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        match = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", status_line)
        assert match, status_line
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            length = int(headers["content-length"])
            body, data = data[:length], data[length:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                parts.append(data[:size])
                data = data[size + 2 :]
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body, data = data, b""
        responses.append(RawResponse(int(match.group(1)), headers, body))
    return responses


def request(
    target: bytes = b"/secretsmanager/get?secretId=hostile%2Fdb",
    *,
    method: bytes = b"GET",
    headers: list[bytes] | None = None,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1"]
    lines += [b"X-Aws-Parameters-Secrets-Token: " + TOKEN_B] if headers is None else headers
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def assert_alive(served: Served) -> None:
    """The process runs, still answers a good request, and never failed unexpectedly."""
    assert served.server.running(), served.log_text()
    (answer,) = parse_responses(exchange(served.port, request()))
    assert answer.status == 200
    assert VALUE.encode() in answer.body
    assert "unexpected error answering" not in served.log_text()


TOKEN_LINE = b"X-Aws-Parameters-Secrets-Token: " + TOKEN_B
GOOD = b"/secretsmanager/get?secretId=hostile%2Fdb"


def one_of(*statuses: int) -> set[tuple[int, ...]]:
    """One answer, with any of these statuses."""
    return {(status,) for status in statuses}


# Raw bytes, and the status sequences allowed for them (each case asks the server to close).
RAW_CASES: dict[str, tuple[bytes, set[tuple[int, ...]]]] = {
    "garbage": (b"GARBAGE\r\n\r\n", one_of(400)),
    "nul-in-target": (request(b"/secretsmanager/get?secretId=\x00"), one_of(400)),
    "non-ascii-target": (request(b"/secretsmanager/get?secretId=\xff\xfe"), one_of(400)),
    "space-in-target": (request(b"/secretsmanager/get?secretId=a b"), one_of(400)),
    "header-without-colon": (request(headers=[TOKEN_LINE, b"broken header"]), one_of(400)),
    "obsolete-line-folding": (
        request(headers=[b"X-Aws-Parameters-Secrets-Token: hostile-", b" suite-token-5d2c"]),
        one_of(400, 401),
    ),
    "token-not-latin-1": (
        request(headers=[b"X-Aws-Parameters-Secrets-Token: \xc3\xa9" + TOKEN_B]),
        one_of(401),
    ),
    "token-prefix": (request(headers=[TOKEN_LINE[:-1]]), one_of(401)),
    "token-longer": (request(headers=[TOKEN_LINE + b"0"]), one_of(401)),
    "token-right-then-wrong": (
        request(headers=[TOKEN_LINE, b"X-Aws-Parameters-Secrets-Token: x"]),
        one_of(401),
    ),
    "token-header-in-capitals": (
        request(headers=[b"X-AWS-PARAMETERS-SECRETS-TOKEN: " + TOKEN_B]),
        one_of(200),
    ),
    "token-with-spaces-around": (
        request(headers=[b"X-Aws-Parameters-Secrets-Token: \t " + TOKEN_B + b"  "]),
        one_of(200),  # HTTP's optional whitespace is not part of the value
    ),
    "xff-odd-case": (request(headers=[TOKEN_LINE, b"x-FORWARDED-for: 203.0.113.9"]), one_of(400)),
    "xff-empty": (request(headers=[TOKEN_LINE, b"X-Forwarded-For:"]), one_of(400)),
    "huge-header": (
        request(headers=[TOKEN_LINE, b"X-Big: " + b"a" * 70_000]),
        one_of(200, 400, 431),
    ),
    "huge-query": (request(GOOD + b"&x=" + b"y" * 60_000), one_of(200, 400, 414)),
    "invalid-utf8-query": (request(b"/systemsmanager/parameters/get?name=%FF"), one_of(400)),
    "lowercase-method": (request(method=b"get"), one_of(405)),
    "absolute-form": (request(b"http://127.0.0.1" + GOOD), one_of(404)),
    "dot-segments": (request(b"/secretsmanager/x/../get?secretId=hostile%2Fdb"), one_of(404)),
    "http-2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {(400,), (404, 400), (505,)}),
    "bad-chunk": (
        b"GET "
        + GOOD
        + b" HTTP/1.1\r\nHost: x\r\n"
        + TOKEN_LINE
        + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
        one_of(200, 400),
    ),
    "http-1.0": (request(version=b"HTTP/1.0"), one_of(200)),
    "pipelined-wrong-then-right": (
        request(headers=[b"X-Aws-Parameters-Secrets-Token: x"]).replace(
            b"Connection: close\r\n", b""
        )
        + request(),
        {(401, 200)},
    ),
}


# Requests too large to read whole: the server may answer and close with bytes unread.
REFUSED_UNREAD = {"huge-header", "huge-query"}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_malformed_http_gets_a_client_error_and_the_server_lives_on(
    served: Served, case: str
) -> None:
    data, allowed = RAW_CASES[case]
    received, reset = exchange_or_reset(served.port, data)
    if reset and case in REFUSED_UNREAD:
        # Refused before it was read to the end: the answer may be lost to the reset.
        assert VALUE.encode() not in received
        assert_alive(served)
        return
    assert not reset, received
    answers = parse_responses(received)
    assert tuple(a.status for a in answers) in allowed
    for answer in answers:
        if VALUE.encode() in answer.body:
            assert answer.status == 200
    assert_alive(served)


def no_separators(data: bytes) -> bool:
    return not set(data) & set(b" \r\n")


raw_methods = mostly(
    st.just(b"GET"),
    st.one_of(
        st.sampled_from([b"get", b"POST", b"DELETE", b"G\x00T", b"GET\xff"]),
        st.binary(min_size=1, max_size=8).filter(no_separators),
    ),
)
raw_targets = mostly(
    st.sampled_from([GOOD, b"/systemsmanager/parameters/get?name=%2Fhostile%2Fkey"]),
    st.one_of(
        st.binary(max_size=80).filter(no_separators).map(lambda b: b"/" + b),
        st.binary(max_size=80).filter(no_separators).map(lambda b: GOOD + b"&" + b),
    ),
)
raw_versions = mostly(
    st.just(b"HTTP/1.1"), st.sampled_from([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"http/1.1"])
)
raw_token_values = token_values.filter(lambda b: not set(b) & set(b"\r\n"))
raw_headers = st.lists(
    st.one_of(
        raw_token_values.map(lambda v: b"X-Aws-Parameters-Secrets-Token: " + v),
        st.sampled_from(XFF_NAMES).map(lambda n: n + b": 1.2.3.4"),
        # Not empty: an empty line would end the head early.
        st.binary(min_size=1, max_size=40).filter(
            lambda b: (
                not set(b) & set(b"\r\n")
                and not b.lower().startswith(
                    (b"content-length", b"transfer-encoding", b"connection", b"expect")
                )
            )
        ),
    ),
    max_size=5,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=raw_methods,
    target=raw_targets,
    version=raw_versions,
    with_token=st.booleans(),
    headers=raw_headers,
)
def test_random_raw_requests_never_get_a_500_or_a_value_without_the_token(
    served: Served,
    method: bytes,
    target: bytes,
    version: bytes,
    headers: list[bytes],
    with_token: bool,
) -> None:
    if with_token:
        headers = [TOKEN_LINE, *headers]
    data = request(target, method=method, headers=headers, version=version)
    for answer in parse_responses(exchange(served.port, data)):
        event(f"status {answer.status}")
        assert answer.status != 500
        if VALUE.encode() in answer.body:
            assert answer.status == 200
            sent = [
                h.split(b":", 1)[1].strip(b" \t")
                for h in headers
                if h.lower().startswith(HEADER + b":")
            ]
            assert sent
            assert sent[-1] == TOKEN_B
    assert served.server.running(), served.log_text()


def test_server_log_shows_no_unexpected_error_after_the_hostile_requests(served: Served) -> None:
    assert_alive(served)
    log = served.log_text()
    assert "unexpected error answering" not in log
    assert VALUE not in log
    assert TOKEN not in log


# -- websockets: refused, never a 500 ---------------------------------------------------


def upgrade_request(target: bytes, *, token: bool) -> bytes:
    """A websocket handshake (RFC 6455), as any browser or client library sends it."""
    lines = [
        b"GET " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        *([TOKEN_LINE] if token else []),
    ]
    return b"\r\n".join([*lines, b"", b""])


def first_response(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``data``; read one whole response (the server may keep the connection open)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        while True:
            head, separator, body = received.partition(b"\r\n\r\n")
            if separator:
                length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                if length is not None and len(body) >= int(length.group(1)):
                    break
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    (answer, *_) = parse_responses(received)
    return answer


def test_websockets_library_is_installed_as_uvicorn_standard_brings_it() -> None:
    # The upgrade tests below mean something only if uvicorn could speak websocket.
    assert importlib.util.find_spec("websockets") is not None


@pytest.mark.parametrize(
    ("target", "token", "status"),
    [
        (GOOD, False, 401),
        (GOOD, True, 200),  # the plain GET it also is, with the right token
        (b"/", False, 404),
        (b"/ws", True, 404),
    ],
)
def test_websocket_upgrade_is_answered_as_plain_http_never_500(
    served: Served, target: bytes, token: bool, status: int
) -> None:
    answer = first_response(served.port, upgrade_request(target, token=token))
    assert answer.status != 500
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert "upgrade" not in answer.headers  # no handshake: 101 is never sent
    if status != 200:
        assert VALUE.encode() not in answer.body
    assert_alive(served)
    assert "ASGI callable returned without" not in served.log_text()


class TellingServer(uvicorn.Server):
    """uvicorn's Server, which offers no startup event, with one: ``startup_over`` is set
    when its startup ends, whether it started (``started``) or not."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_over.set()

    def run_then_tell(self) -> None:
        """``run()``; ``startup_over`` is set even if it fails before its startup."""
        try:
            self.run()
        finally:
            self.startup_over.set()


@pytest.fixture
def websocket_capable_server() -> Iterator[int]:
    """``ExtensionServer`` under uvicorn with websocket support on, in a thread; its port."""
    config = uvicorn.Config(
        new_server(),
        host="127.0.0.1",
        port=0,
        ws="websockets-sansio",
        lifespan="off",
        log_level="error",
    )
    server = TellingServer(config)
    thread = threading.Thread(target=server.run_then_tell, daemon=True)
    thread.start()
    try:
        assert server.startup_over.wait(20), "uvicorn's startup did not end within 20 s"
        assert server.started, "uvicorn did not start"
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("token", [False, True])
def test_websocket_handshake_is_refused_by_the_app_itself_with_403(
    websocket_capable_server: int, token: bool
) -> None:
    # Where the server does speak websocket, the app refuses the handshake: 403, not 500.
    answer = first_response(websocket_capable_server, upgrade_request(GOOD, token=token))
    assert answer.status == 403
    assert VALUE.encode() not in answer.body


async def test_websocket_scope_is_refused_with_a_close_after_connect() -> None:
    # Under a server that does speak websocket: close before accept is ASGI's refusal
    # (uvicorn and hypercorn answer the handshake with 403), never a silent return (500).
    sent: list[MutableMapping[str, Any]] = []
    messages = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": S, "query_string": b"", "headers": [(HEADER, TOKEN_B)]}
    await new_server()(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert messages == []  # the connect was read first


async def test_scope_of_an_unknown_type_gets_no_answer_and_no_error() -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("nothing to receive")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await new_server()({"type": "webtransport"}, receive, send)
    assert sent == []
