"""The project's metadata: the version written once, the Python versions written once,
the license and changelog in the source distribution's list."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import types
from importlib import metadata
from pathlib import Path
from unittest import mock

import httpx
import pytest

import parameters_secrets
from parameters_secrets import Parameter, ParametersSecrets
from parameters_secrets.sources import AwsSource
from tests.moto_in_process import InProcessMoto

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
REGION = "eu-west-1"


def load_noxfile() -> types.ModuleType:
    """noxfile.py, imported without nox (the tests' environment need not have it): a stub
    stands in for the decorators and options it uses at import."""
    stub = types.ModuleType("nox")
    stub.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    stub.session = lambda *args, **kwargs: (  # type: ignore[attr-defined]
        args[0] if args and callable(args[0]) else (lambda function: function)
    )
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(sys.modules, {"nox": stub}):
        spec.loader.exec_module(module)
    return module


noxfile = load_noxfile()

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 run reads the same file with the noxfile's fallback
    tomllib = None


def test_the_installed_metadata_has_the_version_written_in_the_package() -> None:
    # pyproject.toml's version is dynamic: hatchling reads __init__.py.
    assert metadata.version("asgi-parameters-secrets") == parameters_secrets.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", parameters_secrets.__version__)
    assert not re.search(r"^version\s*=", PYPROJECT.read_text(encoding="utf-8"), re.MULTILINE)


def test_aws_requests_carry_the_package_version_in_their_user_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDMETADATA")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "metadata-secret-key")
    mock = InProcessMoto(REGION)
    mock.put_parameter("/app/name", "demo")
    agents: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["User-Agent"])
        return await mock.handle(request)

    store = ParametersSecrets(
        {"name": Parameter("/app/name")},
        source=AwsSource(REGION, transport=httpx.MockTransport(handle)),
    )
    assert store.load_sync()["name"] == "demo"
    assert agents
    assert set(agents) == {f"parameters_secrets/{parameters_secrets.__version__}"}


def test_noxfile_runs_the_tests_on_the_pythons_the_classifiers_list() -> None:
    text = PYPROJECT.read_text(encoding="utf-8")
    assert noxfile.PYTHONS == ["3.10", "3.11", "3.12", "3.13"]
    if tomllib is not None:
        classifiers = tomllib.loads(text)["project"]["classifiers"]
        listed = [c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r".* :: 3\.\d+", c)]
        assert listed == noxfile.PYTHONS


def test_noxfile_reads_the_classifiers_without_a_toml_parser_too() -> None:
    # What nox on Python 3.10 does: the same versions as tomllib finds.
    text = PYPROJECT.read_text(encoding="utf-8")
    classifiers = noxfile.quoted_lines(text)
    assert "Programming Language :: Python :: 3.10" in classifiers
    listed = [c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r".* :: 3\.\d+", c)]
    assert listed == noxfile.PYTHONS


def test_noxfile_reads_the_classifiers_it_is_given(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\nclassifiers = [\n'
        '    "Programming Language :: Python :: 3",\n'
        '    "Programming Language :: Python :: 3.13",\n'
        '    "Programming Language :: Python :: 3.9",\n'
        '    "Programming Language :: Python :: 3.14",\n'
        '    "Typing :: Typed",\n]\n',
        encoding="utf-8",
    )
    assert noxfile.supported_pythons(pyproject) == ["3.9", "3.13", "3.14"]


def test_ci_takes_the_pythons_from_the_noxfile_not_a_list_of_its_own() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "noxfile.PYTHONS" in script
    assert not re.search(r"\b3\.1\d\.\d+\b", script)  # no pinned pyenv versions


def test_ci_fails_on_a_missing_python_rather_than_skipping_it() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "--error-on-missing-interpreters" in script


def test_the_test_command_names_the_pythons_it_skipped_and_the_pyenv_line_that_runs_them() -> None:
    report = noxfile.untested_pythons_report(
        ["3.10", "3.12", "3.13"],
        ["3.11"],
        ["2.7.18", "3.10.13", "3.11.7", "3.12.0", "3.12.1", "3.13.0"],
    )
    assert "ran on Python 3.11 only" in report
    assert "skipped tests-3.10, tests-3.12, tests-3.13" in report
    assert "PYENV_VERSION=$(pyenv version-name):3.10.13:3.12.1:3.13.0 nox -s tests" in report
    assert "pyenv install" not in report  # all three are installed, only not shown


def test_the_test_command_says_how_to_install_a_python_nobody_has() -> None:
    report = noxfile.untested_pythons_report(["3.13"], ["3.11", "3.12"], [])
    assert "ran on Python 3.11, 3.12 only" in report
    assert "`pyenv install 3.13` or `uv python install 3.13`" in report
    assert "PYENV_VERSION=$(pyenv version-name):3.13.N nox -s tests" in report


def test_the_test_command_says_nothing_when_every_python_ran_or_none_did() -> None:
    assert noxfile.untested_pythons_report([], ["3.10", "3.11", "3.12", "3.13"], []) == ""
    assert noxfile.untested_pythons_report(["3.10"], [], []) == ""  # nox -s lint


def _fake_python(directory: Path, name: str, exit_code: int) -> None:
    python = directory / name
    python.write_text(f"#!/bin/sh\nexit {exit_code}\n", encoding="utf-8")
    python.chmod(0o755)


def test_at_exit_nox_names_the_supported_pythons_it_found_no_interpreter_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # PATH as on a machine with pyenv showing one version: 3.12's shim is there but fails,
    # 3.13 is installed and was merely not selected (nox -s tests-3.11), 3.10 is absent.
    _fake_python(tmp_path, "python3.12", 127)
    _fake_python(tmp_path, "python3.13", 0)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(noxfile, "TESTED", ["3.11"])
    logger = logging.getLogger("nox-under-test")
    monkeypatch.setattr(noxfile.nox, "logger", types.SimpleNamespace(logger=logger), raising=False)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        noxfile.report_untested_pythons()
    (record,) = caplog.records
    assert "no interpreter of 3.10, 3.12 was found" in record.getMessage()
    assert "pyenv install 3.10 3.12" in record.getMessage()


def test_the_tests_session_runs_the_suite_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    session = RecordingSession("3.12")
    monkeypatch.setattr(noxfile, "TESTED", [])
    noxfile.tests(session)
    assert session.runs == [(("pytest", "-m", "not network", "-n", "auto", "-k", "small"), None)]
    assert noxfile.TESTED == ["3.12"]


def test_the_coverage_session_measures_offline_and_combines_the_package_session_s_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = RecordingSession("3.11")
    monkeypatch.setattr(noxfile, "COVERAGE_DATA", tmp_path)
    stale = tmp_path / ".coverage.suite.host.1.x"
    stale.touch()
    network = tmp_path / ".coverage.network.host.1.x"  # nox -s package's
    network.touch()
    noxfile.coverage(session)
    measure, combine, report = session.runs
    assert measure == (
        ("coverage", "run", "-m", "pytest", "-m", "not network", "-n", "auto", "-k", "small"),
        {"COVERAGE_FILE": str(tmp_path / ".coverage.suite")},
    )
    assert not stale.exists()  # this session's last run, not the package session's
    assert network.exists()
    combined = f"--data-file={tmp_path / '.coverage'}"
    assert combine == (("coverage", "combine", "--quiet", "--keep", combined), None)
    assert report == (("coverage", "report", combined), None)


class RecordingSession:
    """What a nox session's body calls, recorded."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.posargs = ["-k", "small"]
        self.runs: list[tuple[tuple[str, ...], object]] = []

    def install(self, *args: str) -> None:
        pass

    def run(self, *args: str, env: object = None) -> None:
        self.runs.append((args, env))


def test_the_source_distribution_lists_the_license_and_the_changelog() -> None:
    text = PYPROJECT.read_text(encoding="utf-8")
    sdist = text.split("[tool.hatch.build.targets.sdist]", 1)[1].split("\n[", 1)[0]
    assert '"LICENSE"' in sdist
    assert '"CHANGELOG.md"' in sdist
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").count("## [Unreleased]") == 1


def test_the_metadata_names_the_project_urls() -> None:
    urls = dict(
        entry.split(", ", 1)
        for entry in metadata.metadata("asgi-parameters-secrets").get_all("Project-URL") or []
    )
    assert set(urls) == {"Homepage", "Repository", "Documentation", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
