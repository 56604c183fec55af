"""Credentials for values read through another role (``role_arn=``): STS ``AssumeRole``.

The call is STS's Query API (``Action=AssumeRole&Version=2011-06-15``, an XML answer: STS
has no JSON protocol), signed by this package's SigV4 with the function's own
credentials, sent to the regional endpoint (``sts.{region}.amazonaws.com``) unless
``AWS_ENDPOINT_URL_STS``, ``AwsSource(endpoint_url=...)`` or ``AWS_ENDPOINT_URL`` names
another. The answer is read through the capped reader and parsed without an XML parser
(four elements are all it needs).

The assumed credentials are kept per role until 5 minutes before their ``Expiration``,
shared by every thread and event loop: however many callers need a role at once, one
``AssumeRole`` is made, in a worker thread (``_concurrency.in_thread``, as the container
credentials are fetched), and each caller waits for it within its own fetch's time bound.
A caller that stops waiting leaves the answer to the next one. A failure is not kept: the
next fetch asks STS again.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._concurrency import Flight, drop_after_restore, in_thread, run_blocking
from ._credentials import _epoch_seconds, _Temporary
from ._sigv4 import Credentials, sign
from ._sources._bounded import send_bounded
from ._sources._endpoints import Region, service_endpoint
from ._sources._errors import error_code, is_transient
from ._sources._retry import RetryPolicy, within_time_bound
from .exceptions import FetchError

if TYPE_CHECKING:
    from ._http import httpx

STS_VERSION = "2011-06-15"
ROLE_SESSION_NAME = "parameters-secrets"
# Kept until this long before they expire, then assumed again (the Cloud Extensions
# runtime refreshes 1 minute before; 5 leaves room for a slow STS and a skewed clock).
REFRESH_BEFORE_EXPIRY_SECONDS = 5 * 60.0
# One AssumeRole, its retries included, ends within this; a caller waits no longer than
# its own time bound, and the next caller gets the answer if it comes later.
ASSUME_ROLE_SECONDS = 5.0
_XML_FIELD = r"<{0}>([^<]{{1,4096}})</{0}>"
_XML_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def sts_endpoint(region: Region, endpoint_url: str | None) -> str:
    """``AWS_ENDPOINT_URL_STS``, else the source's ``endpoint_url``, else
    ``AWS_ENDPOINT_URL``, else the regional STS endpoint."""
    return (
        os.environ.get("AWS_ENDPOINT_URL_STS")
        or endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL")
        or service_endpoint("sts", region)
    )


class AssumedRoles:
    """Each role's assumed credentials, shared by every thread and loop (see the module).

    Args:
        transport: An httpx transport for the STS call (tests); default a new pool.
        clock: Seconds since the epoch (``Expiration`` is a wall-clock instant).
        retry: When to ask STS again (throttling, 5xx), within ``ASSUME_ROLE_SECONDS``.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._retry = retry if retry is not None else RetryPolicy()
        self._lock = threading.Lock()
        self._held: dict[str, _Temporary] = {}
        self._calls: dict[str, Flight[Any]] = {}
        drop_after_restore(self)

    def drop_after_restore(self) -> None:
        """Forget every role's credentials (they expired while the snapshot slept)."""
        with self._lock:
            self._held.clear()
            self._calls.clear()

    async def get(
        self,
        role_arn: str,
        *,
        caller: Credentials,
        region: Region,
        endpoint: str,
        give_up_at: float,
    ) -> Credentials:
        """Credentials of ``role_arn``: kept ones, else from one ``AssumeRole`` shared by
        every caller.

        Raises:
            FetchError: STS refused (its code, e.g. ``AccessDenied``; not transient), did
                not answer credentials, or not by ``give_up_at`` (``Timeout``). The message
                names the role, never a key.
        """
        held = self._fresh(role_arn)
        if held is not None:
            return held.credentials
        flight = self._assuming(role_arn, caller, region, endpoint)
        settled, outcome = await flight.wait(min(give_up_at, flight.give_up_at))
        if not settled:
            raise FetchError(
                f"AssumeRole of {role_arn} did not answer within the fetch's time bound",
                code="Timeout",
                transient=True,
            )
        if isinstance(outcome, _Temporary):
            return outcome.credentials
        if isinstance(outcome, FetchError):
            raise outcome
        raise FetchError(
            f"AssumeRole of {role_arn} failed ({type(outcome).__name__})",
            code="CredentialsError",
            transient=True,
        )

    def _fresh(self, role_arn: str) -> _Temporary | None:
        """The kept credentials of ``role_arn``, if not yet due for a refresh."""
        held = self._held.get(role_arn)
        if held is None or held.refresh_due(self._clock(), REFRESH_BEFORE_EXPIRY_SECONDS):
            return None
        return held

    def _assuming(
        self, role_arn: str, caller: Credentials, region: Region, endpoint: str
    ) -> Flight[Any]:
        """The ``AssumeRole`` under way for ``role_arn``, or a new one."""
        with self._lock:
            flight = self._calls.get(role_arn)
            if flight is not None and not flight.settled and not flight.stalled():
                return flight
            # A call may have landed since this caller found nothing kept: its answer,
            # not a second AssumeRole.
            held = self._fresh(role_arn)
            if held is not None:
                landed: Flight[Any] = Flight(time.monotonic())
                landed.settle(held)
                return landed

            # In a thread, not the caller's task on the source's per-loop client: the call
            # must outlive a caller cancelled or out of time (as the credentials' does).
            def work() -> _Temporary | FetchError:
                return run_blocking("assume_role", self._assume, role_arn, caller, region, endpoint)

            flight = in_thread(work, time.monotonic() + ASSUME_ROLE_SECONDS + 1.0)
            self._calls[role_arn] = flight
            return flight

    async def _assume(
        self, role_arn: str, caller: Credentials, region: Region, endpoint: str
    ) -> _Temporary | FetchError:
        """One ``AssumeRole`` (in a worker thread, on its private loop); kept if it worked."""
        from ._sources.aws import _service_client  # the shared TLS context, proxies

        https = endpoint.startswith("https")
        async with _service_client(
            https=https, transport=self._transport, limit=1, proxies=https
        ) as client:
            outcome = await within_time_bound(
                lambda: _call(client, role_arn, caller, region, endpoint),
                give_up_at=time.monotonic() + ASSUME_ROLE_SECONDS,
                retries=self._retry.retries,
                delay=self._retry.delay,
                timed_out=lambda: FetchError(
                    f"AssumeRole of {role_arn} timed out", code="Timeout", transient=True
                ),
            )
        if isinstance(outcome, _Temporary):
            if outcome.expired(self._clock()):
                return FetchError(
                    f"AssumeRole of {role_arn} answered credentials that have already "
                    "expired (is this machine's clock right?)",
                    code="CredentialsError",
                    transient=True,
                )
            with self._lock:
                self._held[role_arn] = outcome
        return outcome


