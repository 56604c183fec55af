"""Following a secret's rotation at its edges (found by branch coverage): its first fetch
failing, and a revalidation whose DescribeSecret fails for a while with
``stale_if_error`` off. The source is a custom one, scripted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from parameters_secrets import FetchError, LoadError, ParametersSecrets, Secret

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
RECORD = {"Name": "db", "ARN": ARN, "SecretString": "pw-1", "VersionId": "v1"}
# Rotated long ago: the value is revalidated on every fetch past its first.
DESCRIPTION = {
    "RotationEnabled": True,
    "NextRotationDate": 1.0,
    "VersionIdsToStages": {"v1": ["AWSCURRENT"]},
}


class Scripted:
    """A source answering ``value`` to every fetch and ``description`` to every
    DescribeSecret (a record or a FetchError each), counting both."""

    checks_records = True

    def __init__(self, value: Any, description: Any) -> None:
        self.value = value
        self.description = description
        self.fetched = 0
        self.described = 0

    async def fetch(self, requests: Sequence[Any], deadline: float | None = None) -> list[Any]:
        self.fetched += len(requests)
        return [self.value for _ in requests]

    async def describe_secrets(
        self, requests: Sequence[Any], deadline: float | None = None
    ) -> list[Any]:
        self.described += len(requests)
        return [self.description for _ in requests]

    async def aclose(self) -> None:
        pass


def followed(source: Scripted) -> ParametersSecrets:
    return ParametersSecrets({"db": Secret("db", follow_rotation=True)}, source=source)


def test_a_first_fetch_that_fails_fails_with_its_own_error_not_the_descriptions() -> None:
    missing = FetchError("db: not found", code="ResourceNotFoundException")
    source = Scripted(missing, DESCRIPTION)
    with pytest.raises(LoadError) as failed:
        followed(source).load_sync()
    assert failed.value.failures["db"].code == "ResourceNotFoundException"


def test_without_stale_if_error_a_throttled_revalidation_fails_and_the_next_one_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_STALE_IF_ERROR", "false")
    source = Scripted(RECORD, DESCRIPTION)
    store = followed(source)
    assert store.load_sync().db == "pw-1"
    source.description = FetchError("rate exceeded", code="ThrottlingException", transient=True)
    with pytest.raises(LoadError) as failed:
        store.refresh_sync()
    assert failed.value.failures["db"].code == "ThrottlingException"
    source.description = DESCRIPTION  # DescribeSecret answers again: still version v1
    assert store.refresh_sync().db == "pw-1"
    assert (source.fetched, source.described) == (1, 3)  # the value itself fetched once
