"""A value read through another role when STS answers badly or not at all (found by
branch coverage): the value fails with a reason that names the role, never a key."""

from __future__ import annotations

import httpx
import pytest

from parameters_secrets import LoadError, Parameter, ParametersSecrets
from parameters_secrets.exceptions import FetchError
from parameters_secrets.sources import AwsSource

ROLE = "arn:aws:iam::123456789012:role/reader"
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDROLEGAPS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "role-gaps-secret-key")


def assume_role_answer(expiration: str) -> str:
    return (
        "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
        "<AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>role-key</SecretAccessKey>"
        f"<SessionToken>role-token</SessionToken><Expiration>{expiration}</Expiration>"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>"
    )


def failure_through_role(sts: httpx.MockTransport) -> FetchError:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host.startswith("sts."):
            return sts.handle_request(request)
        raise AssertionError(f"asked {request.url} without the role's credentials")

    source = AwsSource(REGION, transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"key": Parameter("/app/key", role_arn=ROLE)}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    return failed.value.failures["key"]


def test_credentials_sts_says_have_already_expired_are_refused() -> None:
    failure = failure_through_role(
        httpx.MockTransport(
            lambda request: httpx.Response(200, text=assume_role_answer("2001-01-01T00:00:00Z"))
        )
    )
    assert failure.transient  # a clock put right, or the next answer, may do
    assert "already expired (is this machine's clock right?)" in str(failure)
    assert ROLE in str(failure)


def test_an_expiration_that_is_not_a_date_is_malformed() -> None:
    failure = failure_through_role(
        httpx.MockTransport(lambda request: httpx.Response(200, text=assume_role_answer("soon")))
    )
    assert "has an Expiration that is not a date" in str(failure)
    assert "role-key" not in str(failure)


def test_sts_that_cannot_be_reached_fails_the_value_naming_the_role() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    failure = failure_through_role(httpx.MockTransport(refuse))
    assert failure.transient
    assert f"AssumeRole of {ROLE}: connection failed (ConnectError)" in str(failure)
