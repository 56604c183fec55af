"""Cold start: a fresh Python process imports the app module and serves its first request.

The same FastAPI app with 10 values (5 parameters, 5 secrets), behind Mangum, three ways:

- this project's middleware with ``ExtensionSource``: the first request asks the local
  extension-compatible server (``parameters-secrets serve --source aws``, a subprocess),
  which fetches each value from moto's server with its cache off (TTL 0), as a freshly
  started extension must fetch from AWS;
- this project's middleware with ``AwsSource`` straight to moto (no extension layer);
- Powertools' ``get_parameter`` / ``get_secret`` (``max_age=300``) straight to moto.

Each run is ``sys.executable -c SCRIPT`` in a clean environment; the script takes
``time.perf_counter()`` on its first line, imports the app module (a file written to a
temporary directory, as a user would write it), calls its Mangum handler with an API
Gateway HTTP API v2 event, and prints the times. The parent also times the whole
subprocess (interpreter start and exit included). Variants are interleaved: 15 runs
of each app and 8 of each import-only script, after one untimed run of each app (the
page cache is warm for all).

Every side imports from bytecode, as on Lambda: pip compiled the dependencies when it
installed them, and ``nox -s package`` puts ours in the zip; an editable checkout has
none (``PYTHONDONTWRITEBYTECODE`` may stop the children writing it), so this package is
compiled first. Without that, each run would compile this package's sources again.
"""

from __future__ import annotations

import compileall
import contextlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks._common import Table, median, millis, percentile
from benchmarks._upstreams import LAMBDA_KEYS as KEYS
from benchmarks._upstreams import LAMBDA_PARAMETERS as PARAMETERS
from benchmarks._upstreams import LAMBDA_SECRETS as SECRETS
from benchmarks._upstreams import (
    LAMBDA_VALUES,
    SESSION_TOKEN,
    local_server,
    moto_environment,
    seed_values,
)
from tests.lambda_events import make_event
from tests.moto_server import MotoServer
from tests.processes import clean_environment

RUN_TIMEOUT = 120.0

_ROUTE_RESULT = """    return {"ok": True, "chars": sum(len(v) for v in got)}"""
_DECLARATIONS = "".join(
    f"    {key!r}: {'Parameter' if kind == 'parameter' else 'Secret'}({name!r}),\n"
    for key, (kind, name) in KEYS.items()
)

PS_APP = f'''"""This project's way: declare the values, read them from request.state."""

from fastapi import FastAPI, Request
from mangum import Mangum

from parameters_secrets import Parameter, ParametersSecretsMiddleware, Secret

VALUES = {{
{_DECLARATIONS}}}

app = FastAPI()
# No source: PARAMETERS_SECRETS_SOURCE if set, else the extension in Lambda.
app.add_middleware(ParametersSecretsMiddleware, values=VALUES)


@app.get("/")
async def index(request: Request) -> dict:
    got = [getattr(request.state, key) for key in VALUES]
{_ROUTE_RESULT}


handler = Mangum(app, lifespan="off")
'''

POWERTOOLS_APP = f'''"""Powertools' way: cached get_parameter / get_secret in the route."""

from aws_lambda_powertools.utilities import parameters
from fastapi import FastAPI
from mangum import Mangum

PARAMETER_NAMES = {list(PARAMETERS)!r}
SECRET_NAMES = {list(SECRETS)!r}

app = FastAPI()


@app.get("/")
async def index() -> dict:
    got = [parameters.get_parameter(name, decrypt=True, max_age=300) for name in PARAMETER_NAMES]
    got += [str(parameters.get_secret(name, max_age=300)) for name in SECRET_NAMES]
{_ROUTE_RESULT}


handler = Mangum(app, lifespan="off")
'''

_FIRST_REQUEST = """import time
_t0 = time.perf_counter()
import sys
sys.path.insert(0, {directory!r})
import {module} as _app
_t1 = time.perf_counter()


class _Context:
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = "512"

    def __init__(self):
        self._deadline = time.monotonic() + 30.0

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_response = _app.handler({event!r}, _Context())
_t2 = time.perf_counter()
print("BENCH", _t1 - _t0, _t2 - _t0, _response["statusCode"], repr(_response["body"][:200]))
"""

_IMPORT_ONLY = """import time
_t0 = time.perf_counter()
{imports}
_t1 = time.perf_counter()
print("BENCH", _t1 - _t0, _t1 - _t0, 0, "-")
"""

