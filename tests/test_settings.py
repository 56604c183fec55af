"""Settings: the extension's environment variables, parsed and validated."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from parameters_secrets import ConfigurationError, ParametersSecretsMiddleware, Settings
from parameters_secrets._settings import ENVIRONMENT
from parameters_secrets.sources import StaticSource

DESIGN_DEFAULTS: dict[str, Any] = {
    "parameter_ttl": 300,
    "secret_ttl": 300,
    "cache_enabled": True,
    "cache_size": 1000,
    "http_port": 2773,
    "max_connections": 3,
    "log_level": None,
    "parameter_timeout_ms": 0,
    "secret_timeout_ms": 0,
    "stale_if_error": True,
    "source": None,
    "extension_fallback": "aws",
    "metrics": None,
}


def test_defaults_are_the_design_table() -> None:
    assert dataclasses.asdict(Settings()) == DESIGN_DEFAULTS


def test_empty_environment_gives_the_defaults() -> None:
    assert Settings.from_env(environ={}) == Settings()


def test_every_setting_has_its_environment_variable() -> None:
    assert ENVIRONMENT == {
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


@pytest.mark.parametrize(
    ("variable", "raw", "field", "expected"),
    [
        ("SSM_PARAMETER_STORE_TTL", "42", "parameter_ttl", 42),
        ("SSM_PARAMETER_STORE_TTL", "0", "parameter_ttl", 0),
        ("SSM_PARAMETER_STORE_TTL", " 17 ", "parameter_ttl", 17),
        ("SECRETS_MANAGER_TTL", "120", "secret_ttl", 120),
        ("SECRETS_MANAGER_TTL", "0", "secret_ttl", 0),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "FALSE", "cache_enabled", False),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false", "cache_enabled", False),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "TRUE", "cache_enabled", True),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "0", "cache_size", 0),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "25", "cache_size", 25),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "1", "http_port", 1),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "65535", "http_port", 65535),
        ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "1", "max_connections", 1),
        ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "64", "max_connections", 64),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug", "log_level", "debug"),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "DEBUG", "log_level", "debug"),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "warn", "log_level", "warn"),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "WARNING", "log_level", "warn"),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "error", "log_level", "error"),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "none", "log_level", "none"),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "1500", "parameter_timeout_ms", 1500),
        ("SECRETS_MANAGER_TIMEOUT_MILLIS", "2500", "secret_timeout_ms", 2500),
        ("PARAMETERS_SECRETS_STALE_IF_ERROR", "FALSE", "stale_if_error", False),
        ("PARAMETERS_SECRETS_SOURCE", "extension", "source", "extension"),
        ("PARAMETERS_SECRETS_SOURCE", "aws", "source", "aws"),
        ("PARAMETERS_SECRETS_SOURCE", "file:/tmp/values.json", "source", "file:/tmp/values.json"),
    ],
)
def test_environment_variable_sets_its_setting_and_nothing_else(
    variable: str, raw: str, field: str, expected: object
) -> None:
    settings = Settings.from_env(environ={variable: raw})
    assert getattr(settings, field) == expected
    assert type(getattr(settings, field)) is type(expected)
    changes: dict[str, Any] = {field: expected}
    assert settings == dataclasses.replace(Settings(), **changes)


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSM_PARAMETER_STORE_TTL", "30")
    monkeypatch.setenv("SECRETS_MANAGER_TTL", "45")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "FALSE")
    settings = Settings.from_env()
    assert (settings.parameter_ttl, settings.secret_ttl, settings.cache_enabled) == (30, 45, False)


def test_every_variable_at_once() -> None:
    environ = {
        "SSM_PARAMETER_STORE_TTL": "1",
        "SECRETS_MANAGER_TTL": "2",
        "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED": "false",
        "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE": "3",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "4",
        "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS": "5",
        "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "error",
        "SSM_PARAMETER_STORE_TIMEOUT_MILLIS": "6",
        "SECRETS_MANAGER_TIMEOUT_MILLIS": "7",
        "PARAMETERS_SECRETS_STALE_IF_ERROR": "false",
        "PARAMETERS_SECRETS_SOURCE": "aws",
    }
    assert Settings.from_env(environ=environ) == Settings(
        parameter_ttl=1,
        secret_ttl=2,
        cache_enabled=False,
        cache_size=3,
        http_port=4,
        max_connections=5,
        log_level="error",
        parameter_timeout_ms=6,
        secret_timeout_ms=7,
        stale_if_error=False,
        source="aws",
    )


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_variable_counts_as_unset(raw: str) -> None:
    environ = dict.fromkeys(ENVIRONMENT.values(), raw)
    assert Settings.from_env(environ=environ) == Settings()


# --- bad values ----------------------------------------------------------------------------

BAD_VALUES = [
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "many", "0 to 1000"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "-1", "0 to 1000"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1001", "0 to 1000"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "2.5", "0 to 1000"),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "0", "1 to 65535"),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "65536", "1 to 65535"),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "http", "1 to 65535"),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "0", "at least 1"),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "-3", "at least 1"),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "three", "at least 1"),
    ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "-1", "0 to 3600000"),
    ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "1s", "0 to 3600000"),
    ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "3600001", "0 to 3600000"),
    ("SECRETS_MANAGER_TIMEOUT_MILLIS", "-5", "0 to 3600000"),
    ("SECRETS_MANAGER_TIMEOUT_MILLIS", "99999999999", "0 to 3600000"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "yes", "TRUE or FALSE"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "1", "TRUE or FALSE"),
    ("PARAMETERS_SECRETS_STALE_IF_ERROR", "no", "TRUE or FALSE"),
    ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "verbose", "debug, info, warn, error, none"),
    ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "trace", "debug, info, warn, error, none"),
    ("PARAMETERS_SECRETS_SOURCE", "s3", "'extension', 'aws', 'cloud-extensions' or 'file:PATH'"),
    ("PARAMETERS_SECRETS_SOURCE", "file:", "'extension', 'aws', 'cloud-extensions' or 'file:PATH'"),
    (
        "PARAMETERS_SECRETS_SOURCE",
        "Extension",
        "'extension', 'aws', 'cloud-extensions' or 'file:PATH'",
    ),
]


@pytest.mark.parametrize(("variable", "raw", "allowed"), BAD_VALUES)
def test_bad_value_is_an_error_naming_the_variable_and_its_range(
    variable: str, raw: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(environ={variable: raw})
    assert variable in str(info.value)
    assert allowed in str(info.value)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize("variable", ["SSM_PARAMETER_STORE_TTL", "SECRETS_MANAGER_TTL"])
@pytest.mark.parametrize("raw", ["soon", "-1", "1.5"])
def test_bad_ttl_is_an_error_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(environ={variable: raw})
    assert variable in str(info.value)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize("raw", ["-1", "soon"])
def test_bad_ttl_error_names_the_documented_range(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(environ={"SSM_PARAMETER_STORE_TTL": raw})
    assert "0 to 300" in str(info.value)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"):
        Settings.from_env(environ={"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "0"})


# --- TTL clamping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "field"),
    [("SSM_PARAMETER_STORE_TTL", "parameter_ttl"), ("SECRETS_MANAGER_TTL", "secret_ttl")],
)
@pytest.mark.parametrize("raw", ["301", "86400"])
def test_ttl_above_300_is_clamped_with_a_warning(
    caplog: pytest.LogCaptureFixture, variable: str, field: str, raw: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        settings = Settings.from_env(environ={variable: raw})
    assert getattr(settings, field) == 300
    [record] = caplog.records
    assert record.name == "parameters_secrets"
    assert record.levelno == logging.WARNING
    assert variable in record.getMessage()
    assert raw in record.getMessage()


def test_ttl_of_exactly_300_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="parameters_secrets"):
        settings = Settings.from_env(environ={"SSM_PARAMETER_STORE_TTL": "300"})
    assert settings.parameter_ttl == 300
    assert caplog.records == []


# --- explicit arguments --------------------------------------------------------------------


def test_explicit_override_wins_over_the_environment() -> None:
    environ = {"SSM_PARAMETER_STORE_TTL": "10", "SECRETS_MANAGER_TTL": "20"}
    settings = Settings.from_env(environ=environ, parameter_ttl=99)
    assert settings.parameter_ttl == 99
    assert settings.secret_ttl == 20


def test_explicit_override_makes_a_bad_environment_value_irrelevant() -> None:
    settings = Settings.from_env(environ={"SSM_PARAMETER_STORE_TTL": "bogus"}, parameter_ttl=5)
    assert settings.parameter_ttl == 5


def test_unknown_override_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="parameter_tll"):
        Settings.from_env(environ={}, parameter_tll=5)


def test_explicit_override_is_validated_like_the_environment() -> None:
    with pytest.raises(ConfigurationError, match="parameter_ttl"):
        Settings.from_env(environ={}, parameter_ttl=-1)
    assert Settings.from_env(environ={}, parameter_ttl=301).parameter_ttl == 300


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("parameter_ttl", -1, "0 to 300"),
        ("secret_ttl", -1, "0 to 300"),
        ("parameter_ttl", True, "0 to 300"),
        ("parameter_ttl", 1.5, "0 to 300"),
        ("parameter_ttl", "60", "0 to 300"),
        ("cache_size", 1001, "0 to 1000"),
        ("http_port", 0, "1 to 65535"),
        ("http_port", 65536, "1 to 65535"),
        ("max_connections", 0, "at least 1"),
        ("parameter_timeout_ms", -1, "0 to 3600000"),
        pytest.param("parameter_timeout_ms", 10**5000, "0 to 3600000", id="5000-digit-int"),
        ("secret_timeout_ms", 3_600_001, "0 to 3600000"),
        ("max_connections", 2.0, "at least 1"),
        ("cache_enabled", "TRUE", "True or False"),
        ("stale_if_error", 1, "True or False"),
        ("log_level", "verbose", "debug, info, warn, error, none"),
        ("log_level", 10, "debug, info, warn, error, none"),
        ("source", "s3", "'extension', 'aws', 'cloud-extensions' or 'file:PATH'"),
        ("source", "file:", "'extension', 'aws', 'cloud-extensions' or 'file:PATH'"),
    ],
)
def test_explicit_bad_setting_is_an_error_naming_it_and_its_range(
    field: str, value: object, allowed: str
) -> None:
    arguments: dict[str, Any] = {field: value}
    with pytest.raises(ConfigurationError) as info:
        Settings(**arguments)
    assert field in str(info.value)
    assert allowed in str(info.value)


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.parameter_ttl = 5  # type: ignore[misc]


# --- log level and bypass ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
    ],
)
def test_log_level_maps_to_a_logging_level(raw: str, level: int) -> None:
    environ = {"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": raw}
    assert Settings.from_env(environ=environ).logging_level == level


def test_log_level_none_silences_even_critical() -> None:
    settings = Settings.from_env(environ={"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": "none"})
    assert settings.logging_level == logging.CRITICAL + 1
    logger = logging.getLogger("parameters_secrets")
    settings.apply_log_level()  # conftest restores the level
    assert not logger.isEnabledFor(logging.CRITICAL)


def test_default_log_level_is_unset() -> None:
    assert Settings().log_level is None
    assert Settings().logging_level is None


@pytest.mark.parametrize(
    ("settings", "parameter_bypassed", "secret_bypassed"),
    [
        (Settings(), False, False),
        (Settings(parameter_ttl=0), True, False),
        (Settings(secret_ttl=0), False, True),
        (Settings(cache_enabled=False), True, True),
        (Settings(cache_size=0), True, True),
    ],
)
def test_cache_bypassed_by_ttl_zero_size_zero_or_disabled(
    settings: Settings, parameter_bypassed: bool, secret_bypassed: bool
) -> None:
    assert settings.cache_bypassed("parameter") is parameter_bypassed
    assert settings.cache_bypassed("secret") is secret_bypassed


@pytest.mark.parametrize("raw", ["1_0", "٣", "+5", "1e2"])
def test_integers_are_plain_ascii_digits(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"):
        Settings.from_env({"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE": raw})
    with pytest.raises(ConfigurationError, match="SSM_PARAMETER_STORE_TTL"):
        Settings.from_env({"SSM_PARAMETER_STORE_TTL": raw})


# --- any size of input ---------------------------------------------------------------------

INTEGER_VARIABLES = [
    "SSM_PARAMETER_STORE_TTL",
    "SECRETS_MANAGER_TTL",
    "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
    "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS",
    "SSM_PARAMETER_STORE_TIMEOUT_MILLIS",
    "SECRETS_MANAGER_TIMEOUT_MILLIS",
]


@pytest.mark.parametrize("variable", INTEGER_VARIABLES)
@pytest.mark.parametrize(
    "raw", ["9" * 5000, "1" + "0" * 4300, "9" * 19], ids=["5000", "4301", "19"]
)
def test_integer_of_any_length_is_an_error_naming_the_variable(variable: str, raw: str) -> None:
    # int() refuses more than 4,300 digits with a bare ValueError; this must not leak out.
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(environ={variable: raw})
    assert type(info.value) is ConfigurationError
    message = str(info.value)
    assert message.startswith(f"{variable} must be an integer")
    assert len(message) < 200  # the value is cut short, not quoted whole
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize("variable", INTEGER_VARIABLES)
def test_integer_of_eighteen_digits_parses_then_meets_its_range(variable: str) -> None:
    field = next(name for name, var in ENVIRONMENT.items() if var == variable)
    if field in ("parameter_ttl", "secret_ttl"):
        assert getattr(Settings.from_env(environ={variable: "9" * 18}), field) == 300
    elif field == "max_connections":
        assert Settings.from_env(environ={variable: "9" * 18}).max_connections == 10**18 - 1
    else:
        with pytest.raises(ConfigurationError, match=variable):
            Settings.from_env(environ={variable: "9" * 18})


def test_explicit_integer_of_thousands_of_digits_is_an_error_without_quoting_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(cache_size=10**5000)
    assert str(info.value) == (
        "cache_size must be an integer 0 to 1000, not an integer of more than 18 digits"
    )


# --- one validation path: the environment and arguments behave the same ------------------


@pytest.mark.parametrize(
    ("variable", "field"),
    [("SSM_PARAMETER_STORE_TTL", "parameter_ttl"), ("SECRETS_MANAGER_TTL", "secret_ttl")],
)
def test_ttl_above_300_is_clamped_with_a_warning_from_an_argument_as_from_the_environment(
    caplog: pytest.LogCaptureFixture, variable: str, field: str
) -> None:
    arguments: dict[str, Any] = {field: 400}
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        from_argument = Settings(**arguments)
        from_override = Settings.from_env(environ={}, **arguments)
        from_environment = Settings.from_env(environ={variable: "400"})
    assert from_argument == from_override == from_environment
    assert getattr(from_argument, field) == 300
    assert len(caplog.records) == 3
    for record in caplog.records:
        assert record.levelno == logging.WARNING
        assert field in record.getMessage()
        assert variable in record.getMessage()
        assert "400" in record.getMessage()


def test_a_clamped_ttl_is_not_warned_about_again_when_settings_are_copied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(parameter_ttl=400)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        copy = dataclasses.replace(settings, source="aws")
    assert copy.parameter_ttl == 300
    assert caplog.records == []


@pytest.mark.parametrize("spelling", ["warning", "WARNING", "Warn", "warn"])
def test_warning_means_warn_from_an_argument_as_from_the_environment(spelling: str) -> None:
    from_argument = Settings(log_level=spelling)  # type: ignore[arg-type]
    from_environment = Settings.from_env(
        environ={"PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL": spelling}
    )
    assert from_argument == from_environment == Settings(log_level="warn")
    assert from_argument.log_level == "warn"
    assert from_argument.logging_level == logging.WARNING


@pytest.mark.parametrize(
    ("variable", "raw", "field", "value"),
    [
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1001", "cache_size", 1001),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "0", "http_port", 0),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "3600001", "parameter_timeout_ms", 3600001),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "trace", "log_level", "trace"),
        ("PARAMETERS_SECRETS_SOURCE", "s3", "source", "s3"),
    ],
)
def test_out_of_range_value_gets_the_same_range_from_either_origin(
    variable: str, raw: str, field: str, value: object
) -> None:
    arguments: dict[str, Any] = {field: value}
    with pytest.raises(ConfigurationError) as from_argument:
        Settings(**arguments)
    with pytest.raises(ConfigurationError) as from_environment:
        Settings.from_env(environ={variable: raw})
    # Each names where the value came from, and the same range.
    assert str(from_argument.value).startswith(f"{field} must be ")
    assert str(from_environment.value).startswith(f"{variable} must be ")
    range_text = str(from_argument.value).removeprefix(f"{field} must be ").rsplit(", not", 1)
    assert range_text[0] in str(from_environment.value)


# --- the logger's level: set only when asked ---------------------------------------------


async def app(scope: Any, receive: Any, send: Any) -> None:
    """An app the middleware wraps; never called here."""


def test_building_a_middleware_without_the_variable_keeps_the_apps_logger_level() -> None:
    logger = logging.getLogger("parameters_secrets")
    logger.setLevel(logging.WARNING)  # the app's choice; conftest restores the level
    ParametersSecretsMiddleware(app, values={}, source=StaticSource())
    assert logger.level == logging.WARNING
    ParametersSecretsMiddleware(app, values={}, source=StaticSource(), settings=Settings())
    assert logger.level == logging.WARNING


def test_building_a_middleware_with_the_variable_sets_the_logger_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger = logging.getLogger("parameters_secrets")
    logger.setLevel(logging.WARNING)
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug")
    ParametersSecretsMiddleware(app, values={}, source=StaticSource())
    assert logger.level == logging.DEBUG
    monkeypatch.delenv("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL")
    settings = Settings(log_level="error")
    ParametersSecretsMiddleware(app, values={}, source=StaticSource(), settings=settings)
    assert logger.level == logging.ERROR


@pytest.mark.parametrize(
    ("log_level", "expected"),
    [(None, logging.NOTSET), ("debug", logging.DEBUG), ("none", logging.CRITICAL + 1)],
)
def test_apply_log_level_sets_the_library_logger_only_when_set(
    log_level: Any, expected: int
) -> None:
    logger = logging.getLogger("parameters_secrets")
    logger.setLevel(logging.NOTSET)
    Settings(log_level=log_level).apply_log_level()
    assert logger.level == expected


@pytest.mark.parametrize(("raw", "expected"), [("aws", "aws"), ("none", "none"), ("NONE", "none")])
def test_extension_fallback_reads_aws_or_none(raw: str, expected: str) -> None:
    settings = Settings.from_env(environ={"PARAMETERS_SECRETS_EXTENSION_FALLBACK": raw})
    assert settings.extension_fallback == expected


def test_an_unknown_extension_fallback_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="PARAMETERS_SECRETS_EXTENSION_FALLBACK must be"):
        Settings.from_env(environ={"PARAMETERS_SECRETS_EXTENSION_FALLBACK": "extension"})
