"""Bytecode in the Lambda zip: a cold import of the example's handler module, with and without.

Lambda unpacks the zip into ``/var/task``, which is read-only: Python cannot save the
bytecode it compiles there, so a zip without bytecode for the runtime's Python compiles
every module it imports on every cold start. ``parameters-secrets package`` compiles it
when an interpreter of the target version is installed; this measures what that saves.

The example's zip is built once for Python 3.12 on this machine's architecture (x86_64
or arm64) and unpacked twice: as built, and without its ``__pycache__`` directories.
Both copies are made read-only, as ``/var/task`` is (root ignores the mode, so the
children also run with ``-B``; the bytecode-free copy is checked to have stayed so).

Each run is a fresh ``python3.12 -I -S -B -c SCRIPT`` (nothing on ``sys.path`` but the
unpacked zip and the standard library, as on Lambda) whose script takes
``time.perf_counter()`` on its first line, puts the copy first on ``sys.path`` and
imports ``examples.fastapi_app``; the parent also times the whole subprocess
(interpreter start-up and exit included). The two variants are interleaved, their order
alternating, after one untimed run of each (the page cache is warm for both).
"""

from __future__ import annotations

import os
import platform
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks._common import Table, median, millis, percentile
from parameters_secrets import _packaging
from tests.processes import clean_environment

PYTHON_VERSION = "3.12"
MODULE = "examples.fastapi_app"
RUN_TIMEOUT = 120.0
VALUES_FILE = Path(__file__).resolve().parent.parent / "examples" / "local-values.json"

_IMPORT = """import time
_t0 = time.perf_counter()
import sys
sys.path.insert(0, {directory!r})
import {module}
_t1 = time.perf_counter()
print("BENCH", _t1 - _t0, len([m for m in list(sys.modules.values())
                              if (getattr(m, "__file__", None) or "").startswith({directory!r})]))
"""

VARIANTS = {
    "bytecode": "with bytecode (cpython-312, unchecked-hash)",
    "source": "without bytecode (sources only)",
}


def _machine_arch() -> str:
    return "arm64" if platform.machine() in {"aarch64", "arm64"} else "x86_64"


def _read_only(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


def _writable(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)


def _unpack(archive_path: Path, directory: Path, *, bytecode: bool) -> Path:
    with zipfile.ZipFile(archive_path) as archive:
        members = [n for n in archive.namelist() if bytecode or "/__pycache__/" not in f"/{n}"]
        archive.extractall(directory, members)
    _read_only(directory)
    return directory


def _run_child(python: str, script: str, env: dict[str, str]) -> tuple[float, float, int]:
    """(import seconds timed inside the child, subprocess wall seconds, modules from the copy)."""
    started = time.perf_counter()
    result = subprocess.run(
        [python, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"import failed:\n{result.stderr[-2000:]}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH"))
    _, seconds, modules = line.split()
    return float(seconds), wall, int(modules)


def run(quick: bool = False) -> Table:
    repeats = 5 if quick else 15
    table = Table(
        title="Bytecode in the Lambda zip: cold import of the example's handler module "
        f"(python{PYTHON_VERSION} -I -S, read-only copy)",
        columns=["variant", "import (median)", "p90", "subprocess wall (median)", "modules"],
    )
    interpreter = _packaging.find_python(PYTHON_VERSION)
    if interpreter is None:
        table.notes.append(f"Not measured: no Python {PYTHON_VERSION} on PATH or in pyenv.")
        return table
    started = time.perf_counter()
    env = clean_environment({"PARAMETERS_SECRETS_SOURCE": f"file:{VALUES_FILE}"})
    with tempfile.TemporaryDirectory(prefix="bench-bytecode-") as tmp:
        directory = Path(tmp)
        try:
            archive = _packaging.build_lambda_zip(
                directory / "lambda.zip", python_version=PYTHON_VERSION, arch=_machine_arch()
            )
            copies = {
                "bytecode": _unpack(archive, directory / "with", bytecode=True),
                "source": _unpack(archive, directory / "without", bytecode=False),
            }
            scripts = {
                name: _IMPORT.format(directory=str(path), module=MODULE)
                for name, path in copies.items()
            }
            for name in VARIANTS:  # untimed: warm the page cache
                _run_child(interpreter.path, scripts[name], env)
            samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in VARIANTS}
            names = list(VARIANTS)
            for repeat in range(repeats):
                for name in names if repeat % 2 == 0 else names[::-1]:
                    samples[name].append(_run_child(interpreter.path, scripts[name], env))
            # The runs must not have cached what they compiled: else "without" measured
            # bytecode after its first run.
            left = list(copies["source"].rglob("*.pyc"))
            if left:
                raise RuntimeError(f"the bytecode-free copy gained {len(left)} .pyc files")
        finally:
            for path in directory.iterdir():
                if path.is_dir():
                    _writable(path)
    elapsed = time.perf_counter() - started
    imports = {name: median([s[0] for s in runs]) for name, runs in samples.items()}
    walls = {name: median([s[1] for s in runs]) for name, runs in samples.items()}
    for name, label in VARIANTS.items():
        runs = samples[name]
        table.rows.append(
            [
                label,
                millis(imports[name]),
                millis(percentile([s[0] for s in runs], 0.9)),
                millis(walls[name]),
                str(runs[0][2]),
            ]
        )
    ratio = imports["source"] / imports["bytecode"]
    wall_ratio = walls["source"] / walls["bytecode"]
    table.rows.append(["without / with", f"{ratio:.2f}x", "", f"{wall_ratio:.2f}x", ""])
    table.headline = {
        "cold import, no bytecode / bytecode": ratio,
        "subprocess wall, no bytecode / bytecode": wall_ratio,
    }
    table.notes += [
        f"Medians of {repeats} runs of each, interleaved (order alternating); Python "
        f"{interpreter.version}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{elapsed:.0f} s in all, the build included.",
        f"Without bytecode, every cold start pays {millis(imports['source'] - imports['bytecode'])}"
        " more to import the example (the difference of the medians).",
        "'import' is timed in the child from its first line; 'subprocess wall' adds "
        "interpreter start-up and exit, timed by the parent.",
    ]
    return table


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]).text())
