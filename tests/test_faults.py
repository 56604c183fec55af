"""Network faults, source by source, through the middleware under a real Mangum handler.

For every source that talks to a network (``ExtensionSource`` against ``FakeExtension``;
``AwsSource`` against moto through ``CountingProxy``) and every way the network fails —
refused, slower than the timeout, 5xx, throttling, malformed JSON, a connection dropped
mid-body, and the extension's ``not ready`` — three outcomes:

* first load: 503 naming each key with the error code, the app not called, an ERROR log;
* a refresh after the TTL: the previous value, a warning, ``stats.stale_serves``, and no
  upstream call again until the retry pause has passed;
* recovery: once the fault clears, the new value, from the same middleware instance.

Every test logs at DEBUG (every logger) and checks that the known secret value never
appears in a log record or an error response. TTLs pass on the ``clock`` fixture.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pytest
from mangum import Mangum
from starlette.responses import JSONResponse

from parameters_secrets import (
    AwsSource,
    ExtensionSource,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
    StaticSource,
)
from parameters_secrets._cache import STALE_RETRY_SECONDS
from parameters_secrets._sources import Source
from tests.conftest import TOKEN, FakeClock, detail_503
from tests.extension_server import FakeExtension, FaultMode
from tests.lambda_events import LambdaResponse, invoke
from tests.moto_server import (
    CountingProxy,
    FaultKind,
    MotoServer,
    create_secret,
    put_parameter,
    put_secret_value,
)

CANARY = "Fault-Canary-3e9b71"  # part of every value: must never reach a log or an error
PARAMETER = "/faults/api-key"
SECRET = "faults/db"
TTL = 60
TIMEOUT_MS = 800  # from the environment: SSM_PARAMETER_STORE_TIMEOUT_MILLIS and friends
SLOW_SECONDS = 3.0  # far past the timeout; the servers end the wait when they stop

Fault = Literal["refused", "slow", "5xx", "throttling", "malformed", "dropped", "not_ready"]
SourceKind = Literal["extension", "aws"]

# What the middleware reports for each fault, per source. AwsSource retries the
# transient ones (up to 6 attempts within the timeout) and then reports the last code.
EXPECTED_CODE: dict[tuple[SourceKind, Fault], str] = {
    ("extension", "refused"): "ConnectionError",
    ("extension", "slow"): "Timeout",
    ("extension", "5xx"): "InternalServerError",
    ("extension", "throttling"): "ThrottlingException",
    ("extension", "malformed"): "MalformedResponse",
    ("extension", "dropped"): "ConnectionError",
    ("extension", "not_ready"): "ExtensionNotReady",
    ("aws", "refused"): "ConnectionError",
    ("aws", "slow"): "Timeout",
    ("aws", "5xx"): "InternalFailure",
    ("aws", "throttling"): "ThrottlingException",
    ("aws", "malformed"): "MalformedResponse",
    ("aws", "dropped"): "ConnectionError",
}
MATRIX = [pytest.param(source, fault, id=f"{source}-{fault}") for source, fault in EXPECTED_CODE]

EXTENSION_MODES: dict[Fault, FaultMode] = {
    "slow": "slow",
    "5xx": "error_500",
    "throttling": "throttle",
    "malformed": "malformed_json",
    "dropped": "drop_mid_body",
    "not_ready": "not_ready",
}
PROXY_KINDS: dict[Fault, FaultKind | None] = {
    "slow": None,  # forwarded, after the latency
    "5xx": "error",
    "throttling": "throttle",
    "malformed": "malformed",
    "dropped": "drop",
}


def parameter_value(version: int) -> str:
    return f"{CANARY}-api-key-{version}"


def password(version: int) -> str:
    return f"{CANARY}-password-{version}"


class Upstream(Protocol):
    """A network upstream the tests can seed, break and heal."""

    def seed(self, version: int) -> None: ...
    def inject(self, fault: Fault) -> None: ...
    def heal(self) -> None: ...
    def calls(self) -> int: ...
    def source(self, settings: Settings) -> Source: ...


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
            delay = SLOW_SECONDS if fault == "slow" else 0.0
            self.extension.fail(EXTENSION_MODES[fault], delay=delay)

    def heal(self) -> None:
        if self.stopped:
            self.extension.start(port=self.extension.port)  # the same port: a restart
            self.stopped = False
        self.extension.clear_faults()

    def calls(self) -> int:
        return self.extension.total_calls

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
            latency = SLOW_SECONDS if fault == "slow" else 0.0
            self.proxy.fail(None, PROXY_KINDS[fault], latency=latency)

    def heal(self) -> None:
        if self.port:
            self.proxy.start(port=self.port)
            self.port = 0
        self.proxy.clear_faults()

    def calls(self) -> int:
        return self.proxy.total

    def source(self, settings: Settings) -> Source:
        return AwsSource(endpoint_url=self.proxy.url, settings=settings)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, but for boto3's own: it logs the test's seeding calls
    (values included) through moto, which is the test talking, not the library."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        caplog.set_level(logging.WARNING, logger=name)
    caplog.set_level(logging.DEBUG)  # last: set_level also sets the capturing handler's level
    return caplog


@pytest.fixture
def timeouts_from_environment(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", str(TIMEOUT_MS))
    monkeypatch.setenv("SECRETS_MANAGER_TIMEOUT_MILLIS", str(TIMEOUT_MS))
    settings = Settings.from_env(parameter_ttl=TTL, secret_ttl=TTL, log_level="debug")
    assert (settings.parameter_timeout_ms, settings.secret_timeout_ms) == (TIMEOUT_MS, TIMEOUT_MS)
    return settings


@pytest.fixture
def upstream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
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


def values_of(version: int) -> dict[str, str]:
    return {"api_key": parameter_value(version), "password": password(version)}


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


@pytest.mark.parametrize(("upstream", "fault"), MATRIX, indirect=["upstream"])
def test_first_load_under_fault_answers_503_then_recovers_on_the_same_instance(
    upstream: Upstream,
    fault: Fault,
    request: pytest.FixtureRequest,
    clock: FakeClock,
    timeouts_from_environment: Settings,
    logs: pytest.LogCaptureFixture,
) -> None:
    code = EXPECTED_CODE[(request.node.callspec.params["upstream"], fault)]
    upstream.seed(1)
    app = App()
    middleware = middleware_for(
        upstream.source(timeouts_from_environment), timeouts_from_environment, clock, app
    )
    handler = Mangum(middleware, lifespan="off")
    upstream.inject(fault)

    refused = invoke(handler, "http_api_v2", "/")

    assert refused.status == 503
    assert refused.json() == {"detail": f"could not load 'api_key' ({code}), 'db' ({code})"}
    assert app.calls == 0
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
    assert_no_value_leaked(logs, [refused, recovered])


@pytest.mark.parametrize(("upstream", "fault"), MATRIX, indirect=["upstream"])
def test_refresh_under_fault_serves_the_previous_value_then_recovers(
    upstream: Upstream,
    fault: Fault,
    request: pytest.FixtureRequest,
    clock: FakeClock,
    timeouts_from_environment: Settings,
    logs: pytest.LogCaptureFixture,
) -> None:
    code = EXPECTED_CODE[(request.node.callspec.params["upstream"], fault)]
    upstream.seed(1)
    app = App()
    middleware = middleware_for(
        upstream.source(timeouts_from_environment), timeouts_from_environment, clock, app
    )
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
    if fault != "refused":  # a refused connection reaches no server to count it
        assert upstream.calls() > before
    warnings = [r.getMessage() for r in logs.records if r.levelno == logging.WARNING]
    stale = [m for m in warnings if "serving the previous value" in m and f"({code})" in m]
    assert len(stale) == 2, warnings
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
