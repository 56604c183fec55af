"""Where AwsSource's credentials come from.

In order, the first that applies:

1. the credentials passed to ``AwsSource(credentials=...)``;
2. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), read on
   every call;
3. the container credentials endpoint, when ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` or
   ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` is set (ECS, EKS Pod Identity, Lambda SnapStart,
   where there is no ``AWS_SESSION_TOKEN``): read here with httpx, no botocore needed,
   cached, and refreshed before the credentials expire;
4. botocore's chain, only if botocore is installed (profiles, SSO, instance metadata),
   imported only then.

The container endpoint is read as botocore's ``ContainerProvider`` and
``ContainerMetadataFetcher`` read it: ``RELATIVE_URI`` (a path on ``169.254.170.2``) wins
over ``FULL_URI``; a ``FULL_URI`` over plain http must name a loopback address or one of
the ECS / EKS Pod Identity hosts, any host over https; the ``Authorization`` header comes
from ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (re-read on each refresh: EKS rotates the
file), else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, and may not contain a line break. The
refresh follows botocore's ``RefreshableCredentials``: from 15 minutes before expiry one
caller refreshes while the others keep using the current keys, and a failure then is
only logged; from 10 minutes before, every caller waits for the refresh and a failure is
an error. One refresh at a time: concurrent callers share one call to the endpoint and
its outcome, success or failure. Where botocore tries 3 times, 2 s each, 1 s apart, one
call here is bounded by 2 s in all: a web request waits for it, and a failure is tried
again by the next request.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from ._sigv4 import Credentials
from .exceptions import FetchError

logger = logging.getLogger("parameters_secrets")

RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105 - a variable's name
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105 - a variable's name
ECS_HOST = "169.254.170.2"  # where RELATIVE_URI points
# Hosts a FULL_URI may name over plain http besides loopback addresses (botocore's
# ContainerMetadataFetcher._ALLOWED_HOSTS): ECS, EKS Pod Identity over IPv4 and IPv6.
HTTP_HOSTS = (ECS_HOST, "169.254.170.23", "fd00:ec2::23", "localhost")
# botocore's RefreshableCredentials: _advisory_refresh_timeout, _mandatory_refresh_timeout.
ADVISORY_REFRESH_SECONDS = 15 * 60
MANDATORY_REFRESH_SECONDS = 10 * 60
# botocore's ContainerMetadataFetcher.TIMEOUT_SECONDS, here the bound of the whole call.
ENDPOINT_TIMEOUT_SECONDS = 2.0
_MAX_ROUNDS = 3  # a caller waits again only if the one refreshing was cancelled


class CredentialsProvider:
    """The credentials ``AwsSource`` signs with (see the module's docstring for the order).

    Args:
        credentials: Fixed credentials, used as they are.
        clock: Seconds since the epoch. Expiry is the endpoint's wall-clock instant, and
            a SnapStart snapshot resumes with a monotonic clock that did not see the time
            pass, so this is ``time.time``, not ``time.monotonic``.
        timeout: Seconds the container endpoint has to answer, connection included.
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = ENDPOINT_TIMEOUT_SECONDS,
    ) -> None:
        self._fixed = credentials
        self._clock = clock
        self._timeout = timeout
        self._botocore: Any = None  # botocore's credentials object, once resolved
        self._container: _Temporary | None = None  # the endpoint's last answer
        self._refresh: _Refresh | None = None  # the call to the endpoint under way

    async def get(self) -> Credentials:
        """Credentials to sign with now.

        Raises:
            FetchError: ``NoCredentials``: none in the environment, no container endpoint,
                and botocore has none (or is not installed). ``CredentialsError``: the
                container endpoint is misconfigured, cannot be reached, refuses the
                token or answers something else than credentials (transient when trying
                again may help). The message never holds a key or a token.
        """
        if self._fixed is not None:
            return self._fixed
        access_key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if access_key and secret_key:
            return Credentials(access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)
        if os.environ.get(RELATIVE_URI) or os.environ.get(FULL_URI):
            return await self._from_container()
        import anyio.to_thread

        # botocore may read files or call the metadata service: keep it off the loop.
        return await anyio.to_thread.run_sync(self._from_botocore)

    # -- the container endpoint ---------------------------------------------------

    async def _from_container(self) -> Credentials:
        import anyio

        for _ in range(_MAX_ROUNDS):
            usable = self._current(ADVISORY_REFRESH_SECONDS)
            if usable is not None:
                return usable
            flight = self._refresh
            if flight is None:
                flight = self._refresh = _Refresh(anyio.Event())
                await self._lead(flight)
            else:
                # Someone is refreshing early: the current keys are good for 10 more minutes.
                usable = self._current(MANDATORY_REFRESH_SECONDS)
                if usable is not None:
                    return usable
                await flight.done.wait()
            if flight.result is not None:
                return flight.result.credentials
            if flight.error is not None:
                # An early refresh failed: the current keys serve until 10 minutes before.
                usable = self._current(MANDATORY_REFRESH_SECONDS)
                if usable is not None:
                    return usable
                raise flight.error
            # The caller refreshing was cancelled: refresh again.
        raise FetchError(
            "refreshing AWS credentials was cancelled repeatedly",
            code="CredentialsError",
            transient=True,
        )

    def _current(self, window: float) -> Credentials | None:
        """The endpoint's last credentials, if they do not expire within ``window`` s."""
        current = self._container
        if current is None or current.refresh_due(self._clock(), window):
            return None
        return current.credentials

    async def _lead(self, flight: _Refresh) -> None:
        """Call the endpoint for everyone waiting on ``flight``, and tell them the outcome."""
        try:
            fresh = await self._fetch_container(os.environ)
            if fresh.expired(self._clock()):
                raise FetchError(
                    "the container credentials endpoint answered with credentials that have "
                    "already expired (is this machine's clock right?)",
                    code="CredentialsError",
                    transient=True,
                )
            self._container = flight.result = fresh
        except FetchError as error:
            flight.error = error
        except Exception as exc:  # whatever happens, the waiters get an outcome
            flight.error = FetchError(
                f"reading the container credentials endpoint failed ({type(exc).__name__})",
                code="CredentialsError",
                transient=True,
            )
        finally:
            self._refresh = None
            flight.done.set()
        current = self._container
        if flight.error is not None and current is not None and current.expires_at is not None:
            left = current.expires_at - self._clock()
            if left >= MANDATORY_REFRESH_SECONDS:
                logger.warning(
                    "refreshing AWS credentials failed; the current ones, valid %d s more, "
                    "are used meanwhile: %s",
                    left,
                    flight.error,
                )

    async def _fetch_container(self, environ: Mapping[str, str]) -> _Temporary:
        import anyio

        endpoint = container_endpoint(environ)
        headers = {"Accept": "application/json"}
        token = authorization_token(environ)
        if token is not None:
            headers["Authorization"] = token
        where = f"the container credentials endpoint ({endpoint.variable})"
        try:
            with anyio.fail_after(self._timeout):
                async with httpx.AsyncClient(
                    # A TLS context only for https; no proxy may ever see this token.
                    verify=httpx.create_ssl_context() if endpoint.url.scheme == "https" else False,
                    trust_env=False,
                    timeout=self._timeout,
                ) as client:
                    response = await client.get(endpoint.url, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise FetchError(
                f"{where} did not answer within {self._timeout:g} s",
                code="CredentialsError",
                transient=True,
            ) from None
        except httpx.HTTPError as exc:
            raise FetchError(
                f"{where} cannot be reached ({type(exc).__name__})",
                code="CredentialsError",
                transient=True,
            ) from exc
        if response.status_code != 200:
            status = response.status_code
            hint = f": check {TOKEN_FILE} or {TOKEN}" if status in (401, 403) else ""
            raise FetchError(
                f"{where} answered HTTP {status}{hint}",
                code="CredentialsError",
                transient=status >= 500 or status == 429,
                status=status,
            )
        try:
            return _parse_credentials(response.json())
        except ValueError:
            # Never the body itself: it holds the keys.
            raise FetchError(
                f"{where} did not answer with credentials (AccessKeyId, SecretAccessKey, "
                "Token, Expiration)",
                code="CredentialsError",
                transient=True,
            ) from None

    # -- botocore -----------------------------------------------------------------

    def _from_botocore(self) -> Credentials:
        if self._botocore is None:
            try:
                import botocore.session
            except ImportError:
                raise FetchError(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    f"run where {FULL_URI} or {RELATIVE_URI} is set (ECS, EKS, SnapStart), "
                    "or install botocore to use profiles, SSO or instance roles",
                    code="NoCredentials",
                ) from None
            self._botocore = botocore.session.get_session().get_credentials()
            if self._botocore is None:
                raise FetchError("no AWS credentials found", code="NoCredentials")
        # For refreshable credentials this refreshes them when they are about to expire.
        frozen = self._botocore.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


class _Temporary:
    """Credentials from the endpoint and when they expire (seconds since the epoch)."""

    # A plain class: a dataclass costs ~0.3 ms of import on every cold start.
    __slots__ = ("credentials", "expires_at")

    def __init__(self, credentials: Credentials, expires_at: float | None) -> None:
        self.credentials = credentials
        self.expires_at = expires_at

    def refresh_due(self, now: float, window: float) -> bool:
        """Whether they expire within ``window`` seconds."""
        return self.expires_at is not None and self.expires_at - now < window

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class _Refresh:
    """One call to the endpoint, its outcome shared by every caller that waits for it."""

    def __init__(self, done: Any) -> None:
        self.done = done  # an anyio.Event
        self.result: _Temporary | None = None
        self.error: FetchError | None = None


class ContainerEndpoint:
    """The container credentials endpoint's URL, and the variable that named it."""

    __slots__ = ("url", "variable")

    def __init__(self, url: httpx.URL, variable: str) -> None:
        self.url = url
        self.variable = variable


def container_endpoint(environ: Mapping[str, str]) -> ContainerEndpoint:
    """The endpoint ``RELATIVE_URI`` or ``FULL_URI`` names, validated as botocore does.

    Raises:
        FetchError: ``CredentialsError``: neither is set, the URL does not parse, or it
            names a host credentials may not be asked of (the message says which).
    """
    relative = environ.get(RELATIVE_URI)
    if relative:
        url = _parse_url(f"http://{ECS_HOST}{relative}", RELATIVE_URI)
        # botocore pastes the path after the host: "@host/..." would move it; not here.
        if not relative.startswith("/") or url.host != ECS_HOST or url.port is not None:
            raise _config_error(f"{RELATIVE_URI} must be a path (starting with /) on {ECS_HOST}")
        return ContainerEndpoint(url, RELATIVE_URI)
    full = environ.get(FULL_URI)
    if not full:
        raise _config_error(f"neither {RELATIVE_URI} nor {FULL_URI} is set")
    url = _parse_url(full, FULL_URI)
    if url.scheme == "https" and url.host:
        return ContainerEndpoint(url, FULL_URI)
    if url.scheme == "http" and (url.host in HTTP_HOSTS or _is_loopback(url.host)):
        return ContainerEndpoint(url, FULL_URI)
    raise _config_error(
        f"{FULL_URI} must be an https URL, or an http URL to a loopback address or to "
        f"{', '.join(HTTP_HOSTS)} (as botocore allows), not {url.scheme}://{url.host}"
    )


def authorization_token(environ: Mapping[str, str]) -> str | None:
    """The ``Authorization`` header's value: the token file's contents (read now, since
    EKS rotates the file), else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, else none.

    Raises:
        FetchError: ``CredentialsError``: the file cannot be read, or the token has a
            line break (not a valid header value; botocore refuses it too).
    """
    path = environ.get(TOKEN_FILE)
    if path:
        try:
            # A few hundred bytes from a local (projected) volume: no thread needed.
            token: str | None = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise _config_error(
                f"cannot read {TOKEN_FILE} ({path!r}): {type(exc).__name__}"
            ) from None
        variable = TOKEN_FILE
    else:
        token = environ.get(TOKEN)
        variable = TOKEN
    if token is not None and ("\r" in token or "\n" in token):
        raise _config_error(f"the token in {variable} has a line break: not a valid header value")
    return token


def _parse_url(text: str, variable: str) -> httpx.URL:
    try:
        return httpx.URL(text)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise _config_error(f"{variable} is not a valid URL") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config_error(message: str) -> FetchError:
    return FetchError(message, code="CredentialsError")


def _parse_credentials(body: object) -> _Temporary:
    """The endpoint's JSON as credentials. Raises ``ValueError`` (without the body)."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    access_key, secret_key = body.get("AccessKeyId"), body.get("SecretAccessKey")
    token, expiration = body.get("Token"), body.get("Expiration")
    if not (isinstance(access_key, str) and access_key):
        raise ValueError("no AccessKeyId")
    if not (isinstance(secret_key, str) and secret_key):
        raise ValueError("no SecretAccessKey")
    if token is not None and not isinstance(token, str):
        raise ValueError("Token is not a string")
    # No Expiration: credentials that do not expire (botocore's RefreshableCredentials
    # treats a missing expiry so; the Go and Java SDKs accept such an answer too).
    expires_at = None if expiration is None else _epoch_seconds(expiration)
    return _Temporary(Credentials(access_key, secret_key, token or None), expires_at)


def _epoch_seconds(expiration: object) -> float:
    """An ISO 8601 instant (``2026-11-22T10:00:00Z``) as seconds since the epoch."""
    if not isinstance(expiration, str):
        raise ValueError("Expiration is not a string")
    # Python 3.10's fromisoformat does not read "Z".
    text = expiration.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def botocore_profile_region() -> tuple[str, str] | None:
    """``(region, profile name)`` of botocore's profile, if botocore is installed and the
    profile names a region."""
    try:
        import botocore.session
    except ImportError:
        return None
    session = botocore.session.get_session()
    region = session.get_config_variable("region")
    if not region:
        return None
    return str(region), str(session.get_config_variable("profile") or "default")
