"""Retrying a call within a fetch's time bound: exponential backoff with full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from ..exceptions import ConfigurationError, FetchError
from ._errors import THROTTLING_CODES

T = TypeVar("T")


def is_throttling(error: FetchError) -> bool:
    """Whether upstream asked us to slow down."""
    return error.code in THROTTLING_CODES or error.status == 429


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed call again, and how long to wait first.

    Throttling is retried until the fetch's time bound, not a fixed number of times: at
    scale-out a fleet's first requests get slower instead of failing. Other transient
    failures of a call (5xx, connection errors, an answer that is not JSON) are tried
    ``max_attempts`` times in all. (A well-formed answer without a usable value is not
    retried at once: it is a ``MalformedResponse``, asked again on a later request.)
    Before the n-th retry the call waits a random time between 0 and
    ``min(max_delay, base_delay * 2**n)`` (full jitter: a fleet that failed together does
    not retry together).

    Args:
        base_delay: Seconds; the first retry waits up to twice this.
        max_delay: The longest wait, in seconds.
        max_attempts: Tries in all for a transient failure other than throttling.
    """

    base_delay: float = 0.1
    max_delay: float = 2.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.base_delay <= self.max_delay:
            raise ConfigurationError("RetryPolicy needs 0 < base_delay <= max_delay")
        if isinstance(self.max_attempts, bool) or not (
            isinstance(self.max_attempts, int) and self.max_attempts >= 1
        ):
            raise ConfigurationError("RetryPolicy max_attempts must be an integer >= 1")

    def retries(self, error: FetchError, attempt: int) -> bool:
        """Whether to try again after ``error`` on the ``attempt``-th try (from 1)."""
        if is_throttling(error):
            return True
        return error.transient and attempt < self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th try (from 1)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311


async def within_time_bound(
    call: Callable[[], Awaitable[T | FetchError]],
    *,
    give_up_at: float,
    retries: Callable[[FetchError, int], bool],
    delay: Callable[[int], float],
    timed_out: Callable[[], FetchError],
) -> T | FetchError:
    """Call ``call`` until it succeeds, ``retries`` says stop, or ``give_up_at`` passes.

    ``give_up_at`` (``time.monotonic()``) bounds everything: every try, every wait and
    every slow read of an answer, which httpx's per-phase timeouts do not. A call cut off
    by the bound after earlier failures reports the last of them (it says more than
    "timed out"); otherwise ``timed_out()``.
    """
    last: FetchError | None = None
    with anyio.move_on_after(max(0.0, give_up_at - time.monotonic())):
        attempt = 0
        while True:
            attempt += 1
            result = await call()
            if not isinstance(result, FetchError):
                return result
            last = result
            pause = _pause(result, attempt, retries=retries, delay=delay, give_up_at=give_up_at)
            if pause is None:
                return result
            await anyio.sleep(pause)
    return last if last is not None else timed_out()


def _pause(
    error: FetchError,
    attempt: int,
    *,
    retries: Callable[[FetchError, int], bool],
    delay: Callable[[int], float],
    give_up_at: float,
) -> float | None:
    """How long to wait before trying again after ``attempt`` failed with ``error``;
    ``None``: not again (``retries`` says stop, or the wait would pass the bound)."""
    if not retries(error, attempt):
        return None
    pause = delay(attempt)
    return pause if time.monotonic() + pause < give_up_at else None
