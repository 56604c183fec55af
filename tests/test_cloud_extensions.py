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
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets.sources import AwsSource, CloudExtensionsSource, Credentials
from tests import faults
from tests.cloud_extensions_fake import LOADING, FakeCloudExtensions, with_lambda_credentials
from tests.lambda_events import invoke
from tests.moto_server import CountingProxy, MotoServer, create_secret, put_parameter

KEYS = ("AKIDRUNTIME", "runtime-secret-key", "runtime-session-token")
SSRF_TOKEN = "ssrf-token"
VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "flags": Parameter("/app/flags", transform="json"),
    "db": Secret("prod/db", transform="json"),
}

SECRETS = "secretsmanager/get"  # the runtime's Secrets Manager operation


@pytest.fixture
def runtime() -> FakeCloudExtensions:
    fake = FakeCloudExtensions(credentials=KEYS, token=SSRF_TOKEN)
    fake.parameters.update({"/app/api-key": "key-1", "/app/flags": json.dumps({"beta": True})})
    fake.secrets["prod/db"] = json.dumps({"password": "pw-1"})
    return fake


@pytest.fixture
def runtime_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's own credentials, as on Lambda (runtimeCredentials authentication)."""
    with_lambda_credentials(monkeypatch, KEYS)


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
    assert runtime.signatures_checked == 2  # the secret's request is signed too
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
    runtime.fail(LOADING, times=4)  # four 503 ServiceUnavailableException first
    store = ParametersSecrets(VALUES, source=source(runtime))
    assert store.load_sync().api_key == "key-1"
    assert sum(runtime.calls.values()) == 6  # the 4 refused, then one call each


@pytest.mark.usefixtures("runtime_credentials")
def test_an_extension_that_keeps_loading_fails_by_the_time_bound(
    runtime: FakeCloudExtensions, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime.fail(LOADING)
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


# --- as AWS documents the runtime (issue 20, item 6) -----------------------------------

ROLE = "arn:aws:iam::123456789012:role/reader"


@pytest.mark.usefixtures("runtime_credentials")
def test_a_secret_request_with_a_wrong_signature_is_refused(
    runtime: FakeCloudExtensions,
) -> None:
    wrong = Credentials("AKIDRUNTIME", "not-the-secret-key", None)
    store = ParametersSecrets({"db": Secret("prod/db")}, source=source(runtime, credentials=wrong))
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    # Signed (not 401 MissingAuthenticationToken), but not with the runtime's key.
    assert failed.value.failures["db"].code == "SignatureDoesNotMatch"


@pytest.mark.usefixtures("runtime_credentials")
def test_a_429_is_asked_again_after_its_retry_after(runtime: FakeCloudExtensions) -> None:
    runtime.fail(faults.throttle(retry_after="0.5"), times=2, match=SECRETS)
    store = ParametersSecrets({"db": Secret("prod/db", transform="json")}, source=source(runtime))
    assert store.load_sync().db["password"] == "pw-1"
    assert runtime.calls["secretsmanager/get"] == 3
    # Our own backoff waits at most 0.2 s, then 0.4 s: each wait here is the runtime's.
    first, second, third = runtime.asked_at
    assert second - first >= 0.5
    assert third - second >= 0.5


@pytest.mark.usefixtures("runtime_credentials")
def test_a_retry_after_beyond_the_time_bound_fails_at_once_with_the_throttling(
    runtime: FakeCloudExtensions,
) -> None:
    runtime.fail(faults.throttle(retry_after="5"), match=SECRETS)
    settings = Settings(secret_timeout_ms=1000)
    store = ParametersSecrets(
        {"db": Secret("prod/db")}, source=source(runtime, settings=settings), settings=settings
    )
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert failed.value.failures["db"].code == "ThrottlingException"
    assert runtime.calls["secretsmanager/get"] == 1  # not asked again inside the bound


@pytest.mark.usefixtures("runtime_credentials")
def test_error_bodies_with_message_or_Message_are_both_read(runtime: FakeCloudExtensions) -> None:
    store = ParametersSecrets({"gone": Secret("not-there")}, source=source(runtime))
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert "can't find the specified secret" in str(failed.value.failures["gone"])  # message
    runtime.fail(LOADING)
    settings = Settings(secret_timeout_ms=200)
    loading = ParametersSecrets(
        {"db": Secret("prod/db")}, source=source(runtime, settings=settings), settings=settings
    )
    with pytest.raises(LoadError) as failed:
        loading.load_sync()
    assert "the extension is loading" in str(failed.value.failures["db"])  # Message


@pytest.mark.usefixtures("runtime_credentials")
def test_a_secret_with_a_role_is_asked_with_role_arn(runtime: FakeCloudExtensions) -> None:
    runtime.role_secrets[ROLE] = {"prod/db": json.dumps({"password": "theirs"})}
    store = ParametersSecrets(
        {
            "own": Secret("prod/db", transform="json"),
            "theirs": Secret("prod/db", transform="json", role_arn=ROLE),
        },
        source=source(runtime),
    )
    values = store.load_sync()
    assert (values.own["password"], values.theirs["password"]) == ("pw-1", "theirs")
    assert runtime.roles_asked == [ROLE]
    assert runtime.signatures_checked == 2


@pytest.mark.usefixtures("runtime_credentials")
def test_while_the_runtime_loads_values_come_from_aws_directly_with_a_fallback(
    runtime: FakeCloudExtensions,
    moto: MotoServer,
    moto_proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At INIT (a module-level ``load_sync()``): the runtime answers 503 while it loads;
    the INIT fallback reads AWS directly, as with the Lambda extension not ready."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # moto's
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    put_parameter(moto, "/app/api-key", "from-aws")
    put_parameter(moto, "/other/key", "their-key")
    create_secret(moto, "prod/db", string=json.dumps({"password": "from-aws"}))
    runtime.fail(LOADING)
    direct = AwsSource("us-east-1", endpoint_url=moto_proxy.url)
    store = ParametersSecrets(
        {
            "api_key": Parameter("/app/api-key"),
            "db": Secret("prod/db", transform="json"),
            # The Parameter Store extension documents no roleArn: AWS directly, always.
            "theirs": Parameter("/other/key", role_arn=ROLE),
        },
        source=source(runtime, fallback=direct),
    )
    values = store.load_sync()
    assert (values.api_key, values.db["password"], values.theirs) == (
        "from-aws",
        "from-aws",
        "their-key",
    )
    # The runtime was asked once for each (not waited for), then AWS.
    assert runtime.calls == {"GetParameter": 1, "secretsmanager/get": 1}
    assert moto_proxy.calls("AmazonSSM.GetParameter") == 2
    assert moto_proxy.calls("secretsmanager.GetSecretValue") == 1


def test_on_lambda_the_source_variable_picks_it_with_the_init_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", "cloud-extensions")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "demo")
    store = ParametersSecrets(VALUES)
    assert isinstance(store.source, CloudExtensionsSource)
    assert store.source.fallback == "aws"
