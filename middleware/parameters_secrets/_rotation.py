"""Following a secret's rotation: ``Secret(..., follow_rotation=True)``.

The value is fetched with ``GetSecretValue`` as any other, and with its first fetch the
secret is described (``DescribeSecret``, at once): its ``NextRotationDate`` ends the cached
value's life even if its TTL has not. Until that date, a TTL that ends refetches the value
as for any secret, without describing it. From that date on, each time the value expires
(every ``REVALIDATE_SECONDS``, or its TTL if shorter) the secret is described again, and the
value fetched again only when the version labelled ``AWSCURRENT`` is no longer the one
cached: a version's value never changes, so an unchanged version id is an unchanged value.
A rotation is thus served within about ``REVALIDATE_SECONDS`` of completing, with one
``GetSecretValue`` per version. A secret without a ``NextRotationDate`` (rotation off) is
cached with its TTL alone, as any other.

One :class:`RotationFollower` per store, between the cache and the source: it keeps, for
each following request, the last record fetched and the date from which it is revalidated
(plain data behind a lock), and tells the cache when each value it returned expires.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeGuard, runtime_checkable

from ._concurrency import concurrently
from ._declarations import Record, SecretRequest, ValueRequest
from ._settings import Settings
from ._sources import Outcome, give_up_time
from .exceptions import FetchError

logger = logging.getLogger("parameters_secrets")

# After NextRotationDate, how often a value is revalidated with DescribeSecret (at most):
# how long a completed rotation may go unseen, for one DescribeSecret call per interval.
REVALIDATE_SECONDS = 30.0
CURRENT_STAGE = "AWSCURRENT"

Fetch = Callable[[Sequence[ValueRequest], float | None], Awaitable[Sequence[Outcome]]]


@runtime_checkable
class DescribesSecrets(Protocol):
    """A source that can call ``DescribeSecret`` (AWS directly, or through a source that
    routes it there): what ``follow_rotation`` needs."""

    async def describe_secrets(
        self, requests: Sequence[SecretRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        """Each secret's ``DescribeSecret`` answer, or the :class:`FetchError` instead."""
        ...


@dataclass
class _Followed:
    """What is known of one following secret."""

    record: Record  # the last GetSecretValue answer, as the cache holds it
    # The wall-clock instant (epoch seconds) from which the record is revalidated before it
    # is reused: the NextRotationDate; inf: never (rotation off); -inf: now (not known).
    revalidate_from: float
    # The store's clock instant at which the cache stops serving the record; None: TTL alone.
    expires_at: float | None


