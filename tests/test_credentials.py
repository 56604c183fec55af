"""AwsSource's credentials: the environment, the container credentials endpoint (ECS, EKS
Pod Identity, Lambda SnapStart) read against a real endpoint on 127.0.0.1, botocore last;
and the token ExtensionSource sends where there is no AWS_SESSION_TOKEN."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from mangum import Mangum

from parameters_secrets import (
    FetchError,
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
)
from parameters_secrets._credentials import (
    ECS_HOST,
    FULL_URI,
    RELATIVE_URI,
    TOKEN,
    TOKEN_FILE,
    CredentialsProvider,
    container_endpoint,
)
from parameters_secrets.sources import AwsSource, Credentials, ExtensionSource
from tests.conftest import FakeClock
from tests.credentials_endpoint import CredentialsEndpoint
from tests.extension_server import FakeExtension
from tests.lambda_events import LambdaContext, invoke
from tests.moto_server import MotoServer, assume_role, put_parameter

pytestmark = pytest.mark.anyio
CONTAINER_TOKEN = "container-authorization-token"
HOUR = 3600.0
MINUTE = 60.0
CONTAINER_VARIABLES = (RELATIVE_URI, FULL_URI, TOKEN, TOKEN_FILE)


@pytest.fixture(autouse=True)
def no_container_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the machine's container settings leaks in."""
    for variable in CONTAINER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def wall_clock() -> FakeClock:
    """Seconds since the epoch, shared by the endpoint (Expiration) and the provider."""
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def endpoint(
    wall_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CredentialsEndpoint]:
    """An endpoint named by AWS_CONTAINER_CREDENTIALS_FULL_URI, with its token set."""
    with CredentialsEndpoint(token=CONTAINER_TOKEN, clock=wall_clock) as server:
        monkeypatch.setenv(FULL_URI, server.url)
        monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)
        yield server


def provider(clock: FakeClock, **kwargs: Any) -> CredentialsProvider:
    return CredentialsProvider(clock=clock, **kwargs)


async def failure(source: CredentialsProvider) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await source.get()
    return caught.value


def assert_nothing_secret_in(error: FetchError, *secrets: str) -> None:
    for text in (str(error), repr(error), repr(error.args)):
        for secret in (CONTAINER_TOKEN, *secrets):
            assert secret not in text


# -- reading the endpoint ---------------------------------------------------------------


