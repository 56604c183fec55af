"""Time bounds that mean what they say (issue 19, items 5 and 11).

A deadline never lifts the ceiling (``inf``, a context's ``1e15`` ms), NaN is a
``ConfigurationError``; the store's ``settings=`` bound an explicitly built source; a
starting extension is asked again for about 1 s; every timeout's ERROR line says after
how long. And the small ones: the no-credentials error of the extension's fallback says
why AWS was asked, ``AwsSource``'s repr shows its endpoints, no log line is prefixed twice.
"""

from __future__ import annotations

import logging
import math
import random
import re
import sys
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

import anyio
import pytest

import parameters_secrets._sources as sources_module
from parameters_secrets import (
    ConfigurationError,
    FetchError,
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Settings,
)
from parameters_secrets._declarations import ParameterRequest, ValueRequest
from parameters_secrets._sources import Outcome
from parameters_secrets.sources import AwsSource, Credentials, ExtensionSource, Source
from tests import faults
from tests.conftest import hung
from tests.extension_server import FakeExtension
from tests.moto_server import CountingProxy
from tests.processes import free_port

TOKEN = "test-session-token"  # the extension fixture's token (conftest.py)
VALUES = {"flags": Parameter("/app/flags")}
CREDENTIALS = Credentials("testing", "testing")
# The ceiling, shortened for these tests: a bound that would never end is the fault.
CEILING = 0.3
TIMED_OUT_AFTER = re.compile(r"timed out after \d+\.\d s")


@pytest.fixture
def short_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources_module, "DEFAULT_TIMEOUT_SECONDS", CEILING)


def hanging_aws(hanging: CountingProxy, settings: Settings | None = None) -> AwsSource:
    return AwsSource(
        region="us-east-1",
        endpoint_url=hanging.url,
        credentials=CREDENTIALS,
        settings=settings if settings is not None else Settings(),
    )


# --- (a) a deadline never lifts the ceiling; NaN is a ConfigurationError -----------------


@pytest.mark.anyio
@pytest.mark.usefixtures("short_ceiling")
async def test_an_infinite_deadline_ends_at_the_ceiling(hanging: CountingProxy) -> None:
    store = ParametersSecrets(VALUES, source=hanging_aws(hanging))
    with anyio.fail_after(5), pytest.raises(LoadError) as caught:  # a guard: never ends today
        await store.load(deadline=math.inf)
    await store.aclose()
    assert caught.value.failures["flags"].code == "Timeout"
    assert hung(hanging)  # the upstream hung: that is what was cut


class _Context:
    """A Lambda context whose remaining time is what the test says."""

    def __init__(self, milliseconds: float) -> None:
        self.milliseconds = milliseconds

    def get_remaining_time_in_millis(self) -> float:
        return self.milliseconds


