"""The public surface: two modules for two audiences, each `__all__` sorted, complete and
importable (as httpx tests it); the names that moved fail at their old place, naming the
new one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import parameters_secrets
import parameters_secrets.sources

ROOT = Path(__file__).resolve().parent.parent
# Submodules, and what `from __future__ import annotations` leaves in a namespace.
NOT_EXPORTED = {"annotations", "exceptions", "fastapi", "sources"}
APP_NAMES = {
    "CacheStats",
    "ConfigurationError",
    "FetchError",
    "LoadError",
    "Parameter",
    "ParametersByPath",
    "ParametersSecrets",
    "ParametersSecretsError",
    "ParametersSecretsMiddleware",
    "ParametersSecretsWSGIMiddleware",
    "Secret",
    "Settings",
    "Values",
    "__version__",
    "current_values",
}
SOURCE_NAMES = {
    "AwsSource",
    "CloudExtensionsSource",
    "Credentials",
    "ExtensionSource",
    "Outcome",
    "ParameterRequest",
    "PathRequest",
    "Record",
    "RetryPolicy",
    "SecretRequest",
    "Source",
    "StaticSource",
    "ValueRequest",
}
# What parameters_secrets exported before the split (Credentials was private).
MOVED = SOURCE_NAMES - {"Credentials"}


def public_names(module: ModuleType) -> set[str]:
    return {name for name in vars(module) if not name.startswith("_") and name not in NOT_EXPORTED}


@pytest.mark.parametrize(
    ("module", "expected"),
    [(parameters_secrets, APP_NAMES), (parameters_secrets.sources, SOURCE_NAMES)],
    ids=["parameters_secrets", "sources"],
)
def test_all_is_sorted_complete_and_importable(module: ModuleType, expected: set[str]) -> None:
    exported = module.__all__
    assert exported == sorted(exported)
    assert set(exported) == expected
    assert public_names(module) <= set(exported)
    for name in exported:
        assert hasattr(module, name)


def test_no_name_is_exported_twice() -> None:
    assert not set(parameters_secrets.__all__) & set(parameters_secrets.sources.__all__)


def test_design_contract_names_are_exported() -> None:
    contract = {
        "ParametersSecretsMiddleware",
        "Parameter",
        "Secret",
        "Settings",
        "current_values",
        "ParametersSecretsError",
        "ConfigurationError",
        "FetchError",
    }
    assert contract <= set(parameters_secrets.__all__)
    sources = {"ExtensionSource", "AwsSource", "StaticSource", "CloudExtensionsSource"}
    assert sources <= set(parameters_secrets.sources.__all__)


def test_the_experimental_source_says_so() -> None:
    from parameters_secrets.sources import CloudExtensionsSource

    assert "experimental" in (CloudExtensionsSource.__doc__ or "")
    assert "CloudExtensionsSource`` is experimental" in (parameters_secrets.sources.__doc__ or "")


@pytest.mark.parametrize("name", sorted(MOVED))
def test_an_old_attribute_fails_naming_its_new_place(name: str) -> None:
    with pytest.raises(AttributeError, match=rf"parameters_secrets\.sources\.{name}\b"):
        getattr(parameters_secrets, name)
    assert not hasattr(parameters_secrets, name)


@pytest.mark.parametrize("name", sorted(MOVED))
def test_an_old_import_fails_naming_its_new_place(name: str) -> None:
    with pytest.raises(ImportError, match=rf"parameters_secrets\.sources\.{name}\b"):
        exec(f"from parameters_secrets import {name}", {})  # noqa: S102 - the statement under test


def test_an_old_import_fails_so_in_a_fresh_interpreter() -> None:
    # Python's own `from ... import` path, with nothing imported before it.
    completed = subprocess.run(
        [sys.executable, "-c", "from parameters_secrets import StaticSource"],
        env={"PYTHONPATH": str(ROOT / "middleware"), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: ")
    assert "parameters_secrets.sources.StaticSource" in last_line


def test_a_name_that_never_existed_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nonexistent'"):
        parameters_secrets.Nonexistent  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Nonexistent'"):
        parameters_secrets.sources.Nonexistent  # noqa: B018
