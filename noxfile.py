"""Sessions: tests (every supported Python that is installed), lint, typecheck, demo,
package, dist, template, docs, coverage, bench."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

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


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (real Mangum invocations, real servers on 127.0.0.1)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff check and ruff format --check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy --strict over the package, tests and examples."""
    session.install("-e", ".[test]", "mypy>=1.13", "nox")
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
    """The test suite under coverage.py, Python subprocesses included (``[tool.coverage]``
    in pyproject.toml); fails below its ``fail_under``. ``-- -k ...`` goes to pytest."""
    session.install("-e", ".[test]", "coverage>=7.10.3")  # patch = subprocess, fixed
    session.run("coverage", "erase")
    session.run("coverage", "run", "--parallel-mode", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmarks/bench_*.py: prints the tables, writes benchmarks/RESULTS.md and
    benchmarks/results.png. ``nox -s bench -- --quick`` for a short run."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks.run_all", *session.posargs)
