"""Values read through another role at the edges (found by branch coverage): an STS answer
that is not quite credentials, and a SnapStart restore, after which the role is assumed
again. STS and SSM are scripted with ``httpx.MockTransport``."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import pytest

from parameters_secrets import LoadError, Parameter, ParametersSecrets
from parameters_secrets.exceptions import FetchError
from parameters_secrets.sources import AwsSource
from tests.conftest import SnapStartRuntime
from tests.moto_in_process import REGION, InProcessMoto

ROLE = "arn:aws:iam::123456789012:role/reader"
ROLE_KEY = "role-secret-access-key"
FIELDS = {
    "AccessKeyId": "ASIAROLE",
    "SecretAccessKey": ROLE_KEY,
    "SessionToken": "role-session-token",
    "Expiration": "2099-01-01T00:00:00Z",
}


@pytest.fixture(autouse=True)
def caller_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDASSUMEDEDGES")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "assumed-edges-secret-key")


def assume_role_answer(fields: dict[str, str]) -> str:
    credentials = "".join(f"<{name}>{value}</{name}>" for name, value in fields.items())
    return (
        "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
        f"{credentials}"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>"
    )


class Sts:
    """STS's AssumeRole, answering ``answer()``, counted."""

    def __init__(self, answer: Callable[[], httpx.Response]) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self.answer()


def store_through_role(aws: InProcessMoto, sts: Sts) -> ParametersSecrets:
    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.host.startswith("sts."):
            return sts(request)
        return await aws.handle(request)

    source = AwsSource(REGION, transport=httpx.MockTransport(route))
    return ParametersSecrets({"key": Parameter("/app/key", role_arn=ROLE)}, source=source)


def failure(store: ParametersSecrets) -> FetchError:
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    error = failed.value.failures["key"]
    assert ROLE_KEY not in str(error)
    return error


def test_an_answer_without_a_session_token_is_malformed() -> None:
    fields = {name: value for name, value in FIELDS.items() if name != "SessionToken"}
    sts = Sts(lambda: httpx.Response(200, text=assume_role_answer(fields)))
    error = failure(store_through_role(InProcessMoto(), sts))
    assert error.code == "MalformedResponse"
    assert f"AssumeRole's answer for {ROLE} has no SessionToken" in str(error)


def test_a_compressed_answer_is_refused_naming_the_role() -> None:
    # Compression was not asked for: an answer inflated chunk by chunk has no bound.
    sts = Sts(
        lambda: httpx.Response(
            200,
            content=gzip.compress(assume_role_answer(FIELDS).encode()),
            headers={"Content-Encoding": "gzip"},
        )
    )
    error = failure(store_through_role(InProcessMoto(), sts))
    assert error.code == "MalformedResponse"
    assert error.transient
    assert f"AssumeRole's answer for {ROLE} is compressed" in str(error)


def test_a_snapstart_restore_makes_the_role_assumed_again(
    snapstart_runtime: SnapStartRuntime,
) -> None:
    runtime = snapstart_runtime
    aws = InProcessMoto()
    aws.put_parameter("/app/key", "through-the-role")
    sts = Sts(lambda: httpx.Response(200, text=assume_role_answer(FIELDS)))
    store = store_through_role(aws, sts)
    assert store.load_sync().key == "through-the-role"  # at INIT: into the snapshot
    assert sts.calls == 1
    runtime.restore()  # the role's credentials expired while the snapshot slept
    assert sts.calls == 1  # the hook made no call
    assert store.load_sync().key == "through-the-role"
    assert sts.calls == 2
