"""A bounded soak: many concurrent requests, short real TTLs, an upstream failing a third
of the time.

At least ``MIN_REQUESTS`` requests, ``CONCURRENCY`` at a time, for at least ``MIN_SECONDS``
of real time, through ``httpx.ASGITransport`` into the middleware with
``Settings(parameter_ttl=1, secret_ttl=1)`` and its real clock, against a ``FakeExtension``
that answers 500 to a seeded random third of all requests, while every upstream value
keeps changing (``v-<key>-<n>``, ``n`` rising).

What the cache guarantees, and so what is asserted:

* A 503 only while a key has never been loaded: once a value exists it is never dropped
  (a 500 is transient, the cache holds far more than six entries), so every later refresh
  either succeeds or falls back to it. Precisely: a 503 naming key ``k`` must have started
  before the first answer that carried ``k`` had completed.
* Every value served under key ``k`` is one that upstream held for ``k``.
* Upstream calls per key: single flight makes fetches of one key sequential. Until the
  first success there is no previous value, so a failed fetch is not remembered and the
  next request fetches again at once: ``F`` leading failures cost ``F`` calls. From the
  first success on, the entry lives ``TTL`` after a success, and after a failed refresh the
  stale value is kept ``min(TTL, STALE_RETRY_SECONDS) = TTL`` before upstream is asked
  again; either way the next fetch starts at least ``TTL`` after the previous one ended.
  So ``calls <= F + 1 + floor(duration / TTL)``, with ``F`` read from the fake's call log.
  ``ExtensionSource`` does not retry a 500, so one fetch is one call.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from parameters_secrets import Parameter, ParametersSecretsMiddleware, Secret, Settings
from parameters_secrets._cache import STALE_RETRY_SECONDS
from parameters_secrets.sources import ExtensionSource
from tests import faults
from tests.conftest import TOKEN, detail_503
from tests.extension_server import FakeExtension

MIN_REQUESTS = 10_000
MIN_SECONDS = 8.0
# A guard: the test fails rather than hang. ~10 s on an idle 2-core machine; in CI the
# suite shares the cores with seven other workers.
MAX_SECONDS = 120.0
CONCURRENCY = 50
TTL = 1
FAILURE_RATE = 1 / 3
SEED = 20261122
PUBLISH_EVERY = 0.2  # seconds between new upstream versions of every value

DECLARATIONS: dict[str, Parameter | Secret] = {
    "alpha": Parameter("/soak/alpha"),
    "bravo": Parameter("/soak/bravo"),
    "charlie": Parameter("/soak/charlie", decrypt=False),
    "delta": Parameter("/soak/delta"),
    "echo": Secret("soak/echo"),
    "foxtrot": Secret("soak/foxtrot"),
}
Kind = Literal["parameter", "secret"]
UPSTREAM: dict[str, tuple[Kind, str]] = {
    key: ("parameter", f"/soak/{key}") if isinstance(d, Parameter) else ("secret", f"soak/{key}")
    for key, d in DECLARATIONS.items()
}
DETAIL = re.compile(r"'(\w+)' \((\w+)\)")


@dataclass
class Sample:
    started: float
    ended: float
    status: int
    body: bytes
    published: dict[str, int]  # the newest version of each value when the answer came


@dataclass
class Soak:
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def duration(self) -> float:
        return self.ended - self.started


def publish(extension: FakeExtension, key: str, version: int) -> None:
    kind, name = UPSTREAM[key]
    value = f"v-{key}-{version}"
    if kind == "parameter":
        declaration = DECLARATIONS[key]
        secure = isinstance(declaration, Parameter) and declaration.decrypt
        extension.put_parameter(name, value, type="SecureString" if secure else "String")
    else:
        extension.put_secret(name, string=value)


async def app(scope: Any, receive: Any, send: Any) -> None:
    state = scope["state"]
    body = json.dumps({key: state[key] for key in DECLARATIONS}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def run_soak(middleware: ParametersSecretsMiddleware, extension: FakeExtension) -> Soak:
    published = dict.fromkeys(DECLARATIONS, 0)
    soak = Soak()
    sent = 0
    finished = asyncio.Event()

    def more() -> bool:
        elapsed = time.monotonic() - soak.started
        return elapsed < MAX_SECONDS and (sent < MIN_REQUESTS or elapsed < MIN_SECONDS)

    async def publisher() -> None:
        while not finished.is_set():
            await asyncio.sleep(PUBLISH_EVERY)
            for key in DECLARATIONS:
                published[key] += 1
                publish(extension, key, published[key])

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while more():
            sent += 1
            started = time.monotonic()
            response = await client.get("/")
            soak.samples.append(
                Sample(
                    started,
                    time.monotonic(),
                    response.status_code,
                    response.content,
                    published.copy(),
                )
            )

    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://soak") as client:
        publishing = asyncio.create_task(publisher())
        soak.started = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        soak.ended = time.monotonic()
        finished.set()
        await publishing
    return soak


def leading_failures(extension: FakeExtension, kind: Kind, name: str) -> int:
    """Calls for ``name`` that failed before its first success."""
    count = 0
    for logged_kind, logged_name, fault in extension.call_log():
        if (logged_kind, logged_name) != (kind, name):
            continue
        if fault is None:
            return count
        count += 1
    return count


def test_soak_serves_only_right_values_and_calls_upstream_within_the_ttl_bound(
    extension: FakeExtension, event_loop_per_test: asyncio.AbstractEventLoop
) -> None:
    for key in DECLARATIONS:
        publish(extension, key, 0)
    extension.fail(faults.server_error("InternalServerError"), probability=FAILURE_RATE, seed=SEED)
    settings = Settings(parameter_ttl=TTL, secret_ttl=TTL)
    assert min(TTL, STALE_RETRY_SECONDS) == TTL  # the bound below relies on it
    middleware = ParametersSecretsMiddleware(
        app,
        values=DECLARATIONS,
        source=ExtensionSource(port=extension.port, token=TOKEN, settings=settings),
        settings=settings,
        on_failure=detail_503,  # each 503 names the keys and codes, for the checks below
    )

    soak = event_loop_per_test.run_until_complete(run_soak(middleware, extension))

    samples = soak.samples
    assert len(samples) >= MIN_REQUESTS
    assert soak.duration >= MIN_SECONDS
    statuses = Counter(sample.status for sample in samples)
    assert set(statuses) <= {200, 503}, statuses

    # Every value under its own key, and one upstream really held for that key.
    served: dict[str, set[int]] = {key: set() for key in DECLARATIONS}
    first_loaded: dict[str, float] = dict.fromkeys(DECLARATIONS, math.inf)
    for sample in samples:
        if sample.status == 503:
            detail = json.loads(sample.body)["detail"]
            failed = dict(DETAIL.findall(detail))
            assert failed, detail
            assert set(failed.values()) == {"InternalServerError"}, detail
            loaded = set(DECLARATIONS) - set(failed)
        else:
            values = json.loads(sample.body)
            assert set(values) == set(DECLARATIONS)
            for key, value in values.items():
                match = re.fullmatch(rf"v-{key}-(\d+)", value)
                assert match is not None, f"{key!r} was served {value!r}"
                version = int(match.group(1))
                assert version <= sample.published[key]
                served[key].add(version)
            loaded = set(DECLARATIONS)
        for key in loaded:
            first_loaded[key] = min(first_loaded[key], sample.ended)

    # A 503 only for a key that had never been loaded when the request started.
    assert all(at < math.inf for at in first_loaded.values()), first_loaded
    for sample in samples:
        if sample.status == 503:
            for key in dict(DETAIL.findall(json.loads(sample.body)["detail"])):
                assert sample.started < first_loaded[key], (key, sample.started, first_loaded)
    all_loaded = max(first_loaded.values())
    late = Counter(s.status for s in samples if s.started >= all_loaded)
    assert set(late) == {200}, late
    assert late[200] >= MIN_REQUESTS // 2  # the steady state is most of the soak

    # Upstream calls per key, within the bound the cache guarantees; and refreshes did
    # happen (values moved on, stale serves covered failures).
    periods = math.floor(soak.duration / TTL)
    report: dict[str, tuple[int, int, int, int]] = {}
    for key, (kind, name) in UPSTREAM.items():
        calls = extension.calls(kind, name)
        failures = leading_failures(extension, kind, name)
        bound = failures + 1 + periods
        report[key] = (calls, failures, bound, len(served[key]))
        assert calls <= bound, (key, report[key])
        assert calls >= periods // 2, (key, report[key])
        assert len(served[key]) >= 3, (key, sorted(served[key]))
    stats = middleware.stats
    assert stats.stale_serves > 0
    assert stats.refreshes > 0
    print(
        f"\nsoak: {len(samples)} requests in {soak.duration:.2f} s at concurrency {CONCURRENCY}; "
        f"statuses {dict(statuses)}; all keys loaded after {all_loaded - soak.started:.3f} s; "
        f"{stats}\n  per key (calls, leading failures, bound, versions served): {report}"
    )
