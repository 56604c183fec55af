"""AwsSource against moto's server on 127.0.0.1, with a counting, failing proxy in front."""

from __future__ import annotations

import contextlib
import functools
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum
from starlette.responses import JSONResponse

from parameters_secrets import (
    ConfigurationError,
    FetchError,
    Parameter,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._declarations import ParameterRequest, SecretRequest, ValueRequest
from parameters_secrets._sources import Outcome, aws
from parameters_secrets._sources._endpoints import (
    Region,
    dns_suffix,
    service_endpoint,
    validate_region,
)
from parameters_secrets.sources import AwsSource, Credentials, RetryPolicy
from tests import faults
from tests.credentials_endpoint import CredentialsEndpoint
from tests.faults import Fault
from tests.lambda_events import invoke
from tests.moto_server import (
    CountingProxy,
    MotoServer,
    assume_role,
    create_iam_user,
    create_secret,
    put_parameter,
    put_secret_value,
)

pytestmark = pytest.mark.anyio
MIDDLEWARE = Path(__file__).resolve().parent.parent / "middleware"
GET_PARAMETER = "AmazonSSM.GetParameter"
GET_PARAMETERS = "AmazonSSM.GetParameters"
GET_SECRET = "secretsmanager.GetSecretValue"
BATCH_SECRETS = "secretsmanager.BatchGetSecretValue"


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen, with the same count and jitter, but without the waits."""
    monkeypatch.setattr(aws, "RetryPolicy", functools.partial(RetryPolicy, base_delay=0.001))


@contextlib.asynccontextmanager
async def opened(source: AwsSource) -> AsyncIterator[AwsSource]:
    try:
        yield source
    finally:
        await source.aclose()


def value(outcome: Outcome) -> Any:
    if isinstance(outcome, FetchError):
        return f"error:{outcome.code}"
    return outcome.get("Value", outcome.get("SecretString", outcome.get("SecretBinary")))


async def fetch(source: AwsSource, requests: list[ValueRequest]) -> list[Any]:
    return [value(o) for o in await source.fetch(requests)]


@pytest.mark.usefixtures("credentials")
async def test_first_load_batches_ten_parameters_and_twenty_secrets_a_call(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    for i in range(12):
        put_parameter(moto, f"/app/p{i}", f"v{i}", type="SecureString" if i % 2 else "String")
    for i in range(3):
        put_parameter(moto, f"/app/raw{i}", f"r{i}")
    for i in range(21):
        create_secret(moto, f"app/s{i}", string=f"s{i}")
    requests: list[ValueRequest] = [ParameterRequest(f"/app/p{i}") for i in range(12)]
    requests += [ParameterRequest(f"/app/raw{i}", decrypt=False) for i in range(3)]
    requests += [SecretRequest(f"app/s{i}") for i in range(21)]
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        got = await fetch(source, requests)
    assert got == [f"v{i}" for i in range(12)] + [f"r{i}" for i in range(3)] + [
        f"s{i}" for i in range(21)
    ]
    # 12 decrypted names: 10 + 2; 3 undecrypted: 1 call; 21 secrets: 20 + 1 (alone).
    assert moto_proxy.calls(GET_PARAMETERS) == 3
    assert moto_proxy.calls(BATCH_SECRETS) == 1
    assert moto_proxy.calls(GET_SECRET) == 1
    assert moto_proxy.calls(GET_PARAMETER) == 0


@pytest.mark.usefixtures("credentials")
async def test_invalid_names_in_a_batch_fail_only_their_own_keys(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    put_parameter(moto, "/a", "1")
    put_parameter(moto, "/b", "2")
    put_parameter(moto, "/b", "2b", overwrite=True)
    create_secret(moto, "s1", string="x")
    create_secret(moto, "s2", string="y")
    requests: list[ValueRequest] = [
        ParameterRequest("/a"),
        ParameterRequest("/missing"),
        ParameterRequest("/b", version=1),
        ParameterRequest("/b"),
        SecretRequest("s1"),
        SecretRequest("nope"),
        SecretRequest("s2"),
    ]
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        got = await fetch(source, requests)
    assert got == [
        "1",
        "error:ParameterNotFound",
        "2",
        "2b",
        "x",
        "error:ResourceNotFoundException",
        "y",
    ]


@pytest.mark.usefixtures("credentials")
async def test_pinned_secret_versions_are_fetched_one_by_one(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    _, first = create_secret(moto, "rotating", string="old")
    put_secret_value(moto, "rotating", string="new")
    create_secret(moto, "other", string="o")
    requests: list[ValueRequest] = [
        SecretRequest("rotating"),
        SecretRequest("other"),
        SecretRequest("rotating", version_stage="AWSPREVIOUS"),
        SecretRequest("rotating", version_id=first),
    ]
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        assert await fetch(source, requests) == ["new", "o", "old", "old"]
    assert moto_proxy.calls(BATCH_SECRETS) == 1
    assert moto_proxy.calls(GET_SECRET) == 2


async def test_least_privilege_role_falls_back_to_single_calls_and_remembers(
    moto_auth: MotoServer,
) -> None:
    access_key, secret_key = create_iam_user(moto_auth)  # GetParameter, GetSecretValue only
    put_parameter(moto_auth, "/lp/a", "1")
    put_parameter(moto_auth, "/lp/b", "2")
    create_secret(moto_auth, "lp/s1", string="x")
    create_secret(moto_auth, "lp/s2", string="y")
    requests: list[ValueRequest] = [
        ParameterRequest("/lp/a"),
        ParameterRequest("/lp/b"),
        SecretRequest("lp/s1"),
        SecretRequest("lp/s2"),
    ]
    with CountingProxy(moto_auth.url) as proxy:
        source = AwsSource(
            region="us-east-1",
            endpoint_url=proxy.url,
            credentials=Credentials(access_key, secret_key),
        )
        async with opened(source):
            assert await fetch(source, requests) == ["1", "2", "x", "y"]
            assert (source.batch_parameters, source.batch_secrets) == (False, False)
            assert proxy.calls(GET_PARAMETERS) == 1
            assert proxy.calls(BATCH_SECRETS) == 1
            proxy.reset()
            assert await fetch(source, requests) == ["1", "2", "x", "y"]
            assert proxy.calls(GET_PARAMETERS) == proxy.calls(BATCH_SECRETS) == 0
            assert proxy.calls(GET_PARAMETER) == proxy.calls(GET_SECRET) == 2


async def test_wrong_secret_key_is_refused_with_the_aws_code(moto_auth: MotoServer) -> None:
    access_key, _ = create_iam_user(moto_auth)
    put_parameter(moto_auth, "/wrong/a", "1")
    source = AwsSource(
        region="us-east-1",
        endpoint_url=moto_auth.url,
        credentials=Credentials(access_key, "not-the-secret"),
    )
    async with opened(source):
        (outcome,) = await source.fetch([ParameterRequest("/wrong/a")])
    assert isinstance(outcome, FetchError)
    assert outcome.code == "SignatureDoesNotMatch"  # an XML error body, as auth failures are
    assert not outcome.transient
    assert outcome.status == 403


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(faults.server_error(), id="error"),
        pytest.param(faults.throttle(), id="throttle"),
        pytest.param(faults.reset(), id="drop"),
    ],
)
async def test_transient_failures_are_retried_then_succeed(
    moto: MotoServer, moto_proxy: CountingProxy, fault: Fault
) -> None:
    put_parameter(moto, "/retry", "ok")
    moto_proxy.fail(fault, times=2, match=GET_PARAMETER)
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        assert await fetch(source, [ParameterRequest("/retry")]) == ["ok"]
    assert moto_proxy.calls(GET_PARAMETER) == 3


@pytest.mark.usefixtures("credentials")
async def test_retries_are_bounded(moto: MotoServer, moto_proxy: CountingProxy) -> None:
    put_parameter(moto, "/down", "x")
    moto_proxy.fail(faults.server_error(), match=GET_PARAMETER)
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        (outcome,) = await source.fetch([ParameterRequest("/down")])
    assert isinstance(outcome, FetchError)
    assert (outcome.code, outcome.transient, outcome.status) == ("InternalFailure", True, 500)
    assert moto_proxy.calls(GET_PARAMETER) == RetryPolicy().max_attempts


@pytest.mark.usefixtures("credentials")
async def test_throttled_secret_batch_is_asked_again_value_by_value(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    create_secret(moto, "t1", string="one")
    create_secret(moto, "t2", string="two")
    moto_proxy.fail(
        faults.throttle(), match=BATCH_SECRETS
    )  # BatchGetSecretValue: 100/s, not adjustable
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        assert await fetch(source, [SecretRequest("t1"), SecretRequest("t2")]) == ["one", "two"]
    assert moto_proxy.calls(BATCH_SECRETS) == 1  # a throttled batch is not retried
    assert moto_proxy.calls(GET_SECRET) == 2


@pytest.mark.usefixtures("credentials")
async def test_not_found_is_not_retried(moto: MotoServer, moto_proxy: CountingProxy) -> None:
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        assert await fetch(source, [ParameterRequest("/none")]) == ["error:ParameterNotFound"]
        assert await fetch(source, [SecretRequest("none")]) == ["error:ResourceNotFoundException"]
    assert moto_proxy.calls(GET_PARAMETER) == moto_proxy.calls(GET_SECRET) == 1


@pytest.mark.usefixtures("credentials")
async def test_slow_upstream_times_out_within_the_setting(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    put_parameter(moto, "/slow", "x")
    moto_proxy.fail(faults.delay(3.0), match=GET_PARAMETER)
    settings = Settings(parameter_timeout_ms=200)
    async with opened(AwsSource(endpoint_url=moto_proxy.url, settings=settings)) as source:
        (outcome,) = await source.fetch([ParameterRequest("/slow")])
    assert isinstance(outcome, FetchError)
    assert (outcome.code, outcome.transient) == ("Timeout", True)


@pytest.mark.usefixtures("credentials")
async def test_running_out_of_time_after_an_upstream_error_reports_that_error(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    put_parameter(moto, "/flaky", "x")
    moto_proxy.fail(faults.server_error(), times=1, match=GET_PARAMETER)  # first a 500...
    moto_proxy.fail(faults.delay(6.0), match=GET_PARAMETER)  # ...then too slow for the budget
    # A budget the first answer (the 500) fits in even on a loaded machine: at 400 ms, CI
    # under load once saw only the timeout.
    settings = Settings(parameter_timeout_ms=1500)
    async with opened(AwsSource(endpoint_url=moto_proxy.url, settings=settings)) as source:
        (outcome,) = await source.fetch([ParameterRequest("/flaky")])
    assert isinstance(outcome, FetchError)
    assert (outcome.code, outcome.status) == ("InternalFailure", 500)
    assert moto_proxy.calls(GET_PARAMETER) >= 2


@pytest.mark.usefixtures("credentials")
async def test_refused_connection_is_a_transient_connection_error(
    moto_proxy: CountingProxy,
) -> None:
    url = moto_proxy.url
    moto_proxy.stop()
    async with opened(
        AwsSource(endpoint_url=url, settings=Settings(parameter_timeout_ms=2000))
    ) as source:
        (outcome,) = await source.fetch([ParameterRequest("/any")])
    assert isinstance(outcome, FetchError)
    assert (outcome.code, outcome.transient) == ("ConnectionError", True)


@pytest.mark.usefixtures("credentials")
async def test_max_connections_bounds_each_client(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    for i in range(6):
        put_parameter(moto, "/pinned", f"v{i}", overwrite=i > 0)
    moto_proxy.fail(faults.delay(0.05), match=GET_PARAMETER)
    requests: list[ValueRequest] = [ParameterRequest("/pinned", version=i) for i in range(1, 7)]
    # Pinned versions are batchable, so disable batching to force six single calls.
    source = AwsSource(endpoint_url=moto_proxy.url, settings=Settings(max_connections=2))
    source.batch_parameters = False
    async with opened(source):
        assert await fetch(source, requests) == [f"v{i}" for i in range(6)]
    assert moto_proxy.calls(GET_PARAMETER) == 6
    assert moto_proxy.max_in_flight == 2
    assert moto_proxy.connections == 2


@pytest.mark.usefixtures("credentials")
async def test_endpoints_come_from_the_environment(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_parameter(moto, "/env", "p")
    create_secret(moto, "env", string="s")
    with CountingProxy(moto.url) as secrets_proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # overridden below
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", secrets_proxy.url)
        async with opened(AwsSource()) as source:
            assert await fetch(source, [ParameterRequest("/env"), SecretRequest("env")]) == [
                "p",
                "s",
            ]
        assert moto_proxy.calls(GET_PARAMETER) == 1
        assert secrets_proxy.calls(GET_SECRET) == 1
        assert moto_proxy.calls(GET_SECRET) == secrets_proxy.calls(GET_PARAMETER) == 0


@pytest.mark.usefixtures("credentials")
async def test_common_endpoint_and_default_region_variables(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_parameter(moto, "/common", "c")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_proxy.url)
    async with opened(AwsSource()) as source:
        assert await fetch(source, [ParameterRequest("/common")]) == ["c"]
    assert moto_proxy.calls(GET_PARAMETER) == 1


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials only in a shared-credentials file: botocore's chain must find them."""
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text(
        "[dev]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    config_file = tmp_path / "config"
    config_file.write_text("[profile dev]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_PROFILE", "dev")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("profile")
async def test_credentials_and_region_from_a_profile_through_botocore(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    put_parameter(moto, "/profile", "from-profile")
    async with opened(AwsSource(endpoint_url=moto_proxy.url)) as source:
        assert await fetch(source, [ParameterRequest("/profile")]) == ["from-profile"]


async def test_no_credentials_without_botocore_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    async with opened(AwsSource(region="us-east-1", endpoint_url="http://127.0.0.1:9")) as source:
        (outcome,) = await source.fetch([ParameterRequest("/x")])
    assert isinstance(outcome, FetchError)
    assert outcome.code == "NoCredentials"
    assert "AWS_ACCESS_KEY_ID" in str(outcome)


def test_botocore_is_not_imported_on_the_request_path(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh interpreter: import the package, fetch through the middleware, list modules.
    import subprocess

    put_parameter(moto, "/lean", "x")
    code = f"""
import sys, asyncio
from parameters_secrets.sources import AwsSource
from parameters_secrets._declarations import ParameterRequest
async def main():
    source = AwsSource(region="us-east-1", endpoint_url="{moto_proxy.url}")
    (outcome,) = await source.fetch([ParameterRequest("/lean")])
    await source.aclose()
    assert outcome["Value"] == "x", outcome
asyncio.run(main())
print(sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3")))
"""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": "",
        # This checkout's package, whatever is installed.
        "PYTHONPATH": str(MIDDLEWARE),
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.usefixtures("credentials")
def test_middleware_on_lambda_with_aws_source_batches_then_serves_from_cache(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    for i in range(10):
        put_parameter(moto, f"/fleet/p{i}", f"v{i}")
    for i in range(10):
        create_secret(moto, f"fleet/s{i}", string=f"s{i}")
    values: dict[str, Parameter | Secret] = {f"p{i}": Parameter(f"/fleet/p{i}") for i in range(10)}
    values.update({f"s{i}": Secret(f"fleet/s{i}") for i in range(10)})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        state = scope["state"]
        await JSONResponse({k: state[k] for k in sorted(values)})(scope, receive, send)

    middleware = ParametersSecretsMiddleware(
        app, values=values, source=AwsSource(endpoint_url=moto_proxy.url)
    )
    handler = Mangum(middleware, lifespan="off")
    for _ in range(3):
        response = invoke(handler, "http_api_v2", "/")
        assert response.status == 200
        assert response.json()["p3"] == "v3"
        assert response.json()["s9"] == "s9"
    assert moto_proxy.counts == {GET_PARAMETERS: 1, BATCH_SECRETS: 1}


# -- credentials from the container endpoint (ECS, EKS Pod Identity, Lambda SnapStart) ------


@pytest.fixture(autouse=True)
def no_container_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine's own container credentials (ECS, CodeBuild) never stand in for a test's."""
    for variable in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def container_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[CredentialsEndpoint]:
    """No keys in the environment: only a container credentials endpoint, as on SnapStart."""
    with CredentialsEndpoint(token="container-token") as endpoint:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token")
        yield endpoint


def without_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if botocore were not installed (after seeding moto, which needs it): there is no
    chain to fall back on, and botocore's own container provider cannot be what works."""
    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.setitem(sys.modules, "botocore.session", None)


def signed_access_key(request: Any) -> str:
    credential = request.headers["Authorization"].split("Credential=")[1]
    return str(credential.split("/")[0])


async def test_aws_source_signs_with_the_container_endpoints_rotating_credentials(
    moto_auth: MotoServer, container_only: CredentialsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto refuses keys it did not issue: an answer proves the endpoint's keys signed it.
    first = assume_role(moto_auth, ["ssm:GetParameter"])
    second = assume_role(moto_auth, ["ssm:GetParameter"])
    put_parameter(moto_auth, "/container/a", "from-moto")
    container_only.issue(*first)
    container_only.issue(*second)
    container_only.lifetime = 5 * 60  # inside botocore's 10 minutes: refreshed every time
    without_botocore(monkeypatch)
    with CountingProxy(moto_auth.url) as proxy:
        source = AwsSource(region="us-east-1", endpoint_url=proxy.url)
        async with opened(source):
            assert await fetch(source, [ParameterRequest("/container/a")]) == ["from-moto"]
            assert await fetch(source, [ParameterRequest("/container/a")]) == ["from-moto"]
        signed = [(signed_access_key(r), r.headers["X-Amz-Security-Token"]) for r in proxy.requests]
    assert signed == [(first[0], first[2]), (second[0], second[2])]
    assert container_only.calls == 2
    assert container_only.authorizations == ["container-token"] * 2


async def test_aws_source_reuses_container_credentials_far_from_expiry(
    moto_auth: MotoServer, container_only: CredentialsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    container_only.issue(*assume_role(moto_auth, ["ssm:GetParameter"]))
    put_parameter(moto_auth, "/container/b", "b")
    without_botocore(monkeypatch)
    source = AwsSource(region="us-east-1", endpoint_url=moto_auth.url)
    async with opened(source):
        for _ in range(3):
            assert await fetch(source, [ParameterRequest("/container/b")]) == ["b"]
    assert container_only.calls == 1


async def test_keys_moto_did_not_issue_are_refused(
    moto_auth: MotoServer, container_only: CredentialsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control for the two tests above: moto_auth does check the keys.
    put_parameter(moto_auth, "/container/c", "c")
    without_botocore(monkeypatch)
    source = AwsSource(region="us-east-1", endpoint_url=moto_auth.url)
    async with opened(source):
        (outcome,) = await source.fetch([ParameterRequest("/container/c")])
    assert isinstance(outcome, FetchError)
    assert outcome.status == 403
    assert container_only.calls == 1


async def test_aws_source_reports_a_container_endpoint_that_is_down(
    container_only: CredentialsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_botocore(monkeypatch)
    container_only.stop()
    source = AwsSource(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    async with opened(source):
        outcomes = await source.fetch([ParameterRequest("/x"), SecretRequest("y")])
    assert [(o.code, o.transient) for o in outcomes if isinstance(o, FetchError)] == [
        ("CredentialsError", True)
    ] * 2
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(outcomes[0])


def test_middleware_on_snapstart_with_aws_source_reads_the_container_endpoint(
    moto_auth: MotoServer, container_only: CredentialsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    container_only.issue(*create_iam_user(moto_auth, ["ssm:GetParameter"]))
    put_parameter(moto_auth, "/snap/p", "snap-value")
    without_botocore(monkeypatch)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse({"p": scope["state"]["p"]})(scope, receive, send)

    middleware = ParametersSecretsMiddleware(
        app,
        values={"p": Parameter("/snap/p")},
        source=AwsSource(region="us-east-1", endpoint_url=moto_auth.url),
    )
    handler = Mangum(middleware, lifespan="off")
    response = invoke(handler, "api_gateway_v1", "/")
    assert (response.status, response.json()) == (200, {"p": "snap-value"})
    assert container_only.calls == 1


# -- the region is a host label: it cannot move the endpoint --------------------------


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that nobody should connect to."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def connections_received(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = sock.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


async def construct_and_fetch(region: str | None) -> None:
    source = AwsSource(region=region, settings=Settings(parameter_timeout_ms=500))
    async with opened(source):  # before the fix: a signed request, token included, to sock
        await source.fetch([ParameterRequest("/x")])


@pytest.mark.usefixtures("credentials")
@pytest.mark.parametrize("origin", ["region=", "AWS_REGION", "AWS_DEFAULT_REGION"])
async def test_a_hostile_region_is_refused_and_never_reached(
    origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-to-steal")
    with listener() as sock:
        hostile = f"x@127.0.0.1:{sock.getsockname()[1]}#"
        if origin != "region=":
            monkeypatch.setenv(origin, hostile)
        with pytest.raises(ConfigurationError) as caught:
            await construct_and_fetch(hostile if origin == "region=" else None)
        assert connections_received(sock) == 0
    assert str(caught.value).startswith(f"{origin} must be an AWS region name")


async def test_a_hostile_region_in_the_profile_is_refused_and_never_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with listener() as sock:
        config_file = tmp_path / "config"
        config_file.write_text(f"[profile dev]\nregion = x@127.0.0.1:{sock.getsockname()[1]}#\n")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
        monkeypatch.setenv("AWS_PROFILE", "dev")
        source = AwsSource(settings=Settings(parameter_timeout_ms=500))
        async with opened(source):
            (outcome,) = await source.fetch([ParameterRequest("/x")])
        assert connections_received(sock) == 0
    assert isinstance(outcome, FetchError)
    assert (outcome.code, outcome.transient) == ("InvalidRegion", False)
    assert "the region of AWS profile 'dev' must be an AWS region name" in str(outcome)


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1\n",
        "us-east-1.evil.example",
        "us-east-1/",
        "us east 1",
        "-us-east-1",
        "us-east-1-",
        "12345",
        "a" * 64,
        "ü-east-1",
    ],
)
def test_a_region_that_is_not_a_host_label_is_a_configuration_error(region: str) -> None:
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import validate_region_name

    if not region.endswith("\n"):  # botocore's "$" lets a trailing newline through
        with pytest.raises(InvalidRegionError):
            validate_region_name(region)
    with pytest.raises(ConfigurationError, match=r"^region= must be an AWS region name"):
        AwsSource(region=region)


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-central-2",
        "il-central-1",
        "ca-west-1",
        "cn-north-1",
        "cn-northwest-1",
        "us-gov-west-1",
        "us-gov-east-1",
        "us-iso-east-1",
        "us-isob-east-1",
        "us-isof-south-1",
        "eu-isoe-west-1",
        "eusc-de-east-1",
        "xx-future-9",
    ],
)
def test_valid_regions_build_the_hosts_botocore_builds(region: str) -> None:
    import botocore.session

    session = botocore.session.get_session()
    for service, prefix in (("ssm", "ssm"), ("secretsmanager", "secretsmanager")):
        client = session.create_client(
            service, region_name=region, aws_access_key_id="k", aws_secret_access_key="s"
        )
        expected = client.meta.endpoint_url
        assert service_endpoint(prefix, validate_region(region, "region=")) == expected
    source = AwsSource(region=region, credentials=Credentials("k", "s"))
    source._resolve_services()
    assert source._ssm_service.endpoint == f"https://ssm.{region}.{dns_suffix(Region(region))}/"
