"""The extension's environment variables, parsed and validated."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from .exceptions import ConfigurationError

LogLevel = Literal["debug", "info", "warn", "error", "none"]

logger = logging.getLogger("parameters_secrets")

MAX_TTL = 300
_LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 1,
}


@dataclass(frozen=True)
class Settings:
    """The cache and connection settings, with the extension's defaults.

    ``Settings.from_env()`` reads the extension's environment variables; keyword
    arguments given to it win over the environment. Every value is validated: a value out
    of range is a :class:`ConfigurationError` naming the setting and its range.

    Args:
        parameter_ttl: ``SSM_PARAMETER_STORE_TTL``, seconds (0 to 300); 0 bypasses the
            cache for parameters.
        secret_ttl: ``SECRETS_MANAGER_TTL``, seconds (0 to 300); 0 bypasses it for secrets.
        cache_enabled: ``PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED``.
        cache_size: ``PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE``, entries (0 to 1000);
            0 bypasses the cache.
        http_port: ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` (1 to 65535).
        max_connections: ``PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`` (at least 1),
            connections per upstream AWS client.
        log_level: ``PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL``, the level of the
            ``parameters_secrets`` logger.
        parameter_timeout_ms: ``SSM_PARAMETER_STORE_TIMEOUT_MILLIS``; 0 means no timeout
            beyond the Lambda's remaining time.
        secret_timeout_ms: ``SECRETS_MANAGER_TIMEOUT_MILLIS``; likewise.
        stale_if_error: ``PARAMETERS_SECRETS_STALE_IF_ERROR``: serve the previous value
            when a refresh fails for a transient reason.
        source: ``PARAMETERS_SECRETS_SOURCE``: ``extension``, ``aws`` or ``file:PATH``;
            ``None`` picks the extension in Lambda and AWS elsewhere.
    """

    parameter_ttl: int = 300
    secret_ttl: int = 300
    cache_enabled: bool = True
    cache_size: int = 1000
    http_port: int = 2773
    max_connections: int = 3
    log_level: LogLevel = "info"
    parameter_timeout_ms: int = 0
    secret_timeout_ms: int = 0
    stale_if_error: bool = True
    source: str | None = None

    def __post_init__(self) -> None:
        _check_int("parameter_ttl", self.parameter_ttl, 0, MAX_TTL)
        _check_int("secret_ttl", self.secret_ttl, 0, MAX_TTL)
        _check_int("cache_size", self.cache_size, 0, 1000)
        _check_int("http_port", self.http_port, 1, 65535)
        _check_int("max_connections", self.max_connections, 1, None)
        _check_int("parameter_timeout_ms", self.parameter_timeout_ms, 0, None)
        _check_int("secret_timeout_ms", self.secret_timeout_ms, 0, None)
        for name in ("cache_enabled", "stale_if_error"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be True or False")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigurationError(
                f"log_level must be one of {', '.join(_LOG_LEVELS)}, not {self.log_level!r}"
            )
        if self.source is not None and not (
            self.source in ("extension", "aws")
            or (self.source.startswith("file:") and len(self.source) > len("file:"))
        ):
            raise ConfigurationError(
                f"source must be 'extension', 'aws' or 'file:PATH', not {self.source!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the extension's environment variables; ``overrides`` win over them."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            if field.name in overrides:
                continue
            variable = ENVIRONMENT[field.name]
            raw = environ.get(variable, "").strip()
            if raw:
                values[field.name] = _PARSERS[field.name](variable, raw)
        unknown = set(overrides) - {field.name for field in fields(cls)}
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values, **overrides)

    def cache_bypassed(self, kind: str) -> bool:
        """Whether the cache is off for every value, or for one kind by its TTL."""
        ttl = self.parameter_ttl if kind == "parameter" else self.secret_ttl
        return not self.cache_enabled or self.cache_size == 0 or ttl == 0

    @property
    def logging_level(self) -> int:
        """``log_level`` as a :mod:`logging` level."""
        return _LOG_LEVELS[self.log_level]


ENVIRONMENT: dict[str, str] = {
    "parameter_ttl": "SSM_PARAMETER_STORE_TTL",
    "secret_ttl": "SECRETS_MANAGER_TTL",
    "cache_enabled": "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
    "cache_size": "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
    "http_port": "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
    "max_connections": "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS",
    "log_level": "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
    "parameter_timeout_ms": "SSM_PARAMETER_STORE_TIMEOUT_MILLIS",
    "secret_timeout_ms": "SECRETS_MANAGER_TIMEOUT_MILLIS",
    "stale_if_error": "PARAMETERS_SECRETS_STALE_IF_ERROR",
    "source": "PARAMETERS_SECRETS_SOURCE",
}


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        raise ConfigurationError(f"{name} must be an integer {_allowed(low, high)}, not {value!r}")


def _allowed(low: int, high: int | None) -> str:
    return f"{low} to {high}" if high is not None else f"at least {low}"


def _parse_int(variable: str, raw: str, low: int, high: int | None) -> int:
    # ASCII digits only: int() would also take "1_0", " 7" or "٣".
    value = int(raw) if raw.isascii() and raw.isdigit() else -1
    if value < low or (high is not None and value > high):
        raise ConfigurationError(
            f"{variable} must be an integer {_allowed(low, high)}, not {raw!r}"
        )
    return value


def _parse_ttl(variable: str, raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigurationError(f"{variable} must be an integer 0 to {MAX_TTL}, not {raw!r}")
    value = int(raw)
    if value > MAX_TTL:
        # What the extension does with a TTL above its maximum.
        logger.warning("%s=%d is above %d seconds; using %d", variable, value, MAX_TTL, MAX_TTL)
        return MAX_TTL
    return value


def _parse_bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise ConfigurationError(f"{variable} must be TRUE or FALSE, not {raw!r}")
    return lowered == "true"


def _parse_log_level(variable: str, raw: str) -> str:
    lowered = raw.lower()
    lowered = "warn" if lowered == "warning" else lowered
    if lowered not in _LOG_LEVELS:
        raise ConfigurationError(
            f"{variable} must be one of debug, info, warn, error, none, not {raw!r}"
        )
    return lowered


def _parse_source(variable: str, raw: str) -> str:
    if raw in ("extension", "aws") or (raw.startswith("file:") and len(raw) > len("file:")):
        return raw
    raise ConfigurationError(f"{variable} must be 'extension', 'aws' or 'file:PATH', not {raw!r}")


_PARSERS: dict[str, Any] = {
    "parameter_ttl": _parse_ttl,
    "secret_ttl": _parse_ttl,
    "cache_enabled": _parse_bool,
    "cache_size": lambda variable, raw: _parse_int(variable, raw, 0, 1000),
    "http_port": lambda variable, raw: _parse_int(variable, raw, 1, 65535),
    "max_connections": lambda variable, raw: _parse_int(variable, raw, 1, None),
    "log_level": _parse_log_level,
    "parameter_timeout_ms": lambda variable, raw: _parse_int(variable, raw, 0, None),
    "secret_timeout_ms": lambda variable, raw: _parse_int(variable, raw, 0, None),
    "stale_if_error": _parse_bool,
    "source": _parse_source,
}
