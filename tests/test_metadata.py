"""The project's metadata: the version written once, the Python versions written once,
the license and changelog in the source distribution's list."""

from __future__ import annotations

import importlib.util
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
from tests.mock_upstreams import MockAws

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
    mock = MockAws(REGION)
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
