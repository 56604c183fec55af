"""AWS Systems Manager Cloud Extensions (issue 13, part 4, experimental), against a fake
built from the documented API (tests/cloud_extensions_fake.py)."""

from __future__ import annotations

import json

import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parameters_secrets import (
    CloudExtensionsSource,
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._sigv4 import Credentials
from tests.cloud_extensions_fake import FakeCloudExtensions
from tests.lambda_events import invoke

KEYS = ("AKIDRUNTIME", "runtime-secret-key", "runtime-session-token")
SSRF_TOKEN = "ssrf-token"
VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "flags": Parameter("/app/flags", transform="json"),
    "db": Secret("prod/db", transform="json"),
}


@pytest.fixture
def runtime() -> FakeCloudExtensions:
    fake = FakeCloudExtensions(credentials=KEYS, token=SSRF_TOKEN)
    fake.parameters.update({"/app/api-key": "key-1", "/app/flags": json.dumps({"beta": True})})
    fake.secrets["prod/db"] = json.dumps({"password": "pw-1"})
    return fake


@pytest.fixture
def runtime_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's own credentials, as on Lambda (runtimeCredentials authentication)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS[1])
    monkeypatch.setenv("AWS_SESSION_TOKEN", KEYS[2])
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def source(runtime: FakeCloudExtensions, **kwargs: object) -> CloudExtensionsSource:
    return CloudExtensionsSource(token=SSRF_TOKEN, transport=runtime.transport(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.usefixtures("runtime_credentials")
def test_parameters_come_batched_and_signed_and_secrets_by_the_query_route(
    runtime: FakeCloudExtensions,
) -> None:
    store = ParametersSecrets(VALUES, source=source(runtime))
    values = store.load_sync()
    assert (values.api_key, values.flags["beta"], values.db["password"]) == ("key-1", True, "pw-1")
    # Two parameters in one GetParameters, signed as botocore signs; the secret by query.
    assert runtime.calls == {"GetParameters": 1, "secretsmanager/get": 1}
    assert runtime.signatures_checked == 1
    store.load_sync()
    assert sum(runtime.calls.values()) == 2  # cached


@pytest.mark.usefixtures("runtime_credentials")
def test_a_wrong_signature_is_refused_with_the_runtimes_error_type(
    runtime: FakeCloudExtensions,
) -> None:
    wrong = Credentials("AKIDRUNTIME", "not-the-secret-key", None)
    store = ParametersSecrets(VALUES, source=source(runtime, credentials=wrong))
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert failed.value.failures["api_key"].code == "AccessDeniedException"  # X-Amzn-Errortype


@pytest.mark.usefixtures("runtime_credentials")
def test_a_wrong_ssrf_token_is_refused_with_the_runtimes_error_type(
    runtime: FakeCloudExtensions,
) -> None:
    store = ParametersSecrets(
        {"db": Secret("prod/db")},
        source=CloudExtensionsSource(token="wrong", transport=runtime.transport()),
    )
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert failed.value.failures["db"].code == "InvalidSsrfTokenException"


@pytest.mark.usefixtures("runtime_credentials")
def test_an_extension_still_loading_is_asked_again_within_the_bound(
    runtime: FakeCloudExtensions,
) -> None:
    runtime.loading(4)  # four 503 ServiceUnavailableException first
    store = ParametersSecrets(VALUES, source=source(runtime))
    assert store.load_sync().api_key == "key-1"
    assert sum(runtime.calls.values()) == 6  # the 4 refused, then one call each


@pytest.mark.usefixtures("runtime_credentials")
def test_an_extension_that_keeps_loading_fails_by_the_time_bound(
    runtime: FakeCloudExtensions, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.loading(10_000)
    settings = Settings(parameter_timeout_ms=300, secret_timeout_ms=300)
    store = ParametersSecrets(VALUES, source=source(runtime, settings=settings), settings=settings)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert {e.code for e in failed.value.failures.values()} == {"ServiceUnavailableException"}


@pytest.mark.usefixtures("runtime_credentials")
def test_through_the_middleware_under_mangum(runtime: FakeCloudExtensions) -> None:
    async def route(request: Request) -> JSONResponse:
        return JSONResponse({"beta": request.state.flags["beta"]})

    app = ParametersSecretsMiddleware(
        Starlette(routes=[Route("/", route)]), values=VALUES, source=source(runtime)
    )
    handler = Mangum(app, lifespan="off")
    for _ in range(3):
        assert invoke(handler, "http_api_v2", "/").json() == {"beta": True}
    assert sum(runtime.calls.values()) == 2


def test_the_source_variable_picks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", "cloud-extensions")
    store = ParametersSecrets(VALUES)
    assert isinstance(store.source, CloudExtensionsSource)
    assert store.source.port == 5333
