"""What every time bound is held to: a sane deadline, and Lambda's INIT limit.

**Deadlines.** A caller's deadline (``load(deadline=...)``, a Lambda context's remaining
time) can only shorten a fetch: it never lifts the ceiling (the timeout setting, else
10 s). ``inf`` or a context's ``1e15`` ms is the ceiling; NaN is a
``ConfigurationError``, not a bound that has passed already.

**Lambda's on-demand INIT.** Lambda gives INIT 10 s counted from the start of the
execution environment, then kills the process without a word: a module-level
``load_sync()`` against a hanging endpoint would end with no ``LoadError`` and no ERROR
line, since its own 10 s count from the start of the load. So while INIT may still be
under way (``AWS_LAMBDA_INITIALIZATION_TYPE=on-demand`` and no invocation seen), every
fetch also ends :data:`INIT_MARGIN_SECONDS` before 10 s from the process's start, read
from the OS (``/proc/self/stat``'s starttime against ``/proc/uptime``; where that cannot
be read, from this package's import). The margin is the time the ``LoadError`` needs to
be logged, raised and reported by the runtime.

INIT is over once any of these holds:

* an invocation was seen: a middleware got a Lambda context, or the runtime set
  ``_X_AMZN_TRACE_ID`` (``awslambdaric`` sets it from each invocation's
  ``Lambda-Runtime-Trace-Id`` before calling the handler; it is not set during INIT);
* 10 s have passed since the process started (Lambda would have ended an INIT by then).

A plain handler whose first invocation comes before 10 s without a trace id may see its
loads in that invocation bounded by the window too: shorter, never longer, than its own.
When Lambda retries a timed-out INIT at the first invocation (the "suppressed init",
bounded by the function's timeout), the window applies again: the load fails with its
``LoadError`` at 8.5 s rather than waiting longer.

Provisioned concurrency (``provisioned-concurrency``) and SnapStart (``snap-start``) run
INIT ahead of any request with a far longer limit (minutes): no window there; each
load keeps its own ceiling (10 s by default), well inside their limit.
"""

from __future__ import annotations

import math
import os
import time

from .exceptions import ConfigurationError

# Lambda's INIT limit for on-demand INIT, counted from the start of the environment.
INIT_LIMIT_SECONDS = 10.0
# Left of that window for the LoadError to be logged, raised, and posted as the INIT
# error (the runtime's report, the interpreter's exit) before Lambda's kill: 1.5 s, as a
# loaded machine took ~0.2 s from the window's end to the process's exit, and a process
# under coverage (or a slow Lambda cold start) more.
INIT_MARGIN_SECONDS = 1.5

# The fallback for the process's start, where /proc cannot be read: the package's import
# (this module is imported with it).
_IMPORTED_AT = time.monotonic()


def checked_deadline(deadline: float | None) -> float | None:
    """``deadline`` if it is ``None`` or a number other than NaN.

    Raises:
        ConfigurationError: It is NaN or not a number: no instant to end by.
    """
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        raise ConfigurationError(
            f"deadline must be a time.monotonic() instant or None, not {type(deadline).__name__}"
        )
    if math.isnan(deadline):
        raise ConfigurationError(
            "deadline must be a time.monotonic() instant or None, not NaN "
            "(an infinite deadline means the ceiling: the timeout setting, else 10 s)"
        )
    return deadline


def earliest(now: float, ceiling_seconds: float, deadline: float | None) -> float:
    """When a fetch must end: the ceiling from ``now``, the deadline if earlier, and the
    end of Lambda's on-demand INIT window while INIT may be under way."""
    bound = now + ceiling_seconds
    deadline = checked_deadline(deadline)
    if deadline is not None and deadline < bound:
        bound = deadline
    init_end = init_window_end(now)
    return bound if init_end is None or init_end >= bound else init_end


class _InitWindow:
    """Whether an on-demand INIT may be under way, and when its window ends."""

    invoked = False  # an invocation was seen: INIT is over
    ends_at: float | None = None  # time.monotonic(), read once


def invocation_started() -> None:
    """Note that an invocation has begun (a middleware got a Lambda context): INIT is over."""
    _InitWindow.invoked = True


def init_window_end(now: float | None = None) -> float | None:
    """When a fetch during Lambda's on-demand INIT must end (``time.monotonic()``), or
    ``None`` when no on-demand INIT is under way. See the module's docstring."""
    if _InitWindow.invoked or not _on_demand_init_environment():
        return None
    ends_at = _init_window_ends_at()
    now = time.monotonic() if now is None else now
    if now >= ends_at + INIT_MARGIN_SECONDS:  # past Lambda's limit: INIT is over
        _InitWindow.invoked = True
        return None
    return ends_at


def _init_window_ends_at() -> float:
    """When the INIT window ends (its margin taken off): worked out once per process."""
    if _InitWindow.ends_at is None:
        _InitWindow.ends_at = _process_start() + INIT_LIMIT_SECONDS - INIT_MARGIN_SECONDS
    return _InitWindow.ends_at


def _on_demand_init_environment() -> bool:
    """Whether the environment is a Lambda function's on-demand INIT's: no invocation's
    trace id yet."""
    environ = os.environ
    return (
        environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "on-demand"
        and bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        and "_X_AMZN_TRACE_ID" not in environ
    )


def _process_start() -> float:
    """When this process started, as a ``time.monotonic()`` instant."""
    age = process_age()
    return _IMPORTED_AT if age is None else time.monotonic() - age


def process_age() -> float | None:
    """Seconds since this process started, from Linux's ``/proc``; ``None`` elsewhere."""
    try:
        with open("/proc/self/stat", "rb") as stat_file:  # noqa: PTH123 - pathlib not loaded
            stat = stat_file.read()
        with open("/proc/uptime", "rb") as uptime_file:  # noqa: PTH123
            uptime = float(uptime_file.read().split()[0])
        # The command name (field 2) may hold spaces and parentheses: count fields after
        # its closing parenthesis. starttime is field 22: clock ticks after boot.
        start_ticks = int(stat.rsplit(b")", 1)[1].split()[19])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, age)