class RotationFollower:
    """The store's fetch for requests that follow their rotation (others pass through).

    Args:
        upstream: The store's fetch from the source (``GetSecretValue`` and the rest).
        describer: The source's ``describe_secrets``.
        settings: The store's: the secrets' time bound, stale-if-error.
        clock: The store's monotonic clock (the cache's expiries).
        wall_clock: Epoch seconds, to compare with ``NextRotationDate``.
    """

    def __init__(
        self,
        upstream: Fetch,
        describer: DescribesSecrets,
        *,
        settings: Settings,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._upstream = upstream
        self._describer = describer
        self._settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._followed: dict[SecretRequest, _Followed] = {}

    def forget(self) -> None:
        """Forget every record (SnapStart restore): the next fetch describes again."""
        with self._lock:
            self._followed.clear()

    def expires_at(self, request: ValueRequest) -> float | None:
        """When the value last fetched for ``request`` expires whatever its TTL (the
        cache's ``expiry``): its ``NextRotationDate``, or after ``REVALIDATE_SECONDS``."""
        if not isinstance(request, SecretRequest):
            return None
        with self._lock:
            followed = self._followed.get(request)
        return None if followed is None else followed.expires_at

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """``upstream``'s outcomes; for a following secret past its rotation date, the
        record it holds while ``DescribeSecret`` shows its version is still current."""
        following = [r for r in dict.fromkeys(requests) if _follows(r)]
        if not following:
            return list(await self._upstream(requests, deadline))
        # One bound for every step: a version fetched after its description is inside it.
        give_up_at = give_up_time(self._settings.secret_timeout_ms, deadline)
        known, first, revalidating = self._sorted(following)
        got, described = await self._get_and_describe(
            requests, first, revalidating, deadline, give_up_at
        )
        dates: dict[SecretRequest, float] = {}
        changed = self._revalidate(revalidating, known, described, dates, got)
        if changed:  # a new version: its one GetSecretValue
            got.update(zip(changed, await self._upstream(changed, give_up_at), strict=True))
        self._take_first(first, described, dates, got)
        self._remember(following, known, got, dates)
        return [got[r] for r in requests]

    def _sorted(
        self, following: list[SecretRequest]
    ) -> tuple[dict[SecretRequest, _Followed | None], list[SecretRequest], list[SecretRequest]]:
        """What is known of each secret followed; the ones fetched for the first time;
        the ones past their date, whose version is checked."""
        wall = self._wall_clock()
        with self._lock:
            known = {r: self._followed.get(r) for r in following}
        first = [r for r in following if known[r] is None]
        revalidating = [r for r in following if _due(known[r], wall)]
        return known, first, revalidating

    def _revalidate(
        self,
        revalidating: list[SecretRequest],
        known: dict[SecretRequest, _Followed | None],
        described: dict[SecretRequest, Outcome],
        dates: dict[SecretRequest, float],
        got: dict[ValueRequest, Outcome],
    ) -> list[ValueRequest]:
        """Put in ``got`` the outcome of each value past its date whose version is
        unchanged (or cannot be checked); return those whose version changed."""
        changed: list[ValueRequest] = []
        for request in revalidating:
            outcome = self._revalidated(request, known[request], described[request], dates)
            if outcome is None:
                changed.append(request)
            else:
                got[request] = outcome
        return changed

    def _take_first(
        self,
        first: list[SecretRequest],
        described: dict[SecretRequest, Outcome],
        dates: dict[SecretRequest, float],
        got: dict[ValueRequest, Outcome],
    ) -> None:
        """Put in ``got`` the outcome of each value fetched for the first time (see
        :meth:`_first`)."""
        for request in first:
            got[request] = self._first(request, got[request], described[request], dates)

    async def _get_and_describe(
        self,
        requests: Sequence[ValueRequest],
        first: list[SecretRequest],
        revalidating: list[SecretRequest],
        deadline: float | None,
        give_up_at: float,
    ) -> tuple[dict[ValueRequest, Outcome], dict[SecretRequest, Outcome]]:
        """Values to fetch (others, first fetches, TTL refreshes) and secrets to describe
        (first fetches, values past their date), all at once."""
        got: dict[ValueRequest, Outcome] = {}
        described: dict[SecretRequest, Outcome] = {}

        async def get(asked: list[ValueRequest]) -> None:
            got.update(zip(asked, await self._upstream(asked, deadline), strict=True))

        async def describe(asked: list[SecretRequest]) -> None:
            answers = await self._describer.describe_secrets(asked, give_up_at)
            described.update(zip(asked, answers, strict=True))

        to_get = [r for r in dict.fromkeys(requests) if r not in revalidating]
        steps = [get(to_get)] if to_get else []
        if first or revalidating:
            steps.append(describe(first + revalidating))
        await concurrently(steps)
        return got, described

    # -- deciding, one request at a time ------------------------------------------------

    def _first(
        self,
        request: SecretRequest,
        outcome: Outcome,
        description: Outcome,
        dates: dict[SecretRequest, float],
    ) -> Outcome:
        """A first fetch: the value, and its rotation date from its description."""
        if isinstance(outcome, FetchError):
            return outcome
        if isinstance(description, FetchError):
            if not description.transient:
                return description  # e.g. no secretsmanager:DescribeSecret: say so now
            # The value is fresh; its date is not known yet: asked again in the interval.
            _warn(request, description, "the value is served")
            dates[request] = -math.inf
            return outcome
        dates[request] = next_rotation(description)
        return outcome

    def _revalidated(
        self,
        request: SecretRequest,
        followed: _Followed | None,
        description: Outcome,
        dates: dict[SecretRequest, float],
    ) -> Outcome | None:
        """A value past its date, once its description is read: the record held while
        its version is current; ``None``: the version changed, fetch it."""
        assert followed is not None  # noqa: S101 - revalidating: known
        if isinstance(description, FetchError):
            if description.transient and self._settings.stale_if_error:
                _warn(request, description, "serving the version cached")
                return followed.record
            return description
        dates[request] = next_rotation(description)
        return followed.record if _still_current(followed.record, description) else None

    def _remember(
        self,
        following: list[SecretRequest],
        known: dict[SecretRequest, _Followed | None],
        got: dict[ValueRequest, Outcome],
        dates: dict[SecretRequest, float],
    ) -> None:
        now, wall = self._clock(), self._wall_clock()
        with self._lock:
            for request in following:
                outcome, before = got[request], known[request]
                if isinstance(outcome, FetchError):
                    if not outcome.transient:  # gone or forbidden: never served again
                        self._followed.pop(request, None)
                    continue
                revalidate_from = _revalidate_from(before, dates.get(request))
                self._followed[request] = _Followed(
                    outcome, revalidate_from, _expiry(revalidate_from, now, wall)
                )


def follower_for(
    source: object,
    upstream: Fetch,
    *,
    settings: Settings,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
    keys: Sequence[str],
) -> RotationFollower | None:
    """The follower for a store whose ``keys`` follow their rotation; ``None`` if
    ``source`` cannot describe secrets (a file, a custom source): then those values are
    cached with their TTL, as any other, and an INFO line says so."""
    if not isinstance(source, DescribesSecrets):
        logger.info(
            "parameters_secrets: %r cannot call DescribeSecret: %s follow no rotation "
            "(cached with their TTL)",
            source,
            ", ".join(map(repr, keys)),
        )
        return None
    return RotationFollower(upstream, source, settings=settings, clock=clock, wall_clock=wall_clock)


def next_rotation(description: Record) -> float:
    """From a ``DescribeSecret`` answer: when to revalidate (epoch seconds). ``inf``: never
    (rotation off); ``-inf``: the date cannot be read, so at once (and every interval)."""
    if description.get("RotationEnabled") is False:
        return math.inf
    date = description.get("NextRotationDate")
    if date is None:
        return math.inf
    return _epoch_seconds(date)


def _epoch_seconds(date: object) -> float:
    """A ``NextRotationDate`` (epoch seconds, as the JSON API gives it) as a float;
    ``-inf`` if it is not a finite number."""
    if isinstance(date, (int, float)) and not isinstance(date, bool) and math.isfinite(date):
        return float(date)
    return -math.inf


def _still_current(record: Record, description: Record) -> bool:
    """Whether the version ``record`` holds is the one ``description`` labels
    ``AWSCURRENT``."""
    version = record.get("VersionId")
    return version is not None and version == current_version(description)


def _revalidate_from(before: _Followed | None, date: float | None) -> float:
    """When a value fetched again is next revalidated: the date just read, else (a TTL
    refresh before the date) the one it had."""
    if date is not None:
        return date
    return before.revalidate_from if before else -math.inf


def current_version(description: Record) -> str | None:
    """From a ``DescribeSecret`` answer: the id of the version labelled ``AWSCURRENT``."""
    stages = description.get("VersionIdsToStages")
    if not isinstance(stages, dict):
        return None
    for version_id, labels in stages.items():
        if isinstance(labels, list) and CURRENT_STAGE in labels:
            return str(version_id)
    return None


def _follows(request: ValueRequest) -> TypeGuard[SecretRequest]:
    return isinstance(request, SecretRequest) and request.follow_rotation


def _due(followed: _Followed | None, wall: float) -> bool:
    """Whether a value held must be revalidated before it is reused: its date passed."""
    return followed is not None and wall >= followed.revalidate_from


def _expiry(revalidate_from: float, now: float, wall: float) -> float | None:
    """The clock instant a value just fetched expires at whatever its TTL: at its date,
    or once the date has passed, ``REVALIDATE_SECONDS`` from now; ``None``: no date."""
    if revalidate_from == math.inf:
        return None
    if revalidate_from > wall:
        return now + (revalidate_from - wall)
    return now + REVALIDATE_SECONDS


def _warn(request: SecretRequest, error: FetchError, serving: str) -> None:
    logger.warning(
        "describing %s failed (%s); %s, and it is described again within %.0f s",
        request.describe(),
        error.code,
        serving,
        REVALIDATE_SECONDS,
    )
