"""The current request's values, for code that has no ASGI scope (Flask views)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from .exceptions import ParametersSecretsError


class Values(Mapping[str, Any]):
    """A request's values: a read-only mapping whose ``repr`` shows keys, never values."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):  # no key starts with "_"; and copy/pickle probe these
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        return f"<Values keys={sorted(self._data)}>"


# None: outside a request (a WSGI worker thread between requests).
def values_dict(values: Values) -> dict[str, Any]:
    """The dict behind ``values``, for the middleware to copy into a request's state at C
    speed (``dict.update`` of a dict); never to be changed."""
    return values._data  # noqa: SLF001 - this module's own class


_current: ContextVar[Values | None] = ContextVar("parameters_secrets_values", default=None)


def current_values() -> Values:
    """The values of the request being handled, read-only.

    Works in any framework under :class:`ParametersSecretsMiddleware`, Flask through
    ``asgiref.wsgi.WsgiToAsgi`` included (asgiref copies context variables into the WSGI
    thread), and in any WSGI app under :class:`ParametersSecretsWSGIMiddleware`.

    Raises:
        ParametersSecretsError: Called outside a request the middleware handles.
    """
    values = _current.get()
    if values is None:
        raise ParametersSecretsError(
            "current_values() was called outside a request handled by "
            "ParametersSecretsMiddleware or ParametersSecretsWSGIMiddleware"
        )
    return values
