"""Network faults, source by source: our logic in process (no sockets), then each fault
class once over a real socket.

The faults: refused, slow (no answer within the bound; ``trickle``: an answer one byte at
a time), 5xx, throttling, malformed (a 200 whose JSON stops halfway; ``no_value``: a 200
without a usable value), a connection dropped mid-body, and the extension's ``not ready``.

In process, without sockets or threads (the extension: ``FakeExtension`` through its
``transport()``, the package's own local server behind a fault-injecting layer; AWS:
``InProcessMoto``, moto's own app in this process behind ``httpx.MockTransport``), for
each networked source
(``ExtensionSource``, ``AwsSource``) and each fault:

* the source's ``fetch``: the fault's code, transient, after the attempts the retry policy
  gives (throttling until the time bound; other transient failures ``max_attempts`` tries
  for ``AwsSource``; the extension retries only throttling, ``not ready`` and a refused
  connection); a slow or trickling answer is cut off at the time bound with ``Timeout``;
  a throttled ``BatchGetSecretValue`` falls back to ``GetSecretValue``;
* the middleware under a real Mangum handler: on a first load, 503 naming each key with
  the code, the app not called, an ERROR log; on a refresh after the TTL, the previous
  value with a warning naming the code, ``stats.stale_serves``, and no upstream call until
  the retry pause has passed; once the fault clears, the new value from the same instance.

Over real sockets (``FakeExtension`` served on 127.0.0.1; moto through ``CountingProxy``),
one test per fault class, through both outcomes above: what a real connection does (a
refused connect, a socket cut off mid-body, a read that never ends) reaches the same
codes. Every upstream records the fault each request met: a test asserts that the fault
it injected is what happened, not how long anything took.

Every middleware test logs at DEBUG (every logger) and checks that the known secret value
never appears in a log record or an error response. TTLs pass on the ``clock`` fixture;
the time bounds are real (short) time. A direct ``fetch`` runs inside ``anyio.fail_after``;
under Mangum, a slow fault ends by itself after ``faults.HANG_SECONDS``, far past
every bound set here (and the value it then gives fails the test): a bound that does not
hold fails, never hangs. Over a socket, what the server records of a request the client
gave up on is waited for (bounded), as nothing orders it before the client's return.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
import httpx
import pytest
from mangum import Mangum
from starlette.responses import JSONResponse

from parameters_secrets import (
    FetchError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._cache import STALE_RETRY_SECONDS
from parameters_secrets._declarations import ValueRequest
from parameters_secrets._sources import Source
from parameters_secrets._sources._retry import RetryPolicy
from parameters_secrets.sources import AwsSource, ExtensionSource, StaticSource
from tests import faults
from tests.conftest import TOKEN, FakeClock, detail_503
from tests.extension_server import FakeExtension
from tests.lambda_events import LambdaResponse, invoke
from tests.moto_in_process import REGION, Call, InProcessMoto
from tests.moto_server import (
    CountingProxy,
    MotoServer,
    create_secret,
    put_parameter,
    put_secret_value,
)

CANARY = "Fault-Canary-3e9b71"  # part of every value: must never reach a log or an error
PARAMETER = "/faults/api-key"
SECRET = "faults/db"
TTL = 60
MOCK_TIMEOUT_MS = 300  # the time bound in process: only slow faults wait for it
# Over real sockets, with threads and moto behind them: a healthy answer comes in a few
# milliseconds, and AwsSource's default retries pause 0.6 s at most; only a slow fault
# (held far longer) and throttling (retried until the bound) wait this long.
REAL_TIMEOUT_MS = 2000
HANG_SECONDS = 10  # a fetch still running by then is a hang: fail, do not block
# AwsSource's backoff, shortened: throttling is retried until the bound, many times.
FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.001)
MAX_ATTEMPTS = FAST_RETRY.max_attempts

SourceKind = Literal["extension", "aws"]
PARAMETER_REQUEST = Parameter(PARAMETER).request
SECRET_REQUEST = Secret(SECRET).request


def parameter_value(version: int) -> str:
    return f"{CANARY}-api-key-{version}"


def password(version: int) -> str:
    return f"{CANARY}-password-{version}"


def values_of(version: int) -> dict[str, str]:
    return {"api_key": parameter_value(version), "password": password(version)}


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials from the environment, as on a developer's machine; AWS's endpoints."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAULTS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "faults-secret-key")
    monkeypatch.setenv("AWS_REGION", REGION)
    for variable in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    ):
        monkeypatch.delenv(variable, raising=False)


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
# The test's fault names, in tests/faults.py's words (a 500 is named as each upstream
# names it).
FAULTS: dict[Fault, faults.Fault] = {
    "refused": faults.refused(),
    "slow": faults.hang(),
    "trickle": faults.trickle(),
    "5xx": faults.server_error(),
    "throttling": faults.throttle(),
    "malformed": faults.malformed(),
    "no_value": faults.no_value(),
    "dropped": faults.reset(),
    "not_ready": faults.NOT_READY,
}
EXTENSION_FAULTS: dict[Fault, faults.Fault] = {
    **FAULTS,
    "5xx": faults.server_error("InternalServerError"),
}


def named(upstream: InProcessExtension | InProcessMoto, fault: Fault) -> faults.Fault:
    """The fault the test calls ``fault``, as ``upstream`` plays it."""
    return (EXTENSION_FAULTS if isinstance(upstream, InProcessExtension) else FAULTS)[fault]


def name_of(fault: faults.Fault | None) -> Fault | None:
    """The test's name for a fault an upstream recorded."""
    names = {f: n for n, f in FAULTS.items()} | {f: n for n, f in EXTENSION_FAULTS.items()}
    return None if fault is None else names[fault]


