"""Where values come from."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .._declarations import Record, ValueRequest
from .._settings import Settings
from ..exceptions import FetchError

Outcome = Record | FetchError


@runtime_checkable
class Source(Protocol):
    """Something that can fetch parameters and secrets.

    ``fetch`` gets several requests at once (so that a source may batch them) and returns
    one outcome per request, in order: the AWS API's JSON for the value (the ``Parameter``
    object of ``GetParameter``, or the ``GetSecretValue`` response), or a
    :class:`FetchError`. It must not raise for a failure of one value, and must not
    touch the network before it is first called.
    """

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        """Fetch ``requests``; ``deadline`` is a ``time.monotonic()`` instant or ``None``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def give_up_time(timeout_ms: int, deadline: float | None) -> float | None:
    """When to stop trying (``time.monotonic()``): the timeout setting or the deadline."""
    timeout_at = time.monotonic() + timeout_ms / 1000 if timeout_ms else None
    known = [t for t in (deadline, timeout_at) if t is not None]
    return min(known) if known else None


def default_source(settings: Settings) -> Source:
    """The source ``PARAMETERS_SECRETS_SOURCE`` names; else the extension in Lambda; else AWS."""
    choice = settings.source
    if choice is None:
        choice = "extension" if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else "aws"
    if choice == "extension":
        from .extension import ExtensionSource

        return ExtensionSource(settings=settings)
    if choice == "aws":
        from .aws import AwsSource

        return AwsSource(settings=settings)
    from .static import StaticSource

    return StaticSource.from_file(choice.removeprefix("file:"))
