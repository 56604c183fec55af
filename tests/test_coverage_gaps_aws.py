"""AwsSource against answers a well-behaved AWS does not give (found by branch coverage):
a path that never ends, GetParameters answers with stray or foreign entries. Each through
``httpx.MockTransport``: the outcome a store reports, and what was asked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parameters_secrets import (
    ConfigurationError,
    LoadError,
    Parameter,
    ParametersByPath,
    ParametersSecrets,
    Secret,
)
from parameters_secrets.sources import AwsSource, RetryPolicy

REGION = "eu-west-1"
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDGAPS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "gaps-secret-key")


def operation(request: httpx.Request) -> str:
    return request.headers["X-Amz-Target"].rsplit(".", 1)[-1]


def test_an_endpoint_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url must be an http"):
        AwsSource(REGION, endpoint_url="ftp://127.0.0.1:4566")


def test_a_path_whose_pages_never_end_fails_as_too_many_parameters() -> None:
    pages = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal pages
        pages += 1
        assert operation(request) == "GetParametersByPath"
        return httpx.Response(200, json={"Parameters": [], "NextToken": f"page-{pages}"})

    source = AwsSource(REGION, transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"tree": ParametersByPath("/app")}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    failure = failed.value.failures["tree"]
    assert failure.code == "TooManyParameters"
    assert "more than 10000 pages" in str(failure)
    assert pages == 10_000  # bounded: the last page is not followed


def test_stray_entries_in_a_get_parameters_answer_are_ignored_and_the_rest_asked_alone() -> None:
    asked: list[tuple[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        asked.append((operation(request), body.get("Names") or body.get("Name")))
        if operation(request) == "GetParameters":
            return httpx.Response(
                200,
                json={
                    "Parameters": [
                        "not an object",
                        {"Name": "/not/asked", "Value": "x", "Version": 1},
                        {"Name": "/app/a", "Value": "a", "Version": 1},
                    ],
                    "InvalidParameters": ["/not/asked/either"],
                },
            )
        return httpx.Response(
            200, json={"Parameter": {"Name": body["Name"], "Value": "b", "Version": 1}}
        )

    source = AwsSource(REGION, transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"a": Parameter("/app/a"), "b": Parameter("/app/b")}, source=source)
    assert dict(store.load_sync()) == {"a": "a", "b": "b"}
    # The batch did not account for /app/b: it was asked alone.
    assert asked == [("GetParameters", ["/app/a", "/app/b"]), ("GetParameter", "/app/b")]


SECRETS = {"a": Secret("app/a"), "b": Secret("app/b")}


def test_a_batch_that_fails_transiently_fails_every_secret_without_asking_each() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(operation(request))
        return httpx.Response(500, json={"__type": "InternalServiceError", "message": "down"})

    source = AwsSource(
        REGION, retry=RetryPolicy(0.001, 0.001, 2), transport=httpx.MockTransport(answer)
    )
    with pytest.raises(LoadError) as failed:
        ParametersSecrets(SECRETS, source=source).load_sync()
    assert {key: error.code for key, error in failed.value.failures.items()} == {
        "a": "InternalServiceError",
        "b": "InternalServiceError",
    }
    assert asked == ["BatchGetSecretValue"] * 2  # the policy's two attempts, then no more


def test_a_batch_whose_pages_never_end_is_cut_off_and_the_rest_asked_one_by_one() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(operation(request))
        if operation(request) == "BatchGetSecretValue":
            return httpx.Response(
                200,
                json={
                    "SecretValues": ["not an object"],
                    "Errors": [
                        {"SecretId": "app/unasked", "ErrorCode": "ResourceNotFoundException"}
                    ],
                    "NextToken": "more",
                },
            )
        secret_id = json.loads(request.content)["SecretId"]
        return httpx.Response(
            200,
            json={"Name": secret_id, "ARN": f"{ARN}:{secret_id}-AbCdEf", "SecretString": secret_id},
        )

    source = AwsSource(REGION, transport=httpx.MockTransport(answer))
    assert dict(ParametersSecrets(SECRETS, source=source).load_sync()) == {
        "a": "app/a",
        "b": "app/b",
    }
    # One page more than secrets asked, at most; then GetSecretValue for each.
    assert asked == ["BatchGetSecretValue"] * 3 + ["GetSecretValue"] * 2