async def _call(
    client: httpx.AsyncClient,
    role_arn: str,
    caller: Credentials,
    region: Region,
    endpoint: str,
) -> _Temporary | FetchError:
    from ._http import httpx

    url = endpoint.rstrip("/") + "/"
    body = (
        f"Action=AssumeRole&Version={STS_VERSION}"
        f"&RoleArn={quote(role_arn, safe='')}&RoleSessionName={ROLE_SESSION_NAME}"
    ).encode()
    headers = sign(
        "POST",
        url,
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        body,
        credentials=caller,
        region=region,
        service="sts",
    )
    try:
        answer = await send_bounded(
            client,
            client.build_request("POST", url, content=body, headers=headers),
            what=f"AssumeRole's answer for {role_arn}",
        )
    except FetchError as error:
        return error
    except httpx.TransportError as exc:
        return FetchError(
            f"AssumeRole of {role_arn}: connection failed ({type(exc).__name__})",
            code="ConnectionError",
            transient=True,
        )
    if answer.status != 200:
        code, message = error_code(
            answer.status, answer.text, answer.headers.get("x-amzn-errortype")
        )
        return FetchError(
            f"AssumeRole of {role_arn} refused: {code} (HTTP {answer.status})"
            + (f": {message}" if message else ""),
            code=code,
            transient=is_transient(answer.status, code),
            status=answer.status,
        )
    return _parse_credentials(answer.text, role_arn)


def _parse_credentials(text: str, role_arn: str) -> _Temporary | FetchError:
    """The ``<Credentials>`` of an ``AssumeRoleResponse``; never the text in an error."""
    fields = {}
    for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"):
        found = re.search(_XML_FIELD.format(name), text)
        if found is None:
            return _malformed(f"AssumeRole's answer for {role_arn} has no {name}")
        fields[name] = _unescape(found.group(1).strip())
    try:
        expires_at = _epoch_seconds(fields["Expiration"])
    except ValueError:
        return _malformed(
            f"AssumeRole's answer for {role_arn} has an Expiration that is not a date"
        )
    credentials = Credentials(
        fields["AccessKeyId"], fields["SecretAccessKey"], fields["SessionToken"]
    )
    return _Temporary(credentials, expires_at)


def _malformed(message: str) -> FetchError:
    """An answer that is not what AssumeRole sends: worth asking again."""
    return FetchError(message, code="MalformedResponse", transient=True)


def _unescape(text: str) -> str:
    for entity, character in _XML_ENTITIES:
        text = text.replace(entity, character)
    return text