class InProcessExtension:
    """``FakeExtension`` through its ``transport()``, seen as ``InProcessMoto`` is seen (by the
    test's fault names): ``count``, ``calls`` with the fault each met, ``cut_off``."""

    def __init__(self) -> None:
        self.fake = FakeExtension(token=TOKEN)

    def put_parameter(self, name: str, value: str, *, type: str = "String") -> None:
        self.fake.put_parameter(name, value, type=type)

    def put_secret(self, secret_id: str, string: str) -> None:
        self.fake.put_secret(secret_id, string=string)

    def fail(
        self, fault: faults.Fault, *, match: str | None = None, times: int | None = None
    ) -> None:
        self.fake.fail(fault, match=match, times=times)

    def heal(self) -> None:
        self.fake.clear_faults()

    @property
    def calls(self) -> list[Call]:
        return [Call(kind, (name,), fault) for kind, name, fault in self.fake.call_log()]

    def count(self, name: str | None = None) -> int:  # as InProcessMoto.count(name=...)
        return sum(1 for call in self.calls if name is None or name in call.names)

    @property
    def cut_off(self) -> int:
        return self.fake.cut_off

    def transport(self) -> httpx.AsyncBaseTransport:
        return self.fake.transport()


def in_process_upstream(kind: SourceKind) -> InProcessExtension | InProcessMoto:
    return InProcessExtension() if kind == "extension" else InProcessMoto(REGION)


def in_process_source(upstream: InProcessExtension | InProcessMoto, settings: Settings) -> Source:
    if isinstance(upstream, InProcessExtension):
        return ExtensionSource(token=TOKEN, settings=settings, transport=upstream.transport())
    return AwsSource(REGION, settings=settings, retry=FAST_RETRY, transport=upstream.transport())


def seed_in_process(upstream: InProcessExtension | InProcessMoto, version: int) -> None:
    upstream.put_parameter(PARAMETER, parameter_value(version), type="SecureString")
    upstream.put_secret(SECRET, json.dumps({"password": password(version)}))


# == the source's fetch, in process =====================================================

