"""The extension's environment variables, parsed and validated.

Two steps, whatever the origin of a value: :meth:`Settings.from_env` only turns the
environment's strings into typed values, and one validator (``Settings.__post_init__``)
checks every value, so ``Settings(parameter_ttl=400)`` and ``SSM_PARAMETER_STORE_TTL=400``
behave the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from .exceptions import ConfigurationError

LogLevel = Literal["debug", "info", "warn", "warning", "error", "none"]

logger = logging.getLogger("parameters_secrets")

MAX_TTL = 300
MAX_TIMEOUT_MS = 3_600_000
# An integer variable has at most this many digits: more than any range here needs, and
# far below Python's limit on converting digits to int (4,300), which raises ValueError.
MAX_DIGITS = 18
_LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 1,
}
_LOG_LEVEL_ALIASES = {"warning": "warn"}  # what Python's logging calls it


@dataclass(frozen=True)
class Settings:
    """The cache and connection settings, with the extension's defaults.

    ``Settings.from_env()`` reads the extension's environment variables; keyword
    arguments given to it win over the environment. Every value, from the environment or
    an argument, goes through the same validation: a value out of range is a
    :class:`ConfigurationError` naming the variable (or the argument) and its range, with
    one exception, the extension's own: a TTL above 300 is clamped to 300 with a warning.

    Args:
        parameter_ttl: ``SSM_PARAMETER_STORE_TTL``, seconds (0 to 300; more is clamped to
            300 with a warning); 0 bypasses the cache for parameters.
        secret_ttl: ``SECRETS_MANAGER_TTL``, seconds, likewise; 0 bypasses it for secrets.
        cache_enabled: ``PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED``.
        cache_size: ``PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE``, entries (0 to 1000);
            0 bypasses the cache.
        http_port: ``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` (1 to 65535).
        max_connections: ``PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`` (at least 1),
            connections per upstream AWS client.
        log_level: ``PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL``: the level of the
            ``parameters_secrets`` logger (``"warning"`` is ``"warn"``). ``None`` (unset)
            leaves the logger's level as the app configured it.
        parameter_timeout_ms: ``SSM_PARAMETER_STORE_TIMEOUT_MILLIS`` (0 to 3,600,000);
            0 means no timeout of ours.
        secret_timeout_ms: ``SECRETS_MANAGER_TIMEOUT_MILLIS``; likewise.
        stale_if_error: ``PARAMETERS_SECRETS_STALE_IF_ERROR``: serve the previous value
            when a refresh fails for a transient reason.
        source: ``PARAMETERS_SECRETS_SOURCE``: ``extension``, ``aws``,
            ``cloud-extensions`` (experimental) or ``file:PATH``; ``None`` picks the
            extension in Lambda and AWS elsewhere.
        extension_fallback: ``PARAMETERS_SECRETS_EXTENSION_FALLBACK``: on Lambda, where
            the default source asks for values while the extension is not serving yet
            (Lambda's INIT phase): ``"aws"`` (AWS directly, with the function's
            credentials) or ``"none"`` (ask the extension again for up to 1 s, then fail).
        metrics: ``PARAMETERS_SECRETS_METRICS``: export the cache's counters as
            OpenTelemetry metrics (``"otel"``, needs the ``[otel]`` extra) or as CloudWatch
            embedded metric format lines on stdout (``"emf"``); ``None`` (unset, empty or
            ``none``, the default): off, and nothing of it imported.
    """

    parameter_ttl: int = 300
    secret_ttl: int = 300
    cache_enabled: bool = True
    cache_size: int = 1000
    http_port: int = 2773
    max_connections: int = 3
    log_level: LogLevel | None = None
    parameter_timeout_ms: int = 0
    secret_timeout_ms: int = 0
    stale_if_error: bool = True
    source: str | None = None
    extension_fallback: Literal["aws", "none"] = "aws"
    metrics: Literal["otel", "emf"] | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            checked = _RULES[field.name].check(field.name, value)
            if checked is not value:  # normalised: a clamped TTL, "warning"
                object.__setattr__(self, field.name, checked)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the extension's environment variables; ``overrides`` win over them.

        Raises:
            ConfigurationError: A variable does not parse or is out of range (the message
                names the variable and its range), or an override is unknown or invalid.
        """
        environ = os.environ if environ is None else environ
        _check_overrides(overrides)
        raw_values = _variables_set(environ, overrides)
        values = {name: _parsed(name, raw) for name, raw in raw_values.items()}
        try:
            return cls(**values, **overrides)
        except _InvalidSetting as error:
            if error.setting not in raw_values:
                raise
            raise _invalid(
                ENVIRONMENT[error.setting], error.setting, raw_values[error.setting]
            ) from None

    def cache_bypassed(self, kind: str) -> bool:
        """Whether the cache is off for every value, or for one kind by its TTL."""
        ttl = self.parameter_ttl if kind == "parameter" else self.secret_ttl
        return not self.cache_enabled or self.cache_size == 0 or ttl == 0

    @property
    def logging_level(self) -> int | None:
        """``log_level`` as a :mod:`logging` level; ``None`` if unset."""
        return None if self.log_level is None else _LOG_LEVELS[self.log_level]

    def apply_log_level(self) -> None:
        """Set the ``parameters_secrets`` logger's level, if ``log_level`` is set.

        Unset, the logger is left alone: building a middleware does not undo a level the
        app gave it.
        """
        level = self.logging_level
        if level is not None:
            logger.setLevel(level)


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
    "extension_fallback": "PARAMETERS_SECRETS_EXTENSION_FALLBACK",
    "metrics": "PARAMETERS_SECRETS_METRICS",
}


class _InvalidSetting(ConfigurationError):
    """A setting failed validation; ``from_env`` renames it after its variable."""

    def __init__(self, setting: str, value: object) -> None:
        super().__init__(f"{setting} must be {_RULES[setting].allowed}, not {_shown(value)}")
        self.setting = setting


def _parsed(name: str, raw: str) -> Any:
    """A setting's environment variable's text, parsed; else the error naming it."""
    try:
        return _RULES[name].parse(raw)
    except ValueError:
        raise _invalid(ENVIRONMENT[name], name, raw) from None


def _invalid(variable: str, setting: str, raw: str) -> ConfigurationError:
    rule = _RULES[setting]
    allowed = rule.allowed_in_environment or rule.allowed
    return ConfigurationError(f"{variable} must be {allowed}, not {_shown(raw)}")


def _shown(value: object) -> str:
    # A configuration value is no secret, but a 5,000-digit one is no message either
    # (and repr() of an int that long raises ValueError).
    if isinstance(value, int) and abs(value) >= 10**MAX_DIGITS:
        return f"an integer of more than {MAX_DIGITS} digits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} characters)"


# -- parsing: the environment's strings to typed values ---------------------------------


def _parse_int(raw: str) -> int:
    # ASCII digits only: int() would also take "1_0", " 7", "+5" or "٣".
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS):
        raise ValueError(raw)
    return int(raw)


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise ValueError(raw)
    return lowered == "true"


def _parse_text(raw: str) -> str:
    return raw


# -- validation: one check per setting, whatever its origin -----------------------------


@dataclass(frozen=True)
class _Rule:
    parse: Callable[[str], Any]
    check: Callable[[str, Any], Any]  # returns the value, normalised, or raises
    allowed: str  # for messages: "an integer 0 to 1000"
    allowed_in_environment: str | None = None  # where the variable's spelling differs


def _integer(low: int, high: int | None) -> Callable[[str, Any], Any]:
    def check(setting: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _InvalidSetting(setting, value)
        if value < low or (high is not None and value > high):
            raise _InvalidSetting(setting, value)
        return value

    return check


def _ttl(setting: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _InvalidSetting(setting, value)
    if value > MAX_TTL:
        # What the extension does with a TTL above its maximum.
        logger.warning(
            "%s (%s) is %d, above %d seconds; using %d",
            setting,
            ENVIRONMENT[setting],
            value,
            MAX_TTL,
            MAX_TTL,
        )
        return MAX_TTL
    return value


def _boolean(setting: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise _InvalidSetting(setting, value)
    return value


def _log_level(setting: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in (*_LOG_LEVELS, *_LOG_LEVEL_ALIASES):
        raise _InvalidSetting(setting, value)
    lowered = value.lower()
    normalised = _LOG_LEVEL_ALIASES.get(lowered, lowered)
    return value if normalised == value else normalised


def _one_of(*allowed: str) -> Callable[[str, Any], Any]:
    def check(setting: str, value: Any) -> Any:
        if not isinstance(value, str) or value.lower() not in allowed:
            raise _InvalidSetting(setting, value)
        return value if value == value.lower() else value.lower()

    return check


def _check_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse an override that names no setting."""
    unknown = set(overrides) - set(ENVIRONMENT)
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")


def _variables_set(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, str]:
    """Each setting's variable, stripped, if it is set (not blank) and not overridden."""
    return {
        name: raw
        for name, variable in ENVIRONMENT.items()
        if name not in overrides and (raw := environ.get(variable, "").strip())
    }


def _source(setting: str, value: Any) -> Any:
    if value is None or value in ("extension", "aws", "cloud-extensions"):
        return value
    if isinstance(value, str) and value.startswith("file:") and len(value) > len("file:"):
        return value
    raise _InvalidSetting(setting, value)


def _metrics(setting: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    return _one_of("otel", "emf")(setting, value)


_TTL_RANGE = f"an integer 0 to {MAX_TTL} (more is clamped to {MAX_TTL})"
_RULES: dict[str, _Rule] = {
    "parameter_ttl": _Rule(_parse_int, _ttl, _TTL_RANGE),
    "secret_ttl": _Rule(_parse_int, _ttl, _TTL_RANGE),
    "cache_enabled": _Rule(_parse_bool, _boolean, "True or False", "TRUE or FALSE"),
    "cache_size": _Rule(_parse_int, _integer(0, 1000), "an integer 0 to 1000"),
    "http_port": _Rule(_parse_int, _integer(1, 65535), "an integer 1 to 65535"),
    "max_connections": _Rule(_parse_int, _integer(1, None), "an integer, at least 1"),
    "log_level": _Rule(_parse_text, _log_level, "one of debug, info, warn, error, none"),
    "parameter_timeout_ms": _Rule(
        _parse_int, _integer(0, MAX_TIMEOUT_MS), f"an integer 0 to {MAX_TIMEOUT_MS}"
    ),
    "secret_timeout_ms": _Rule(
        _parse_int, _integer(0, MAX_TIMEOUT_MS), f"an integer 0 to {MAX_TIMEOUT_MS}"
    ),
    "stale_if_error": _Rule(_parse_bool, _boolean, "True or False", "TRUE or FALSE"),
    "source": _Rule(_parse_text, _source, "'extension', 'aws', 'cloud-extensions' or 'file:PATH'"),
    "extension_fallback": _Rule(_parse_text, _one_of("aws", "none"), "'aws' or 'none'"),
    "metrics": _Rule(_parse_text, _metrics, "'otel', 'emf' or 'none'"),
}
