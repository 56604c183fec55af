"""The error code a failed answer is reported with, whatever form the answer takes (found
by branch coverage): the X-Amzn-Errortype header, JSON, XML, a code in plain text, or only
the status. Each reaches the app as the failure's code, through the extension's source."""

from __future__ import annotations

import gzip
from collections.abc import Callable
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
from parameters_secrets.sources import ExtensionSource

# (status, body, X-Amzn-Errortype, the code reported, its transience)
ANSWERS = [
    (400, '{"__type": "com.amazonaws.ssm#ParameterNotFound"}', None, "ParameterNotFound", False),
    (500, '{"message": "no code in it"}', None, "InternalServerError", True),
    (
        400,
        '{"message": "the header names it"}',
        "ValidationException:http://x",
        "ValidationException",
        False,
    ),
    (400, "not json", "AccessDeniedException:http://x/", "AccessDeniedException", False),
    (
        403,
        "<ErrorResponse><Error><Code>InvalidSignatureException</Code>"
        "<Message>signature</Message></Error></ErrorResponse>",
        None,
        "InvalidSignatureException",
        False,
    ),
    (400, "KMSAccessDeniedException: no decrypt", None, "KMSAccessDeniedException", False),
    (429, "slow down", None, "HTTPError", True),
    (418, "a teapot", None, "HTTPError", False),
    (502, "", None, "InternalServerError", True),
    (401, "", None, "Unauthorized", False),
]


@pytest.mark.parametrize(("status", "body", "error_type", "code", "transient"), ANSWERS)
def test_a_failed_answer_is_reported_with_the_code_it_carries_or_its_status_gives(
    status: int, body: str, error_type: str | None, code: str, transient: bool
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"X-Amzn-Errortype": error_type} if error_type else {}
        return httpx.Response(status, text=body, headers=headers)

    failure = failure_of(answer)
    assert (failure.code, failure.status, failure.transient) == (code, status, transient)


def failure_of(answer: Callable[[httpx.Request], httpx.Response]) -> FetchError:
    source = ExtensionSource(2773, "token", transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    return failed.value.failures["p"]


def test_a_compressed_success_is_refused_as_malformed_not_inflated() -> None:
    failure = failure_of(
        lambda request: httpx.Response(
            200, content=gzip.compress(b'{"Parameter": {}}'), headers={"Content-Encoding": "gzip"}
        )
    )
    assert (failure.code, failure.transient) == ("MalformedResponse", True)
    assert "compressed though no compression was asked for" in str(failure)


def test_a_compressed_error_is_reported_by_its_status_its_body_unread() -> None:
    body = gzip.compress(b'{"__type": "ThrottlingException"}')
    failure = failure_of(
        lambda request: httpx.Response(400, content=body, headers={"Content-Encoding": "gzip"})
    )
    assert failure.code == "HTTPError"  # not ThrottlingException: the body was not inflated


def test_an_endless_error_body_is_read_only_up_to_its_limit() -> None:
    pulled: list[int] = []

    class Endless:
        """640 MiB, were it read to the end. A class, not an async generator: one left
        suspended (the reader stops early) would be finalised later, off its loop."""

        def __aiter__(self) -> Endless:
            return self

        async def __anext__(self) -> bytes:
            if len(pulled) >= 10_000:
                raise StopAsyncIteration
            pulled.append(len(pulled))
            return b"x" * 65536

    failure = failure_of(lambda request: httpx.Response(400, content=Endless()))
    assert failure.code == "HTTPError"
    assert 0 < len(pulled) < 10


@pytest.mark.parametrize("port", [0, 65536, True, "2773"])
def test_an_extension_port_outside_1_to_65535_is_refused(port: Any) -> None:
    with pytest.raises(ConfigurationError, match="port must be an integer 1 to 65535"):
        ExtensionSource(port, "token")


def test_an_extension_fallback_that_is_not_aws_or_a_source_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="fallback must be 'aws', a source or None"):
        ExtensionSource(2773, "token", fallback="boto3")  # type: ignore[arg-type]


def test_a_secret_version_id_and_stage_are_asked_of_the_extension() -> None:
    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        return httpx.Response(
            200,
            json={
                "Name": "db",
                "ARN": "arn:aws:secretsmanager:r:1:secret:db-AbCdEf",
                "SecretString": "v",
                "VersionId": "v 1",
            },
        )

    source = ExtensionSource(2773, "token", transport=httpx.MockTransport(answer))
    store = ParametersSecrets(
        {"db": Secret("db", version_id="v 1", version_stage="AWSCURRENT")}, source=source
    )
    assert store.load_sync()["db"] == "v"
    (url,) = asked
    assert url.path == "/secretsmanager/get"
    assert dict(url.params) == {
        "secretId": "db",
        "versionStage": "AWSCURRENT",
        "versionId": "v 1",
    }
