"""Metrics export, ``PARAMETERS_SECRETS_METRICS``: the cache's counters as OpenTelemetry
metrics (``otel``) or CloudWatch embedded metric format lines on stdout (``emf``).

Imported only when the setting asks for it. The cache tells a recorder where its counters
change (``CacheObserver``, under the cache's lock) and when a fetch round ends; hits on
the warm path are not told one by one (that path stays one C call per read): they are
read from the cache's hit counters when metrics are collected (OpenTelemetry's
observable counters) or when a line is written (EMF). No attribute, dimension or member
ever carries a parameter's or secret's name, nor a value: only its kind and, for errors,
the AWS error code.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._settings import ENVIRONMENT, logger
from .exceptions import ConfigurationError, FetchError

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, Observation

    from ._cache import Cache

METER_NAME = "parameters_secrets"
"""The OpenTelemetry meter's name (and the EMF namespace)."""
EMF_NAMESPACE = "parameters_secrets"
# fetch.duration's buckets, in seconds: from a warm extension call (~1 ms) to the 10 s
# ceiling of a fetch. (The SDK's default buckets are for milliseconds.)
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# An AWS error code as it appears in an attribute; anything else (a code no AWS API
# sends) is reported as "Other", so that an attribute can never carry arbitrary text.
_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")
# fetch.duration's kind when one round fetched both kinds (a first load does).
MIXED = "mixed"

# CacheStats field -> (OpenTelemetry counter, EMF metric): the names Cloud Extensions use
# for hits and misses; EMF's in CloudWatch's own PascalCase (no dots: a member name).
COUNTERS = {
    "hits": ("cache.hits", "CacheHits"),
    "fetches": ("cache.misses", "CacheMisses"),
    "refreshes": ("cache.refreshes", "CacheRefreshes"),
    "stale_serves": ("cache.stale_serves", "CacheStaleServes"),
    "errors": ("fetch.errors", "FetchErrors"),
}
DESCRIPTIONS = {
    "hits": "Values served from the cache without asking upstream",
    "fetches": "Values asked of upstream (a batch of ten counts ten); refreshes included",
    "refreshes": "Values fetched again that replaced a previous value",
    "stale_serves": "Refreshes that failed transiently, served the previous value",
    "errors": "Values whose fetch failed, by AWS error code",
}


class MetricsRecorder(Protocol):
    """What the store gives its cache as observer, and tells which cache that is."""

    def watch(self, cache: Cache[Any, Any]) -> None: ...

    def counted(self, counter: str, key: Hashable, error: FetchError | None) -> None: ...

    def fetched(self, keys: Sequence[Hashable], seconds: float) -> None: ...


def recorder_for(mode: str | None) -> MetricsRecorder:
    """A recorder for one store's cache, for ``mode`` (``"otel"`` or ``"emf"``).

    Raises:
        ConfigurationError: ``otel`` without ``opentelemetry-api`` installed.
    """
    if mode == "emf":
        return EmfRecorder()
    return OtelRecorder(_instruments())


def error_type(error: FetchError | None) -> str:
    code = error.code if error is not None else ""
    return code if _ERROR_CODE.fullmatch(code) else "Other"


def _kind(key: Hashable) -> str:
    kind = getattr(key, "kind", None)
    return kind if kind in ("parameter", "secret") else "other"


# -- OpenTelemetry --------------------------------------------------------------------


class OtelRecorder:
    """Counts by kind (and error code), read by the observable counters' callbacks; one
    ``fetch.duration`` record per fetch round."""

    def __init__(self, instruments: _Instruments) -> None:
        self._instruments = instruments
        self._cache: weakref.ref[Cache[Any, Any]] | None = None
        # (CacheStats field, kind, error code or "") -> count. Changed under the cache's
        # lock; this lock keeps a collection from reading it mid-change.
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def watch(self, cache: Cache[Any, Any]) -> None:
        # Weakly: a store the app let go stops being reported, and is not kept alive.
        self._cache = weakref.ref(cache)
        self._instruments.recorders.add(self)

    def counted(self, counter: str, key: Hashable, error: FetchError | None) -> None:
        code = error_type(error) if counter == "errors" else ""
        name = (counter, _kind(key), code)
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def fetched(self, keys: Sequence[Hashable], seconds: float) -> None:
        kinds = {_kind(key) for key in keys}
        kind = kinds.pop() if len(kinds) == 1 else MIXED
        self._instruments.duration.record(seconds, {"kind": kind})

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Every count now: those told, and the warm path's hits read from the cache."""
        with self._lock:
            counts = dict(self._counts)
        cache = self._cache() if self._cache is not None else None
        for kind, hits in (cache.hits_by() if cache is not None else {}).items():
            counts["hits", kind, ""] = counts.get(("hits", kind, ""), 0) + hits
        return counts


