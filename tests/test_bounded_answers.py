"""Hostile answers: a body of 1 GiB, JSON nested 100,000 deep, an integer of a million
digits, a value that fails its transform. Each is a ``FetchError``, never unbounded memory
or an exception that escapes; on refresh the cached value is served stale (WARNING), as
for any transient failure; no value appears in any log line or message."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

import parameters_secrets
from parameters_secrets import (
    FetchError,
    LoadError,
    Parameter,
    ParametersSecrets,
    Secret,
    Settings,
)
from parameters_secrets._sources import Source
from parameters_secrets._sources._bounded import MAX_ANSWER_BYTES
from parameters_secrets._sources._retry import RetryPolicy
from parameters_secrets.sources import AwsSource, CloudExtensionsSource, ExtensionSource
from tests import faults
from tests.cloud_extensions_fake import FakeCloudExtensions
from tests.conftest import TOKEN, FakeClock
from tests.extension_server import FakeExtension
from tests.moto_in_process import REGION, InProcessMoto
from tests.moto_server import CountingProxy
from tests.processes import clean_environment

GIB = 1024**3
CHUNK = 64 * 1024
DEEP = b"[" * 100_000
# Far beyond Python 3.11's own 4,300-digit limit, which this test lifts (as 3.10 has none).
HUGE_INT = (
    b'{"Parameter": {"Name": "/app/key", "Value": "v", "Version": ' + b"1" * 1_000_000 + b"}}"
)
CANARY = "canary-7f3a9c"  # in every value: it must appear in no log line or message
FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.002)
# The child imports the package the tests import (a checkout's, or the installed one).
PACKAGE_ROOT = Path(parameters_secrets.__file__).resolve().parent.parent


# The child: load one value from the 1 GiB upstream; report the error's code, the time
# taken and how far the peak RSS grew (ru_maxrss: KiB on Linux) from before the load.
_CHILD = """
import json, resource, sys, time
from parameters_secrets import LoadError, Parameter, ParametersSecrets, Settings
from parameters_secrets.sources import AwsSource, ExtensionSource
kind, port, bound_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = Settings(parameter_timeout_ms=bound_ms)
if kind == "extension":
    source = ExtensionSource(port, token="t", settings=settings)
else:
    source = AwsSource("us-east-1", f"http://127.0.0.1:{port}", settings=settings)