UNTIL_THE_BOUND = None  # no upper count: retried until the fetch's time bound
# (source, fault) -> (code, fewest attempts per value, most attempts per value)
FETCH_OUTCOMES: dict[tuple[SourceKind, Fault], tuple[str, int, int | None]] = {
    # The extension may still be starting: retried for up to a second, within the bound.
    ("extension", "refused"): ("ConnectionError", 2, UNTIL_THE_BOUND),
    ("extension", "slow"): ("Timeout", 1, 1),
    ("extension", "trickle"): ("Timeout", 1, 1),
    # The extension retried AWS already: only throttling is asked again.
    ("extension", "5xx"): ("InternalServerError", 1, 1),
    ("extension", "throttling"): ("ThrottlingException", 2, UNTIL_THE_BOUND),
    ("extension", "malformed"): ("MalformedResponse", 1, 1),
    ("extension", "no_value"): ("MalformedResponse", 1, 1),
    ("extension", "dropped"): ("ConnectionError", 1, 1),
    ("extension", "not_ready"): ("ExtensionNotReady", 2, UNTIL_THE_BOUND),
    ("aws", "refused"): ("ConnectionError", MAX_ATTEMPTS, MAX_ATTEMPTS),
    ("aws", "slow"): ("Timeout", 1, 1),
    ("aws", "trickle"): ("Timeout", 1, 1),
    ("aws", "5xx"): ("InternalFailure", MAX_ATTEMPTS, MAX_ATTEMPTS),
    ("aws", "throttling"): ("ThrottlingException", MAX_ATTEMPTS + 1, UNTIL_THE_BOUND),
    ("aws", "malformed"): ("MalformedResponse", MAX_ATTEMPTS, MAX_ATTEMPTS),
    # Well-formed JSON: the call succeeded, and the record is checked after it. Not asked
    # again within this fetch; the cache asks again after its pause.
    ("aws", "no_value"): ("MalformedResponse", 1, 1),
    ("aws", "dropped"): ("ConnectionError", MAX_ATTEMPTS, MAX_ATTEMPTS),
}
FETCH_MATRIX = [pytest.param(kind, fault, id=f"{kind}-{fault}") for kind, fault in FETCH_OUTCOMES]
MOCK_SETTINGS = Settings(parameter_timeout_ms=MOCK_TIMEOUT_MS, secret_timeout_ms=MOCK_TIMEOUT_MS)


async def fetch(
    source: Source, requests: list[ValueRequest], deadline: float | None = None
) -> list[Any]:
    """``source.fetch``, failing the test if it outlives ``HANG_SECONDS``."""
    try:
        with anyio.fail_after(HANG_SECONDS):
            return list(await source.fetch(requests, deadline))
    finally:
        await source.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "fault"), FETCH_MATRIX)
@pytest.mark.usefixtures("aws_environment")
async def test_fetch_under_fault_gives_the_fault_s_code_after_the_policy_s_attempts(
    kind: SourceKind, fault: Fault
) -> None:
    code, fewest, most = FETCH_OUTCOMES[(kind, fault)]
    upstream = in_process_upstream(kind)
    seed_in_process(upstream, 1)
    upstream.fail(named(upstream, fault))

    outcomes = await fetch(
        in_process_source(upstream, MOCK_SETTINGS), [PARAMETER_REQUEST, SECRET_REQUEST]
    )

    for name, outcome in zip((PARAMETER, SECRET), outcomes, strict=True):
        assert isinstance(outcome, FetchError), outcome
        assert (outcome.code, outcome.transient) == (code, True), outcome
        assert CANARY not in str(outcome)
        attempts = upstream.count(name=name)
        assert fewest <= attempts <= (most or attempts), (name, attempts)
    # Every request the upstream saw met the fault: it, not something else, is the cause.
    assert {name_of(call.fault) for call in upstream.calls} == {fault}
    # A slow answer was abandoned at the bound (not answered late, not failed otherwise).
    assert upstream.cut_off == (2 if fault in ("slow", "trickle") else 0)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["extension", "aws"])
