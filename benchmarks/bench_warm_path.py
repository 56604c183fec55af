"""The warm path at its floor: what the middleware and the store's warm reads cost, with
no HTTP and no upstream, this checkout's code beside another's (by default
``BEFORE_REF``: main before issues 19-21).

Each row times one call, many times (median): the same app bare and wrapped with
``ParametersSecretsMiddleware`` (10 values: 5 parameters, 5 secrets, from a
``StaticSource``, loaded before timing), so the difference is what the middleware adds to
a warm request:

* a no-op ASGI app, called directly (the middleware alone);
* a FastAPI app whose route reads nothing, called directly (the middleware inside
  Starlette's stack, added with ``app.add_middleware``); and its route reading
  ``request.state.p0`` (Starlette's ``request.state`` is part of that difference);
* the FastAPI app through a real Mangum handler (API Gateway HTTP API v2 event);
* a warm ``await store.get("p0")`` and ``store.get_sync("p0")``, beside a bare
  ``await`` of a coroutine and a bare function call returning a dict item.

"Before" is the package as of a git ref (``--before REF``, default ``BEFORE_REF``), extracted
into a temporary directory and imported under another name, so both run in one process,
interleaved in rounds (the order rotated each round). Without git or the ref, only this
checkout's numbers are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI, Request

from benchmarks._common import BEFORE_REF, Table, median
from benchmarks._upstreams import LAMBDA_KEYS as KEYS
from benchmarks._upstreams import LAMBDA_PARAMETERS, LAMBDA_SECRETS
from tests.lambda_events import LambdaContext, make_event

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "middleware/parameters_secrets"

Scope = dict[str, Any]
AsgiApp = Callable[[Scope, Any, Any], Awaitable[None]]

SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "https",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"example.com"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("example.com", 443),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"unexpected answer {message['status']}")


async def _noop_app(scope: Scope, receive: Any, send: Any) -> None:
    pass


async def _noop() -> None:
    pass


# -- the package, twice ---------------------------------------------------------------


@contextlib.contextmanager
def package_at(ref: str) -> Iterator[ModuleType | None]:
    """The package as of git ``ref``, imported as ``parameters_secrets_<ref>`` from a
    temporary copy (its modules import each other relatively); ``None`` if unavailable."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", ref, PACKAGE],  # noqa: S607
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        yield None
        return
    name = "parameters_secrets_" + "".join(c if c.isalnum() else "_" for c in ref)
    with tempfile.TemporaryDirectory(prefix="bench-warm-path-") as directory:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):  # 3.10.12+: refuse paths leaving directory
                tar.extractall(directory, filter="data")
            else:  # git's own archive of its own tree
                tar.extractall(directory)  # noqa: S202
        target = Path(directory) / name
        (Path(directory) / PACKAGE).rename(target)
        sys.path.insert(0, directory)
        try:
            yield importlib.import_module(name)
        finally:
            sys.path.remove(directory)


# -- the apps -----------------------------------------------------------------------------


def _static_source(package: ModuleType) -> Any:
    try:
        return importlib.import_module(f"{package.__name__}.sources").StaticSource
    except ModuleNotFoundError:  # a package from before parameters_secrets.sources
        return package.StaticSource


def _store(package: ModuleType) -> Any:
    values = {
        key: package.Parameter(name) if kind == "parameter" else package.Secret(name)
        for key, (kind, name) in KEYS.items()
    }
    source = _static_source(package)(
        parameters={name: entry["value"] for name, entry in LAMBDA_PARAMETERS.items()},
        secrets=LAMBDA_SECRETS,
    )
    store = package.ParametersSecrets(values, source=source)
    store.load_sync()
    return store


def _fastapi(package: ModuleType | None, *, read: bool = False) -> AsgiApp:
    app = FastAPI()
    if package is not None:
        app.add_middleware(package.ParametersSecretsMiddleware, values=_store(package))

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        if read:
            return {"ok": True, "chars": len(request.state.p0)}
        return {"ok": True, "chars": 0}

    return app


def _mangum(app: AsgiApp) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    from mangum import Mangum

    with warnings.catch_warnings():
        # Mangum() looks up the current loop; Python 3.12+ warns when none is set yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        return Mangum(app, lifespan="off")  # type: ignore[no-any-return]


# -- timing ---------------------------------------------------------------------------------

Timer = Callable[[int], list[int]]  # n -> n durations (ns)


def asgi_timer(app: AsgiApp, loop: asyncio.AbstractEventLoop) -> Timer:
    async def calls(count: int) -> list[int]:
        clock, out = time.perf_counter_ns, []
        for _ in range(count):
            scope = dict(SCOPE)
            start = clock()
            await app(scope, _receive, _send)
            out.append(clock() - start)
        return out

    return lambda count: loop.run_until_complete(calls(count))


def awaited_timer(call: Callable[[], Awaitable[object]], loop: asyncio.AbstractEventLoop) -> Timer:
    async def calls(count: int) -> list[int]:
        clock, out = time.perf_counter_ns, []
        for _ in range(count):
            start = clock()
            await call()
            out.append(clock() - start)
        return out

    return lambda count: loop.run_until_complete(calls(count))


