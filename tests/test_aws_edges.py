"""AwsSource at its edges (found by branch coverage): a parameter pinned to a label, and a
200 answer that is JSON but not an object. Through ``httpx.MockTransport``: what was
asked, and the outcome a store reports."""

from __future__ import annotations

import json

import httpx
import pytest

from parameters_secrets import LoadError, Parameter, ParametersSecrets
from parameters_secrets.sources import AwsSource

REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDAWSEDGES")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-edges-secret-key")


def test_a_parameter_pinned_to_a_label_is_asked_by_name_and_label() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content)["Name"])
        parameter = {
            "Name": "/app/flag",
            "Value": "on",
            "Version": 3,
            "Selector": ":prod",
            "Type": "String",
        }
        return httpx.Response(200, json={"Parameter": parameter})

    source = AwsSource(REGION, transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"flag": Parameter("/app/flag", label="prod")}, source=source)
    assert store.load_sync().flag == "on"
    assert asked == ["/app/flag:prod"]


def test_a_success_that_is_not_a_json_object_is_malformed() -> None:
    source = AwsSource(
        REGION, transport=httpx.MockTransport(lambda request: httpx.Response(200, json=["on"]))
    )
    store = ParametersSecrets({"flag": Parameter("/app/flag")}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    failure = failed.value.failures["flag"]
    assert (failure.code, failure.transient) == ("MalformedResponse", True)
    assert str(failure).endswith("GetParameter: the answer is not a JSON object")
