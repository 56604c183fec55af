"""The cost of ``Secret(..., follow_rotation=True)`` in upstream calls, for one secret.

One secret read once a second for an hour of simulated time (the store's clocks are
injected: nothing sleeps), with ``SECRETS_MANAGER_TTL=300``, its ``NextRotationDate`` 30
minutes in. The rotation completes (a new ``AWSCURRENT`` version) ``ROTATION_TAKES`` after
that date, and moves the date 30 days on, as Secrets Manager does. Upstream: moto in this
process (``tests/moto_in_process.py``'s ``InProcessMoto`` through ``httpx.MockTransport``),
its Secrets Manager dates on the same simulated wall clock as the store, counting
``GetSecretValue`` and ``DescribeSecret`` calls. Three cases:

* without ``follow_rotation``: today's behaviour, the TTL alone;
* with it, the rotation completing as planned;
* with it, a rotation overdue the whole hour (the date passed, no new version): the most
  ``DescribeSecret`` costs, one call every 30 s.

"Old value served" is how long, after the rotation completed, reads still got the old value.
"""

from __future__ import annotations

import asyncio
import sys

from benchmarks._common import Table
from parameters_secrets import ParametersSecrets, Secret, Settings
from parameters_secrets.sources import AwsSource, Credentials
from tests.moto_in_process import REGION, InProcessMoto

HOUR = 3600
TTL = 300
ROTATION_DATE = 1800  # seconds into the hour
ROTATION_TAKES = 45  # the rotation function's four steps, after the date
START_WALL = 1_800_000_000.0  # the simulated hour's start, epoch seconds
ROTATION_DAYS = 30


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def _an_hour(*, follow: bool, rotates: bool) -> tuple[int, int, float | None]:
    """(GetSecretValue calls, DescribeSecret calls, seconds the old value was served after
    the rotation completed; None: no rotation)."""
    aws = InProcessMoto()
    monotonic, wall = _Clock(0.0), _Clock(START_WALL)
    with aws.wall_clock(wall):
        return await _read_for_an_hour(aws, monotonic, wall, follow=follow, rotates=rotates)


async def _read_for_an_hour(
    aws: InProcessMoto, monotonic: _Clock, wall: _Clock, *, follow: bool, rotates: bool
) -> tuple[int, int, float | None]:
    # Rotated last ROTATION_DAYS before its NextRotationDate (overdue: the hour's start).
    wall.now = START_WALL + (ROTATION_DATE if rotates else 0) - ROTATION_DAYS * 86400
    aws.put_secret("db", "old")
    aws.rotate_secret("db", every_days=ROTATION_DAYS)
    source = AwsSource(REGION, credentials=Credentials("k", "s"), transport=aws.transport())
    store = ParametersSecrets(
        {"db": Secret("db", follow_rotation=follow)},
        source=source,
        settings=Settings(secret_ttl=TTL),
        clock=monotonic,
        wall_clock=wall,
    )
    rotated_at = ROTATION_DATE + ROTATION_TAKES if rotates else None
    served_old_after: float | None = 0.0 if rotates else None
    for second in range(HOUR):
        monotonic.now, wall.now = float(second), START_WALL + second
        if second == rotated_at:  # the next date: ROTATION_DAYS after this rotation
            aws.rotate_secret("db", every_days=ROTATION_DAYS)
            aws.put_secret("db", "new")
        value = (await store.load())["db"]
        if rotated_at is not None and second >= rotated_at and value == "old":
            served_old_after = second - rotated_at + 1
    await store.aclose()
    return aws.count("GetSecretValue"), aws.count("DescribeSecret"), served_old_after


def run(quick: bool = False) -> Table:
    """Counts, not timings: one run, quick or not."""
    del quick
    cases = [
        ("TTL alone (no follow_rotation)", False, True),
        ("follow_rotation, rotation at 30 min", True, True),
        ("follow_rotation, rotation overdue all hour", True, False),
    ]
    table = Table(
        title=(
            f"follow_rotation: upstream calls per hour, one secret read every second "
            f"(TTL {TTL} s, NextRotationDate at 30 min)"
        ),
        columns=["case", "GetSecretValue", "DescribeSecret", "calls / hour", "old value served"],
    )
    for name, follow, rotates in cases:
        gets, describes, stale = asyncio.run(_an_hour(follow=follow, rotates=rotates))
        table.rows.append(
            [
                name,
                str(gets),
                str(describes),
                str(gets + describes),
                "-" if stale is None else f"{stale:.0f} s",
            ]
        )
        table.headline[f"{name}: calls/h"] = gets + describes
    table.notes.append(
        f"Simulated time (injected clocks), 3,600 reads per case; the rotation completes "
        f"{ROTATION_TAKES} s after NextRotationDate and sets the next one {ROTATION_DAYS} days on "
        f"(moto in process, its dates on the simulated clock)."
    )
    return table


if __name__ == "__main__":
    print(run("--quick" in sys.argv).text())
