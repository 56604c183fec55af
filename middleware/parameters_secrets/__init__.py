"""SSM parameters and Secrets Manager secrets for ASGI apps on AWS Lambda.

Cached in process with the AWS Parameters and Secrets Lambda Extension's semantics, so
a warm request pays nothing.
"""

from __future__ import annotations

# The one place the version is written: hatchling reads it from here for the package's
# metadata ([tool.hatch.version] in pyproject.toml), and the AWS user agent from the
# package. Set before the imports below, so that a submodule may import it at any time.
__version__ = "0.1.0"

import typing as _typing

from ._cache import CacheStats
from ._context import Values, current_values
from ._declarations import (
    Parameter,
    ParameterRequest,
    ParametersByPath,
    PathRequest,
    Record,
    Secret,
    SecretRequest,
    ValueRequest,
)
from ._middleware import ParametersSecretsMiddleware
from ._settings import Settings
from ._sources import Outcome, Source
from ._sources._retry import RetryPolicy
from ._sources.extension import ExtensionSource
from ._sources.static import StaticSource
from ._store import ParametersSecrets
from ._wsgi import ParametersSecretsWSGIMiddleware
from .exceptions import ConfigurationError, FetchError, LoadError, ParametersSecretsError

if _typing.TYPE_CHECKING:
    from ._sources.aws import AwsSource
    from ._sources.cloud_extensions import CloudExtensionsSource


__all__ = [
    "AwsSource",
    "CacheStats",
    "CloudExtensionsSource",
    "ConfigurationError",
    "ExtensionSource",
    "FetchError",
    "LoadError",
    "Outcome",
    "Parameter",
    "ParameterRequest",
    "ParametersByPath",
    "ParametersSecrets",
    "ParametersSecretsError",
    "ParametersSecretsMiddleware",
    "ParametersSecretsWSGIMiddleware",
    "PathRequest",
    "Record",
    "RetryPolicy",
    "Secret",
    "SecretRequest",
    "Settings",
    "Source",
    "StaticSource",
    "ValueRequest",
    "Values",
    "__version__",
    "current_values",
]


def __getattr__(name: str) -> _typing.Any:
    # AWS-direct code (SigV4, credentials, AwsSource, and CloudExtensionsSource, built on
    # it) loads on first use, not on import: a function whose source is the extension or a
    # file never pays for it.
    if name == "AwsSource":
        from ._sources.aws import AwsSource

        return AwsSource
    if name == "CloudExtensionsSource":
        from ._sources.cloud_extensions import CloudExtensionsSource

        return CloudExtensionsSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