@pytest.mark.parametrize("fault", ["slow", "trickle"])
@pytest.mark.usefixtures("aws_environment")
async def test_slow_answer_is_cut_off_by_the_deadline_without_a_timeout_setting(
    kind: SourceKind, fault: Fault
) -> None:
    upstream = in_process_upstream(kind)
    seed_in_process(upstream, 1)
    upstream.fail(named(upstream, fault))
    settings = Settings()
    assert (settings.parameter_timeout_ms, settings.secret_timeout_ms) == (0, 0)

    outcomes = await fetch(
        in_process_source(upstream, settings),
        [PARAMETER_REQUEST, SECRET_REQUEST],
        deadline=time.monotonic() + MOCK_TIMEOUT_MS / 1000,
    )

    assert [(o.code, o.transient) for o in outcomes] == [("Timeout", True)] * 2
    assert upstream.cut_off == 2
    assert [name_of(call.fault) for call in upstream.calls] == [fault, fault]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["extension", "aws"])
@pytest.mark.usefixtures("aws_environment")
async def test_throttling_is_retried_past_max_attempts_until_answered(kind: SourceKind) -> None:
    # Throttled more times than any fixed count would allow; answered well within the bound.
    throttled = MAX_ATTEMPTS + 2
    upstream = in_process_upstream(kind)
    seed_in_process(upstream, 1)
    upstream.fail(faults.throttle(), match=PARAMETER, times=throttled)
    settings = Settings(parameter_timeout_ms=HANG_SECONDS * 1000)

    [outcome] = await fetch(in_process_source(upstream, settings), [PARAMETER_REQUEST])

    assert not isinstance(outcome, FetchError), outcome
    assert outcome["Value"] == parameter_value(1)
    assert [name_of(call.fault) for call in upstream.calls] == ["throttling"] * throttled + [None]


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["refused", "5xx", "malformed", "dropped"])
@pytest.mark.usefixtures("aws_environment")
async def test_aws_transient_failure_is_answered_by_the_last_of_max_attempts(fault: Fault) -> None:
    upstream = InProcessMoto(REGION)
    seed_in_process(upstream, 1)
    upstream.fail(FAULTS[fault], times=MAX_ATTEMPTS - 1)

    [outcome] = await fetch(in_process_source(upstream, MOCK_SETTINGS), [PARAMETER_REQUEST])

    assert not isinstance(outcome, FetchError), outcome
    assert outcome["Value"] == parameter_value(1)
    assert [name_of(call.fault) for call in upstream.calls] == [fault] * (MAX_ATTEMPTS - 1) + [None]


@pytest.mark.anyio
@pytest.mark.usefixtures("aws_environment")
async def test_throttled_batch_get_secret_value_falls_back_to_get_secret_value() -> None:
    # BatchGetSecretValue's quota is 100 calls a second; GetSecretValue's 10,000.
    upstream = InProcessMoto(REGION)
    others = [f"{SECRET}-{n}" for n in range(2)]
    for secret_id in others:
        upstream.put_secret(secret_id, f"{CANARY}-{secret_id}")
    upstream.fail(faults.throttle(), match="BatchGetSecretValue")

    outcomes = await fetch(
        in_process_source(upstream, MOCK_SETTINGS), [Secret(i).request for i in others]
    )

    assert [o["SecretString"] for o in outcomes] == [f"{CANARY}-{i}" for i in others]
    # Not retried (it would spend the batch quota): asked again value by value, at once.
    assert upstream.calls[0] == Call("BatchGetSecretValue", tuple(others), faults.throttle())
    assert sorted(upstream.calls[1:], key=lambda call: call.names) == [
        Call("GetSecretValue", (secret_id,), None) for secret_id in others
    ]


