"""CloudExtensionsSource where its configuration or the runtime's answers are unusual
(found by branch coverage), against the fake runtime of tests/cloud_extensions_fake.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parameters_secrets import (
    ConfigurationError,
    FetchError,
    LoadError,
    Parameter,
    ParametersSecrets,
    Secret,
)
from parameters_secrets.sources import CloudExtensionsSource
from tests import faults
from tests.cloud_extensions_fake import FakeCloudExtensions, with_lambda_credentials

KEYS = ("AKIDRUNTIME", "runtime-secret-key", "runtime-session-token")
TOKEN = "ssrf-token"


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> FakeCloudExtensions:
    with_lambda_credentials(monkeypatch, KEYS)
    fake = FakeCloudExtensions(credentials=KEYS, token=TOKEN)
    fake.parameters["/app/api-key"] = "key-1"
    fake.secrets["prod/db"] = json.dumps({"password": "pw-1"})
    return fake


def test_a_fallback_that_is_not_aws_or_a_source_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="fallback must be 'aws', a source or None"):
        CloudExtensionsSource(fallback="boto3")  # type: ignore[arg-type]


def test_without_a_region_every_value_fails_naming_how_to_give_one(
    runtime: FakeCloudExtensions, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    source = CloudExtensionsSource(token=TOKEN, transport=runtime.transport())
    store = ParametersSecrets(
        {"api_key": Parameter("/app/api-key"), "db": Secret("prod/db")}, source=source
    )
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert {key: error.code for key, error in failed.value.failures.items()} == {
        "api_key": "NoRegion",
        "db": "NoRegion",
    }
    assert "set AWS_REGION or pass CloudExtensionsSource(region=...)" in str(
        failed.value.failures["db"]
    )
    assert sum(runtime.calls.values()) == 0  # nothing sent unsigned


@pytest.mark.parametrize("retry_after", ["soon", "-1", "nan", ""])
def test_a_retry_after_that_is_not_a_delay_is_ignored_and_the_throttling_retried(
    runtime: FakeCloudExtensions, retry_after: str
) -> None:
    runtime.fail(faults.throttle(retry_after=retry_after), times=1, match="secretsmanager/get")
    source = CloudExtensionsSource(token=TOKEN, transport=runtime.transport())
    store = ParametersSecrets({"db": Secret("prod/db", transform="json")}, source=source)
    assert store.load_sync()["db"]["password"] == "pw-1"
    assert runtime.calls["secretsmanager/get"] == 2  # throttled once, then answered


def secret_failure(runtime_answer: Any) -> FetchError:
    source = CloudExtensionsSource(token=TOKEN, transport=httpx.MockTransport(runtime_answer))
    store = ParametersSecrets({"db": Secret("prod/db")}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    return failed.value.failures["db"]


@pytest.mark.usefixtures("runtime")
def test_a_runtime_that_cannot_be_reached_is_named_with_its_port() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    failure = secret_failure(refuse)
    assert failure.transient
    assert "the Cloud Extensions runtime on 127.0.0.1:" in str(failure)
    assert "cannot be reached (ConnectError)" in str(failure)


@pytest.mark.usefixtures("runtime")
def test_a_secret_answer_that_is_not_json_is_malformed() -> None:
    failure = secret_failure(lambda request: httpx.Response(200, text="<html>hello</html>"))
    assert (failure.code, failure.transient) == ("MalformedResponse", True)
