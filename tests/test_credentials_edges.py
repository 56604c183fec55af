"""AwsSource's credentials at their edges (found by branch coverage): the container
endpoint's settings refused before any call, answers that are almost credentials, a
caller that stops waiting, and botocore's chain finding nothing or reused."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from parameters_secrets import FetchError
from parameters_secrets._credentials import (
    FULL_URI,
    RELATIVE_URI,
    TOKEN,
    TOKEN_FILE,
    CredentialsProvider,
    container_endpoint,
)
from tests.conftest import FakeClock
from tests.credentials_endpoint import CredentialsEndpoint

pytestmark = pytest.mark.anyio
CONTAINER_TOKEN = "container-authorization-token"
# The provider's clock, shared with the endpoint: 2027-01-15T08:00:00Z.
NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (RELATIVE_URI, FULL_URI, TOKEN, TOKEN_FILE):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def wall_clock() -> FakeClock:
    return FakeClock(start=NOW)


@pytest.fixture
def endpoint(
    wall_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CredentialsEndpoint]:
    with CredentialsEndpoint(token=CONTAINER_TOKEN, clock=wall_clock) as server:
        monkeypatch.setenv(FULL_URI, server.url)
        monkeypatch.setenv(TOKEN, CONTAINER_TOKEN)
        yield server


async def failure(source: CredentialsProvider, give_up_at: float | None = None) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await source.get(give_up_at)
    return caught.value


# -- the endpoint's settings --------------------------------------------------------------


def test_an_endpoint_is_needed() -> None:
    with pytest.raises(FetchError) as caught:
        container_endpoint({})
    assert str(caught.value) == f"neither {RELATIVE_URI} nor {FULL_URI} is set"
    assert caught.value.code == "CredentialsError"


def test_a_full_uri_that_is_not_a_url_is_named() -> None:
    with pytest.raises(FetchError) as caught:
        container_endpoint({FULL_URI: "http://[::1"})
    assert str(caught.value) == f"{FULL_URI} is not a valid URL"
    assert caught.value.code == "CredentialsError"


# -- answers that are almost credentials ---------------------------------------------------


async def test_a_token_that_is_not_a_string_is_not_credentials(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.fail(200, b'{"AccessKeyId": "key", "SecretAccessKey": "secret-value", "Token": 12345}')
    error = await failure(CredentialsProvider(clock=wall_clock))
    assert error.code == "CredentialsError"
    assert "did not answer with credentials" in str(error)
    assert "secret-value" not in str(error)


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """The machine's local time 9 hours ahead of UTC (where time.tzset exists)."""
    if not hasattr(time, "tzset"):
        pytest.skip("the time zone cannot be changed here")
    before = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
async def test_an_expiration_without_a_time_zone_is_read_as_utc(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    # One hour after NOW, written without "Z": read as local time (9 hours ahead), it
    # would have expired 8 hours ago, and the answer would be refused.
    endpoint.fail(
        200,
        b'{"AccessKeyId": "key", "SecretAccessKey": "secret", "Token": "session",'
        b' "Expiration": "2027-01-15T09:00:00"}',
    )
    source = CredentialsProvider(clock=wall_clock)
    assert (await source.get()).access_key == "key"
    wall_clock.advance(30 * 60)  # 30 minutes left: more than the 15 of an early refresh
    assert (await source.get()).access_key == "key"
    assert endpoint.calls == 1


# -- a caller that stops waiting ------------------------------------------------------------


async def test_a_caller_gives_up_at_its_own_bound_while_the_endpoint_holds_its_answer(
    endpoint: CredentialsEndpoint, wall_clock: FakeClock
) -> None:
    endpoint.hold()
    try:
        source = CredentialsProvider(clock=wall_clock)
        error = await failure(source, give_up_at=time.monotonic() + 0.05)
        assert error.code == "Timeout"
        assert error.transient
        assert "not ready within the fetch's time bound" in str(error)
    finally:
        endpoint.release()


# -- botocore's chain ----------------------------------------------------------------------


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """botocore's files in ``tmp_path`` (empty), no instance metadata: nothing else."""
    pytest.importorskip("botocore.session")
    credentials = tmp_path / "credentials"
    credentials.write_text("", encoding="utf-8")
    (tmp_path / "config").write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return credentials


async def test_botocore_finding_no_credentials_is_no_credentials(profiles: Path) -> None:
    error = await failure(CredentialsProvider())
    assert error.code == "NoCredentials"
    assert str(error) == "no AWS credentials found"


@pytest.fixture
def default_profile(profiles: Path) -> None:
    profiles.write_text(
        "[default]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n",
        encoding="utf-8",
    )


@pytest.mark.usefixtures("default_profile")
async def test_botocores_credentials_are_reused_without_asking_it_again() -> None:
    source = CredentialsProvider()
    first = await source.get()
    assert first.access_key == "profile-key"
    # The very object: botocore's frozen credentials are made into new ones on each call.
    assert await source.get() is first
