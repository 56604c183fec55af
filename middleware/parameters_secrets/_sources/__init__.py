"""Where values come from."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .._declarations import Record, SecretRequest, ValueRequest
from .._settings import Settings
from .._time_bounds import earliest
from ..exceptions import FetchError

Outcome = Record | FetchError
"""What a source returns for one request: its record, or the :class:`FetchError` that
says why there is none."""


@runtime_checkable
class Source(Protocol):
    """Something that can fetch parameters and secrets.

    ``fetch`` gets several requests at once (so that a source may batch them) and returns
    one outcome per request, in order: the AWS API's JSON for the value (the ``Parameter``
    object of ``GetParameter``, or the ``GetSecretValue`` response), or a
    :class:`FetchError`. It must not raise for a failure of one value, must end by the
    fetch's time bound, and must not touch the network before it is first called. It may
    be called from several threads and event loops at once.

    ``checks_records`` says whether the source itself makes sure each record holds a
    usable value for its request (the built-in ones do); if false, the store checks them
    (a record without one is a transient ``MalformedResponse``). Subclass this protocol to
    inherit ``checks_records = False``.
    """

    checks_records: bool = False

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        """Fetch ``requests``; ``deadline`` is a ``time.monotonic()`` instant or ``None``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


async def describe_secrets_with(
    source: Source, requests: Sequence[SecretRequest], deadline: float | None
) -> Sequence[Outcome]:
    """``DescribeSecret`` through ``source`` (AWS directly, behind a source that has no
    such call), for ``Secret(..., follow_rotation=True)``; a source without
    ``describe_secrets`` fails each request with ``DescribeSecretUnsupported``."""
    describe = getattr(source, "describe_secrets", None)
    if describe is None:
        return [
            FetchError(
                f"{r.describe()}: the fallback source cannot call DescribeSecret",
                code="DescribeSecretUnsupported",
            )
            for r in requests
        ]
    answers: Sequence[Outcome] = await describe(requests, deadline)
    return answers


class DirectAws:
    """AWS directly, behind an extension's source, for what the extension does not serve
    (paths, DescribeSecret, values while it is not serving): the ``fallback`` source if
    one was given, else an ``AwsSource`` made on first use, so a function that never needs
    it never imports it. Shared by every thread and loop that uses the source."""

    def __init__(self, fallback: object, settings: Settings) -> None:
        self._source: Source | None = fallback if isinstance(fallback, Source) else None
        self._settings = settings
        self._lock = threading.Lock()

    def source(self) -> Source:
        """The source that reads AWS directly, made now if it was not yet."""
        with self._lock:
            if self._source is None:
                from .aws import AwsSource  # SigV4 and credentials: cold starts

                self._source = AwsSource(settings=self._settings)
            return self._source

    async def aclose(self) -> None:
        """Close its connection pool, if it was used."""
        if self._source is not None:
            await self._source.aclose()


# A fetch with neither a timeout setting nor a Lambda deadline still ends: a web request
# that never answers is worse than a 503 (botocore's own defaults are finite too).
DEFAULT_TIMEOUT_SECONDS = 10.0


def give_up_time(timeout_ms: int, deadline: float | None) -> float:
    """When a fetch must end (``time.monotonic()``), retries and slow reads included.

    The ceiling (the timeout setting; 0: ``DEFAULT_TIMEOUT_SECONDS``) from now, or the
    deadline (the Lambda's remaining time) if earlier: a deadline never lifts the ceiling,
    so an infinite or far one is the ceiling. During Lambda's on-demand INIT, also before
    Lambda's INIT limit (see ``_time_bounds``).

    Raises:
        ConfigurationError: ``deadline`` is NaN.
    """
    ceiling = timeout_ms / 1000 if timeout_ms else DEFAULT_TIMEOUT_SECONDS
    return earliest(time.monotonic(), ceiling, deadline)


def default_source(settings: Settings) -> Source:
    """The source ``PARAMETERS_SECRETS_SOURCE`` names; else the extension in Lambda; else AWS."""
    return choose_source(settings)[0]


def _chosen(setting: str | None, *, on_lambda: bool) -> tuple[str, str]:
    """Which source (``PARAMETERS_SECRETS_SOURCE``'s value), and why."""
    if setting is not None:
        return setting, f"PARAMETERS_SECRETS_SOURCE={setting}"
    if on_lambda:
        return "extension", "running on Lambda (AWS_LAMBDA_FUNCTION_NAME is set)"
    return "aws", "not on Lambda and PARAMETERS_SECRETS_SOURCE is unset"


def choose_source(settings: Settings) -> tuple[Source, str]:
    """The default source, and why it was chosen (for the log)."""
    on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    choice, reason = _chosen(settings.source, on_lambda=on_lambda)
    # Only on Lambda: off it, an extension that does not answer (a local server not
    # started) must not send a developer's requests to AWS instead.
    falls_back = on_lambda and settings.extension_fallback == "aws"
    if choice == "extension":
        from .extension import ExtensionSource

        if falls_back:
            reason += "; AWS directly while the extension is not serving (INIT)"
            return ExtensionSource(settings=settings, fallback="aws"), reason
        return ExtensionSource(settings=settings), reason
    if choice == "aws":
        from .aws import AwsSource

        return AwsSource(settings=settings), reason
    if choice == "cloud-extensions":
        from .cloud_extensions import CloudExtensionsSource

        if falls_back:
            reason += "; AWS directly while the runtime is not serving (loading, INIT)"
            return CloudExtensionsSource(settings=settings, fallback="aws"), reason
        return CloudExtensionsSource(settings=settings), reason
    from .static import StaticSource

    return StaticSource.from_file(choice.removeprefix("file:")), reason
