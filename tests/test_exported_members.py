"""The public surface: sorted, complete, and every name importable (as httpx tests it)."""

from __future__ import annotations

import parameters_secrets


def test_all_is_sorted_and_lists_every_public_name() -> None:
    exported = parameters_secrets.__all__
    assert exported == sorted(exported)
    public = {
        name
        for name in vars(parameters_secrets)
        if not name.startswith("_") and name not in {"annotations", "exceptions", "fastapi"}
    }
    assert public <= set(exported)
    for name in exported:
        assert hasattr(parameters_secrets, name)


def test_design_contract_names_are_exported() -> None:
    contract = {
        "ParametersSecretsMiddleware",
        "Parameter",
        "Secret",
        "Settings",
        "ExtensionSource",
        "AwsSource",
        "StaticSource",
        "current_values",
        "ParametersSecretsError",
        "ConfigurationError",
        "FetchError",
    }
    assert contract <= set(parameters_secrets.__all__)
