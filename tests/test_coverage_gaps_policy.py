"""Where ``parameters-secrets policy`` finds declarations in less usual apps (found by
branch coverage): other middlewares before ours, a model whose hints do not resolve."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from parameters_secrets import Parameter, ParametersSecretsMiddleware, Secret
from parameters_secrets._policy import PolicyError, declarations_of

VALUES: dict[str, Parameter | Secret] = {"key": Parameter("/app/key"), "db": Secret("app/db")}


def test_the_middleware_is_found_among_other_middlewares_of_the_app() -> None:
    app = Starlette()
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(ParametersSecretsMiddleware, values=VALUES)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["*"])
    assert sorted(map(repr, declarations_of(app))) == sorted(map(repr, VALUES.values()))


def test_a_model_whose_type_hints_do_not_resolve_is_refused_naming_why() -> None:
    class Config:
        key: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(PolicyError) as refused:
        declarations_of(Config)
    assert str(refused.value) == (
        "the type hints of Config could not be read "
        "(NameError: name 'NotDefinedAnywhere' is not defined)"
    )