@pytest.mark.anyio
@pytest.mark.usefixtures("aws_environment")
async def test_throttled_get_parameters_is_retried_as_a_batch() -> None:
    upstream = InProcessMoto(REGION)
    names = [f"{PARAMETER}-{n}" for n in range(2)]
    for name in names:
        upstream.put_parameter(name, f"{CANARY}-{name}")
    upstream.fail(faults.throttle(), match="GetParameters", times=2)

    outcomes = await fetch(
        in_process_source(upstream, MOCK_SETTINGS), [Parameter(n).request for n in names]
    )

    assert [o["Value"] for o in outcomes] == [f"{CANARY}-{n}" for n in names]
    assert [(c.action, name_of(c.fault)) for c in upstream.calls] == [
        ("GetParameters", "throttling"),
        ("GetParameters", "throttling"),
        ("GetParameters", None),
    ]


# == the middleware under Mangum ========================================================


class Upstream(Protocol):
    """A network upstream the tests can seed, break and heal."""

    def seed(self, version: int) -> None: ...
    def inject(self, fault: Fault) -> None: ...
    def heal(self) -> None: ...
    def calls(self) -> int: ...
    def faults_since(self, calls: int) -> set[str | None]: ...
    def sees(self, fault: Fault) -> bool: ...
    def received(self, calls: int) -> bool: ...
    def source(self, settings: Settings) -> Source: ...


@dataclass
class InProcessUpstream:
    upstream: InProcessExtension | InProcessMoto

    def seed(self, version: int) -> None:
        seed_in_process(self.upstream, version)

    def inject(self, fault: Fault) -> None:
        self.upstream.fail(named(self.upstream, fault))

    def heal(self) -> None:
        self.upstream.heal()

    def calls(self) -> int:
        return len(self.upstream.calls)

    def faults_since(self, calls: int) -> set[str | None]:
        return {name_of(call.fault) for call in self.upstream.calls[calls:]}

    def sees(self, fault: Fault) -> bool:
        return True  # in process, a refused connection is recorded too

    def received(self, calls: int) -> bool:
        return self.calls() >= calls  # in process, before the client goes on

    def source(self, settings: Settings) -> Source:
        return in_process_source(self.upstream, settings)


