"""CloudExtensionsSource at its edges (found by branch coverage), against the fake runtime
of tests/cloud_extensions_fake.py: the SSRF token taken from the environment, throttling
retried with no fallback, and a Secrets Manager answer refused before it is read."""

from __future__ import annotations

import gzip
import json
from typing import Literal

import httpx
import pytest

from parameters_secrets import LoadError, ParametersSecrets, Secret
from parameters_secrets.sources import CloudExtensionsSource
from tests import faults
from tests.cloud_extensions_fake import FakeCloudExtensions, with_lambda_credentials

KEYS = ("AKIDRUNTIMEEDGES", "runtime-edges-secret-key", "runtime-edges-session-token")


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> FakeCloudExtensions:
    """The runtime, expecting as its SSRF token the session token (as on Lambda)."""
    with_lambda_credentials(monkeypatch, KEYS)
    fake = FakeCloudExtensions(credentials=KEYS, token=KEYS[2])
    fake.secrets["prod/db"] = json.dumps({"password": "pw-1"})
    return fake


def db_store(source: CloudExtensionsSource) -> ParametersSecrets:
    return ParametersSecrets({"db": Secret("prod/db", transform="json")}, source=source)


def test_without_a_token_the_session_token_is_sent(runtime: FakeCloudExtensions) -> None:
    source = CloudExtensionsSource(transport=runtime.transport())  # no token=
    assert db_store(source).load_sync()["db"]["password"] == "pw-1"
    assert runtime.calls["secretsmanager/get"] == 1


@pytest.mark.parametrize("fallback", [None, "aws"])
@pytest.mark.parametrize(
    "throttling",
    [faults.throttle(), faults.status(429, "ThrottlingException", "Rate exceeded")],
    ids=["400", "429 without Retry-After"],
)
def test_throttling_is_asked_again_of_the_runtime_with_or_without_a_fallback(
    runtime: FakeCloudExtensions, throttling: faults.Fault, fallback: Literal["aws"] | None
) -> None:
    runtime.fail(throttling, times=1, match="secretsmanager/get")
    source = CloudExtensionsSource(transport=runtime.transport(), fallback=fallback)
    assert db_store(source).load_sync()["db"]["password"] == "pw-1"
    assert runtime.calls["secretsmanager/get"] == 2  # throttled once, then answered


@pytest.mark.usefixtures("runtime")
def test_a_compressed_secret_answer_is_refused_without_inflating_it() -> None:
    def compressed(request: httpx.Request) -> httpx.Response:
        body = gzip.compress(json.dumps({"SecretString": "pw", "Name": "prod/db"}).encode())
        return httpx.Response(200, content=body, headers={"Content-Encoding": "gzip"})

    source = CloudExtensionsSource(transport=httpx.MockTransport(compressed))
    with pytest.raises(LoadError) as failed:
        db_store(source).load_sync()
    failure = failed.value.failures["db"]
    assert (failure.code, failure.transient) == ("MalformedResponse", True)
    assert "the Secrets Manager extension's answer is compressed" in str(failure)
