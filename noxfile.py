"""Sessions: tests (every supported Python that is installed), lint, typecheck, demo,
package, dist, template, docs, coverage, bench."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# uv makes the virtualenvs where it is installed (.ci/run installs it): an install of the
# test extra takes seconds of CPU instead of ~50 with pip. Without uv, virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"
# Compiled at install, as pip does: the suite's many fresh interpreters then read bytecode
# instead of compiling every dependency again (this changes only what uv installs).
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")

ROOT = Path(__file__).resolve().parent
_CLASSIFIER = "Programming Language :: Python :: "


def supported_pythons(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The Python versions pyproject.toml's classifiers list (``3.10``, ...): the one place
    they are written; .ci/run reads them from here too."""
    text = pyproject.read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        classifiers: list[str] = tomllib.loads(text)["project"]["classifiers"]
    else:
        classifiers = quoted_lines(text)
    versions = [
        c.removeprefix(_CLASSIFIER) for c in classifiers if re.fullmatch(rf"{_CLASSIFIER}3\.\d+", c)
    ]
    return sorted(versions, key=lambda version: tuple(map(int, version.split("."))))


def quoted_lines(text: str) -> list[str]:
    """Every line of ``text`` that is one quoted string (``"...",``): pyproject.toml's
    classifiers, read without a TOML parser. nox may run on Python 3.10, which has no
    tomllib, in a virtualenv without tomli."""
    return re.findall(r'^\s*"([^"]+)",?\s*$', text, flags=re.MULTILINE)


PYTHONS = supported_pythons()