class _Instruments:
    """The meter's instruments, made once per meter provider (an instrument made twice
    keeps only its first callbacks); each counter sums every live store's counts."""

    def __init__(self) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter(METER_NAME)
        self.recorders: weakref.WeakSet[OtelRecorder] = weakref.WeakSet()
        for field, (name, _) in COUNTERS.items():
            meter.create_observable_counter(
                name,
                callbacks=[self._observer_of(field)],
                unit="{value}",
                description=DESCRIPTIONS[field],
            )
        self.duration: Histogram = meter.create_histogram(
            "fetch.duration",
            unit="s",
            description="One upstream fetch round (one call of the source's fetch)",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def _observer_of(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:  # noqa: ARG001 - OTel's
            from opentelemetry.metrics import Observation

            totals: dict[tuple[str, str], int] = {}
            for recorder in list(self.recorders):
                for (counter, kind, code), count in recorder.counts().items():
                    if counter == field:
                        totals[kind, code] = totals.get((kind, code), 0) + count
            return [
                Observation(count, {"kind": kind, "error.type": code} if code else {"kind": kind})
                for (kind, code), count in totals.items()
            ]

        return observe


_by_provider: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_made = threading.Lock()


def _instruments() -> _Instruments:
    try:
        from opentelemetry import metrics
    except ImportError:
        raise ConfigurationError(
            f"{ENVIRONMENT['metrics']}=otel needs opentelemetry-api: "
            "pip install 'asgi-parameters-secrets[otel]'"
        ) from None
    provider = metrics.get_meter_provider()
    with _made:
        instruments = _by_provider.get(provider)
        if instruments is None:
            instruments = _by_provider[provider] = _Instruments()
    return instruments


# -- CloudWatch embedded metric format -------------------------------------------------


class EmfRecorder:
    """One EMF line per fetch round, with the counts since the previous line (read from
    the cache's stats: they are the counters themselves) and the round's duration."""

    def __init__(self) -> None:
        self._cache: weakref.ref[Cache[Any, Any]] | None = None
        self._reported = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._failed = False

    def watch(self, cache: Cache[Any, Any]) -> None:
        self._cache = weakref.ref(cache)

    def counted(self, counter: str, key: Hashable, error: FetchError | None) -> None:
        pass  # read from the stats when a line is written

    def fetched(self, keys: Sequence[Hashable], seconds: float) -> None:  # noqa: ARG002
        cache = self._cache() if self._cache is not None else None
        if cache is None:
            return
        with self._lock:  # two rounds ending at once: each count in exactly one line
            stats = cache.stats
            now = {field: getattr(stats, field) for field in COUNTERS}
            since = {field: now[field] - self._reported[field] for field in COUNTERS}
            self._reported = now
            self._write(emf_line(since, seconds, time.time()))

    def _write(self, line: str) -> None:
        try:
            # One write of a whole line: Lambda makes each line on stdout a log event.
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as exc:  # stdout closed: metrics never break a fetch
            if not self._failed:
                self._failed = True
                logger.warning("metrics: cannot write EMF lines to stdout (%s)", exc)


def emf_line(counts: dict[str, int], seconds: float, now: float) -> str:
    """One EMF document (JSON on one line): ``counts`` (CacheStats field -> count since
    the previous line) and one fetch round's duration, in namespace ``parameters_secrets``;
    on Lambda, dimension ``FunctionName``, else none."""
    function = _function_name()
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(now * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": EMF_NAMESPACE,
                    "Dimensions": [["FunctionName"]] if function else [[]],
                    "Metrics": [
                        *({"Name": emf, "Unit": "Count"} for _, emf in COUNTERS.values()),
                        {"Name": "FetchDuration", "Unit": "Seconds"},
                    ],
                }
            ],
        },
    }
    if function:
        document["FunctionName"] = function
    for field, (_, emf) in COUNTERS.items():
        document[emf] = counts[field]
    document["FetchDuration"] = round(seconds, 6)
    return json.dumps(document, separators=(",", ":"))


def _function_name() -> str:
    return os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")[:1024]
