"""AWS Systems Manager Cloud Extensions (experimental): AWS's newer extension runtime, with a
Parameter Store extension and a Secrets Manager extension on ``localhost:5333``.

Built from AWS's documentation (Systems Manager user guide, "Cloud Extensions": "Using the
Parameter Store extension", "Using the Secrets Manager extension", "Errors that the
Secrets Manager extension returns", "Retrieving secrets across accounts with role
chaining"), not against a running runtime, which could not be had here:

* Parameter Store: ``POST /parameterstore`` in the SSM JSON 1.1 protocol
  (``X-Amz-Target: AmazonSSM.GetParameter`` / ``GetParameters``), signed with SigV4 for
  ``ssm``: :class:`AwsSource`'s own code, pointed at the runtime.
* Secrets Manager: ``GET /secretsmanager/get?secretId=`` with ``versionStage``,
  ``versionId`` and ``roleArn``; the runtime requires SigV4 by default (service
  ``secretsmanager``) and, while the SSRF token check is on (the default), the token in
  ``X-Aws-Parameters-Secrets-Token``: both are sent.
* Errors name their type in ``X-Amzn-Errortype``; the extension's bodies say ``message``,
  the runtime's ``Message`` (both are read). ``429 ThrottlingException`` is asked again
  after its ``Retry-After``, within the fetch's time bound. While an extension loads it
  answers ``503 ServiceUnavailableException``: it is not serving yet, as the Lambda
  extension is not during INIT; with a ``fallback`` the values come from AWS directly
  meanwhile, else the extension is asked again until the fetch's time bound.
* A secret with ``role_arn`` is asked with ``roleArn`` (the runtime assumes the role). The
  Parameter Store extension documents no role parameter: a parameter with a role, and a
  :class:`ParametersByPath` (no by-path operation), are read from AWS directly. So is a
  ``Secret(..., follow_rotation=True)`` (the runtime has no ``DescribeSecret``), with or
  without a role.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from .._concurrency import PerLoop, concurrently
from .._declarations import PathRequest, SecretRequest, ValueRequest
from .._settings import Settings
from ..exceptions import ConfigurationError, FetchError
from . import DirectAws, Outcome, Source, describe_secrets_with, give_up_time
from ._bounded import Answer, parse_answer, send_bounded
from ._endpoints import configured_region, profile_region
from ._errors import error_code, is_transient
from ._records import checked_record
from ._retry import RetryPolicy, within_time_bound
from .extension import TOKEN_HEADER, _close_client, _loopback_client, _secret_path

if TYPE_CHECKING:
    from .._http import httpx
    from .._sigv4 import Credentials

DEFAULT_PORT = 5333
PARAMETER_STORE_PATH = "/parameterstore"
LOADING = "ServiceUnavailableException"
# A Retry-After beyond this is not waited for as such: the time bound decides.
MAX_RETRY_AFTER_SECONDS = 10.0


class LoadingAwareRetryPolicy(RetryPolicy):
    """:class:`RetryPolicy`, and an extension still loading (503
    ``ServiceUnavailableException``) is asked again until the fetch's time bound."""

    # No fields of its own: RetryPolicy's dataclass machinery serves it as it is.

    def retries(self, error: FetchError, attempt: int) -> bool:
        if error.code == LOADING:
            return True
        return super().retries(error, attempt)


class _LoadingFallsBackPolicy(RetryPolicy):
    """:class:`RetryPolicy`, but a runtime still loading is not asked again: with a
    fallback, AWS answers instead."""

    def retries(self, error: FetchError, attempt: int) -> bool:
        if error.code == LOADING:
            return False
        return super().retries(error, attempt)


