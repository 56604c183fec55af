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
an error. One refresh at a time, whatever the thread or event loop: concurrent callers
share one call to the endpoint and its outcome, success or failure. The call runs in a
worker thread of its own (``_concurrency.in_thread``), bounded by 2 s in all with its
answer capped at 64 KiB; each caller waits for it no longer than its own fetch's time
bound, and a caller that stops waiting leaves the answer to the next one. Where botocore
tries 3 times, 2 s each, 1 s apart, a failure here is tried again by the next request.
botocore's chain, when it is used, runs the same way: off every event loop, one call at a
time, abandoned by a caller at its time bound.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._concurrency import Flight, drop_after_restore, in_thread, run_blocking
from ._http import httpx
from ._json import loads
from ._sigv4 import Credentials
from ._sources._bounded import read_capped
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
# The endpoint answers a few hundred bytes: a body this long is not credentials.
MAX_ENDPOINT_ANSWER_BYTES = 64 * 1024
# botocore's chain may try instance metadata or SSO: a caller waits for it only within its
# own time bound, and a call still running after this long is presumed stuck.
BOTOCORE_SECONDS = 30.0
# botocore's frozen credentials are good for 10 minutes at least: reuse them for 5.
BOTOCORE_REUSE_SECONDS = 5 * 60.0


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
        # Shared by every thread and loop; _refresh only changes under the lock.
        self._lock = threading.Lock()
        self._botocore: Any = None  # botocore's credentials object, once resolved
        # What botocore last gave, and until when it is used without asking again.
        self._botocore_frozen: tuple[Credentials, float] | None = None
        self._container: _Temporary | None = None  # the endpoint's last answer
        self._refresh: Flight[Any] | None = None  # the call under way (endpoint or botocore)
        drop_after_restore(self)

    def drop_after_restore(self) -> None:
        """Forget every credential fetched before a SnapStart snapshot was taken."""
        with self._lock:
            self._container = self._botocore_frozen = self._refresh = None
            self._botocore = None

    async def get(self, give_up_at: float | None = None) -> Credentials:
        """Credentials to sign with now.

        Args:
            give_up_at: When to stop waiting for credentials being fetched
                (``time.monotonic()``); default: as long as the call to fetch them lasts.

        Raises:
            FetchError: ``NoCredentials``: none in the environment, no container endpoint,
                and botocore has none (or is not installed). ``CredentialsError``: the
                container endpoint is misconfigured, cannot be reached, refuses the
                token or answers something else than credentials (transient when trying
                again may help). ``Timeout``: they were not fetched by ``give_up_at``.
                The message never holds a key or a token.
        """
        if self._fixed is not None:
            return self._fixed
        from_environment = _environment_credentials()
        if from_environment is not None:
            return from_environment
        if os.environ.get(RELATIVE_URI) or os.environ.get(FULL_URI):
            return await self._from_container(give_up_at)
        return await self._from_botocore(give_up_at)

    def _refreshing(self, work: Callable[[], object], seconds: float) -> tuple[Flight[Any], bool]:
        """The call under way, or a new one started in a worker thread; and whether it was
        started now."""
        # Not in the caller's task on the source's per-loop client: the call must outlive a
        # caller cancelled or out of time (its answer serves the next); an anyio task cannot.
        with self._lock:
            flight = self._refresh
            if flight is not None and not flight.settled and not flight.stalled():
                return flight, False
            flight = self._refresh = in_thread(work, time.monotonic() + seconds)
            return flight, True

    @staticmethod
    async def _wait(flight: Flight[Any], give_up_at: float | None) -> object:
        until = flight.give_up_at if give_up_at is None else min(give_up_at, flight.give_up_at)
        settled, outcome = await flight.wait(until)
        if not settled:
            return FetchError(
                "AWS credentials were not ready within the fetch's time bound",
                code="Timeout",
                transient=True,
            )
        return outcome

    # -- the container endpoint ---------------------------------------------------

    async def _from_container(self, give_up_at: float | None) -> Credentials:
        usable = self._current(ADVISORY_REFRESH_SECONDS)
        if usable is not None:
            return usable
        flight, started = self._refreshing(self._refresh_container, self._timeout + 1.0)
        if not started:
            # Someone is refreshing early: the current keys are good for 10 more minutes.
            usable = self._current(MANDATORY_REFRESH_SECONDS)
            if usable is not None:
                return usable
        outcome = await self._wait(flight, give_up_at)
        if isinstance(outcome, _Temporary):
            return outcome.credentials
        return self._despite_failed_refresh(outcome)

    def _despite_failed_refresh(self, outcome: object) -> Credentials:
        """After a refresh failed with ``outcome``: the current keys, which serve until 10
        minutes before they expire; else the refresh's failure."""
        usable = self._current(MANDATORY_REFRESH_SECONDS)
        if usable is not None:
            return usable
        if isinstance(outcome, BaseException):
            raise outcome
        raise FetchError("no AWS credentials", code="CredentialsError", transient=True)

    def _current(self, window: float) -> Credentials | None:
        """The endpoint's last credentials, if they do not expire within ``window`` s."""
        current = self._container
        if current is None or current.refresh_due(self._clock(), window):
            return None
        return current.credentials

    def _refresh_container(self) -> _Temporary | FetchError:
        """Call the endpoint (in a worker thread); its answer, kept for every caller."""
        try:
            fresh = run_blocking("credentials", self._fetch_container, os.environ)
            if fresh.expired(self._clock()):
                raise FetchError(  # noqa: TRY301 - the waiters get it as their outcome
                    "the container credentials endpoint answered with credentials that have "
                    "already expired (is this machine's clock right?)",
                    code="CredentialsError",
                    transient=True,
                )
        except FetchError as error:
            self._warn_current_serve(error)
            return error
        except Exception as exc:  # noqa: BLE001 - whatever happens, the waiters get an outcome
            return FetchError(
                f"reading the container credentials endpoint failed ({type(exc).__name__})",
                code="CredentialsError",
                transient=True,
            )
        self._container = fresh
        return fresh

    def _warn_current_serve(self, error: FetchError) -> None:
        """Say that a refresh failed, if the current credentials serve meanwhile (they are
        valid for 10 more minutes)."""
        current = self._container
        if current is not None and current.expires_at is not None:
            left = current.expires_at - self._clock()
            if left >= MANDATORY_REFRESH_SECONDS:
                logger.warning(
                    "refreshing AWS credentials failed; the current ones, valid %d s "
                    "more, are used meanwhile: %s",
                    left,
                    error,
                )

    async def _fetch_container(self, environ: Mapping[str, str]) -> _Temporary:

        endpoint = container_endpoint(environ)
        headers = _container_headers(environ)
        where = f"the container credentials endpoint ({endpoint.variable})"
        status, body = await self._ask_container(endpoint, headers, where)
        return _container_credentials(where, status, body)

    async def _ask_container(
        self, endpoint: ContainerEndpoint, headers: dict[str, str], where: str
    ) -> tuple[int, bytes]:
        """The endpoint's status and (for a 200) body, within the timeout."""
        import anyio

        try:
            with anyio.fail_after(self._timeout):
                async with (
                    httpx.AsyncClient(
                        # A TLS context only for https; no proxy may ever see this token.
                        verify=httpx.create_ssl_context()
                        if endpoint.url.scheme == "https"
                        else False,
                        trust_env=False,
                        timeout=self._timeout,
                    ) as client,
                    client.stream("GET", endpoint.url, headers=headers) as response,
                ):
                    status = response.status_code
                    # An error's body is not read: its status says what went wrong.
                    body = (
                        await read_capped(
                            response, MAX_ENDPOINT_ANSWER_BYTES, what=f"the answer of {where}"
                        )
                        if status == 200
                        else b""
                    )
        except FetchError as error:  # too large, or compressed: not credentials
            raise FetchError(str(error), code="CredentialsError", transient=True) from None
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
        return status, body

    # -- botocore -----------------------------------------------------------------

    async def _from_botocore(self, give_up_at: float | None) -> Credentials:
        frozen = self._botocore_frozen
        if frozen is not None and time.monotonic() < frozen[1]:
            return frozen[0]
        flight, _ = self._refreshing(self._call_botocore, BOTOCORE_SECONDS)
        outcome = await self._wait(flight, give_up_at)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Credentials)  # noqa: S101 - for mypy: the leader's outcome
        return outcome

    def _call_botocore(self) -> Credentials:
        """Botocore's credentials now (in a worker thread)."""
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
        # For refreshable credentials this refreshes them when they are about to expire;
        # what it returns is good for 10 minutes at least (botocore's mandatory window).
        frozen = self._botocore.get_frozen_credentials()
        credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)
        self._botocore_frozen = (credentials, time.monotonic() + BOTOCORE_REUSE_SECONDS)
        return credentials


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