@pytest.mark.anyio
@pytest.mark.usefixtures("short_ceiling")
async def test_a_contexts_remaining_time_beyond_the_ceiling_is_held_to_it(
    hanging: CountingProxy,
) -> None:
    # (An infinite one already counted as none: tests/test_middleware.py.)
    sent: list[MutableMapping[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called: the value did not load")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    middleware = ParametersSecretsMiddleware(app, values=VALUES, source=hanging_aws(hanging))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [],
        "aws.context": _Context(1e15),
    }
    with anyio.fail_after(5):  # a guard: 1e15 ms never ends today
        await middleware(scope, receive, send)
    await middleware.store.aclose()
    assert sent[0]["status"] == 503
    assert hung(hanging)


@pytest.mark.anyio
async def test_a_nan_deadline_is_a_configuration_error_naming_it(hanging: CountingProxy) -> None:
    store = ParametersSecrets(VALUES, source=hanging_aws(hanging))
    with anyio.fail_after(5), pytest.raises(ConfigurationError, match=r"deadline.*NaN"):
        await store.load(deadline=math.nan)
    await store.aclose()
    assert hanging.total == 0  # refused before anything was asked


def test_a_nan_deadline_is_a_configuration_error_in_load_sync_too(
    hanging: CountingProxy,
) -> None:
    store = ParametersSecrets(VALUES, source=hanging_aws(hanging))
    with pytest.raises(ConfigurationError, match=r"deadline.*NaN"):
        store.load_sync(deadline=math.nan)


# --- (b) the store's settings= bound an explicitly built source ---------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["aws", "extension"])
async def test_the_stores_settings_bound_an_explicitly_built_source(
    hanging: CountingProxy, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # The source is built with settings of its own (no timeout: 10 s); the store's say 300 ms.
    source: Source = (
        hanging_aws(hanging)
        if kind == "aws"
        else ExtensionSource(hanging.port, TOKEN, settings=Settings())
    )
    store = ParametersSecrets(
        VALUES, source=source, settings=Settings(parameter_timeout_ms=int(CEILING * 1000))
    )
    with anyio.fail_after(5), pytest.raises(LoadError) as caught:
        await store.load()
    await store.aclose()
    error = caught.value.failures["flags"]
    assert error.code == "Timeout"
    # The source's own timeout ended it (the right cause), not the cache's guard against
    # a source that does not end its fetch (the store's bound + 1 s).
    assert "timed out" in str(error)
    assert "did not end its fetch" not in caplog.text
    assert hung(hanging)


# --- (c) a starting extension is asked again for about 1 s ---------------------------------


@pytest.mark.anyio
async def test_a_starting_extension_is_asked_again_for_about_one_second(
    extension: FakeExtension, monkeypatch: pytest.MonkeyPatch
) -> None:
    extension.put_parameter("/app/flags", "on")
    source = ExtensionSource(extension.port, TOKEN, settings=Settings())
    # Its pool made and used once: what is measured is the retrying, not a first use.
    assert await source.fetch([ParameterRequest("/app/flags")])
    extension.fail(faults.NOT_READY)
    asked_before = extension.calls("parameter", "/app/flags")
    # Every pause as long as the backoff allows (full jitter's worst case): the last one
    # must still end with the second.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    started = time.monotonic()
    [outcome] = await source.fetch([ParameterRequest("/app/flags")])
    elapsed = time.monotonic() - started  # the limit this test states: about 1 s
    await source.aclose()
    assert isinstance(outcome, FetchError)
    assert outcome.code == "ExtensionNotReady"  # not a timeout
    assert "not ready" in str(outcome)
    assert extension.calls("parameter", "/app/flags") - asked_before > 1  # asked again
    assert elapsed <= 1.2


# --- (d) every timeout's ERROR line says it timed out, and after how long ----------------


@pytest.mark.anyio
@pytest.mark.usefixtures("short_ceiling")
async def test_a_timed_out_loads_error_line_says_after_how_long(
    hanging: CountingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    store = ParametersSecrets(VALUES, source=hanging_aws(hanging))
    with anyio.fail_after(5), pytest.raises(LoadError):
        await store.load()
    await store.aclose()
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "could not be loaded" in line
    assert TIMED_OUT_AFTER.search(line), line


class _NeverEnds(Source):
    """A custom source that ignores its time bound: the cache's guard must end it."""

    checks_records = True

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_source_cut_off_by_the_guard_is_logged_with_how_long_it_ran(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = ParametersSecrets(
        VALUES, source=_NeverEnds(), settings=Settings(parameter_timeout_ms=100)
    )
    with anyio.fail_after(5), pytest.raises(LoadError):
        await store.load()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, errors  # the guard's line, then the value's
    assert all(TIMED_OUT_AFTER.search(line) for line in errors), errors


# --- 11. the small ones -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_credentials_through_the_extensions_fallback_says_the_extension_was_not_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)  # no credentials anywhere
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    # Nothing listens on the extension's port: Lambda's INIT, before the extension serves.
    source = ExtensionSource(free_port(), TOKEN, settings=Settings(), fallback="aws")
    [outcome] = await source.fetch([ParameterRequest("/app/flags")])
    await source.aclose()
    assert isinstance(outcome, FetchError)
    assert outcome.code == "NoCredentials"
    message = str(outcome)
    assert "extension was not serving" in message
    assert "ConnectionError" in message  # why it was not
    assert "AWS_ACCESS_KEY_ID" in message  # and still what to do about credentials


def test_aws_sources_repr_shows_the_endpoint_from_aws_endpoint_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert repr(AwsSource(region="us-east-1")) == (
        "AwsSource(region='us-east-1', endpoint_url='http://127.0.0.1:4566')"
    )


def test_aws_sources_repr_shows_each_services_endpoint_when_they_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:4566")
    assert repr(AwsSource(region="eu-west-1")) == (
        "AwsSource(region='eu-west-1', ssm='http://127.0.0.1:4566', "
        "secretsmanager='https://secretsmanager.eu-west-1.amazonaws.com')"
    )


@pytest.mark.anyio
async def test_no_log_line_is_prefixed_with_the_loggers_name_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="parameters_secrets")
    caplog.handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    # Every line the package logs by itself at startup and on a first load: the source
    # chosen, the settings, the extension not serving, the cache's counters.
    source = ExtensionSource(free_port(), TOKEN, settings=Settings(), fallback=_Fixed())
    store = ParametersSecrets(VALUES, source=source, settings=Settings())
    await store.load()
    await store.aclose()
    lines = caplog.text.splitlines()
    assert len(lines) >= 4, lines
    assert not [line for line in lines if "parameters_secrets: parameters_secrets:" in line]


class _Fixed(Source):
    """AWS as the extension's fallback: one fixed value."""

    checks_records = True

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        return [{"Name": "/app/flags", "Value": "on", "Type": "String"} for _ in requests]

    async def aclose(self) -> None:
        pass
