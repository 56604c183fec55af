"""What a DescribeSecret answer says about when to revalidate a followed secret and which
version is current, for every shape AWS (or a fake) may answer with (found by branch
coverage)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from parameters_secrets._rotation import current_version, next_rotation

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
