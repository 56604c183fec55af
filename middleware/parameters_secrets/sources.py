"""What a source author uses: where values come from.

An app picks a built-in source here and passes it to the store (``source=``); a custom
source implements :class:`Source`, answering the request types with a :class:`Record` or a
:class:`~parameters_secrets.FetchError` each (an :class:`Outcome`), and may reuse
:class:`RetryPolicy` and :class:`Credentials`. Everything else an app uses (the store, the
middlewares, the declarations, the errors) is in :mod:`parameters_secrets`.

``CloudExtensionsSource`` is experimental: built from AWS's documentation, not yet tried
against a running AWS Systems Manager Cloud Extensions runtime; its behaviour may change
in any release.

``AwsSource``, ``CloudExtensionsSource`` and ``Credentials`` load on first use, not on
import: a function whose source is the extension or a file never loads the AWS-direct code
(SigV4, credentials).
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._declarations import ParameterRequest, PathRequest, Record, SecretRequest, ValueRequest
from ._sources import Outcome, Source
from ._sources._retry import RetryPolicy
from ._sources.extension import ExtensionSource
from ._sources.static import StaticSource

if _typing.TYPE_CHECKING:
    from ._sigv4 import Credentials
    from ._sources.aws import AwsSource
    from ._sources.cloud_extensions import CloudExtensionsSource

__all__ = [
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
]

# The names above that live with the AWS-direct code, and the private module of each.
_LOADED_ON_FIRST_USE = {
    "AwsSource": "._sources.aws",
    "CloudExtensionsSource": "._sources.cloud_extensions",
    "Credentials": "._sigv4",
}


def __getattr__(name: str) -> object:
    module = _LOADED_ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(_importlib.import_module(module, __package__), name)
    globals()[name] = value
    return value