APP_VARIANTS = {
    "ps_extension": "middleware + ExtensionSource (local server → moto)",
    "ps_aws": "middleware + AwsSource (→ moto)",
    "powertools": "Powertools get_parameter/get_secret (→ moto)",
}
_BASELINE = "import fastapi\nimport mangum"
_PS = "import parameters_secrets"
# What a function on the extension does at import: the store built, no AWS-direct code.
_PS_STORE = (
    "from parameters_secrets import Parameter, ParametersSecrets\n"
    "from parameters_secrets.sources import ExtensionSource\n"
    "config = ParametersSecrets({'k': Parameter('/k')}, source=ExtensionSource(2773, 't'))"
)
_POWERTOOLS = "import aws_lambda_powertools.utilities.parameters\nimport boto3"
IMPORT_VARIANTS = {
    "baseline": ("fastapi + mangum (baseline)", _BASELINE),
    "ps": ("parameters_secrets", _PS),
    "powertools": ("aws_lambda_powertools.utilities.parameters + boto3", _POWERTOOLS),
    "baseline_ps": ("baseline + parameters_secrets", f"{_BASELINE}\n{_PS}"),
    "baseline_ps_store": (
        "baseline + parameters_secrets + a store on the extension",
        f"{_BASELINE}\n{_PS_STORE}",
    ),
    "baseline_powertools": (
        "baseline + Powertools parameters + boto3",
        f"{_BASELINE}\n{_POWERTOOLS}",
    ),
}