class ContainerEndpoint:
    """The container credentials endpoint's URL, and the variable that named it."""

    __slots__ = ("url", "variable")

    def __init__(self, url: httpx.URL, variable: str) -> None:
        self.url = url
        self.variable = variable


def _container_headers(environ: Mapping[str, str]) -> dict[str, str]:
    # Identity: a compressed answer is refused (httpx would inflate each chunk whole).
    headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    token = authorization_token(environ)
    if token is not None:
        headers["Authorization"] = token
    return headers


def _container_credentials(where: str, status: int, body: bytes) -> _Temporary:
    """The credentials in the endpoint's answer, or the FetchError that says why not."""
    if status != 200:
        hint = f": check {TOKEN_FILE} or {TOKEN}" if status in (401, 403) else ""
        raise FetchError(
            f"{where} answered HTTP {status}{hint}",
            code="CredentialsError",
            transient=status >= 500 or status == 429,
            status=status,
        )
    try:
        return _parse_credentials(loads(body))
    except ValueError:
        # Never the body itself: it holds the keys.
        raise FetchError(
            f"{where} did not answer with credentials (AccessKeyId, SecretAccessKey, "
            "Token, Expiration)",
            code="CredentialsError",
            transient=True,
        ) from None


def container_endpoint(environ: Mapping[str, str]) -> ContainerEndpoint:
    """The endpoint ``RELATIVE_URI`` or ``FULL_URI`` names, validated as botocore does.

    Raises:
        FetchError: ``CredentialsError``: neither is set, the URL does not parse, or it
            names a host credentials may not be asked of (the message says which).
    """
    relative = environ.get(RELATIVE_URI)
    if relative:
        return _relative_endpoint(relative)
    full = environ.get(FULL_URI)
    if not full:
        raise _config_error(f"neither {RELATIVE_URI} nor {FULL_URI} is set")
    return _full_endpoint(full)


