"""What a DescribeSecret answer says about when to revalidate a followed secret and which
version is current, for every shape AWS (or a fake) may answer with (found by branch
coverage)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from parameters_secrets import LoadError, Parameter, ParametersSecrets, Secret
from parameters_secrets._rotation import current_version, next_rotation
from parameters_secrets.sources import (
    ExtensionSource,
    ParameterRequest,
    SecretRequest,
    StaticSource,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-AbCdEf"

# (the description, when to revalidate: epoch seconds)
DATES = [
    ({"RotationEnabled": False, "NextRotationDate": 1.7e9}, math.inf),  # rotation off
    ({"RotationEnabled": True}, math.inf),  # on, but no date: nothing scheduled
    ({"RotationEnabled": True, "NextRotationDate": 1.7e9}, 1.7e9),
    ({"NextRotationDate": 1_700_000_000}, 1.7e9),
    ({"NextRotationDate": "2026-01-01T00:00:00Z"}, -math.inf),  # unreadable: at once
    ({"NextRotationDate": True}, -math.inf),
    ({"NextRotationDate": math.nan}, -math.inf),
    ({"NextRotationDate": math.inf}, -math.inf),
]


@pytest.mark.parametrize(("description", "when"), DATES)
def test_the_revalidation_date_is_the_next_rotation_never_without_one_at_once_if_unreadable(
    description: dict[str, Any], when: float
) -> None:
    assert next_rotation(description) == when


# (the description, the current version's id)
VERSIONS = [
    ({"VersionIdsToStages": {"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT", "x"]}}, "v2"),
    ({"VersionIdsToStages": {"v1": ["AWSPENDING"]}}, None),  # none labelled current
    ({"VersionIdsToStages": {"v1": "AWSCURRENT"}}, None),  # labels not a list
    ({"VersionIdsToStages": ["v1"]}, None),
    ({}, None),
]


@pytest.mark.parametrize(("description", "version"), VERSIONS)
def test_the_current_version_is_the_one_labelled_awscurrent_if_any(
    description: dict[str, Any], version: str | None
) -> None:
    assert current_version(description) == version


class Describing:
    """A custom source that can describe secrets: counts what it is asked."""

    checks_records = True

    def __init__(self) -> None:
        self.fetched: list[list[str]] = []
        self.described = 0

    async def fetch(self, requests: Sequence[Any], deadline: float | None = None) -> list[Any]:
        self.fetched.append([type(request).__name__ for request in requests])
        return [
            {"Name": "/p", "Value": "p", "Type": "String", "Version": 1}
            if isinstance(request, ParameterRequest)
            else {"Name": "s", "ARN": ARN, "SecretString": "s", "VersionId": "v1"}
            for request in requests
        ]

    async def describe_secrets(
        self, requests: Sequence[SecretRequest], deadline: float | None = None
    ) -> list[Any]:
        self.described += len(requests)
        return [{"RotationEnabled": False, "VersionIdsToStages": {"v1": ["AWSCURRENT"]}}] * len(
            requests
        )

    async def aclose(self) -> None:
        pass


def test_a_parameter_beside_a_followed_secret_is_refreshed_without_a_description() -> None:
    source = Describing()
    store = ParametersSecrets(
        {"p": Parameter("/p"), "s": Secret("s", follow_rotation=True)}, source=source
    )
    assert dict(store.load_sync()) == {"p": "p", "s": "s"}
    assert source.described == 1  # the followed secret's first fetch
    assert store.refresh_sync("p")["p"] == "p"
    assert source.fetched[-1] == ["ParameterRequest"]
    assert source.described == 1  # a parameter has no rotation to follow


def test_a_followed_secret_behind_an_extension_whose_fallback_cannot_describe_fails_saying_so() -> (
    None
):
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"Name": "s", "ARN": ARN, "SecretString": "s", "VersionId": "v1"}
        )

    source = ExtensionSource(
        2773,
        "token",
        fallback=StaticSource(secrets={"s": "s"}),  # a file: no DescribeSecret
        transport=httpx.MockTransport(answer),
    )
    store = ParametersSecrets({"s": Secret("s", follow_rotation=True)}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    failure = failed.value.failures["s"]
    assert failure.code == "DescribeSecretUnsupported"
    assert "the fallback source cannot call DescribeSecret" in str(failure)
