"""Where AwsSource's credentials come from: the environment, else botocore's chain."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ._sigv4 import Credentials
from .exceptions import FetchError


class CredentialsProvider:
    """``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``; when they
    are absent and botocore is installed, botocore's chain (profiles, SSO, container and
    instance metadata), imported only then, which refreshes temporary credentials before
    they expire.
    """

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._fixed = credentials
        self._botocore: Any = None  # botocore's credentials object, once resolved

    async def get(self) -> Credentials:
        """Credentials to sign with now.

        Raises:
            FetchError: ``NoCredentials``: none in the environment and botocore has none
                (or is not installed).
        """
        if self._fixed is not None:
            return self._fixed
        access_key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if access_key and secret_key:
            return Credentials(access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)
        # botocore may read files or call the metadata service: keep it off the loop.
        return await asyncio.to_thread(self._from_botocore)

    def _from_botocore(self) -> Credentials:
        if self._botocore is None:
            try:
                import botocore.session
            except ImportError:
                raise FetchError(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "or install botocore to use profiles, SSO or instance roles",
                    code="NoCredentials",
                ) from None
            self._botocore = botocore.session.get_session().get_credentials()
            if self._botocore is None:
                raise FetchError("no AWS credentials found", code="NoCredentials")
        # For refreshable credentials this refreshes them when they are about to expire.
        frozen = self._botocore.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def botocore_region() -> str | None:
    """The region of the default botocore profile, if botocore is installed."""
    try:
        import botocore.session
    except ImportError:
        return None
    region = botocore.session.get_session().get_config_variable("region")
    return str(region) if region else None