async def test_container_endpoint_gives_the_keys_and_token_with_the_authorization_header(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    credentials = await provider(wall_clock).get()
    assert credentials == Credentials("key-1", "secret-1", "session-1")
    assert endpoint.calls == 1
    assert endpoint.authorizations == [CONTAINER_TOKEN]


async def test_credentials_far_from_expiry_are_reused(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.lifetime = 6 * HOUR
    source = provider(wall_clock)
    first = await source.get()
    wall_clock.advance(5 * HOUR)  # one hour left: more than botocore's 15 minutes
    assert await source.get() == first
    assert endpoint.calls == 1


async def test_credentials_near_expiry_are_refreshed(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.lifetime = 5 * MINUTE  # inside botocore's mandatory 10 minutes already
    source = provider(wall_clock)
    assert (await source.get()).access_key == "key-1"
    assert (await source.get()).access_key == "key-2"
    assert endpoint.calls == 2


async def test_expired_credentials_are_refreshed(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.lifetime = HOUR
    source = provider(wall_clock)
    assert (await source.get()).access_key == "key-1"
    wall_clock.advance(2 * HOUR)
    assert (await source.get()).access_key == "key-2"
    assert endpoint.calls == 2


async def test_a_failed_early_refresh_keeps_the_keys_until_ten_minutes_before_expiry(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.lifetime = 12 * MINUTE  # inside the advisory 15 minutes, not the mandatory 10
    source = provider(wall_clock)
    assert (await source.get()).access_key == "key-1"
    endpoint.fail(500)
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        assert (await source.get()).access_key == "key-1"
    assert endpoint.calls == 2  # it did try
    assert "refreshing AWS credentials failed" in caplog.text
    assert "HTTP 500" in caplog.text
    wall_clock.advance(3 * MINUTE)  # 9 minutes left: now the refresh must succeed
    error = await failure(source)
    assert (error.code, error.transient, error.status) == ("CredentialsError", True, 500)
    assert endpoint.calls == 3
    endpoint.recover()
    assert (await source.get()).access_key == "key-2"


async def test_concurrent_callers_share_one_call_to_the_endpoint(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    source = provider(wall_clock)
    got: list[Credentials] = []

    async def get() -> None:
        got.append(await source.get())

    endpoint.hold()
    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(get)
        await wait_all_tasks_blocked()  # all 20 are in get(), one of them at the endpoint
        endpoint.release()
    assert endpoint.calls == 1
    assert got == [Credentials("key-1", "secret-1", "session-1")] * 20


async def test_concurrent_callers_share_one_failure(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    source = provider(wall_clock)
    errors: list[FetchError] = []

    async def get() -> None:
        try:
            await source.get()
        except FetchError as error:
            errors.append(error)

    endpoint.fail(503)
    endpoint.hold()
    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(get)
        await wait_all_tasks_blocked()
        endpoint.release()
    assert endpoint.calls == 1
    assert len(errors) == 20
    assert {(e.code, e.status) for e in errors} == {("CredentialsError", 503)}


async def test_an_early_refresh_does_not_hold_up_other_callers(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.lifetime = 12 * MINUTE
    source = provider(wall_clock)
    assert (await source.get()).access_key == "key-1"
    refreshed: list[str] = []

    async def refresh() -> None:
        refreshed.append((await source.get()).access_key)

    endpoint.hold()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(refresh)
        await wait_all_tasks_blocked()  # the refresh is under way, held at the endpoint
        with anyio.fail_after(10):  # a bound, not a measurement: waiting would hang
            assert (await source.get()).access_key == "key-1"
        assert refreshed == []
        endpoint.release()
    assert refreshed == ["key-2"]
    assert endpoint.calls == 2


async def test_a_cancelled_caller_leaves_its_refresh_to_the_next_caller(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    source = provider(wall_clock)
    endpoint.hold()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(source.get)
        await wait_all_tasks_blocked()
        tasks.cancel_scope.cancel()
    endpoint.release()
    # The call to the endpoint was not the cancelled caller's: its answer serves the next.
    assert (await source.get()).access_key == "key-1"
    assert endpoint.calls == 1


async def test_token_file_is_read_again_on_each_refresh(
    endpoint: CredentialsEndpoint,
    wall_clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("token-one")
    monkeypatch.setenv(TOKEN_FILE, str(token_file))  # wins over AWS_CONTAINER_AUTHORIZATION_TOKEN
    endpoint.token = "token-one"
    endpoint.lifetime = HOUR
    source = provider(wall_clock)
    assert (await source.get()).access_key == "key-1"
    token_file.write_text("token-two")  # EKS rotated the file
    endpoint.token = "token-two"
    wall_clock.advance(HOUR)
    assert (await source.get()).access_key == "key-2"
    assert endpoint.authorizations == ["token-one", "token-two"]


async def test_refused_token_is_a_clear_error_without_the_token(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN, "a-wrong-token-value")
    error = await failure(provider(wall_clock))
    assert (error.code, error.status, error.transient) == ("CredentialsError", 401, False)
    assert TOKEN in str(error)  # says what to check
    assert FULL_URI in str(error)
    assert_nothing_secret_in(error, "a-wrong-token-value")  # the 401 body echoes it


async def test_endpoint_down_is_a_clear_transient_error(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.stop()
    error = await failure(provider(wall_clock))
    assert (error.code, error.transient) == ("CredentialsError", True)
    assert (
        str(error)
        == f"the container credentials endpoint ({FULL_URI}) cannot be reached (ConnectError)"
    )


async def test_endpoint_that_never_answers_times_out(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.hold()
    try:
        error = await failure(provider(wall_clock, timeout=0.2))
    finally:
        endpoint.release()
    assert (error.code, error.transient) == ("CredentialsError", True)
    assert "did not answer within 0.2 s" in str(error)
    assert endpoint.calls == 1  # it was reached: the fault is the silence


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'["key-1"]',
        b'{"AccessKeyId": "AKIDLEAKED", "Token": "TOKENLEAKED"}',
        b'{"AccessKeyId": "AKIDLEAKED", "SecretAccessKey": "SECRETLEAKED", "Expiration": 5}',
        b'{"AccessKeyId": "AKIDLEAKED", "SecretAccessKey": "SECRETLEAKED", "Expiration": "soon"}',
    ],
    ids=["not-json", "not-an-object", "no-secret-key", "expiration-a-number", "expiration-text"],
)
async def test_an_answer_that_is_not_credentials_is_a_clear_error_without_keys(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock, body: bytes
) -> None:
    endpoint.fail(200, body)
    error = await failure(provider(wall_clock))
    assert (error.code, error.transient) == ("CredentialsError", True)
    assert "did not answer with credentials" in str(error)
    assert_nothing_secret_in(error, "AKIDLEAKED", "SECRETLEAKED", "TOKENLEAKED")


async def test_credentials_that_already_expired_are_an_error(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.lifetime = -MINUTE
    error = await failure(provider(wall_clock))
    assert error.code == "CredentialsError"
    assert "already expired" in str(error)


async def test_an_answer_without_expiration_never_expires(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.lifetime = None
    source = provider(wall_clock)
    first = await source.get()
    wall_clock.advance(1000 * HOUR)
    assert await source.get() == first
    assert endpoint.calls == 1


async def test_a_token_with_a_line_break_is_refused_before_any_call(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN, "abc\r\nX-Injected: yes")
    error = await failure(provider(wall_clock))
    assert (error.code, error.transient) == ("CredentialsError", False)
    assert "line break" in str(error)
    assert_nothing_secret_in(error, "X-Injected")
    assert endpoint.calls == 0


async def test_an_unreadable_token_file_is_a_clear_error(
    endpoint: CredentialsEndpoint,
    wall_clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_FILE, str(tmp_path / "missing"))
    error = await failure(provider(wall_clock))
    assert error.code == "CredentialsError"
    assert f"cannot read {TOKEN_FILE}" in str(error)
    assert endpoint.calls == 0


# -- which URL ------------------------------------------------------------------------

# (URL, whether botocore's ContainerMetadataFetcher accepts it)
FULL_URIS = [
    ("http://127.0.0.1:9001/2021-04-23/credentials", True),  # Lambda SnapStart
    ("http://127.3.4.5/creds", True),
    ("http://[::1]:8080/creds", True),
    ("http://localhost:8080/creds", True),
    ("http://169.254.170.2/v2/credentials/abc", True),  # ECS
    ("http://169.254.170.23/v1/credentials", True),  # EKS Pod Identity
    ("http://[fd00:ec2::23]/v1/credentials", True),  # EKS Pod Identity, IPv6
    ("https://credentials.example.com/v1", True),  # any host over https
    ("http://credentials.example.com/v1", False),
    ("http://169.254.169.254/latest/meta-data/", False),  # instance metadata
    ("http://10.0.0.1/creds", False),
    ("http://localhost.example.com/creds", False),
    ("http://127.0.0.1.example.com/creds", False),
]


@pytest.mark.parametrize(("url", "allowed"), FULL_URIS)
def test_full_uri_hosts_are_allowed_as_botocore_allows_them(url: str, allowed: bool) -> None:
    from botocore.utils import ContainerMetadataFetcher

    try:
        ContainerMetadataFetcher()._validate_allowed_url(url)
        botocore_allows = True
    except ValueError:
        botocore_allows = False
    assert botocore_allows == allowed  # the table above is botocore's behaviour
    if allowed:
        assert str(container_endpoint({FULL_URI: url}).url) == url
    else:
        with pytest.raises(FetchError) as caught:
            container_endpoint({FULL_URI: url})
        assert caught.value.code == "CredentialsError"
        assert FULL_URI in str(caught.value)
        assert "loopback" in str(caught.value)


def test_relative_uri_is_a_path_on_the_ecs_host_and_wins_over_full_uri() -> None:
    endpoint = container_endpoint(
        {RELATIVE_URI: "/v2/credentials/abc?x=1", FULL_URI: "http://127.0.0.1/other"}
    )
    assert str(endpoint.url) == f"http://{ECS_HOST}/v2/credentials/abc?x=1"
    assert endpoint.variable == RELATIVE_URI


async def test_relative_uri_cannot_move_the_host(
    wall_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CredentialsEndpoint() as server:
        # botocore pastes this after "http://169.254.170.2": the host becomes 127.0.0.1.
        monkeypatch.setenv(RELATIVE_URI, f"@127.0.0.1:{server.port}/v1/credentials")
        error = await failure(provider(wall_clock))
        assert server.calls == 0
    assert error.code == "CredentialsError"
    assert RELATIVE_URI in str(error)


# -- the order of sources -------------------------------------------------------------


async def test_environment_keys_win_over_the_container_endpoint(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert await provider(wall_clock).get() == Credentials("env-key", "env-secret")
    explicit = Credentials("explicit", "explicit-secret")
    assert await provider(wall_clock, credentials=explicit).get() == explicit
    assert endpoint.calls == 0


async def test_container_endpoint_wins_over_a_profile_and_needs_no_botocore(
    endpoint: CredentialsEndpoint,
    wall_clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text("[dev]\naws_access_key_id = profile\naws_secret_access_key = x\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_PROFILE", "dev")
    monkeypatch.setitem(sys.modules, "botocore", None)  # importing it would fail
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    assert (await provider(wall_clock).get()).access_key == "key-1"


# -- ExtensionSource's token ----------------------------------------------------------


async def _app(scope: Any, receive: Any, send: Any) -> None:
    body = scope["state"]["key"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def extension_handler(extension: FakeExtension) -> Any:
    extension.put_parameter("/snap/key", "from-the-extension")
    middleware = ParametersSecretsMiddleware(
        _app,
        values={"key": Parameter("/snap/key")},
        source=ExtensionSource(port=extension.port),  # token from the environment
    )
    return Mangum(middleware, lifespan="off")


def test_extension_gets_the_container_token_when_there_is_no_session_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)  # as on SnapStart: no AWS_SESSION_TOKEN
    with FakeExtension(token=CONTAINER_TOKEN) as extension:
        response = invoke(extension_handler(extension), "http_api_v2", "/")
        assert (response.status, response.body) == (200, "from-the-extension")
        sent = {r.headers.get("x-aws-parameters-secrets-token") for r in extension.requests}
    assert sent == {CONTAINER_TOKEN}


def test_extension_gets_the_session_token_when_both_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    with FakeExtension(token="session-token") as extension:
        assert invoke(extension_handler(extension), "http_api_v2", "/").status == 200
        sent = {r.headers.get("x-aws-parameters-secrets-token") for r in extension.requests}
    assert sent == {"session-token"}


@pytest.mark.parametrize(
    ("environment", "hint"),
    [
        ({}, "neither AWS_SESSION_TOKEN nor AWS_CONTAINER_AUTHORIZATION_TOKEN is set"),
        ({"AWS_SESSION_TOKEN": "stale-session-value"}, "from AWS_SESSION_TOKEN"),
        (
            {TOKEN: "stale-container-value"},
            "from AWS_CONTAINER_AUTHORIZATION_TOKEN, sent because AWS_SESSION_TOKEN is not set "
            "(as on Lambda SnapStart)",
        ),
    ],
    ids=["none-set", "session-token", "container-token"],
)
def test_refused_extension_token_says_which_variable_was_sent(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    environment: dict[str, str],
    hint: str,
) -> None:
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with (
        FakeExtension(token="the-right-token") as extension,
        caplog.at_level(logging.ERROR, logger="parameters_secrets"),
    ):
        response = invoke(extension_handler(extension), "http_api_v2", "/")
    assert response.status == 503
    assert "(HTTP 401)" in caplog.text
    assert hint in caplog.text
    for value in environment.values():
        assert value not in caplog.text


# -- any thread, any loop, within the fetch's time bound ---------------------------------


def test_threads_sharing_fresh_stores_share_one_endpoint_call_each_with_no_error_or_hang(
    moto_auth: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 threads at once on each of 4 fresh stores, keys only from the container endpoint,
    against moto enforcing IAM: every value loads, nothing hangs, one endpoint call a store."""
    keys = assume_role(moto_auth, ["ssm:GetParameter", "ssm:GetParameters"])
    put_parameter(moto_auth, "/threads/value", "from-moto")
    with CredentialsEndpoint(token=CONTAINER_TOKEN) as endpoint:
        for _ in range(4):
            endpoint.issue(*keys)
        monkeypatch.setenv(FULL_URI, endpoint.url)
        monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)
        monkeypatch.setitem(sys.modules, "botocore", None)  # the endpoint, not botocore's chain
        monkeypatch.setitem(sys.modules, "botocore.session", None)
        endpoint.hold()  # every thread arrives while the first call is under way
        loaded: list[str] = []
        hung = 0
        for _ in range(4):
            store = ParametersSecrets(
                {"value": Parameter("/threads/value")},
                source=AwsSource(region="us-east-1", endpoint_url=moto_auth.url),
            )
            go = threading.Event()

            def load(store: ParametersSecrets = store, go: threading.Event = go) -> None:
                go.wait(10)
                loaded.append(store.load_sync()["value"])

            threads = [threading.Thread(target=load, daemon=True) for _ in range(8)]
            for thread in threads:
                thread.start()
            go.set()
            threading.Timer(0.2, endpoint.release).start()
            for thread in threads:
                thread.join(30)
            hung += sum(thread.is_alive() for thread in threads)
            endpoint.hold()
        endpoint.release()
    assert hung == 0
    assert loaded == ["from-moto"] * 32
    assert endpoint.calls == 4


def test_a_slow_endpoint_ends_the_fetch_by_its_timeout_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CredentialsEndpoint(token=CONTAINER_TOKEN) as endpoint:
        monkeypatch.setenv(FULL_URI, endpoint.url)
        monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)
        monkeypatch.setenv("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "300")
        store = ParametersSecrets(
            {"value": Parameter("/slow/value")},
            source=AwsSource(region="us-east-1", endpoint_url="http://127.0.0.1:9"),
        )
        endpoint.hold()
        threading.Timer(1.5, endpoint.release).start()  # a 1.5 s endpoint
        started = time.monotonic()
        with pytest.raises(LoadError) as failed:
            store.load_sync()
        elapsed = time.monotonic() - started
        assert endpoint.calls == 1
    error = failed.value.failures["value"]
    assert (error.code, error.transient) == ("Timeout", True)
    assert "credentials were not ready" in str(error)
    assert elapsed < 1.0  # a bound the 300 ms setting promises, not a measurement


def test_a_slow_endpoint_ends_a_lambda_request_by_the_remaining_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with CredentialsEndpoint(token=CONTAINER_TOKEN) as endpoint:
        monkeypatch.setenv(FULL_URI, endpoint.url)
        monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)
        app = ParametersSecretsMiddleware(
            _app,
            values={"key": Parameter("/slow/value")},
            source=AwsSource(region="us-east-1", endpoint_url="http://127.0.0.1:9"),
        )
        endpoint.hold()
        threading.Timer(1.5, endpoint.release).start()
        started = time.monotonic()
        response = invoke(
            Mangum(app, lifespan="off"), "http_api_v2", "/", context=LambdaContext(remaining_ms=300)
        )
        elapsed = time.monotonic() - started
    assert response.status == 503
    assert elapsed < 1.0  # the Lambda's 300 ms, not the endpoint's 1.5 s


def test_a_slow_botocore_credential_process_is_abandoned_at_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "slow_credentials.py"
    script.write_text(
        "import json, time\ntime.sleep(4)\n"
        'print(json.dumps({"Version": 1, "AccessKeyId": "a", "SecretAccessKey": "b"}))\n'
    )
    config = tmp_path / "config"
    config.write_text(f"[profile slow]\ncredential_process = {sys.executable} {script}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "slow")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "300")
    store = ParametersSecrets(
        {"value": Parameter("/slow/value")},
        source=AwsSource(region="us-east-1", endpoint_url="http://127.0.0.1:9"),
    )
    started = time.monotonic()
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    elapsed = time.monotonic() - started
    assert failed.value.failures["value"].code == "Timeout"
    assert elapsed < 1.0  # the 300 ms setting, not the process's 4 s


async def test_an_endpoint_answer_longer_than_64_kib_is_refused_without_reading_it_all(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.fail(200, b'{"AccessKeyId": "' + b"A" * (300 * 1024) + b'"}')
    error = await failure(provider(wall_clock))
    assert (error.code, error.transient) == ("CredentialsError", True)
    assert "more than 64 KiB" in str(error)


async def test_callers_on_other_threads_share_one_endpoint_call(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    source = provider(wall_clock)
    endpoint.hold()
    got: list[Credentials] = []

    def in_a_thread() -> None:
        got.append(asyncio.run(source.get()))

    threads = [threading.Thread(target=in_a_thread, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    threading.Timer(0.2, endpoint.release).start()
    got.append(await source.get())  # and this loop's task too
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert got == [Credentials("key-1", "secret-1", "session-1")] * 9
    assert endpoint.calls == 1
