"""SSM parameters and Secrets Manager secrets for ASGI apps on AWS Lambda.

Cached in process with the AWS Parameters and Secrets Lambda Extension's semantics, so
a warm request pays nothing.
"""

from __future__ import annotations

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
from ._sources.aws import AwsSource
from ._sources.extension import ExtensionSource
from ._sources.static import StaticSource
from ._store import ParametersSecrets
from ._wsgi import ParametersSecretsWSGIMiddleware
from .exceptions import ConfigurationError, FetchError, LoadError, ParametersSecretsError

__version__ = "0.1.0"

__all__ = [
    "AwsSource",
    "CacheStats",
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
