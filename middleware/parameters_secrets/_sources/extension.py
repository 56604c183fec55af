"""The AWS Parameters and Secrets Lambda Extension's HTTP API (or the local stand-in)."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypeGuard
from urllib.parse import quote

from .._concurrency import PerLoop, concurrently
from .._declarations import ParameterRequest, PathRequest, SecretRequest, ValueRequest
from .._settings import Settings
from ..exceptions import ConfigurationError, FetchError
from . import DirectAws, Outcome, Source, describe_secrets_with, give_up_time
from ._bounded import Answer, parse_answer, send_bounded
from ._errors import error_code, is_transient
from ._records import checked_record
from ._retry import RetryPolicy, within_time_bound

if TYPE_CHECKING:
    from .._http import httpx

logger = logging.getLogger("parameters_secrets")

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
# The extension answers "400 not ready to serve traffic, please wait" until its own
# INIT is done, and a connection can be refused for a moment while it starts.
NOT_READY_BUDGET_SECONDS = 1.0
# Retries of a starting extension begin at 10 ms; throttling backs off up to 2 s. The
# extension has retried AWS already: by default only throttling is asked again.
DEFAULT_RETRY = RetryPolicy(base_delay=0.01, max_delay=2.0, max_attempts=1)
# AWS could not be asked for want of credentials (see _credentials).
_CREDENTIALS_CODES = frozenset({"NoCredentials", "CredentialsError"})


class ExtensionSource:
    """Fetch values from the extension on ``127.0.0.1``, one pooled connection set.

    Args:
        port: The extension's port; default ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``
            (2773).
        token: The ``X-Aws-Parameters-Secrets-Token``; default ``AWS_SESSION_TOKEN``, else
            ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (Lambda SnapStart has no session
            token), read when a request is made.
        settings: Timeouts and the default port; default ``Settings.from_env()``.
        retry: When and how long to wait before asking again: throttling (which the
            extension passes on from AWS) until the fetch's time bound, other transient
            failures ``max_attempts`` tries in all. The default waits from 10 ms up to 2 s
            and tries other failures once (the extension has retried AWS itself). A
            starting extension ("not ready", connection refused) is asked again for up to
            1 s whatever the policy.
        fallback: Where values come from while the extension is not serving ("not
            ready", or the connection refused: Lambda's INIT phase, and a moment at the
            start of the first invocation): ``"aws"``, an :class:`AwsSource` made on first
            use with these settings (the function's own credentials, the role the
            extension uses); a source; or ``None``: ask the extension again for up to 1 s,
            then fail with ``ExtensionNotReady`` or ``ConnectionError``. Each fetch tries
            the extension first, so values come through it again once it serves.
        transport: An httpx transport to send requests through (tests:
            ``httpx.MockTransport``); default a connection pool to the extension.

    The extension has no by-path API, cannot assume a role and has no ``DescribeSecret``:
    a :class:`ParametersByPath`, a value declared with ``role_arn`` and a
    ``Secret(..., follow_rotation=True)`` are read from AWS directly, from ``fallback`` if
    it is a source, else from an :class:`AwsSource` made on first use.
    """

    # Its records hold a usable value for what was asked: the store need not check.
    checks_records = True

    def __init__(
        self,
        port: int | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        retry: RetryPolicy | None = None,
        fallback: Source | Literal["aws"] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings if settings is not None else Settings.from_env()
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.fallback = _checked_fallback(fallback)
        # AWS directly, for paths and (with a fallback) while the extension is not serving:
        # made on first use, so a function that never needs it never imports it.
        self._direct = DirectAws(fallback, self._settings)
        self._fell_back = False
        self.port = _checked_port(self._settings.http_port if port is None else port)
        self._token = token
        self._base_url = f"http://127.0.0.1:{self.port}"
        # No reference back to self from the pool (see PerLoop).
        self._clients = PerLoop(
            functools.partial(_loopback_client, self._base_url, transport),
            _close_client,
        )

    def __repr__(self) -> str:
        fallback = "" if self.fallback is None else f", fallback={self.fallback!r}"
        return f"ExtensionSource(port={self.port}{fallback})"

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """Ask the extension for every value at once (it has no batch call); paths, roles'
        values, secrets that follow their rotation, and with a fallback the values it is
        not ready to serve, from AWS directly."""
        outcomes: dict[ValueRequest, Outcome] = {}
        asked, direct = _by_server(requests)
        if asked:
            direct += await self._ask_extension(asked, deadline, outcomes)
        if direct:
            await self._ask_aws(direct, deadline, outcomes)
        return [outcomes[r] for r in requests]

    async def _ask_extension(
        self,
        asked: list[ParameterRequest | SecretRequest],
        deadline: float | None,
        outcomes: dict[ValueRequest, Outcome],
    ) -> list[ValueRequest]:
        """Every value from the extension at once; with a fallback, those it is not ready
        to serve, to ask AWS directly."""
        client = await self._clients.get()
        await concurrently([self._get_into(outcomes, client, r, deadline) for r in asked])
        if self.fallback is None:
            return []
        not_serving: list[ValueRequest] = [r for r in asked if isinstance(outcomes[r], _NotServing)]
        if not_serving:
            self._say_falling_back(outcomes[not_serving[0]])
        return not_serving

    def _say_falling_back(self, not_serving: Outcome) -> None:
        """Say once (INFO) that values come from AWS directly while the extension is not
        serving, and why (``not_serving``'s code)."""
        if not self._fell_back:
            self._fell_back = True
            logger.info(
                "the extension is not serving yet (%s): values "
                "come from AWS directly until it does",
                not_serving.code,  # type: ignore[union-attr]
            )

    async def _ask_aws(
        self,
        direct: list[ValueRequest],
        deadline: float | None,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        answers = await self._direct.source().fetch(direct, deadline)
        for request, answer in zip(direct, answers, strict=True):
            was = outcomes.get(request)
            outcomes[request] = _fallen_back(answer, was) if was is not None else answer

    async def describe_secrets(
        self, requests: Sequence[SecretRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        """``DescribeSecret`` (which the extension does not offer) from AWS directly, for
        ``Secret(..., follow_rotation=True)``."""
        return await describe_secrets_with(self._direct.source(), requests, deadline)

    async def _get_into(
        self,
        outcomes: dict[ValueRequest, Outcome],
        client: httpx.AsyncClient,
        request: ParameterRequest | SecretRequest,
        deadline: float | None,
    ) -> None:
        outcomes[request] = await self._get(client, request, deadline)

    async def aclose(self) -> None:
        """Close the connection pool (and AWS's, if it was used)."""
        await self._clients.aclose()
        await self._direct.aclose()

    def _token_value(self) -> str | None:
        """The ``X-Aws-Parameters-Secrets-Token``: ``token=``, else ``AWS_SESSION_TOKEN``,
        else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, read now; ``None``: no header."""
        if self._token is not None:
            return self._token
        # Without AWS_SESSION_TOKEN (Lambda SnapStart, ECS, EKS) the container's token
        # is the one the Secrets Manager Agent accepts.
        return (
            os.environ.get("AWS_SESSION_TOKEN")
            or os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
            or None
        )

    async def _get(
        self,
        client: httpx.AsyncClient,
        request: ParameterRequest | SecretRequest,
        deadline: float | None,
    ) -> Outcome:
        if isinstance(request, ParameterRequest):
            path, timeout_ms = _parameter_path(request), self._settings.parameter_timeout_ms
        else:
            path, timeout_ms = _secret_path(request), self._settings.secret_timeout_ms
        started = time.monotonic()
        token = self._token_value()
        headers = {TOKEN_HEADER: token} if token is not None else {}
        # With a fallback, a starting extension is not waited for: AWS answers instead.
        starting_budget = 0.0 if self.fallback is not None else NOT_READY_BUDGET_SECONDS
        starting_until = started + starting_budget
        waiting_for_start = False

        from .._http import httpx  # imported by the client already: a dictionary lookup

        async def attempt() -> Outcome:
            try:
                answer = await send_bounded(
                    client,
                    client.build_request("GET", path, headers=headers),
                    what=f"{request.describe()}: the extension's answer",
                )
            except FetchError as error:
                return error
            except httpx.ConnectError:
                return _NotServing(
                    f"{request.describe()}: nothing answers on 127.0.0.1:{self.port}: "
                    "is the extension layer attached?",
                    code="ConnectionError",
                    transient=True,
                )
            except httpx.TransportError as exc:
                return FetchError(
                    f"{request.describe()}: the extension's answer was cut off "
                    f"({type(exc).__name__})",
                    code="ConnectionError",
                    transient=True,
                )
            if answer.status == 400 and b"not ready" in answer.body.lower():
                return _NotServing(
                    f"{request.describe()}: the extension is not ready to serve traffic",
                    code="ExtensionNotReady",
                    transient=True,
                    status=400,
                )
            return _parse(request, answer, token)

        def retries(error: FetchError, tries: int) -> bool:
            nonlocal waiting_for_start
            # A refused connection or "not ready": the extension may still be starting.
            waiting_for_start = isinstance(error, _NotServing)
            if waiting_for_start:
                return time.monotonic() < starting_until
            if error.code == "MalformedResponse":
                return False  # asked again on a later request, as RetryPolicy says
            return self.retry.retries(error, tries)

        def pause(tries: int) -> float:
            # A starting extension is asked again for about 1 s, not 1 s and a backoff
            # pause beyond it: the last pause ends when that second does.
            wait = self.retry.delay(tries)
            if waiting_for_start:
                return min(wait, max(0.0, starting_until - time.monotonic()))
            return wait

        return await within_time_bound(
            attempt,
            give_up_at=give_up_time(timeout_ms, deadline),
            retries=retries,
            delay=pause,
            timed_out=lambda: _timeout(request),
        )


def _aws_only(request: ValueRequest) -> bool:
    """Whether the extension cannot serve ``request``: a path (no by-path API), a value
    read through a role (it cannot assume one), or a secret that follows its rotation (no
    ``DescribeSecret``, and a second cache in front)."""
    return (
        isinstance(request, PathRequest)
        or request.role_arn is not None
        or (isinstance(request, SecretRequest) and request.follow_rotation)
    )


def _by_server(
    requests: Sequence[ValueRequest],
) -> tuple[list[ParameterRequest | SecretRequest], list[ValueRequest]]:
    """The requests the extension serves, and those AWS alone does."""
    # No by-path API, no roles, no DescribeSecret: those go to AWS directly.
    asked = [r for r in requests if _extension_serves(r)]
    direct: list[ValueRequest] = [r for r in requests if _aws_only(r)]
    return asked, direct


def _extension_serves(request: ValueRequest) -> TypeGuard[ParameterRequest | SecretRequest]:
    """Whether the extension can serve ``request`` (see :func:`_aws_only`)."""
    return not _aws_only(request)


class _NotServing(FetchError):
    """The extension is not serving yet: "not ready", or the connection refused."""


def _fallen_back(answer: Outcome, not_serving: Outcome) -> Outcome:
    """AWS's answer for a value the extension was not serving: a credentials error says
    why AWS was asked at all (the function expected the extension)."""
    if not isinstance(answer, FetchError) or answer.code not in _CREDENTIALS_CODES:
        return answer
    why = not_serving.code if isinstance(not_serving, FetchError) else "not serving"
    return FetchError(
        f"the extension was not serving yet ({why}), so AWS was asked directly, and {answer}",
        code=answer.code,
        transient=answer.transient,
        status=answer.status,
    )


def _loopback_client(
    base_url: str, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    # httpx is imported on first use: a function on a values file never needs it, and an
    # import of this package stays cheap.
    from .._http import httpx

    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        # Plain HTTP to loopback only: skip building a TLS context (18-35 ms) and ignore
        # HTTP(S)_PROXY, which must never see this hop.
        verify=False,
        trust_env=False,
        timeout=None,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


async def _close_client(client: httpx.AsyncClient) -> None:
    await client.aclose()


def _parameter_path(request: ParameterRequest) -> str:
    query = f"name={quote(request.name, safe='')}"
    if request.version is not None:
        query += f"&version={request.version}"
    if request.label is not None:
        query += f"&label={quote(request.label, safe='')}"
    query += f"&withDecryption={'true' if request.decrypt else 'false'}"
    return f"/systemsmanager/parameters/get?{query}"


def _secret_path(request: SecretRequest) -> str:
    query = f"secretId={quote(request.secret_id, safe='')}"
    if request.version_stage is not None:
        query += f"&versionStage={quote(request.version_stage, safe='')}"
    if request.version_id is not None:
        query += f"&versionId={quote(request.version_id, safe='')}"
    return f"/secretsmanager/get?{query}"


def _timeout(request: ValueRequest) -> FetchError:
    return FetchError(f"{request.describe()}: timed out", code="Timeout", transient=True)


def _parse(request: ValueRequest, response: Answer, token: str | None) -> Outcome:
    if response.status == 200:
        return _answered_record(request, response)
    return _refusal(request, response, token)


def _answered_record(request: ValueRequest, response: Answer) -> Outcome:
    """The record in the extension's 200 answer, checked."""
    try:
        body = parse_answer(response.body, what="the extension's answer")
    except FetchError:
        body = None  # checked_record says what is wrong: MalformedResponse
    record = (
        body.get("Parameter")
        if isinstance(request, ParameterRequest) and isinstance(body, dict)
        else body
    )
    outcome = checked_record(request, record, origin="extension's answer")
    if isinstance(outcome, FetchError):
        outcome.status = response.status
    return outcome  # type: ignore[no-any-return]


def _refusal(request: ValueRequest, response: Answer, token: str | None) -> FetchError:
    """The extension's error answer as a FetchError (a refused token: what to check)."""
    status = response.status
    code, message = error_code(status, response.text, response.headers.get("x-amzn-errortype"))
    if status == 401:
        message = _refused_token_hint(token)
    transient = is_transient(status, code)
    return FetchError(
        f"{request.describe()}: {code} (HTTP {status}){': ' + message if message else ''}",
        code=code,
        transient=transient,
        status=status,
    )


def _refused_token_hint(sent: str | None) -> str:
    """What to check when the extension refuses the token: where the one sent came from."""
    if sent is None:
        return (
            f"no {TOKEN_HEADER} was sent: neither AWS_SESSION_TOKEN nor "
            "AWS_CONTAINER_AUTHORIZATION_TOKEN is set (on Lambda SnapStart there is no "
            "AWS_SESSION_TOKEN): pass ExtensionSource(token=...), or use AwsSource"
        )
    if sent == os.environ.get("AWS_SESSION_TOKEN"):
        return (
            f"the extension refused {TOKEN_HEADER} from AWS_SESSION_TOKEN: is it this "
            "function's own extension on this port, started with this token?"
        )
    if sent == os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        return (
            f"the extension refused {TOKEN_HEADER} from AWS_CONTAINER_AUTHORIZATION_TOKEN, "
            "sent because AWS_SESSION_TOKEN is not set (as on Lambda SnapStart): the "
            "Parameters and Secrets Lambda Extension checks AWS_SESSION_TOKEN, the Secrets "
            "Manager Agent accepts this one; else use AwsSource, which reads the container "
            "credentials endpoint itself"
        )
    return f"the extension refused the token given as ExtensionSource(token=...) in {TOKEN_HEADER}"


def _checked_fallback(fallback: object) -> Source | Literal["aws"] | None:
    if fallback is None or fallback == "aws" or isinstance(fallback, Source):
        return fallback
    raise ConfigurationError(f"fallback must be 'aws', a source or None, not {fallback!r}")


def _checked_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigurationError(f"port must be an integer 1 to 65535, not {port!r}")
    return port
