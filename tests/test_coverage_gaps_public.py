"""Behaviours of the public types that no other test pinned down (found by branch
coverage): errors that cross a process boundary, a request's values read as attributes,
FastAPI's ``Value`` on a route the middleware does not serve."""

from __future__ import annotations

import copy
import pickle
from typing import Annotated

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parameters_secrets import FetchError, LoadError, ParametersSecretsError, Values
from parameters_secrets.fastapi import Value

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
