"""Behaviours of the public types that no other test pinned down (found by branch
coverage): errors that cross a process boundary, a request's values read as attributes,
FastAPI's ``Value`` on a route the middleware does not serve."""

from __future__ import annotations

import copy
import io
import logging
import pickle
import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parameters_secrets import (
    ConfigurationError,
    FetchError,
    LoadError,
    ParametersByPath,
    ParametersSecrets,
    ParametersSecretsError,
    Secret,
    Values,
)
from parameters_secrets.fastapi import Value
from parameters_secrets.sources import RetryPolicy, StaticSource

SECRET = "gap-canary-Value-7Q"


def test_a_load_error_survives_pickling_with_each_failure_and_its_code() -> None:
    # What a process pool or a multiprocessing queue does with an exception.
    error = LoadError({"db": FetchError("db: gone", code="ParameterNotFound", status=400)})
    copied = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert isinstance(copied, LoadError)
    assert str(copied) == str(error) == "could not load 'db' (ParameterNotFound)"
    (failure,) = copied.failures.values()
    assert (failure.code, failure.status, failure.transient) == ("ParameterNotFound", 400, False)
    assert failure.not_found


def test_a_fetch_error_survives_pickling_with_its_code_status_and_transience() -> None:
    error = FetchError("ssm: slow", code="Timeout", transient=True, status=None)
    copied = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (str(copied), copied.code, copied.transient, copied.status) == (
        "ssm: slow",
        "Timeout",
        True,
        None,
    )


def test_values_read_as_attributes_and_a_missing_one_is_an_attribute_error() -> None:
    values = Values({"api_key": SECRET})
    assert values.api_key == SECRET
    with pytest.raises(AttributeError, match=r"^other$"):
        _ = values.other
    # What copy and pickle probe for: answered by the class, never looked up as a key.
    with pytest.raises(AttributeError, match=r"^_private$"):
        _ = values._private
    assert copy.copy(values)["api_key"] == SECRET
    assert SECRET not in repr(values)


def test_fastapi_value_on_a_route_the_middleware_does_not_serve_names_the_key() -> None:
    app = FastAPI()

    @app.get("/")
    def index(api_key: Annotated[str, Value("api_key")]) -> str:
        return api_key

    with (
        TestClient(app, raise_server_exceptions=True) as client,
        pytest.raises(ParametersSecretsError) as raised,
    ):
        client.get("/")
    message = str(raised.value)
    assert "no value 'api_key' on this request" in message
    assert "ParametersSecretsMiddleware" in message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"base_delay": 0.0}, "0 < base_delay <= max_delay"),
        ({"base_delay": 3.0, "max_delay": 2.0}, "0 < base_delay <= max_delay"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"max_attempts": 2.5}, "max_attempts must be an integer >= 1"),
        ({"max_attempts": True}, "max_attempts must be an integer >= 1"),
    ],
)
def test_a_retry_policy_that_could_not_retry_sensibly_is_refused(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        RetryPolicy(**arguments)


@pytest.mark.parametrize("flag", ["recursive", "decrypt", "required"])
def test_a_path_declaration_s_flags_must_be_booleans(flag: str) -> None:
    with pytest.raises(ConfigurationError, match=f"ParametersByPath {flag} must be True or False"):
        ParametersByPath("/app", **{flag: "yes"})  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [[("db", Secret("db"))], "db"])
def test_a_store_s_values_must_be_a_mapping_of_declarations(values: Any) -> None:
    with pytest.raises(ConfigurationError, match="values must be a mapping"):
        ParametersSecrets(values, source=StaticSource({}))


def test_a_store_is_not_a_mapping_of_declarations_for_another_store() -> None:
    store = ParametersSecrets({"db": Secret("db")}, source=StaticSource({}))
    with pytest.raises(ConfigurationError, match="values must be a mapping"):
        ParametersSecrets(store, source=StaticSource({}))  # type: ignore[arg-type]


@pytest.mark.parametrize("deadline", [True, "soon", [1.0]])
def test_a_load_s_deadline_must_be_a_monotonic_instant(deadline: Any) -> None:
    store = ParametersSecrets({"db": Secret("db")}, source=StaticSource(secrets={"db": "x"}))
    with pytest.raises(ConfigurationError, match=r"deadline must be a time\.monotonic\(\) instant"):
        store.load_sync(deadline=deadline)


def test_emf_metrics_on_a_closed_stdout_never_break_a_fetch_and_warn_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_METRICS", "emf")
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    store = ParametersSecrets({"db": Secret("db")}, source=StaticSource(secrets={"db": SECRET}))
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        assert store.load_sync()["db"] == SECRET
        assert store.refresh_sync("db")["db"] == SECRET  # a second round, a second line
    warnings = [r.getMessage() for r in caplog.records if "EMF" in r.getMessage()]
    assert warnings == ["metrics: cannot write EMF lines to stdout (I/O operation on closed file)"]


class TrustedPathSource:
    """A custom source that checks its records itself, and lets a stray one through."""

    checks_records = True

    async def fetch(self, requests: Sequence[Any], deadline: float | None = None) -> list[Any]:
        return [
            {
                "Parameters": [
                    {"Name": "/app/a", "Value": "1"},
                    {"Name": "/elsewhere/b", "Value": SECRET},
                ]
            }
            for _ in requests
        ]

    async def aclose(self) -> None:
        pass


def test_a_path_value_leaves_out_what_a_custom_source_answered_outside_the_path() -> None:
    store = ParametersSecrets(
        {"tree": ParametersByPath("/app")},
        source=TrustedPathSource(),
    )
    assert store.load_sync()["tree"] == {"a": "1"}