def sync_timer(call: Callable[[], object]) -> Timer:
    def calls(count: int) -> list[int]:
        clock, out = time.perf_counter_ns, []
        for _ in range(count):
            start = clock()
            call()
            out.append(clock() - start)
        return out

    return calls


def mangum_timer(app: AsgiApp) -> Timer:
    handler = _mangum(app)

    def calls(count: int) -> list[int]:
        clock, out = time.perf_counter_ns, []
        for _ in range(count):
            event, context = make_event("http_api_v2", "/"), LambdaContext(function_name="b")
            start = clock()
            response = handler(event, context)
            out.append(clock() - start)
            if response["statusCode"] != 200:
                raise RuntimeError(f"unexpected answer {response['statusCode']}")
        return out

    return calls


# Row -> (label, what it is compared with: the bare variant's row).
ROWS = {
    "noop": ("no-op ASGI app", None),
    "fastapi": ("FastAPI app, route reads nothing", None),
    "fastapi_read": ("FastAPI app, route reads request.state.p0", "fastapi"),
    "mangum": ("FastAPI app through Mangum (HTTP API v2)", None),
    "get": ("warm await store.get('p0')", None),
    "get_sync": ("warm store.get_sync('p0')", None),
}
BARE_LABELS = {
    "noop": "the app alone",
    "fastapi": "FastAPI alone",
    "mangum": "Mangum + FastAPI alone",
    "get": "await of a no-op coroutine",
    "get_sync": "a function returning a dict item",
}


def timers(package: ModuleType | None, loop: asyncio.AbstractEventLoop) -> dict[str, Timer]:
    """The bare timers (``package`` None) or the wrapped ones for ``package``."""
    if package is None:
        items = {"p0": "x"}
        return {
            "noop": asgi_timer(_noop_app, loop),
            "fastapi": asgi_timer(_fastapi(None), loop),
            "mangum": mangum_timer(_fastapi(None)),
            "get": awaited_timer(_noop, loop),
            "get_sync": sync_timer(lambda: items.get("p0")),
        }
    store = _store(package)
    return {
        "noop": asgi_timer(package.ParametersSecretsMiddleware(_noop_app, values=store), loop),
        "fastapi": asgi_timer(_fastapi(package), loop),
        "fastapi_read": asgi_timer(_fastapi(package, read=True), loop),
        "mangum": mangum_timer(_fastapi(package)),
        "get": awaited_timer(lambda: store.get("p0"), loop),
        "get_sync": sync_timer(lambda: store.get_sync("p0")),
    }


def measure(all_timers: dict[str, Timer], *, rounds: int, per_round: int) -> dict[str, float]:
    """Median µs per call of each timer, ``rounds`` rounds of ``per_round`` calls each
    (a tenth for Mangum's), interleaved, the order rotated each round."""
    names = list(all_timers)
    counts = {n: max(1, per_round // 10) if "mangum" in n else per_round for n in names}
    for name in names:
        all_timers[name](counts[name] // 10 or 1)  # warm-up
    samples: dict[str, list[int]] = {name: [] for name in names}
    for round_ in range(rounds):
        gc.collect()
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name] += all_timers[name](counts[name])
    return {name: median(values) / 1000 for name, values in samples.items()}


def run(quick: bool = False, before: str = BEFORE_REF) -> Table:
    rounds, per_round = (5, 2_000) if quick else (20, 5_000)
    started = time.perf_counter()
    import parameters_secrets as this

    loop = asyncio.new_event_loop()
    try:
        with package_at(before) as then:
            all_timers = {f"bare:{k}": t for k, t in timers(None, loop).items()}
            all_timers |= {f"this:{k}": t for k, t in timers(this, loop).items()}
            if then is not None:
                all_timers |= {f"then:{k}": t for k, t in timers(then, loop).items()}
            medians = measure(all_timers, rounds=rounds, per_round=per_round)
    finally:
        loop.close()
    return _table(medians, before if then is not None else None, rounds, per_round, started)


def _table(
    medians: dict[str, float], before: str | None, rounds: int, per_round: int, started: float
) -> Table:
    columns = ["variant", "bare", "this checkout", "added"]
    if before is not None:
        columns += [f"{before}", f"added ({before})"]
    table = Table(title="Warm path, 10 values: µs per call (median)", columns=columns)
    for key, (label, compared_with) in ROWS.items():
        bare = medians[f"bare:{compared_with or key}"]
        row = [label, f"{bare:.2f}", f"{medians[f'this:{key}']:.2f}"]
        row.append(f"+{medians[f'this:{key}'] - bare:.2f}")
        if before is not None:
            row += [f"{medians[f'then:{key}']:.2f}", f"+{medians[f'then:{key}'] - bare:.2f}"]
        table.rows.append(row)
        table.headline[f"{key}: added µs"] = medians[f"this:{key}"] - bare
    bares = "; ".join(f"{ROWS[k][0]}: {label}" for k, label in BARE_LABELS.items())
    table.notes += [
        f"Bare: {bares}. 'added' is the wrapped median minus the bare one, in µs.",
        f"{rounds} rounds of {per_round} calls per variant (Mangum's: a tenth), "
        f"interleaved; Python {platform.python_version()}; "
        f"{time.perf_counter() - started:.0f} s.",
    ]
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", default=BEFORE_REF, help="git ref to compare with")
    arguments = parser.parse_args()
    print(run(arguments.quick, arguments.before).text())