# Coverage data: nox -s coverage's run of the suite, and nox -s package's run of the tests
# that download (the zip builder's); nox -s coverage combines whatever is there. Under
# .nox, so a fresh checkout (or `rm -rf .nox`) starts clean.
COVERAGE_DATA = ROOT / ".nox" / "coverage-data"
# What the default suite leaves out: the tests that download wheels from the package
# index (the zip builder's); `nox -s package` runs them.
OFFLINE = ("-m", "not network")
# The suite in pytest-xdist workers, four whatever the machine's cores: it waits on servers,
# subprocesses and time bounds far more than it computes (one worker: ~110 s of CPU in
# ~270 s). PYTEST_XDIST_AUTO_NUM_WORKERS sets another number (.ci/run: two, as it runs two
# suites side by side and each worker costs CPU); ``-- -n 0`` runs it in one process.
os.environ.setdefault("PYTEST_XDIST_AUTO_NUM_WORKERS", "4")
WORKERS = ("-n", "auto")
# The Pythons a tests session ran on in this nox run: at exit, the supported ones that
# did not run and are not installed are named, with how to run them.
TESTED: list[str] = []


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (real Mangum invocations, real servers on 127.0.0.1), offline.
    A supported Python that is not installed is skipped, and named at the end with how to
    run it. ``-- -k ...`` goes to pytest (``-- -m network``: the package index's tests)."""
    session.install("-e", ".[test]")
    TESTED.append(str(session.python))
    session.run("pytest", *OFFLINE, *WORKERS, *session.posargs)


def run_measured(session: nox.Session, name: str, *pytest_args: str) -> None:
    """Run pytest under coverage, its data under ``name`` in COVERAGE_DATA, replacing that
    name's previous run (and no other's: nox -s coverage combines them all)."""
    data_file = COVERAGE_DATA / f".coverage.{name}"
    for stale in COVERAGE_DATA.glob(f"{data_file.name}.*"):
        stale.unlink()
    COVERAGE_DATA.mkdir(parents=True, exist_ok=True)
    session.run(
        "coverage", "run", "-m", "pytest", *pytest_args, env={"COVERAGE_FILE": str(data_file)}
    )


def untested_pythons_report(
    missing: Sequence[str], tested: Sequence[str], installed: Sequence[str]
) -> str:
    """What to print when tests sessions ran but not on every supported Python: the
    ``missing`` versions (``3.12``: skipped, no interpreter) and how to run them, with
    pyenv's ``installed`` versions (``3.12.1``) where it has one. Empty when none is."""
    if not tested or not missing:
        return ""
    skipped = ", ".join(f"tests-{version}" for version in missing)
    lines = [
        (
            f"The tests ran on Python {', '.join(tested)} only: no interpreter of "
            f"{', '.join(missing)} was found, so nox skipped {skipped}. CI runs every "
            "supported Python and fails on a missing one."
        ),
    ]
    ready = {version: _newest_patch(installed, version) for version in missing}
    to_install = [version for version, found in ready.items() if not found]
    if to_install:
        versions = " ".join(to_install)
        lines.append(
            f"Install them: `pyenv install {versions}` or `uv python install {versions}`"
            " (nox finds either)."
        )
    if installed or to_install:
        visible = [found or f"{version}.N" for version, found in ready.items()]
        lines.append(
            "Then run the tests on every one, with pyenv showing them all at once: "
            f"`PYENV_VERSION=$(pyenv version-name):{':'.join(visible)} nox -s tests`."
        )
    return "\n".join(lines)


def _newest_patch(installed: Sequence[str], minor: str) -> str:
    """The newest of ``installed`` (``3.12.1``) in the ``minor`` series (``3.12``), or ""."""
    pattern = rf"{re.escape(minor)}\.\d+"
    series = [version for version in installed if re.fullmatch(pattern, version)]
    return max(series, key=lambda version: tuple(map(int, version.split("."))), default="")


def _runs(command: str) -> bool:
    """Whether ``command`` (``python3.12``) is on PATH and starts: a pyenv shim of a version
    pyenv does not show at the moment is on PATH but fails."""
    path = shutil.which(command)
    if path is None:
        return False
    started = subprocess.run([path, "-c", "pass"], capture_output=True, check=False)  # noqa: S603
    return started.returncode == 0


def _pyenv_versions() -> list[str]:
    """The versions pyenv has installed, shown at the moment or not; none without pyenv."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return []
    found = subprocess.run(  # noqa: S603 - pyenv's own command, no input of ours
        [pyenv, "versions", "--bare", "--skip-aliases"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.split()


def report_untested_pythons() -> None:
    """At exit: name the supported Pythons the tests did not run on for want of one."""
    if not TESTED:  # no tests session ran: nothing to say (nox -s lint, --list, ...)
        return
    missing = [
        version for version in PYTHONS if version not in TESTED and not _runs(f"python{version}")
    ]
    report = untested_pythons_report(missing, TESTED, _pyenv_versions() if missing else [])
    if report:
        nox.logger.logger.warning(report)


# At exit: after nox's own summary, whose "skipped" lines are easy to miss.
atexit.register(report_untested_pythons)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff check and ruff format --check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy --strict over the package, tests, examples and scripts (the docs' hooks import
    griffe, which the docs extra brings)."""
    session.install("-e", ".[test,docs]", "mypy>=1.13", "nox")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The FastAPI example's Mangum handler on examples/local-values.json: no AWS, no network."""
    session.install("-e", ".[examples]")
    session.run("python", "-m", "examples.demo")


@nox.session
def package(session: nox.Session) -> None:
    """``parameters-secrets package``: a Lambda zip built for the runtime, not this machine: your
    app with ``-- --app myapp.py --requirements requirements.txt``, else the FastAPI example
    (build/lambda.zip). ``--python-version 3.12 --arch arm64`` (defaults: the template's,
    python3.12 on x86_64), ``--output`` for another path; bytecode when that Python is
    installed. Paths are relative to where nox was started."""
    session.install("-e", ".[package]")  # packaging: the builder reads wheels' metadata
    session.chdir(session.invoked_from)
    session.run("parameters-secrets", "package", *session.posargs)
    if not session.posargs:  # the example's zip, as CI builds it: then the builder's tests,
        session.chdir(ROOT)  # which download wheels (left out of the offline nox -s tests)
        session.install("-e", ".[test]")
        # Two workers, a module each: a module's zips are built once, in its worker.
        run_measured(session, "network", "-m", "network", "-n", "2", "--dist", "loadfile")


# The tests that reach the package's HTTP client (real loopback servers: the local
# server, moto's, the extension's), run again with httpx2 in use.
HTTPX2_TESTS = [
    "tests/test_http_client.py",
    "tests/test_lean_import.py",
    "tests/test_aws_source.py",
    "tests/test_credentials.py",
    "tests/test_server.py",
    "tests/test_examples.py",
    "tests/test_roles.py",
    "tests/test_lambda_init.py",
]


@nox.session(python="3.12")
def tests_httpx2(session: nox.Session) -> None:
    """With httpx2 installed (Starlette 1.2+'s client; Python 3.11+), which the package
    then imports instead of httpx (parameters_secrets/_http.py): the tests that reach its
    HTTP client. ``-- tests/...`` for others."""
    session.install("-e", ".[test]", "httpx2")
    session.run("pytest", *(session.posargs or HTTPX2_TESTS))


@nox.session
def dist(session: nox.Session) -> None:
    """Build the sdist and the wheel, ``twine check`` them, check what they hold
    (scripts/check_dist.py: license, changelog, version, URLs), and install the wheel, the
    checkout and the repository's git URL each into a fresh virtualenv that imports the
    FastAPI example and runs its handler once (scripts/check_install.py)."""
    session.install("build", "twine")
    tmp = Path(session.create_tmp()).resolve()
    outdir = tmp / "dist"
    shutil.rmtree(outdir, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(outdir))
    session.run("twine", "check", "--strict", *sorted(str(path) for path in outdir.iterdir()))
    session.run("python", "scripts/check_dist.py", str(outdir))  # license, changelog, version
    (wheel,) = outdir.glob("*.whl")
    root = ROOT
    # package: check_install.py runs `parameters-secrets package --help` too.
    installs = {"wheel": f"{wheel}[fastapi,package]", "checkout": f"{root}[fastapi,package]"}
    if (root / ".git").exists():  # what a git URL gives: the committed HEAD
        installs["git"] = f"asgi-parameters-secrets[fastapi,package] @ git+file://{root}"
    for name, requirement in installs.items():
        venv = tmp / f"venv-{name}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        # A current pip: the one ensurepip bundles may not parse "name @ git+file:///...".
        session.run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip", external=True)
        session.run(python, "-m", "pip", "install", "--quiet", requirement, external=True)
        session.run(python, "scripts/check_install.py", external=True)


@nox.session
def template(session: nox.Session) -> None:
    """examples/template.yaml's tests with the SAM CLI installed, so that ``sam validate
    --lint`` runs too (the SAM CLI is too big and too tightly pinned for the test extra)."""
    session.install("-e", ".[test]", "aws-sam-cli")
    session.run("pytest", "tests/test_template.py", env={"REQUIRE_SAM_CLI": "1"})


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site from docs/ and the docstrings into site/, in strict mode: a warning
    (a broken link or anchor, a docstring mkdocstrings cannot read) fails the build. Open
    site/index.html from disk (links and search work there), or serve it with
    ``python -m http.server -d site``."""
    session.install("-e", ".[docs]", "pytest>=8")
    site = ROOT / "site"
    session.run("mkdocs", "build", "--strict", "--clean", "--site-dir", str(site))
    # The site as a reader opens it from disk: links to files, search with no server.
    # --noconftest: the suite's fixtures need the test extra, which this file does not.
    session.run("pytest", "--noconftest", "tests/test_docs_site.py")
    session.log(f"built {site}: open {(site / 'index.html').as_uri()}")


@nox.session
def coverage(session: nox.Session) -> None:
    """The offline suite under coverage.py, branches and Python subprocesses included
    (``[tool.coverage]`` in pyproject.toml), with the zip builder's tests that
    ``nox -s package`` measured if it ran before; fails below ``fail_under``. In CI this is
    the suite's run on nox's own Python. ``-- -k ...`` goes to pytest."""
    session.install("-e", ".[test]")
    run_measured(session, "suite", *OFFLINE, *WORKERS, *session.posargs)
    data_file = str(COVERAGE_DATA / ".coverage")
    # --keep: each run's files stay until that run is redone, so the package session's
    # and this one's are combined whichever ran last.
    session.run("coverage", "combine", "--quiet", "--keep", f"--data-file={data_file}")
    session.run("coverage", "report", f"--data-file={data_file}")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmarks/bench_*.py: prints the tables, writes benchmarks/RESULTS.md and
    benchmarks/results.png. ``nox -s bench -- --quick`` for a short run."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks.run_all", *session.posargs)
