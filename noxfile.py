"""Sessions: tests (every installed Python from 3.10), lint, typecheck, demo, bench."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (real Mangum invocations, real servers on 127.0.0.1)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests and examples."""
    session.install("-e", ".[test]", "mypy>=1.13", "nox")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The FastAPI example's Mangum handler on examples/local-values.json: no AWS, no network."""
    session.install("-e", ".[examples]")
    session.run("python", "-m", "examples.demo")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmarks/bench_*.py: prints the tables, writes benchmarks/RESULTS.md and
    benchmarks/results.png. ``nox -s bench -- --quick`` for a short run."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks.run_all", *session.posargs)
