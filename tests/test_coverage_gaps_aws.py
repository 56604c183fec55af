"""AwsSource against answers a well-behaved AWS does not give (found by branch coverage):
a path that never ends, GetParameters answers with stray or foreign entries. Each through
``httpx.MockTransport``: the outcome a store reports, and what was asked."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parameters_secrets import (
    AwsSource,
    ConfigurationError,
    LoadError,
    Parameter,
    ParametersByPath,
    ParametersSecrets,
)

REGION = "eu-west-1"


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