def _relative_endpoint(relative: str) -> ContainerEndpoint:
    url = _parse_url(f"http://{ECS_HOST}{relative}", RELATIVE_URI)
    # botocore pastes the path after the host: "@host/..." would move it; not here.
    if not relative.startswith("/") or url.host != ECS_HOST or url.port is not None:
        raise _config_error(f"{RELATIVE_URI} must be a path (starting with /) on {ECS_HOST}")
    return ContainerEndpoint(url, RELATIVE_URI)


def _full_endpoint(full: str) -> ContainerEndpoint:
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
        token: str | None = _read_token_file(path)
        variable = TOKEN_FILE
    else:
        token = environ.get(TOKEN)
        variable = TOKEN
    if token is not None and ("\r" in token or "\n" in token):
        raise _config_error(f"the token in {variable} has a line break: not a valid header value")
    return token


def _read_token_file(path: str) -> str:
    """The token in the file ``path`` (``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``)."""
    try:
        # A few hundred bytes from a local (projected) volume: no thread needed.
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise _config_error(f"cannot read {TOKEN_FILE} ({path!r}): {type(exc).__name__}") from None


def _environment_credentials() -> Credentials | None:
    """The keys in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and its session
    token), if both are set."""
    access_key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        return Credentials(access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)
    return None


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
        raise ValueError("not a JSON object")  # noqa: TRY004 - the caller reports ValueErrors
    access_key, secret_key = _text(body, "AccessKeyId"), _text(body, "SecretAccessKey")
    token, expiration = body.get("Token"), body.get("Expiration")
    if token is not None and not isinstance(token, str):
        raise ValueError("Token is not a string")
    # No Expiration: credentials that do not expire (botocore's RefreshableCredentials
    # treats a missing expiry so; the Go and Java SDKs accept such an answer too).
    expires_at = None if expiration is None else _epoch_seconds(expiration)
    return _Temporary(Credentials(access_key, secret_key, token or None), expires_at)


def _text(body: dict[str, object], field: str) -> str:
    """A field of the endpoint's JSON that must be a non-empty string."""
    value = body.get(field)
    if not (isinstance(value, str) and value):
        raise ValueError(f"no {field}")
    return value


def _epoch_seconds(expiration: object) -> float:
    """An ISO 8601 instant (``2026-11-22T10:00:00Z``) as seconds since the epoch."""
    if not isinstance(expiration, str):
        raise ValueError("Expiration is not a string")  # noqa: TRY004 - as above
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