def _run_child(
    script: str, env: dict[str, str], *, serves: bool = True
) -> tuple[float, float, float]:
    """(import, import + first request, subprocess wall time), in seconds."""
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - start
    output = completed.stdout.decode(errors="replace")
    line = next((x for x in output.splitlines() if x.startswith("BENCH ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"child failed ({completed.returncode}):\n{output[-2000:]}\n"
            f"{completed.stderr.decode(errors='replace')[-3000:]}"
        )
    _, imported, first, status, body = line.split(" ", 4)
    if serves and (status != "200" or '"ok":true' not in body):
        raise RuntimeError(f"first request answered {status}: {body}")
    return float(imported), float(first), wall


@contextlib.contextmanager
def _upstreams() -> Iterator[dict[str, dict[str, str]]]:
    """Start moto and the local server; yield each app variant's environment."""
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_REGION": "us-east-1"}
    with MotoServer() as moto:
        seed_values(moto, LAMBDA_VALUES)
        moto_env = moto_environment(moto.url)
        # TTL 0: the server asks moto every time, as a just-started extension would.
        server_env = {**moto_env, "SSM_PARAMETER_STORE_TTL": "0", "SECRETS_MANAGER_TTL": "0"}
        with local_server("aws", server_env) as server:
            yield {
                "ps_extension": clean_environment(
                    {
                        **lambda_env,
                        "AWS_SESSION_TOKEN": SESSION_TOKEN,
                        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(server.port),
                    }
                ),
                "ps_aws": clean_environment(
                    {**lambda_env, **moto_env, "PARAMETERS_SECRETS_SOURCE": "aws"}
                ),
                "powertools": clean_environment({**lambda_env, **moto_env}),
            }


def _compile_this_package() -> None:
    """Write this package's bytecode beside its sources, as an installed wheel has it."""
    import parameters_secrets

    package = Path(parameters_secrets.__file__).parent
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"could not compile {package}")


def run(quick: bool = False) -> Table:
    repeats = 2 if quick else 15
    started = time.perf_counter()
    _compile_this_package()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        directory = Path(tmp)
        (directory / "ps_app.py").write_text(PS_APP, encoding="utf-8")
        (directory / "powertools_app.py").write_text(POWERTOOLS_APP, encoding="utf-8")
        event = make_event("http_api_v2", "/")
        modules = {"ps_extension": "ps_app", "ps_aws": "ps_app", "powertools": "powertools_app"}
        scripts = {
            name: _FIRST_REQUEST.format(directory=str(directory), module=module, event=event)
            for name, module in modules.items()
        }
        import_scripts = {
            name: _IMPORT_ONLY.format(imports=imports)
            for name, (_, imports) in IMPORT_VARIANTS.items()
        }
        apps: dict[str, list[tuple[float, float, float]]] = {name: [] for name in APP_VARIANTS}
        imports: dict[str, list[tuple[float, float, float]]] = {
            name: [] for name in IMPORT_VARIANTS
        }
        with _upstreams() as envs:
            plain_env = clean_environment()
            for name in APP_VARIANTS if not quick else ():  # untimed: warm the page cache
                _run_child(scripts[name], envs[name])
            app_names, import_names = list(APP_VARIANTS), list(IMPORT_VARIANTS)
            for repeat in range(repeats):
                for name in _rotated(app_names, repeat):
                    apps[name].append(_run_child(scripts[name], envs[name]))
                if repeat % 2:  # import-only runs vary less: every other round
                    continue
                for name in _rotated(import_names, repeat // 2):
                    imports[name].append(_run_child(import_scripts[name], plain_env, serves=False))
    return _table(apps, imports, repeats, time.perf_counter() - started)


def _rotated(names: list[str], shift: int) -> list[str]:
    shift %= len(names)
    return names[shift:] + names[:shift]


def _column(samples: list[tuple[float, float, float]], index: int) -> list[float]:
    return [sample[index] for sample in samples]


def _table(
    apps: dict[str, list[tuple[float, float, float]]],
    imports: dict[str, list[tuple[float, float, float]]],
    repeats: int,
    elapsed: float,
) -> Table:
    first = {name: median(_column(samples, 1)) for name, samples in apps.items()}
    wall = {name: median(_column(samples, 2)) for name, samples in apps.items()}
    imported = {name: median(_column(samples, 0)) for name, samples in imports.items()}
    table = Table(
        title="Cold start: fresh process, import the app module + first request (10 values)",
        columns=[
            "variant",
            "import",
            "first request",
            "import + first request",
            "p90",
            "subprocess wall",
            "Powertools / this",
        ],
    )
    for name, label in APP_VARIANTS.items():
        samples = apps[name]
        table.rows.append(
            [
                label,
                millis(median(_column(samples, 0))),
                millis(median([total - imp for imp, total, _ in samples])),
                millis(first[name]),
                millis(percentile(_column(samples, 1), 0.9)),
                millis(wall[name]),
                f"{first['powertools'] / first[name]:.2f}x",
            ]
        )
    for name, (label, _) in IMPORT_VARIANTS.items():
        samples = imports[name]
        table.rows.append(
            [
                f"import only: {label}",
                millis(imported[name]),
                "",
                "",
                millis(percentile(_column(samples, 0), 0.9)),
                millis(median(_column(samples, 2))),
                "",
            ]
        )
    ext_ratio = first["powertools"] / first["ps_extension"]
    aws_ratio = first["powertools"] / first["ps_aws"]
    # What each way adds to the app's cold start beyond FastAPI + Mangum's own import.
    # Medians from different processes subtracted: an estimate, not a measurement.
    baseline = imported["baseline"]
    ps_own = first["ps_extension"] - baseline
    powertools_own = first["powertools"] - baseline
    table.headline = {
        "Powertools / middleware+extension": ext_ratio,
        "Powertools / middleware+AwsSource": aws_ratio,
        "Powertools / middleware+extension (wall)": wall["powertools"] / wall["ps_extension"],
        "Powertools / middleware+extension, beyond fastapi+mangum import": (
            powertools_own / ps_own if ps_own > 0 else float("nan")
        ),
    }
    met = "met" if ext_ratio >= 3 else "NOT met"
    ours = imported["baseline_ps_store"] - baseline
    theirs = imported["baseline_powertools"] - baseline
    import_share = ours / theirs if theirs > 0 else float("nan")
    table.headline["import over fastapi+mangum: this (with a store) / Powertools"] = import_share
    table.notes += [
        f"Medians of {repeats} runs per app row and {(repeats + 1) // 2} per import-only row, "
        f"interleaved; Python {platform.python_version()}; {elapsed:.0f} s in all.",
        "'import' and 'first request' are timed in the child from its first line; "
        "'subprocess wall' adds interpreter start-up and exit, timed by the parent.",
        f"Target: cold start at least 3x faster than the Powertools version: {met} "
        f"({ext_ratio:.2f}x with the extension, {aws_ratio:.2f}x with AwsSource, "
        "import + first request).",
        f"Most of either cold start is importing FastAPI and Mangum ({millis(baseline)}). "
        f"Beyond it (median minus the baseline's median, an estimate): this middleware with "
        f"the extension {millis(ps_own)}, Powertools {millis(powertools_own)} "
        f"({powertools_own / ps_own if ps_own > 0 else float('nan'):.2f}x).",
        f"Import cost over fastapi + mangum: parameters_secrets "
        f"+{millis(imported['baseline_ps'] - baseline)}, with a store on the extension built "
        f"+{millis(ours)}, Powertools parameters + boto3 +{millis(theirs)} (alone: "
        f"{millis(imported['ps'])} vs {millis(imported['powertools'])}): "
        f"{import_share:.2f} of Powertools' (target under 1/8: "
        f"{'met' if import_share < 1 / 8 else 'NOT met'}).",
        "The local server (the extension stand-in) is started once, before the runs, and "
        "not counted, as the real extension starts in parallel during INIT; with TTL 0 it "
        "fetches each value from moto on every request. Powertools builds its boto3 SSM "
        "and Secrets Manager clients in the first request.",
        "moto on loopback answers in about a millisecond; real SSM and Secrets Manager "
        "calls take longer, which favours concurrent fetching (this middleware) over "
        "sequential (Powertools, one call per value).",
    ]
    return table


if __name__ == "__main__":
    print(run().text())