class App:
    """Answers the values it was given (it is a test app: the body is not a log)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        state = scope["state"]
        body = {"api_key": state["api_key"], "password": state["db"]["password"]}
        await JSONResponse(body)(scope, receive, send)


def middleware_for(
    source: Source, settings: Settings, clock: FakeClock, app: App
) -> ParametersSecretsMiddleware:
    store = ParametersSecrets(
        {"api_key": Parameter(PARAMETER), "db": Secret(SECRET, transform="json")},
        source=source,
        settings=settings,
        clock=clock,
    )
    return ParametersSecretsMiddleware(app, values=store, on_failure=detail_503)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, but for boto3's own: it logs the test's seeding calls
    (values included) through moto, which is the test talking, not the library."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        caplog.set_level(logging.WARNING, logger=name)
    caplog.set_level(logging.DEBUG)  # last: set_level also sets the capturing handler's level
    return caplog


def settings_from_environment(monkeypatch: pytest.MonkeyPatch, timeout_ms: int) -> Settings:
    monkeypatch.setenv("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", str(timeout_ms))
    monkeypatch.setenv("SECRETS_MANAGER_TIMEOUT_MILLIS", str(timeout_ms))
    settings = Settings.from_env(parameter_ttl=TTL, secret_ttl=TTL, log_level="debug")
    assert (settings.parameter_timeout_ms, settings.secret_timeout_ms) == (timeout_ms, timeout_ms)
    return settings


def assert_no_value_leaked(logs: pytest.LogCaptureFixture, answers: list[LambdaResponse]) -> None:
    """The canary is in no log record (message, arguments, traceback) and no error answer."""
    records = logs.records
    assert any(
        r.name.startswith("parameters_secrets") and r.levelno == logging.DEBUG for r in records
    ), "no DEBUG record from the library: the search would prove little"
    formatter = logging.Formatter()
    texts = [logs.text]
    for record in records:
        texts += [record.getMessage(), repr(record.args), str(record.msg)]
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    texts += [answer.body for answer in answers if answer.status != 200]
    assert [text for text in texts if CANARY in text] == []


def first_load_under_fault(
    upstream: Upstream,
    fault: Fault,
    code: str,
    settings: Settings,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> list[LambdaResponse]:
    """A first load meets the fault: 503 naming both keys and the code; the app is not
    called; once the fault clears, the same middleware serves the values."""
    upstream.seed(1)
    app = App()
    middleware = middleware_for(upstream.source(settings), settings, clock, app)
    handler = Mangum(middleware, lifespan="off")
    upstream.inject(fault)
    before = upstream.calls()

    refused = invoke(handler, "http_api_v2", "/")

    assert refused.status == 503
    assert refused.json() == {"detail": f"could not load 'api_key' ({code}), 'db' ({code})"}
    assert app.calls == 0
    # Each value was asked (but of a server that refuses), and met the fault, and only it.
    if upstream.sees(fault):
        # A server records a request in its own thread: one the client gave up on (a
        # slow answer, abandoned at the bound) maybe after the client's return.
        assert upstream.received(before + 2)
    assert upstream.faults_since(before) == ({fault} if upstream.sees(fault) else set())
    errors = [r.getMessage() for r in logs.records if r.levelno == logging.ERROR]
    assert any("'api_key'" in message and PARAMETER in message for message in errors), errors
    assert any("'db'" in message and SECRET in message for message in errors), errors
    assert middleware.stats.size == 0  # a transient failure is not remembered
    # Recovery: the same middleware (nothing cached from the failure) gets the value.
    upstream.heal()
    upstream.seed(2)
    recovered = invoke(handler, "http_api_v2", "/")
    assert recovered.status == 200, recovered.body
    assert recovered.json() == values_of(2)
    assert app.calls == 1
    return [refused, recovered]


def refresh_under_fault(
    upstream: Upstream,
    fault: Fault,
    code: str,
    settings: Settings,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> list[LambdaResponse]:
    """A refresh meets the fault: the previous value with a warning naming the code, no
    upstream call during the retry pause, then the new value once the fault clears."""
    upstream.seed(1)
    app = App()
    middleware = middleware_for(upstream.source(settings), settings, clock, app)
    handler = Mangum(middleware, lifespan="off")
    answers = [invoke(handler, "http_api_v2", "/")]
    assert answers[-1].json() == values_of(1)

    clock.advance(TTL + 1)
    upstream.seed(2)  # upstream has moved on, but cannot be reached
    upstream.inject(fault)
    before = upstream.calls()
    logs.clear()
    answers.append(invoke(handler, "http_api_v2", "/"))

    assert answers[-1].status == 200, answers[-1].body
    assert answers[-1].json() == values_of(1)  # stale, served
    assert middleware.stats.stale_serves == 2
    # Each value was asked (but of a server that refuses: that reaches no server to count
    # it, though in process it is seen), and met the fault, and only it.
    if upstream.sees(fault):
        # A server records a request in its own thread: one the client gave up on (a
        # slow answer, abandoned at the bound) maybe after the client's return.
        assert upstream.received(before + 2)
    assert upstream.faults_since(before) == ({fault} if upstream.sees(fault) else set())
    warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    stale = [m for m in warnings if "serving the previous value" in m]
    assert len(stale) == 2, warnings
    assert all(f"({code})" in m for m in stale), stale
    assert any(PARAMETER in m for m in stale)
    assert any(SECRET in m for m in stale)

    # During the retry pause, the stale value is served without asking the failing upstream.
    during_pause = upstream.calls()
    clock.advance(STALE_RETRY_SECONDS - 1)
    answers.append(invoke(handler, "http_api_v2", "/"))
    assert answers[-1].json() == values_of(1)
    assert upstream.calls() == during_pause
    assert middleware.stats.stale_serves == 2

    # Recovery: the fault clears, the pause passes, the new value is served.
    upstream.heal()
    clock.advance(2)
    answers.append(invoke(handler, "http_api_v2", "/"))
    assert answers[-1].status == 200, answers[-1].body
    assert answers[-1].json() == values_of(2)
    assert app.calls == 4
    return answers


MIDDLEWARE_MATRIX = [
    pytest.param(kind, fault, code, id=f"{kind}-{fault}")
    for (kind, fault), (code, _, _) in FETCH_OUTCOMES.items()
]


@pytest.fixture
def in_process(request: pytest.FixtureRequest, aws_environment: None) -> InProcessUpstream:
    kind: SourceKind = request.param
    return InProcessUpstream(in_process_upstream(kind))


@pytest.mark.parametrize(
    ("in_process", "fault", "code"), MIDDLEWARE_MATRIX, indirect=["in_process"]
)
def test_first_load_under_fault_answers_503_then_recovers_on_the_same_instance(
    in_process: InProcessUpstream,
    fault: Fault,
    code: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    settings = settings_from_environment(monkeypatch, MOCK_TIMEOUT_MS)
    answers = first_load_under_fault(in_process, fault, code, settings, clock, logs)
    assert_no_value_leaked(logs, answers)


@pytest.mark.parametrize(
    ("in_process", "fault", "code"), MIDDLEWARE_MATRIX, indirect=["in_process"]
)
def test_refresh_under_fault_serves_the_previous_value_then_recovers(
    in_process: InProcessUpstream,
    fault: Fault,
    code: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    settings = settings_from_environment(monkeypatch, MOCK_TIMEOUT_MS)
    answers = refresh_under_fault(in_process, fault, code, settings, clock, logs)
    assert_no_value_leaked(logs, answers)


# == one real socket per fault class ====================================================

# A slow server holds the request for HANG_SECONDS (30 s), far past the 2 s bound, or
# until it stops (the test's end, or the client leaving). A bound that does not hold
# still fails the test (the value comes), rather than hang it.
# Each fault class once, over the server where a real socket matters most to it.
REAL_SOCKET_MATRIX = [
    # httpcore's connect error, which the extension source names ("is the layer attached?")
    pytest.param("extension", "refused", "ConnectionError", id="extension-refused"),
    # a real read cancelled at the bound, with moto's answer still to come
    pytest.param("aws", "slow", "Timeout", id="aws-slow"),
    pytest.param("aws", "5xx", "InternalFailure", id="aws-5xx"),
    pytest.param("extension", "throttling", "ThrottlingException", id="extension-throttling"),
    # a matching Content-Length on half a JSON body
    pytest.param("aws", "malformed", "MalformedResponse", id="aws-malformed"),
    # a socket shut mid-body: httpcore's error, mapped by httpx
    pytest.param("extension", "dropped", "ConnectionError", id="extension-dropped"),
    pytest.param("extension", "not_ready", "ExtensionNotReady", id="extension-not_ready"),
]


@dataclass
class ExtensionUpstream:
    extension: FakeExtension
    stopped: bool = False

    def seed(self, version: int) -> None:
        self.extension.put_parameter(PARAMETER, parameter_value(version), type="SecureString")
        self.extension.put_secret(SECRET, string=json.dumps({"password": password(version)}))

    def inject(self, fault: Fault) -> None:
        if fault == "refused":
            self.extension.stop()
            self.stopped = True
        else:
            self.extension.fail(EXTENSION_FAULTS[fault])

    def heal(self) -> None:
        if self.stopped:
            self.extension.start(port=self.extension.port)  # the same port: a restart
            self.stopped = False
        self.extension.clear_faults()

    def calls(self) -> int:
        return self.extension.total_calls

    def faults_since(self, calls: int) -> set[str | None]:
        return {name_of(fault) for _, _, fault in self.extension.call_log()[calls:]}

    def sees(self, fault: Fault) -> bool:
        return fault != "refused"  # a stopped server counts nothing

    def received(self, calls: int) -> bool:
        return self.extension.wait_for_calls(calls)

    def source(self, settings: Settings) -> Source:
        return ExtensionSource(port=self.extension.port, token=TOKEN, settings=settings)


@dataclass
class AwsUpstream:
    moto: MotoServer
    proxy: CountingProxy
    port: int = 0

    def seed(self, version: int) -> None:
        body = json.dumps({"password": password(version)})
        put_parameter(
            self.moto, PARAMETER, parameter_value(version), type="SecureString", overwrite=True
        )
        if version == 1:
            create_secret(self.moto, SECRET, string=body)
        else:
            put_secret_value(self.moto, SECRET, string=body)

    def inject(self, fault: Fault) -> None:
        if fault == "refused":
            self.port = self.proxy.port
            self.proxy.stop()
        else:
            self.proxy.fail(FAULTS[fault])

    def heal(self) -> None:
        if self.port:
            self.proxy.start(port=self.port)
            self.port = 0
        self.proxy.clear_faults()

    def calls(self) -> int:
        return self.proxy.total

    def faults_since(self, calls: int) -> set[str | None]:
        return {name_of(met) for met in self.proxy.faults_met()[calls:]}

    def sees(self, fault: Fault) -> bool:
        return fault != "refused"  # a stopped proxy counts nothing

    def received(self, calls: int) -> bool:
        return self.proxy.wait_for_total(calls)

    def source(self, settings: Settings) -> Source:
        return AwsSource(endpoint_url=self.proxy.url, settings=settings)


@pytest.fixture
def real(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    kind: SourceKind = request.param
    if kind == "extension":
        with FakeExtension(token=TOKEN) as extension:
            yield ExtensionUpstream(extension)
        return
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    moto: MotoServer = request.getfixturevalue("moto")
    with CountingProxy(moto.url) as proxy:
        yield AwsUpstream(moto, proxy)


@pytest.mark.parametrize(("real", "fault", "code"), REAL_SOCKET_MATRIX, indirect=["real"])
def test_fault_over_a_real_socket_fails_a_first_load_and_serves_a_refresh_stale(
    real: Upstream,
    fault: Fault,
    code: str,
    request: pytest.FixtureRequest,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    settings = settings_from_environment(monkeypatch, REAL_TIMEOUT_MS)
    answers = first_load_under_fault(real, fault, code, settings, clock, logs)
    if fault == "refused":
        assert "is the extension layer attached?" in logs.text
    if request.node.callspec.params["real"] == "aws":
        moto: MotoServer = request.getfixturevalue("moto")
        moto.reset()  # the refresh half seeds version 1 afresh
    answers += refresh_under_fault(real, fault, code, settings, clock, logs)
    assert_no_value_leaked(logs, answers)


def test_static_source_missing_value_answers_503_with_the_aws_code_and_logs_no_value(
    clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    # A file or memory has no network to fail; what can go wrong is a missing value,
    # which is not transient: 503 on every request, and no stale value to fall back on.
    source = StaticSource(
        parameters={PARAMETER: {"value": parameter_value(1), "type": "SecureString"}}
    )
    app = App()
    settings = Settings(parameter_ttl=TTL, secret_ttl=TTL, log_level="debug")
    handler = Mangum(middleware_for(source, settings, clock, app), lifespan="off")
    answers = [invoke(handler, "http_api_v2", "/") for _ in range(2)]
    clock.advance(TTL + 1)
    answers.append(invoke(handler, "http_api_v2", "/"))
    for answer in answers:
        assert answer.status == 503
        assert answer.json() == {"detail": "could not load 'db' (ResourceNotFoundException)"}
    assert app.calls == 0
    assert_no_value_leaked(logs, answers)
