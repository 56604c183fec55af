"""No value ever reaches a log line, an exception, a repr or an error response.

Every path runs at DEBUG, for our logger and every other (httpx, httpcore, mangum), with a
distinctive secret; the test then searches everything that left the code for it.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import pprint
import reprlib
import traceback
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from mangum import Mangum
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import parameters_secrets
import parameters_secrets.sources
from parameters_secrets import (
    ConfigurationError,
    FetchError,
    LoadError,
    Parameter,
    ParametersByPath,
    ParametersSecrets,
    ParametersSecretsError,
    ParametersSecretsMiddleware,
    ParametersSecretsWSGIMiddleware,
    Secret,
    Settings,
    current_values,
)
from parameters_secrets._declarations import apply_transform
from parameters_secrets.sources import (
    AwsSource,
    CloudExtensionsSource,
    Credentials,
    ExtensionSource,
    ParameterRequest,
    RetryPolicy,
    SecretRequest,
    StaticSource,
)
from tests import faults
from tests.conftest import TOKEN, FakeClock, detail_503
from tests.extension_server import FakeExtension
from tests.lambda_events import EVENT_KINDS, invoke

CANARY = "S3cr3t-Leak-Canary-7f3a"


def leaky_int(value: str) -> int:
    return int(value)  # ValueError: invalid literal for int() with base 10: '<the value>'


@pytest.fixture
def seen(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Everything that leaves the code: collected by the test, searched at the end."""
    caplog.set_level(logging.DEBUG)  # root: every library's records
    return []