class CloudExtensionsSource:
    """Fetch values from AWS Systems Manager Cloud Extensions' runtime (experimental).

    Args:
        port: The runtime's port; default 5333.
        token: The SSRF token for the Secrets Manager extension; default
            ``AWS_SESSION_TOKEN``, else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``.
        region: The region SigV4 signs for; default ``AWS_REGION``.
        settings: Timeouts and connections; default ``Settings.from_env()``.
        credentials: What requests are signed with: by default the runtime's credentials
            (the runtime's ``runtimeCredentials`` authentication: on Lambda, the
            function's own, from the environment); or a profile's extension key
            (``extensionKey`` authentication).
        retry: When to ask again; default :class:`LoadingAwareRetryPolicy` without a
            fallback; with one, :class:`RetryPolicy` but a loading runtime is not asked
            again.
        fallback: Where values come from while the runtime is not serving (503
            ``ServiceUnavailableException`` while it loads, or the connection refused):
            ``"aws"``, an :class:`AwsSource` made on first use; a source; or ``None``
            (the default off Lambda): ask the runtime again until the time bound.
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
        fallback: Source | Literal["aws"] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        from .aws import AwsSource  # SigV4 and credentials: only for this source

        _check_fallback(fallback)
        settings = settings if settings is not None else Settings.from_env()
        if retry is None:
            retry = _default_retry(fallback)
        self.port = port
        self.fallback = fallback
        self._settings = settings
        self._parameter_store: Source = AwsSource(
            region,
            endpoint_url=f"http://127.0.0.1:{port}{PARAMETER_STORE_PATH}",
            settings=settings,
            credentials=credentials,
            retry=retry,
            transport=transport,
        )
        self._secrets_manager = _SecretsManagerExtension(
            port=port,
            token=token,
            region=region,
            settings=settings,
            credentials=credentials,
            retry=retry,
            transport=transport,
        )
        self._direct = DirectAws(fallback, settings)

    def __repr__(self) -> str:
        fallback = "" if self.fallback is None else f", fallback={self.fallback!r}"
        return f"CloudExtensionsSource(port={self.port}{fallback})"

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """Parameters from the Parameter Store extension (batched), secrets from the
        Secrets Manager extension, at once; paths, parameters with a role and secrets that
        follow their rotation from AWS directly, and with a fallback whatever the runtime
        is not serving yet."""
        outcomes: dict[ValueRequest, Outcome] = {}
        routes = _routes(requests)
        parameters, secrets = routes["parameters"], routes["secrets"]

        async def ask(source: Source, asked: list[ValueRequest]) -> None:
            outcomes.update(zip(asked, await source.fetch(asked, deadline), strict=True))

        await concurrently(
            [
                ask(source, asked)
                for source, asked in (
                    (self._parameter_store, parameters),
                    (self._secrets_manager, secrets),
                )
                if asked
            ]
        )
        direct = routes["direct"] + self._not_served([*parameters, *secrets], outcomes)
        if direct:
            await ask(self._direct.source(), direct)
        return [outcomes[r] for r in requests]

    def _not_served(
        self, asked: list[ValueRequest], outcomes: dict[ValueRequest, Outcome]
    ) -> list[ValueRequest]:
        """Those ``asked`` of the runtime that the fallback answers: none without one, else
        those the runtime was not serving yet."""
        if self.fallback is None:
            return []
        return [r for r in asked if _not_serving(outcomes[r])]

    async def describe_secrets(
        self, requests: Sequence[SecretRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        """``DescribeSecret`` from AWS directly (the runtime has none), for
        ``Secret(..., follow_rotation=True)``, whose values come from AWS directly too."""
        return await describe_secrets_with(self._direct.source(), requests, deadline)

    async def aclose(self) -> None:
        """Close both extensions' connection pools (and AWS's, if it was used)."""
        await self._parameter_store.aclose()
        await self._secrets_manager.aclose()
        await self._direct.aclose()


def _check_fallback(fallback: object) -> None:
    """Refuse a ``fallback=`` that is not ``"aws"``, a source or ``None``."""
    if not (fallback is None or fallback == "aws" or isinstance(fallback, Source)):
        raise ConfigurationError(f"fallback must be 'aws', a source or None, not {fallback!r}")


def _default_retry(fallback: object) -> RetryPolicy:
    """The retry policy without ``retry=``: with a fallback, a loading runtime is not
    waited for (AWS answers instead)."""
    return _LoadingFallsBackPolicy() if fallback is not None else LoadingAwareRetryPolicy()


def _routes(requests: Sequence[ValueRequest]) -> dict[str, list[ValueRequest]]:
    """The requests by who answers them (see :func:`_route`)."""
    routes: dict[str, list[ValueRequest]] = {"parameters": [], "secrets": [], "direct": []}
    for request in requests:
        routes[_route(request)].append(request)
    return routes


def _route(request: ValueRequest) -> str:
    """Who answers ``request``: the Parameter Store or Secrets Manager extension, or AWS
    directly (no by-path API, no roles, no DescribeSecret in the runtime)."""
    if isinstance(request, SecretRequest):
        # A followed secret is described by AWS directly, and no second cache between a
        # rotation and this one: read from AWS as well.
        return "direct" if request.follow_rotation else "secrets"
    if isinstance(request, PathRequest) or request.role_arn is not None:
        return "direct"
    return "parameters"


def _not_serving(outcome: Outcome) -> bool:
    """Whether the runtime was not serving: loading (503), or nothing listening."""
    if not isinstance(outcome, FetchError):
        return False
    return outcome.code == LOADING or (outcome.code == "ConnectionError" and outcome.status is None)


class _Throttled(FetchError):
    """``429 ThrottlingException``, with the ``Retry-After`` the runtime asked for."""

    retry_after: float | None = None


class _SecretsManagerExtension:
    """The Secrets Manager extension's query route: SigV4 for ``secretsmanager``, the SSRF
    token, ``roleArn``; one pooled client per loop."""

    checks_records = True

    def __init__(
        self,
        *,
        port: int,
        token: str | None,
        region: str | None,
        settings: Settings,
        credentials: Credentials | None,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        from .._credentials import CredentialsProvider

        self._port = port
        self._token = token
        self._region = configured_region(region)
        self._settings = settings
        self._credentials = CredentialsProvider(credentials)
        self._retry = retry
        self._base_url = f"http://127.0.0.1:{port}"
        self._clients = PerLoop(
            functools.partial(_loopback_client, self._base_url, transport), _close_client
        )

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        give_up_at = give_up_time(self._settings.secret_timeout_ms, deadline)
        outcomes: dict[ValueRequest, Outcome] = {}
        try:
            credentials = await self._credentials.get(give_up_at)
            region = self._signing_region()
        except FetchError as error:
            return [error] * len(requests)
        client = await self._clients.get()

        async def get(request: SecretRequest) -> None:
            outcomes[request] = await self._get(client, request, credentials, region, give_up_at)

        await concurrently([get(r) for r in requests if isinstance(r, SecretRequest)])
        return [outcomes[r] for r in requests]

    def _signing_region(self) -> str:
        """The region to sign for: ``region=``, else the profile's; else ``NoRegion``."""
        region = self._region or profile_region()
        if region is None:
            raise FetchError(
                "no AWS region to sign for: set AWS_REGION or pass "
                "CloudExtensionsSource(region=...)",
                code="NoRegion",
            )
        return region

    def _token_value(self) -> str | None:
        import os

        if self._token is not None:
            return self._token
        return (
            os.environ.get("AWS_SESSION_TOKEN")
            or os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            or None
        )

    async def _get(
        self,
        client: httpx.AsyncClient,
        request: SecretRequest,
        credentials: Credentials,
        region: str,
        give_up_at: float,
    ) -> Outcome:
        from .._http import httpx
        from .._sigv4 import sign

        path = _secret_path(request)
        if request.role_arn is not None:
            path += f"&roleArn={quote(request.role_arn, safe='')}"
        url = f"{self._base_url}{path}"
        token = self._token_value()
        last: list[FetchError] = []

        async def attempt() -> Outcome:
            headers = sign(
                "GET",
                url,
                {TOKEN_HEADER: token} if token is not None else {},
                b"",
                credentials=credentials,
                region=region,
                service="secretsmanager",
            )
            try:
                answer = await send_bounded(
                    client,
                    client.build_request("GET", url, headers=headers),
                    what=f"{request.describe()}: the Secrets Manager extension's answer",
                )
            except FetchError as error:
                outcome: Outcome = error
            except httpx.TransportError as exc:
                outcome = FetchError(
                    f"{request.describe()}: the Cloud Extensions runtime on 127.0.0.1:"
                    f"{self._port} cannot be reached ({type(exc).__name__})",
                    code="ConnectionError",
                    transient=True,
                )
            else:
                outcome = _parse(request, answer)
            if isinstance(outcome, FetchError):
                last[:] = [outcome]
            return outcome

        def delay(attempt: int) -> float:
            # The runtime says when it can take the call again: that, not our backoff.
            error = last[0] if last else None
            if isinstance(error, _Throttled) and error.retry_after is not None:
                return error.retry_after
            return self._retry.delay(attempt)

        return await within_time_bound(
            attempt,
            give_up_at=give_up_at,
            retries=self._retry.retries,
            delay=delay,
            timed_out=lambda: FetchError(
                f"{request.describe()}: timed out", code="Timeout", transient=True
            ),
        )


def _parse(request: SecretRequest, answer: Answer) -> Outcome:
    if answer.status == 200:
        try:
            body = parse_answer(answer.body, what="the Secrets Manager extension's answer")
        except FetchError:
            body = None  # checked_record says what is wrong: MalformedResponse
        return checked_record(request, body, origin="Secrets Manager extension's answer")  # type: ignore[no-any-return]
    return _error_answer(request, answer)


def _error_answer(request: SecretRequest, answer: Answer) -> FetchError:
    """The extension's error answer as a ``FetchError`` (``_Throttled`` for a 429)."""
    # "message" from the extension, "Message" from the runtime: error_code reads both.
    code, message = error_code(answer.status, answer.text, answer.headers.get("x-amzn-errortype"))
    text = f"{request.describe()}: {code} (HTTP {answer.status})" + (
        f": {message}" if message else ""
    )
    error = (_Throttled if answer.status == 429 else FetchError)(
        text, code=code, transient=is_transient(answer.status, code), status=answer.status
    )
    if isinstance(error, _Throttled):
        error.retry_after = _retry_after(answer.headers.get("retry-after"))
    return error


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds only), at most ``MAX_RETRY_AFTER_SECONDS``."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not seconds >= 0:  # NaN too
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)
