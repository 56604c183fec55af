"""Where values come from."""

from __future__ import annotations

import os
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