def assert_no_canary(
    seen: list[str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    captured = capsys.readouterr()
    texts = [*seen, caplog.text, captured.out, captured.err]
    texts += [repr(record.args) + str(record.exc_info) for record in caplog.records]
    assert caplog.records, "nothing was logged: the search would prove nothing"
    for text in texts:
        assert CANARY not in text


def test_every_failure_path_keeps_the_value_out(
    extension: FakeExtension,
    clock: FakeClock,
    seen: list[str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extension.put_parameter("/key", CANARY, type="SecureString")
    extension.put_parameter("/not-json", f"{{{CANARY}")
    extension.put_secret("db", string=f'{{"password": "{CANARY}"}}')
    captured_values: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        values = current_values()
        captured_values.append(values)
        seen.append(repr(values))
        await JSONResponse({"keys": sorted(values)})(scope, receive, send)

    values: dict[str, Parameter | Secret] = {
        "key": Parameter("/key", default=CANARY),
        "db": Secret("db", transform="json"),
    }
    settings = Settings(log_level="debug")
    store = ParametersSecrets(
        values,
        source=ExtensionSource(port=extension.port, token=TOKEN, settings=settings),
        settings=settings,
        clock=clock,
    )
    seen.append(repr(store))
    middleware = ParametersSecretsMiddleware(app, values=store)
    seen.append(repr(middleware))
    handler = Mangum(middleware, lifespan="off")
    for kind in EVENT_KINDS:
        seen.append(invoke(handler, kind, "/").body)
    # A refresh that fails transiently: the previous value is served, with a warning.
    clock.advance(301)
    extension.fail(faults.server_error("InternalServerError"))
    seen.append(invoke(handler, "http_api_v2", "/").body)
    extension.clear_faults()
    # A transform that fails on the value, twice: bad JSON, and a callable whose
    # exception message quotes its input.
    for declaration in (
        Parameter("/not-json", transform="json"),
        Parameter("/key", transform=leaky_int),
    ):
        failing = ParametersSecretsMiddleware(
            app,
            values={"bad": declaration, "optional": Secret("nope", required=False)},
            source=ExtensionSource(port=extension.port, token=TOKEN, settings=settings),
            settings=settings,
            on_failure=detail_503,
        )
        response = invoke(Mangum(failing, lifespan="off"), "http_api_v2", "/")
        assert response.status == 503
        assert response.json() == {"detail": "could not load 'bad' (TransformFailed)"}
        seen.append(response.body)
        seen.append(repr(failing))
    # A wrong token.
    unauthorized = ParametersSecretsMiddleware(
        app, values=values, source=ExtensionSource(port=extension.port, token=CANARY)
    )
    seen.append(invoke(Mangum(unauthorized, lifespan="off"), "alb", "/").body)
    seen.append(repr(middleware.stats))
    seen.extend(repr(v) for v in captured_values)
    assert len(captured_values) == 5
    assert_no_canary(seen, caplog, capsys)


def test_reprs_and_errors_never_show_values(
    seen: list[str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    source = StaticSource(parameters={"/p": CANARY}, secrets={"s": {"string": CANARY}})
    declaration = Parameter("/p", default=CANARY)
    logging.getLogger("parameters_secrets").debug("probe %r %r", source, declaration)
    seen += [repr(source), repr(declaration), repr(Secret("s", default=CANARY))]
    with pytest.raises(FetchError) as raised:
        apply_transform(Parameter("/p", transform=leaky_int), {"Value": CANARY})
    error = raised.value
    seen += [str(error), repr(error), repr(error.args), str(raised.getrepr())]
    assert error.__cause__ is None
    assert error.__context__ is None
    assert_no_canary(seen, caplog, capsys)


# Every object the library hands out: a decrypted value never shows in its repr or str,
# nor in a traceback's locals, an error reporter or a debug print of the whole config.

JSON_SECRET = {"user": "app", "password": CANARY, "replicas": [CANARY, {"token": CANARY}]}
STATIC = StaticSource(
    parameters={"/app/key": CANARY, "/cfg/db/password": CANARY, "/cfg/port": "5432"},
    secrets={"db": {"json": JSON_SECRET}, "list": {"json": [CANARY, CANARY]}},
)
DECLARATIONS: dict[str, Parameter | Secret | ParametersByPath] = {
    "key": Parameter("/app/key", default=CANARY),
    "db": Secret("db", transform="json"),
    "hosts": Secret("list", transform="json"),
    "config": ParametersByPath("/cfg"),
}
# Names in the two modules' __all__ that are no type of object the library returns.
NOT_OBJECT_TYPES = {
    "Outcome": "a type alias: a record or a FetchError",
    "Record": "a type alias: the mapping a source returns",
    "Source": "a protocol: every source the library has is checked",
    "ValueRequest": "a type alias of the three request types",
    "__version__": "a string",
    "current_values": "a function: what it returns (Values) is checked",
}


def loaded_store() -> ParametersSecrets:
    store = ParametersSecrets(DECLARATIONS, source=STATIC)
    store.load_sync()
    return store


def load_error() -> LoadError:
    with pytest.raises(LoadError) as raised:
        ParametersSecrets(
            {"bad": Parameter("/app/key", transform=leaky_int)}, source=STATIC
        ).load_sync()
    return raised.value


def no_app(environ: Any, start_response: Any) -> list[bytes]:
    return []


def no_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def public_objects() -> dict[str, list[object]]:
    """An instance of each public type, built with the canary wherever it can hold it."""
    store = loaded_store()
    values = store.load_sync()
    credentials = Credentials("AKIDEXAMPLE", secret_key=CANARY, token=CANARY)
    with pytest.raises(FetchError) as fetch_error:
        apply_transform(Parameter("/p", transform=leaky_int), {"Value": CANARY})
    with pytest.raises(ConfigurationError) as configuration_error:
        ParametersSecrets({"not a key": Parameter("/p", default=CANARY)}, source=STATIC)
    with pytest.raises(ParametersSecretsError) as outside:
        current_values()
    return {
        "AwsSource": [AwsSource("us-east-1", credentials=credentials)],
        "CacheStats": [store.stats],
        "CloudExtensionsSource": [CloudExtensionsSource(token=CANARY, credentials=credentials)],
        "ConfigurationError": [configuration_error.value],
        "Credentials": [credentials],
        "ExtensionSource": [ExtensionSource(port=2773, token=CANARY)],
        "FetchError": [fetch_error.value],
        "LoadError": [load_error()],
        "Parameter": [DECLARATIONS["key"]],
        "ParameterRequest": [ParameterRequest("/app/key")],
        "ParametersByPath": [DECLARATIONS["config"]],
        "ParametersSecrets": [store],
        "ParametersSecretsError": [outside.value],
        "ParametersSecretsMiddleware": [
            ParametersSecretsMiddleware(JSONResponse({}), values=store)
        ],
        "ParametersSecretsWSGIMiddleware": [ParametersSecretsWSGIMiddleware(no_app, values=store)],
        "PathRequest": [DECLARATIONS["config"].request],
        "RetryPolicy": [RetryPolicy()],
        "Secret": [Secret("db", default=CANARY)],
        "SecretRequest": [SecretRequest("db")],
        "Settings": [Settings()],
        "StaticSource": [STATIC],
        # What the store returns: the values, and in them the by-path mapping and a JSON
        # secret's dict and list (FrozenDict, FrozenList), nested containers included.
        "Values": [values, values.config, values.db, values.db["replicas"], values.hosts],
    }


def renderings(value: object) -> list[str]:
    """Every way a value becomes text in a log line, an error reporter or a debug print."""
    return [
        repr(value),
        str(value),
        f"{value}",
        f"{value!r}",
        format(value),
        "%s %r" % (value, value),  # noqa: UP031 - logging's way
        pprint.pformat(value),
        pprint.pformat({"config": value, "in": [value]}),
        reprlib.repr(value),
    ]


def test_every_public_type_is_checked() -> None:
    public = set(parameters_secrets.__all__) | set(parameters_secrets.sources.__all__)
    assert set(public_objects()) | set(NOT_OBJECT_TYPES) == public


def test_no_public_object_shows_a_value_in_its_repr_or_str() -> None:
    for name, objects in public_objects().items():
        for value in objects:
            for text in renderings(value):
                assert CANARY not in text, name


def test_a_json_secret_and_a_by_path_mapping_mask_their_leaves_and_keep_their_shape() -> None:
    values = loaded_store().load_sync()
    assert repr(values.db) == (
        "{'user': '***', 'password': '***', 'replicas': ['***', {'token': '***'}]}"
    )
    assert repr(values.hosts) == "['***', '***']"
    assert str(values.config) == "{'db/password': '***', 'port': '***'}"
    assert pprint.pformat({"hosts": values.hosts}) == "{'hosts': ['***', '***']}"


def test_a_masked_container_still_gives_code_its_real_values() -> None:
    values = loaded_store().load_sync()
    db, hosts, config = values.db, values.hosts, values.config
    assert db["password"] == config["db/password"] == hosts[0] == CANARY
    assert list(hosts) == [CANARY, CANARY]
    assert dict(db) == JSON_SECRET == db
    assert json.loads(json.dumps(db)) == JSON_SECRET
    assert json.loads(json.dumps(config)) == {"db/password": CANARY, "port": "5432"}
    assert pickle.loads(pickle.dumps(db)) == JSON_SECRET  # noqa: S301 - our own bytes
    assert copy.copy(hosts) == copy.deepcopy(hosts) == [CANARY, CANARY]
    # What FastAPI and pydantic do with a route's answer.
    assert jsonable_encoder({"db": db, "hosts": hosts}) == {"db": JSON_SECRET, "hosts": hosts}
    adapter = TypeAdapter(dict[str, Any])
    assert json.loads(adapter.dump_json(db)) == JSON_SECRET
    assert adapter.validate_python(config) == {"db/password": CANARY, "port": "5432"}


def traceback_with_locals(error: BaseException) -> str:
    """What an error reporter shows: the traceback with every frame's local variables."""
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


def test_a_failing_wsgi_route_leaves_no_value_in_a_traceback_with_locals() -> None:
    def route(environ: Any, start_response: Any) -> list[bytes]:
        values = current_values()
        db, hosts, config = values.db, values.hosts, values.config  # noqa: F841 - locals shown
        raise RuntimeError("boom")

    app = ParametersSecretsWSGIMiddleware(route, values=loaded_store())
    with pytest.raises(RuntimeError) as raised:
        app({"PATH_INFO": "/", "SCRIPT_NAME": ""}, no_start_response)
    text = traceback_with_locals(raised.value)
    assert "db = {'user': '***', 'password': '***'" in text  # the locals are there, masked
    assert "environ = {" in text  # the environ holds the Values: keys only
    assert CANARY not in text


def test_a_failing_asgi_route_leaves_no_container_value_in_a_traceback_with_locals() -> None:
    # The JSON secret, the JSON list and the by-path mapping only: scope["state"] is the
    # server's plain dict, so a plain string value in it would show (see the report).
    containers = {key: DECLARATIONS[key] for key in ("db", "hosts", "config")}

    async def route(request: Request) -> JSONResponse:
        db, config = request.state.db, current_values().config  # noqa: F841 - locals shown
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/", route)])
    wrapped = ParametersSecretsMiddleware(app, values=ParametersSecrets(containers, source=STATIC))
    with TestClient(wrapped) as client, pytest.raises(RuntimeError) as raised:
        client.get("/")
    text = traceback_with_locals(raised.value)
    assert "config = {'db/password': '***', 'port': '***'}" in text
    assert "scope = {" in text  # the scope with its state, in every middleware's frame
    assert CANARY not in text


def test_a_load_error_leaves_no_value_in_a_traceback_with_locals() -> None:
    error = load_error()
    assert error.failures  # a LoadError with its failures, and what they were chained to
    assert CANARY not in traceback_with_locals(error)
