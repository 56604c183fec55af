"""AWS regions, validated as botocore validates them, and the service hosts built from them.

A region ends up inside a URL (``https://ssm.{region}.amazonaws.com``): unchecked, a
"region" such as ``x@127.0.0.1:8080#`` moves the whole request, signature and session
token included, to another host. So a region must be one DNS host label before any
URL is built from it, and hosts are built only from a :data:`Region`.
"""

from __future__ import annotations

import os
import re
from typing import NewType

from .._credentials import botocore_profile_region
from ..exceptions import ConfigurationError, FetchError

Region = NewType("Region", str)
"""A region name that passed :func:`validate_region`."""

# botocore.utils.validate_region_name: letters, digits and hyphens, at most 63, not all
# digits, no hyphen at either end. Matched with fullmatch (botocore's "$" also lets a
# trailing newline through) and never empty (an empty region is "not set"). The patterns
# stay strings, compiled (and cached by re) when first used, not on every cold start.
_HOST_LABEL = r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)"

# The DNS suffix of each partition, from botocore's data/partitions.json: a region that
# matches none of these patterns is in the "aws" partition, as botocore resolves it.
_PARTITION_SUFFIXES = (
    (r"cn-\w+-\d+", "amazonaws.com.cn"),
    (r"eusc-de-\w+-\d+", "amazonaws.eu"),
    (r"us-iso-\w+-\d+", "c2s.ic.gov"),
    (r"us-isob-\w+-\d+", "sc2s.sgov.gov"),
    (r"eu-isoe-\w+-\d+", "cloud.adc-e.uk"),
    (r"us-isof-\w+-\d+", "csp.hci.ic.gov"),
)
_DEFAULT_SUFFIX = "amazonaws.com"  # the aws and aws-us-gov partitions


def validate_region(region: object, origin: str) -> Region:
    """``region`` if it is a valid region name (one DNS host label).

    Args:
        region: The region name.
        origin: Where it came from, for the error (``"region="``, ``"AWS_REGION"``...).

    Raises:
        ConfigurationError: It is not a host label: it could not be a region, and
            could change the host of the URL built from it.
    """
    if isinstance(region, str) and re.fullmatch(_HOST_LABEL, region):
        return Region(region)
    shown = repr(region) if len(repr(region)) <= 80 else repr(region)[:77] + "..."
    raise ConfigurationError(
        f"{origin} must be an AWS region name such as us-east-1 (1 to 63 letters, digits "
        f"and hyphens, not starting or ending with a hyphen), not {shown}"
    )


def configured_region(argument: str | None) -> Region | None:
    """The region from ``region=``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``.

    Raises:
        ConfigurationError: The first of them that is set is not a region name; the
            message names it.
    """
    if argument:
        return validate_region(argument, "region=")
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(variable)
        if value:
            return validate_region(value, variable)
    return None


def profile_region() -> Region | None:
    """The region of botocore's profile, if botocore is installed (imported only now).

    Raises:
        FetchError: ``InvalidRegion``: the profile's region is not a region name. It is
            found on the first fetch, not at construction (botocore is not imported
            before then), and a fetch reports failures as ``FetchError``.
    """
    found = botocore_profile_region()
    if found is None:
        return None
    region, profile = found
    try:
        return validate_region(region, f"the region of AWS profile {profile!r}")
    except ConfigurationError as error:
        raise FetchError(str(error), code="InvalidRegion") from None


def dns_suffix(region: Region) -> str:
    """The DNS suffix of the region's partition (``amazonaws.com``, ``amazonaws.com.cn``...)."""
    for pattern, suffix in _PARTITION_SUFFIXES:
        if re.fullmatch(pattern, region):
            return suffix
    return _DEFAULT_SUFFIX


def service_endpoint(service: str, region: Region) -> str:
    """AWS's endpoint for ``service`` (its endpoint prefix, e.g. ``ssm``) in ``region``."""
    return f"https://{service}.{region}.{dns_suffix(region)}"
