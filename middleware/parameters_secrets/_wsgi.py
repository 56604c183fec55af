"""The WSGI middleware: a store's values on every request of a WSGI app (Flask, Django)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ._context import Values, _current
from ._middleware import RETRY_AFTER_SECONDS, UNAVAILABLE_BODY, StoreMiddleware, deadline
from .exceptions import LoadError

logger = logging.getLogger("parameters_secrets")

ENVIRON_KEY = "parameters_secrets.values"
# Where WSGI-on-Lambda adapters put the Lambda context: apig-wsgi, serverless-wsgi.
CONTEXT_KEYS = ("apig_wsgi.context", "serverless.context")

if TYPE_CHECKING:  # typeshed's WSGI types (PEP 3333), for type checkers only
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    OnFailure = Callable[[LoadError], WSGIApplication]

_UNAVAILABLE_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(UNAVAILABLE_BODY))),
    ("Retry-After", str(RETRY_AFTER_SECONDS)),
    ("Cache-Control", "no-store"),
]


class ParametersSecretsWSGIMiddleware(StoreMiddleware["WSGIApplication", "OnFailure"]):
    """Put declared SSM parameters and Secrets Manager secrets on every request of a WSGI
    app (Flask, Django), under any WSGI server or WSGI-on-Lambda adapter, without an ASGI
    adapter.

    The same store and semantics as :class:`ParametersSecretsMiddleware`. Before calling
    the app it loads the values (the first request fetches them, however many arrive at
    once; later ones read the cache), puts them in ``environ["parameters_secrets.values"]``
    and makes :func:`current_values` return them while the request (its response body
    included) is handled. A required value that cannot be loaded answers 503 without
    calling the app. When the environ carries a Lambda context (apig-wsgi's
    ``apig_wsgi.context``, serverless-wsgi's ``serverless.context``), loading ends in time
    to answer before the invocation does.

    Args:
        app: The WSGI app to wrap.
        values: A :class:`ParametersSecrets` store shared with the rest of the app; or the
            declarations themselves, key (a Python identifier) to :class:`Parameter`,
            :class:`Secret` or :class:`ParametersByPath`, for a store of its own.
        source: Where values come from (only with a mapping).
        settings: Cache settings (only with a mapping); default ``Settings.from_env()``.
        exclude_paths: Paths whose requests reach the app without loading values; an
            entry ending in ``*`` is a prefix.
        on_failure: Given the :class:`LoadError`, returns the WSGI app that answers a
            request whose values could not be loaded; default a 503
            ``{"detail": "Service Unavailable"}`` with ``Retry-After``. If it raises or
            returns something that is not callable, the default is sent and an ERROR
            logged.

    Raises:
        ConfigurationError: A key, declaration or argument is not valid, or a setting is
            out of range.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        script_name = environ.get("SCRIPT_NAME", "")
        path = script_name + environ.get("PATH_INFO", "")
        if self._excluding and self._excluded_paths.match(path, script_name):
            return self.app(environ, start_response)
        values = self.store.cached()
        if values is None:
            try:
                values = self.store.load_sync(deadline=deadline(_lambda_context(environ)))
            except LoadError as error:
                return self._refuse(environ, start_response, error)
        environ[ENVIRON_KEY] = values
        token = _current.set(values)
        try:
            body = self.app(environ, start_response)
        finally:
            _current.reset(token)
        return _with_values(body, values, environ)

    def _refuse(
        self, environ: WSGIEnvironment, start_response: StartResponse, error: LoadError
    ) -> Iterable[bytes]:
        # The keys and codes were logged (ERROR) by the store; the caller learns nothing.
        if self._on_failure is not None:
            try:
                answer = self._on_failure(error)
                if not callable(answer):
                    logger.error(
                        "on_failure must return a WSGI app, not %s; answering 503",
                        type(answer).__name__,
                    )
                else:
                    return answer(environ, start_response)
            except Exception as exc:  # noqa: BLE001 - the user's code failed: we answer 503
                logger.error(
                    "on_failure or its answer raised %s; answering 503", type(exc).__name__
                )
        start_response("503 Service Unavailable", list(_UNAVAILABLE_HEADERS))
        return [UNAVAILABLE_BODY]


def _lambda_context(environ: WSGIEnvironment) -> object:
    """The Lambda context a WSGI-on-Lambda adapter put in the environ, if any."""
    return next((environ[k] for k in CONTEXT_KEYS if k in environ), None)


def _with_values(
    body: Iterable[bytes], values: Values, environ: WSGIEnvironment
) -> Iterable[bytes]:
    """The app's response body as the server gets it: with :func:`current_values` set
    whenever the app's code runs for it."""
    if _runs_no_app_code(body, environ):
        return body  # as the app gave it: its len() and sendfile reach the server
    if hasattr(body, "__len__"):
        return _SizedWithValues(body, values)
    return _WithValues(body, values)


def _runs_no_app_code(body: Iterable[bytes], environ: WSGIEnvironment) -> bool:
    """Whether the server can iterate and close ``body`` without running the app's code,
    so that nothing there could read :func:`current_values`: a list or tuple (the body
    made already), or the server's own ``wsgi.file_wrapper``, which a server recognises
    by its type to send the file with ``sendfile`` (gunicorn, wsgiref)."""
    if isinstance(body, (list, tuple)) and not hasattr(body, "close"):
        return True
    file_wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(file_wrapper, type) and isinstance(body, file_wrapper)


class _WithValues:
    """The app's response, with :func:`current_values` set whenever the app's code runs for
    it: each chunk of a streamed body, and ``close()``; and never in between, so nothing is
    left set in a server's thread, whatever the server does with the body."""

    __slots__ = ("_body", "_values")

    def __init__(self, body: Iterable[bytes], values: Values) -> None:
        self._body = body
        self._values = values

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._body)
        while True:
            token = _current.set(self._values)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                _current.reset(token)
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            token = _current.set(self._values)
            try:
                close()
            finally:
                _current.reset(token)


class _SizedWithValues(_WithValues):
    """As :class:`_WithValues`, for a body with a length (its number of chunks): a server
    that sees one chunk sets ``Content-Length`` from it (wsgiref does)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._body)  # type: ignore[arg-type]  # checked: it has __len__
