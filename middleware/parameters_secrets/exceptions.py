"""Errors raised by parameters_secrets. None of them ever carries a value."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ConfigurationError", "FetchError", "LoadError", "ParametersSecretsError"]

NOT_FOUND_CODES = frozenset(
    {
        "ParameterNotFound",
        "ParameterVersionNotFound",
        "ParameterVersionLabelNotFound",
        "ResourceNotFoundException",
    }
)


class ParametersSecretsError(Exception):
    """Base class for every error this library raises."""


class ConfigurationError(ParametersSecretsError, ValueError):
    """A declaration, argument or environment variable is not valid."""


class FetchError(ParametersSecretsError):
    """A value could not be loaded from its source.

    Attributes:
        code: The AWS error code (``ParameterNotFound``, ``AccessDeniedException``,
            ``ThrottlingException``...) or one of ours for failures AWS has no code for
            (``Timeout``, ``ConnectionError``, ``MalformedResponse``, ``TransformFailed``).
        transient: Whether trying again later may succeed (timeouts, connection
            errors, 5xx, throttling). Not-found and access-denied are not transient.
        status: The HTTP status the source answered with, if it answered.
    """

    def __init__(
        self, message: str, *, code: str, transient: bool = False, status: int | None = None
    ) -> None:
        """A failure with the ``code`` that says what kind (see Attributes)."""
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.status = status

    @property
    def not_found(self) -> bool:
        """Whether the value (or the version asked for) does not exist."""
        return self.code in NOT_FOUND_CODES

    def __reduce__(self) -> tuple[object, ...]:
        """Keep keyword-only attributes through pickling (multiprocessing, test runners)."""
        return (_rebuild_fetch_error, (str(self), self.code, self.transient, self.status))


class LoadError(ParametersSecretsError):
    """Required values could not be loaded.

    Attributes:
        failures: Each required key that failed, to the :class:`FetchError` that says why.
    """

    def __init__(self, failures: Mapping[str, FetchError]) -> None:
        """The error for ``failures``; its message names each key and code, never a value."""
        self.failures = dict(failures)
        described = ", ".join(f"{key!r} ({error.code})" for key, error in self.failures.items())
        super().__init__(f"could not load {described}")

    def __reduce__(self) -> tuple[object, ...]:
        """Rebuilt from its failures, through pickling."""
        return (LoadError, (self.failures,))


def _rebuild_fetch_error(
    message: str,
    code: str,
    transient: bool,  # noqa: FBT001 - pickle passes it positionally
    status: int | None,
) -> FetchError:
    return FetchError(message, code=code, transient=transient, status=status)
