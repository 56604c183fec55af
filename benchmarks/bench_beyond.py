"""What the features beyond the peers (issue 20) cost where every request and every cold
start pays: the warm path and ``import parameters_secrets``, this checkout beside another
ref's (``BEFORE_REF`` by default: main before issues 19-21), in one run.

1. The warm path, per request, 10 values (5 parameters, 5 secrets, from a
   ``StaticSource``, loaded before timing): a no-op ASGI app and a FastAPI app, each
   wrapped with ``ParametersSecretsMiddleware``; median µs per call. Variants: the app
   bare; ``main``; this checkout with metrics off (the default); with
   ``PARAMETERS_SECRETS_METRICS=otel`` (an OpenTelemetry SDK meter provider set, when
   the SDK is installed) and ``=emf``. Timed as ``bench_warm_path`` times (its helpers:
   the other ref is extracted with ``git archive`` and imported under another name, so
   every variant runs in this process, interleaved, the order rotated each round).
2. ``import parameters_secrets`` in fresh interpreters, this checkout and the other ref,
   alternated, median of N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from benchmarks._common import BEFORE_REF, Table, median
from benchmarks.bench_warm_path import (
    Timer,
    _fastapi,
    _noop_app,
    _store,
    asgi_timer,
    measure,
    package_at,
)

ROOT = Path(__file__).resolve().parent.parent
MODES = ("off", "otel", "emf")
APPS = {"noop": "no-op ASGI app", "fastapi": "FastAPI app, route reads nothing"}
IMPORT = "import time; t = time.perf_counter(); import {name}; print(time.perf_counter() - t)"


@contextlib.contextmanager
def metrics_mode(mode: str) -> Iterator[None]:
    """Stores built inside read ``PARAMETERS_SECRETS_METRICS=mode``; what EMF prints for
    their first load is kept off the table's output."""
    previous = os.environ.pop("PARAMETERS_SECRETS_METRICS", None)
    if mode != "off":
        os.environ["PARAMETERS_SECRETS_METRICS"] = mode
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.environ.pop("PARAMETERS_SECRETS_METRICS", None)
        if previous is not None:
            os.environ["PARAMETERS_SECRETS_METRICS"] = previous


def _meter_provider() -> str:
    """An SDK meter provider with an in-memory reader, as an app exporting metrics has
    (its collection is not on the request path: counters are read when collected)."""
    try:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return "the API's default (no SDK installed)"
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return "the SDK's, with an in-memory reader"


def warm_timers(package: ModuleType, loop: asyncio.AbstractEventLoop) -> dict[str, Timer]:
    store = _store(package)
    return {
        "noop": asgi_timer(package.ParametersSecretsMiddleware(_noop_app, values=store), loop),
        "fastapi": asgi_timer(_fastapi(package), loop),
    }


def import_seconds(before_dir: str | None, before_name: str, count: int) -> dict[str, float]:
    """Median seconds of ``import parameters_secrets`` in fresh interpreters."""
    runs = {"this": (str(ROOT / "middleware"), "parameters_secrets")}
    if before_dir is not None:
        runs["then"] = (before_dir, before_name)
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for round_ in range(count + 1):  # the first round writes bytecode: not counted
        for label, (path, name) in runs.items():
            completed = subprocess.run(
                [sys.executable, "-c", IMPORT.format(name=name)],
                env={**os.environ, "PYTHONPATH": path},
                capture_output=True,
                text=True,
                check=True,
            )
            if round_:
                samples[label].append(float(completed.stdout))
    return {label: median(values) for label, values in samples.items()}


def run(quick: bool = False, before: str = BEFORE_REF) -> Table:
    rounds, per_round, imports = (5, 2_000, 7) if quick else (15, 5_000, 21)
    started = time.perf_counter()
    provider = _meter_provider()
    sys.path.insert(0, str(ROOT / "middleware"))  # this checkout's, not an installed one
    import parameters_secrets as this

    if not Path(this.__file__).is_relative_to(ROOT):
        raise RuntimeError(f"imported {this.__file__}, not this checkout's package")

    loop = asyncio.new_event_loop()
    try:
        with package_at(before) as then:
            all_timers = {
                "bare:noop": asgi_timer(_noop_app, loop),
                "bare:fastapi": asgi_timer(_fastapi(None), loop),
            }
            for mode in MODES:
                with metrics_mode(mode):
                    if this.Settings.from_env().metrics != (None if mode == "off" else mode):
                        raise RuntimeError(f"metrics {mode} not in force")
                    timers = warm_timers(this, loop)
                all_timers |= {f"{mode}:{app}": timer for app, timer in timers.items()}
            if then is not None:
                all_timers |= {f"then:{k}": t for k, t in warm_timers(then, loop).items()}
            medians = measure(all_timers, rounds=rounds, per_round=per_round)
            before_dir = str(Path(then.__file__).parent.parent) if then is not None else None
            name = then.__name__ if then is not None else ""
            imported = import_seconds(before_dir, name, imports)
    finally:
        loop.close()
    return _table(medians, imported, before if then is not None else None, provider, started)


def _table(
    medians: dict[str, float],
    imported: dict[str, float],
    before: str | None,
    provider: str,
    started: float,
) -> Table:
    columns = ["what", "bare"]
    columns += [before] if before is not None else []
    columns += ["this, metrics off", "this, otel", "this, emf"]
    title = "Beyond the peers: warm path (µs per request) and import (ms)"
    table = Table(title=title, columns=columns)
    for app, label in APPS.items():
        row = [f"{label}, 10 values (µs)", f"{medians[f'bare:{app}']:.2f}"]
        row += [f"{medians[f'then:{app}']:.2f}"] if before is not None else []
        row += [f"{medians[f'{mode}:{app}']:.2f}" for mode in MODES]
        table.rows.append(row)
        for mode in MODES:
            table.headline[f"{app} {mode}: µs"] = medians[f"{mode}:{app}"]
    row = ["import parameters_secrets (ms)", "-"]
    row += [f"{imported['then'] * 1000:.1f}"] if before is not None else []
    row += [f"{imported['this'] * 1000:.1f}", "same", "same"]
    table.rows.append(row)
    table.headline["import ms"] = imported["this"] * 1000
    table.notes += [
        "Warm path: medians of interleaved rounds (bench_warm_path's timers); metrics on "
        "reads nothing more per request: hits are read from the cache's counters when "
        f"metrics are collected. Meter provider: {provider}.",
        "Import: fresh interpreters, alternated, median; the setting is read when a store "
        "is built, so the import is the same whatever it says.",
        f"Python {platform.python_version()}; {time.perf_counter() - started:.0f} s.",
    ]
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", default=BEFORE_REF, help="git ref to compare with")
    arguments = parser.parse_args()
    print(run(arguments.quick, arguments.before).text())
