"""SSM parameters and Secrets Manager secrets for ASGI apps on AWS Lambda.

Cached in process with the AWS Parameters and Secrets Lambda Extension's semantics, so
a warm request pays nothing.

This module is what an app uses; what a source author uses (the built-in sources, the
:class:`~parameters_secrets.sources.Source` protocol and its types) is in
:mod:`parameters_secrets.sources`.
"""

from __future__ import annotations

# The one place the version is written: hatchling reads it from here for the package's
# metadata ([tool.hatch.version] in pyproject.toml), and the AWS user agent from the
# package. Set before the imports below, so that a submodule may import it at any time.
__version__ = "0.1.0"

import sys as _sys
import types as _types

from ._cache import CacheStats
from ._context import Values, current_values
from ._declarations import Parameter, ParametersByPath, Secret
from ._middleware import ParametersSecretsMiddleware
from ._settings import Settings
from ._store import ParametersSecrets
from ._wsgi import ParametersSecretsWSGIMiddleware
from .exceptions import ConfigurationError, FetchError, LoadError, ParametersSecretsError

__all__ = [
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
]

# What a source author uses moved to parameters_secrets.sources (see CHANGELOG). For one
# release the old names fail with the new place in the message; then they are just absent.
_MOVED_TO_SOURCES = frozenset(
    {
        "AwsSource",
        "CloudExtensionsSource",
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
)


def __getattr__(name: str) -> object:
    if name not in _MOVED_TO_SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    message = (
        f"{__name__}.{name} moved to {__name__}.sources.{name}: "
        f"write `from {__name__}.sources import {name}`"
    )
    # `from parameters_secrets import X` turns an AttributeError into its own
    # "cannot import name" and drops this message, so the `from` form gets an ImportError;
    # attribute access (and hasattr) keeps the AttributeError it expects.
    if _imported_from(_sys._getframe(1)):  # noqa: SLF001 - CPython's way to the caller
        raise ImportError(message, name=__name__)
    raise AttributeError(message)


def _imported_from(frame: _types.FrameType) -> bool:
    """Whether ``frame`` is executing ``from ... import`` (the IMPORT_FROM opcode)."""
    import opcode

    return frame.f_code.co_code[frame.f_lasti] == opcode.opmap["IMPORT_FROM"]
