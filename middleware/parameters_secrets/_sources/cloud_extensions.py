"""AWS Systems Manager Cloud Extensions (experimental): AWS's newer extension runtime, with a
Parameter Store extension and a Secrets Manager extension on ``localhost:5333``.

Built from AWS's documentation (Systems Manager user guide, "Cloud Extensions"), not
against a running runtime, which could not be had here:

* Parameter Store: ``POST /parameterstore`` in the SSM JSON 1.1 protocol
  (``X-Amz-Target: AmazonSSM.GetParameter`` / ``GetParameters``), signed with SigV4 for
  ``ssm``: :class:`AwsSource`'s own code, pointed at the runtime.
* Secrets Manager: ``GET /secretsmanager/get?secretId=`` with ``versionStage`` and
  ``versionId``, the SSRF token in ``X-Aws-Parameters-Secrets-Token``: the same query route
  as the Parameters and Secrets Lambda Extension, so :class:`ExtensionSource`'s code.
* Errors name their type in ``X-Amzn-Errortype``. While an extension loads it answers 503
  ``ServiceUnavailableException``: asked again until the fetch's time bound, as throttling.
* The runtime has no by-path operation: a :class:`ParametersByPath` is read from AWS
  directly, as with the Parameters and Secrets Lambda Extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._concurrency import concurrently
from .._declarations import ParameterRequest, SecretRequest, ValueRequest
from .._settings import Settings
from ..exceptions import FetchError
from . import Outcome, Source
from ._retry import RetryPolicy
from .extension import ExtensionSource

if TYPE_CHECKING:
    import httpx

    from .._sigv4 import Credentials

DEFAULT_PORT = 5333
PARAMETER_STORE_PATH = "/parameterstore"


class LoadingAwareRetryPolicy(RetryPolicy):
    """:class:`RetryPolicy`, and an extension still loading (503
    ``ServiceUnavailableException``) is asked again until the fetch's time bound."""

    # No fields of its own: RetryPolicy's dataclass machinery serves it as it is.

    def retries(self, error: FetchError, attempt: int) -> bool:
        if error.code == "ServiceUnavailableException":
            return True
        return super().retries(error, attempt)


class CloudExtensionsSource:
    """Fetch values from AWS Systems Manager Cloud Extensions' runtime (experimental).

    Args:
        port: The runtime's port; default 5333.
        token: The SSRF token for the Secrets Manager extension; default
            ``AWS_SESSION_TOKEN``, else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``.
        region: The region SigV4 signs for; default ``AWS_REGION``.
        settings: Timeouts and connections; default ``Settings.from_env()``.
        credentials: What Parameter Store requests are signed with: by default the
            runtime's credentials (the runtime's ``runtimeCredentials`` authentication:
            on Lambda, the function's own, from the environment); or a profile's
            extension key (``extensionKey`` authentication).
        retry: When to ask again; default :class:`LoadingAwareRetryPolicy`.
        transport: An httpx transport for both extensions (tests).
    """

    checks_records = True

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        *,
        region: str | None = None,
        settings: Settings | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        from .aws import AwsSource  # SigV4 and credentials: only for this source

        settings = settings if settings is not None else Settings.from_env()
        retry = retry if retry is not None else LoadingAwareRetryPolicy()
        self.port = port
        self._parameter_store: Source = AwsSource(
            region,
            endpoint_url=f"http://127.0.0.1:{port}{PARAMETER_STORE_PATH}",
            settings=settings,
            credentials=credentials,
            retry=retry,
            transport=transport,
        )
        # The same query route as the Lambda extension's; paths go to AWS directly.
        self._secrets_manager = ExtensionSource(
            port, token, settings=settings, retry=retry, transport=transport
        )

    def __repr__(self) -> str:
        return f"CloudExtensionsSource(port={self.port})"

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """Parameters from the Parameter Store extension (batched), everything else from
        the Secrets Manager extension (paths from AWS directly), at once."""
        outcomes: dict[ValueRequest, Outcome] = {}
        parameters: list[ValueRequest] = [r for r in requests if isinstance(r, ParameterRequest)]
        others: list[ValueRequest] = [r for r in requests if not isinstance(r, ParameterRequest)]

        async def ask(source: Source, asked: list[ValueRequest]) -> None:
            outcomes.update(zip(asked, await source.fetch(asked, deadline), strict=True))

        await concurrently(
            [
                ask(source, asked)
                for source, asked in (
                    (self._parameter_store, parameters),
                    (self._secrets_manager, others),
                )
                if asked
            ]
        )
        return [outcomes[r] for r in requests]

    async def describe_secrets(
        self, requests: Sequence[SecretRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        """``DescribeSecret`` from AWS directly (the runtime has none), for
        ``Secret(..., follow_rotation=True)``, whose values come from AWS directly too."""
        return await self._secrets_manager.describe_secrets(requests, deadline)

    async def aclose(self) -> None:
        """Close both extensions' connection pools."""
        await self._parameter_store.aclose()
        await self._secrets_manager.aclose()