store = ParametersSecrets({"key": Parameter("/app/key")}, source=source, settings=settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    store.load_sync()
    code = None
except LoadError as error:
    code = error.failures["key"].code
elapsed = time.monotonic() - started
growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"code": code, "elapsed": elapsed, "growth_mb": growth_kib / 1024}))
"""
BOUND_MS = 5000


@pytest.fixture
def gib_upstream(request: pytest.FixtureRequest) -> Iterator[FakeExtension | CountingProxy]:
    """The extension, or AWS (moto behind the proxy), answering every request 1 GiB."""
    kind, framing = request.param
    if kind == "aws":
        proxy: CountingProxy = request.getfixturevalue("moto_proxy")
        proxy.fail(faults.huge(GIB, chunked=framing == "chunked"))
        yield proxy
        return
    with FakeExtension() as extension:
        extension.fail(faults.huge(GIB, chunked=framing == "chunked"))
        yield extension


@pytest.mark.parametrize(
    ("gib_upstream", "kind"),
    [
        pytest.param((kind, framing), kind, id=f"{kind}-{framing}")
        for kind in ("extension", "aws")
        for framing in ("chunked", "length")
    ],
    indirect=["gib_upstream"],
)
def test_a_1_gib_answer_is_refused_at_the_cap_with_little_memory_and_in_time(
    gib_upstream: FakeExtension | CountingProxy, kind: str
) -> None:
    env = clean_environment(
        {
            "PYTHONPATH": str(PACKAGE_ROOT),
            "AWS_ACCESS_KEY_ID": "AKIDTEST",
            "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(gib_upstream.port), str(BOUND_MS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    sent = gib_upstream.bytes_sent
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == "ResponseTooLarge", report  # the cap, not the time bound
    assert report["growth_mb"] < 100, report
    assert report["elapsed"] < BOUND_MS / 1000 / 2, report  # well within its bound
    # The upstream was not read to its end: at most the cap (and what the sockets
    # buffer) per try, 3 tries for AWS.
    assert sent < 4 * (MAX_ANSWER_BYTES + 16 * 1024 * 1024), sent


# -- hostile bodies from each source --------------------------------------------------------


@dataclass
class Hostile:
    """The upstream of a source under test: ``fail`` injects a fault into it, ``met()``
    counts the requests that met one."""

    fail: Callable[[faults.Fault], None]
    met: Callable[[], int]


SourceKind = Literal["extension", "aws", "cloud-extensions"]


def _source(kind: SourceKind, monkeypatch: pytest.MonkeyPatch) -> tuple[Source, Hostile]:
    """A source of ``kind`` whose upstream holds ``/app/key`` = ``good-CANARY``."""
    value = f"good-{CANARY}"
    if kind == "extension":
        ext = FakeExtension()
        ext.put_parameter("/app/key", value)
        met = lambda: sum(1 for *_, fault in ext.call_log() if fault)  # noqa: E731
        return ExtensionSource(token=TOKEN, transport=ext.transport()), Hostile(ext.fail, met)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDRUNTIME")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "runtime-secret-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "runtime-session-token")
    if kind == "aws":
        aws = InProcessMoto(REGION)
        aws.put_parameter("/app/key", value)
        aws_source = AwsSource(REGION, retry=FAST_RETRY, transport=aws.transport())
        return aws_source, Hostile(aws.fail, lambda: sum(1 for call in aws.calls if call.fault))
    runtime = FakeCloudExtensions(
        credentials=("AKIDRUNTIME", "runtime-secret-key", "runtime-session-token"), token="ssrf"
    )
    runtime.parameters["/app/key"] = value
    source = CloudExtensionsSource(
        token="ssrf", region=REGION, retry=FAST_RETRY, transport=runtime.transport()
    )
    return source, Hostile(runtime.fail, lambda: sum(map(bool, runtime.faults_met)))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="parameters_secrets")
    return caplog


def assert_no_value_in(logs: pytest.LogCaptureFixture, *errors: BaseException) -> None:
    for record in logs.records:
        assert CANARY not in record.getMessage()
        assert CANARY not in repr(record.args)
    for error in errors:
        assert CANARY not in str(error)
        assert CANARY not in repr(error)
        if isinstance(error, LoadError):
            assert all(CANARY not in str(e) for e in error.failures.values())


def _stale_warnings(logs: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in logs.records
        if r.levelno == logging.WARNING and "serving the previous value" in r.getMessage()
    ]


@pytest.mark.parametrize("body", [DEEP, HUGE_INT], ids=["deeply-nested", "huge-integer"])
@pytest.mark.parametrize("kind", ["extension", "aws", "cloud-extensions"])
def test_a_hostile_json_answer_is_malformed_and_a_refresh_serves_the_value_stale(
    kind: SourceKind,
    body: bytes,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    with contextlib.ExitStack() as stack:
        if body is HUGE_INT:
            stack.enter_context(python_310_integers())
        source, hostile = _source(kind, monkeypatch)
        store = ParametersSecrets({"key": Parameter("/app/key")}, source=source, clock=clock)
        assert store.load_sync()["key"] == f"good-{CANARY}"

        hostile.fail(faults.malformed(body))
        # The source says what is wrong: a transient MalformedResponse, nothing raised.
        outcome = _fetch_one(source)
        assert isinstance(outcome, FetchError), type(outcome)
        assert (outcome.code, outcome.transient) == ("MalformedResponse", True), outcome

        refreshed = store.refresh_sync()
        assert refreshed["key"] == f"good-{CANARY}"  # served stale
        assert store.stats.stale_serves == 1
        assert any("MalformedResponse" in line for line in _stale_warnings(logs))
        assert hostile.met() >= 2  # the hostile answer is what the refresh got
        assert_no_value_in(logs, outcome)


@pytest.mark.parametrize("kind", ["extension", "aws", "cloud-extensions"])
def test_an_answer_over_the_cap_on_refresh_serves_the_value_stale(
    kind: SourceKind,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    source, hostile = _source(kind, monkeypatch)
    store = ParametersSecrets({"key": Parameter("/app/key")}, source=source, clock=clock)
    assert store.load_sync()["key"] == f"good-{CANARY}"
    # valid JSON's whitespace, one byte too many
    hostile.fail(faults.malformed(b" " * (MAX_ANSWER_BYTES + 1)))
    assert store.refresh_sync()["key"] == f"good-{CANARY}"
    assert any("ResponseTooLarge" in line for line in _stale_warnings(logs))
    assert hostile.met() >= 1
    assert_no_value_in(logs)


@contextlib.contextmanager
def python_310_integers() -> Iterator[None]:
    """Python 3.10 converts any number of digits to an int (in time quadratic in their
    count): lift 3.11+'s limit, so the library's own guard is what is tested."""
    if not hasattr(sys, "set_int_max_str_digits"):
        yield
        return
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(previous)


def _fetch_one(source: Source) -> Any:
    import anyio

    from parameters_secrets._declarations import ParameterRequest

    async def fetch() -> Any:
        try:
            (outcome,) = await source.fetch([ParameterRequest("/app/key")])
        finally:
            await source.aclose()
        return outcome

    return anyio.run(fetch)


@pytest.mark.parametrize("kind", ["extension", "aws"])
def test_a_deeply_nested_error_answer_is_only_an_error(
    kind: SourceKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, hostile = _source(kind, monkeypatch)
    hostile.fail(faults.status(400, None, "[" * 3000 + "AccessDeniedException"))
    outcome = _fetch_one(source)
    assert hostile.met() >= 1
    assert isinstance(outcome, FetchError), type(outcome)
    assert outcome.code == "AccessDeniedException", outcome


# -- a value that fails its transform -------------------------------------------------------


@pytest.fixture
def fake_extension() -> FakeExtension:
    return FakeExtension()


def _json_store(ext: FakeExtension, clock: FakeClock, **settings: Any) -> ParametersSecrets:
    return ParametersSecrets(
        {"db": Secret("prod/db", transform="json")},
        source=ExtensionSource(token=TOKEN, transport=ext.transport()),
        settings=Settings(secret_ttl=60, **settings),
        clock=clock,
    )


BAD_VALUES = {
    "deeply-nested": "[" * 100_000,
    "not-json": f'{{"password": "{CANARY}"',
    "huge-integer": f'{{"{CANARY}": {"9" * 5000}}}',
}


@pytest.mark.parametrize("bad", list(BAD_VALUES), ids=list(BAD_VALUES))
def test_a_refreshed_value_that_fails_its_transform_serves_the_previous_one_stale(
    bad: str,
    fake_extension: FakeExtension,
    logs: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    fake_extension.put_secret("prod/db", string=json.dumps({"password": f"pw-{CANARY}"}))
    store = _json_store(fake_extension, clock)
    assert store.load_sync()["db"]["password"] == f"pw-{CANARY}"

    fake_extension.put_secret("prod/db", string=BAD_VALUES[bad])
    refreshed = store.refresh_sync()  # no LoadError: the previous value
    assert refreshed["db"]["password"] == f"pw-{CANARY}"
    assert store.stats.stale_serves == 1
    assert any("TransformFailed" in line for line in _stale_warnings(logs))
    # Once the TTL has passed, a load asks again and still serves the previous value.
    clock.advance(61)
    assert store.load_sync()["db"]["password"] == f"pw-{CANARY}"
    assert fake_extension.calls("secret", "prod/db") == 3
    assert_no_value_in(logs)


@pytest.mark.parametrize("bad", list(BAD_VALUES), ids=list(BAD_VALUES))
def test_a_first_load_of_a_value_that_fails_its_transform_is_a_load_error(
    bad: str,
    fake_extension: FakeExtension,
    logs: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    fake_extension.put_secret("prod/db", string=BAD_VALUES[bad])
    store = _json_store(fake_extension, clock)
    with pytest.raises(LoadError) as raised:
        store.load_sync()
    assert raised.value.failures["db"].code == "TransformFailed"
    assert_no_value_in(logs, raised.value)


def test_a_value_that_fails_its_transform_is_not_asked_for_again_on_every_request(
    fake_extension: FakeExtension, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    fake_extension.put_secret("prod/db", string="[" * 100_000)
    store = _json_store(fake_extension, clock)
    for _ in range(3):
        with pytest.raises(LoadError, match="TransformFailed"):
            store.load_sync()
    assert fake_extension.calls("secret", "prod/db") == 1  # remembered, as not-found is

    # A forced refresh asks now: the value may have been fixed.
    fake_extension.put_secret("prod/db", string=json.dumps({"password": "fixed"}))
    assert store.refresh_sync()["db"]["password"] == "fixed"
    assert fake_extension.calls("secret", "prod/db") == 2


def test_with_the_cache_off_a_value_that_fails_its_transform_is_asked_for_each_time(
    fake_extension: FakeExtension, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    fake_extension.put_secret("prod/db", string="not json")
    store = _json_store(fake_extension, clock, cache_enabled=False)
    for _ in range(3):
        with pytest.raises(LoadError, match="TransformFailed"):
            store.load_sync()
    assert fake_extension.calls("secret", "prod/db") == 3


def test_a_remembered_transform_failure_is_asked_again_after_a_while(
    fake_extension: FakeExtension, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    fake_extension.put_secret("prod/db", string="not json")
    store = _json_store(fake_extension, clock)
    with pytest.raises(LoadError, match="TransformFailed"):
        store.load_sync()
    fake_extension.put_secret("prod/db", string=json.dumps({"password": "fixed"}))
    clock.advance(11)  # NOT_FOUND_TTL_SECONDS and a second
    assert store.load_sync()["db"]["password"] == "fixed"
    assert fake_extension.calls("secret", "prod/db") == 2
