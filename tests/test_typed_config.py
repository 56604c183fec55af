"""Typed config: ``ParametersSecrets.from_model(Config)`` and ``store.model()``, against the
fake extension on 127.0.0.1 (its calls counted), under Mangum with FastAPI, under the WSGI
middleware with Flask, and at INIT."""

# No `from __future__ import annotations`: the FastAPI route below is defined in a test
# and depends on its local `store`, which FastAPI could not resolve from a string.

import json
import logging
import threading
import traceback
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from apig_wsgi import make_lambda_handler
from fastapi import Depends, FastAPI
from flask import Flask
from mangum import Mangum
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from parameters_secrets import (
    LoadError,
    Parameter,
    ParametersByPath,
    ParametersSecrets,
    ParametersSecretsError,
    ParametersSecretsMiddleware,
    ParametersSecretsWSGIMiddleware,
    Secret,
)
from parameters_secrets.exceptions import ConfigurationError
from parameters_secrets.sources import ExtensionSource, StaticSource
from tests import faults
from tests.conftest import TOKEN, FakeClock
from tests.extension_server import FakeExtension
from tests.lambda_events import EVENT_KINDS, invoke

pytestmark = pytest.mark.anyio

API_KEY = "sk_live_typed_4Vq9Example"
PASSWORD = "pw-typed-Zr81x"
# A value that fails validation: it must appear in no message, repr, traceback or log.
SENTINEL = "SENTINEL-not-a-port-5f0c1"
VALIDATIONS: list[int] = []  # one entry per validation of Config's port


def check_region(region: str) -> str:
    if not region.startswith("eu-"):
        raise ValueError(f"region {region!r} is not in the EU")  # quotes the input, as many do
    return region


class Db(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    password: SecretStr


class Config(BaseModel):
    model_config = ConfigDict(frozen=True)

    port: Annotated[int, Parameter("/app/port")]
    region: Annotated[str, AfterValidator(check_region), Parameter("/app/region")]
    api_key: Annotated[SecretStr, Parameter("/app/api-key")]
    db: Annotated[Db, Secret("prod/db", transform="json")]
    debug: bool = False  # a plain field: its default, never fetched

    @field_validator("port")
    @classmethod
    def count_validations(cls, port: int) -> int:
        VALIDATIONS.append(port)
        return port


DECLARED = {
    ("parameter", "/app/port"),
    ("parameter", "/app/region"),
    ("parameter", "/app/api-key"),
    ("secret", "prod/db"),
}


@pytest.fixture(autouse=True)
def no_validations_yet() -> Iterator[None]:
    VALIDATIONS.clear()
    yield
    VALIDATIONS.clear()


@pytest.fixture
def upstream(extension: FakeExtension) -> FakeExtension:
    extension.put_parameter("/app/port", "5432")
    extension.put_parameter("/app/region", "eu-west-1")
    extension.put_parameter("/app/api-key", API_KEY, type="SecureString")
    extension.put_secret("prod/db", string=json.dumps({"username": "app", "password": PASSWORD}))
    return extension


def typed_store(extension: FakeExtension, clock: FakeClock | None = None) -> Any:
    if clock is None:
        return ParametersSecrets.from_model(Config, source=ExtensionSource(extension.port, TOKEN))
    return ParametersSecrets.from_model(
        Config, source=ExtensionSource(extension.port, TOKEN), clock=clock
    )


def upstream_calls(extension: FakeExtension) -> dict[tuple[str, str], int]:
    return {(kind, name): extension.calls(kind, name) for kind, name in DECLARED}  # type: ignore[arg-type]


def once_each() -> dict[tuple[str, str], int]:
    return dict.fromkeys(DECLARED, 1)


# -- the model, validated once per change -------------------------------------------------


def test_the_model_is_validated_and_the_same_object_while_no_value_changed(
    upstream: FakeExtension,
) -> None:
    store = typed_store(upstream)
    config = store.model_sync()
    assert isinstance(config, Config)
    assert (config.port, config.region, config.debug) == (5432, "eu-west-1", False)
    assert config.api_key.get_secret_value() == API_KEY
    assert config.db.password.get_secret_value() == PASSWORD
    assert all(store.model_sync() is config for _ in range(5))
    assert store.load_sync().keys() == {"port", "region", "api_key", "db"}
    assert VALIDATIONS == [5432]  # validated once
    assert upstream_calls(upstream) == once_each()


async def test_await_model_gives_the_same_object_as_model_sync(upstream: FakeExtension) -> None:
    store = typed_store(upstream)
    config = await store.model()
    assert await store.model() is config
    assert VALIDATIONS == [5432]
    assert upstream_calls(upstream) == once_each()


def test_a_refresh_that_changed_a_value_gives_a_new_model(upstream: FakeExtension) -> None:
    store = typed_store(upstream)
    before = store.model_sync()
    upstream.put_parameter("/app/port", "6543")
    store.refresh_sync("port")
    after = store.model_sync()
    assert after is not before
    assert (before.port, after.port) == (5432, 6543)
    assert store.model_sync() is after
    assert VALIDATIONS == [5432, 6543]


def test_a_refresh_that_changed_nothing_keeps_the_model(upstream: FakeExtension) -> None:
    store = typed_store(upstream)
    before = store.model_sync()
    store.refresh_sync()
    assert store.model_sync() is before
    assert VALIDATIONS == [5432]  # not validated again
    assert upstream.calls("parameter", "/app/port") == 2  # the refresh did fetch


def test_a_ttl_refetch_gives_a_new_model_only_when_a_value_changed(
    upstream: FakeExtension, clock: FakeClock
) -> None:
    store = typed_store(upstream, clock)
    first = store.model_sync()
    clock.advance(301)  # past the default TTL: every value is fetched again
    assert store.model_sync() is first  # same values
    assert upstream.calls("parameter", "/app/port") == 2
    upstream.put_secret("prod/db", string=json.dumps({"username": "app2", "password": "x"}))
    clock.advance(301)
    changed = store.model_sync()
    assert changed is not first
    assert changed.db.username == "app2"
    assert upstream.calls("secret", "prod/db") == 3
    assert VALIDATIONS == [5432, 5432]  # the change, and only it, was validated again


def test_a_value_that_changed_type_but_compares_equal_is_validated_again(
    extension: FakeExtension,
) -> None:
    """``1 == True``: a flag refetched as ``true`` where it was ``1`` is a change."""

    class Flags(BaseModel):
        flag: Annotated[int | bool, Parameter("/flag", transform="json")]

    extension.put_parameter("/flag", "1")
    store = ParametersSecrets.from_model(Flags, source=ExtensionSource(extension.port, TOKEN))
    assert store.model_sync().flag == 1
    extension.put_parameter("/flag", "true")
    store.refresh_sync()
    assert store.model_sync().flag is True


def test_the_model_corresponds_to_the_newest_values_after_a_refresh_from_another_thread(
    upstream: FakeExtension,
) -> None:
    store = typed_store(upstream)
    store.model_sync()
    upstream.put_parameter("/app/port", "7000")
    thread = threading.Thread(target=store.refresh_sync)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert store.model_sync().port == 7000  # a refresh that returned is seen by the model


def test_a_late_validation_of_older_values_does_not_replace_the_newest_model(
    upstream: FakeExtension,
) -> None:
    """A thread that loaded the older values and validates them after another thread kept
    the model of a refresh (as a slow validation would): it gets its own values' model, and
    the one kept stays the newest."""
    store = typed_store(upstream)
    older = store.load_sync()
    upstream.put_parameter("/app/port", "7001")
    store.refresh_sync("port")
    newest = store.model_sync()
    late = store._models.model_for(older, store._fresh_snapshot())  # the late thread
    assert (late.port, newest.port) == (5432, 7001)
    assert store.model_sync() is newest


def test_many_threads_on_a_cold_store_fetch_once_and_get_equal_models(
    upstream: FakeExtension,
) -> None:
    upstream.fail(faults.delay(0.3))  # every thread arrives during the first fetch
    store = typed_store(upstream)
    go = threading.Event()
    models: list[Config] = []
    errors: list[BaseException] = []

    def ask() -> None:
        go.wait(10)
        try:
            models.append(store.model_sync())
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(models) == 16
    assert all(model == models[0] for model in models)
    assert upstream_calls(upstream) == once_each()
    assert store.model_sync() == models[0]
    assert store.model_sync() is store.model_sync()  # kept: no validation from now on
    validations = len(VALIDATIONS)
    store.model_sync()
    assert len(VALIDATIONS) == validations


# -- validation failures: field and type, never the input ---------------------------------


def everything_said_about(error: BaseException) -> str:
    """Every text a user, a log or an error tracker may show of ``error``."""
    texts = [str(error), repr(error), *traceback.format_exception(error)]
    texts += traceback.TracebackException.from_exception(error, capture_locals=True).format()
    if isinstance(error, LoadError):
        for key, failure in error.failures.items():
            texts += [key, str(failure), repr(failure), failure.code]
    return "\n".join(texts)


def test_a_value_that_fails_validation_is_a_load_error_naming_field_and_type_only(
    upstream: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.put_parameter("/app/port", SENTINEL)
    upstream.put_parameter("/app/region", f"us-{SENTINEL}")  # the validator quotes it
    store = typed_store(upstream)
    with caplog.at_level(logging.DEBUG), pytest.raises(LoadError) as caught:
        store.model_sync()
    error = caught.value
    assert set(error.failures) == {"port", "region"}
    assert error.failures["port"].code == "ValidationFailed"
    assert "int_parsing" in str(error.failures["port"])
    assert "value_error" in str(error.failures["region"])
    assert "'port' (ValidationFailed)" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None  # pydantic's error, which quotes the input, is not kept
    said = everything_said_about(error)
    logged = "\n".join(
        [record.getMessage() for record in caplog.records]
        + [record.exc_text or "" for record in caplog.records]
    )
    assert SENTINEL not in said
    assert SENTINEL not in logged
    assert "int_parsing" in logged  # the ERROR line says which field and why
    assert any(r.levelno == logging.ERROR and "'port'" in r.getMessage() for r in caplog.records)


def test_a_refreshed_value_that_fails_validation_serves_the_previous_model_with_a_warning(
    upstream: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    store = typed_store(upstream)
    good = store.model_sync()
    upstream.put_parameter("/app/port", SENTINEL)
    store.refresh_sync("port")
    with caplog.at_level(logging.DEBUG):
        assert store.model_sync() is good
        assert store.model_sync() is good  # no validation, no warning, per request
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'port'" in warnings[0]
    assert "int_parsing" in warnings[0]
    assert "previous model" in warnings[0]
    assert all(SENTINEL not in r.getMessage() for r in caplog.records)
    assert VALIDATIONS == [5432]  # int parsing refused the bad port before the validator
    upstream.put_parameter("/app/port", "8080")  # fixed
    store.refresh_sync("port")
    assert store.model_sync().port == 8080


# -- secrets stay masked ---------------------------------------------------------------


def test_secret_str_fields_stay_masked_in_repr_str_and_json(upstream: FakeExtension) -> None:
    config = typed_store(upstream).model_sync()
    shown = [repr(config), str(config), config.model_dump_json(), repr(config.model_dump())]
    assert not any(API_KEY in text or PASSWORD in text for text in shown)
    assert "**********" in repr(config)
    assert config.api_key.get_secret_value() == API_KEY


# -- declarations: what from_model accepts -------------------------------------------------


class NoDeclaration(BaseModel):
    debug: bool = False


class TwoDeclarations(BaseModel):
    key: Annotated[str, Parameter("/a"), Secret("b")]


class DeclarationAndDefault(BaseModel):
    key: Annotated[str, Parameter("/a")] = "dev"


class NothingFillsIt(BaseModel):
    key: Annotated[str, Parameter("/a")]
    other: int


class AliasChoicesField(BaseModel):
    key: Annotated[str, Parameter("/a"), Field(validation_alias=AliasChoices("k", "key"))]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (dict, r"pydantic model class"),
        (NoDeclaration, r"NoDeclaration declares no value"),
        (TwoDeclarations, r"field TwoDeclarations\.key has 2 declarations"),
        (DeclarationAndDefault, r"field DeclarationAndDefault\.key has a default"),
        (NothingFillsIt, r"field NothingFillsIt\.other has neither"),
        (AliasChoicesField, r"field AliasChoicesField\.key .*AliasChoices"),
    ],
)
def test_a_model_that_cannot_be_a_store_is_a_configuration_error_naming_the_field(
    model: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ParametersSecrets.from_model(model, source=StaticSource())


def test_an_aliased_field_is_keyed_by_its_name_and_validated_through_its_alias() -> None:
    class Aliased(BaseModel):
        api_key: Annotated[SecretStr, Parameter("/a"), Field(alias="API_KEY")]
        hosts: Annotated[dict[str, str], ParametersByPath("/hosts")]

    source = StaticSource(parameters={"/a": "k-1", "/hosts/db": "db.local"})
    store = ParametersSecrets.from_model(Aliased, source=source)
    assert list(store.load_sync()) == ["api_key", "hosts"]
    config = store.model_sync()
    assert config.api_key.get_secret_value() == "k-1"
    assert config.hosts == {"db": "db.local"}


async def test_model_on_a_store_not_built_from_a_model_is_a_clear_error() -> None:
    store = ParametersSecrets({"key": Parameter("/a")}, source=StaticSource())
    with pytest.raises(ParametersSecretsError, match=r"model_sync\(\) needs .*from_model"):
        store.model_sync()
    with pytest.raises(ParametersSecretsError, match=r"model\(\) needs .*from_model"):
        await store.model()


# -- with the middleware, the WSGI middleware, and at INIT --------------------------------


def test_a_fastapi_route_depends_on_the_model_on_the_warm_path_under_mangum(
    upstream: FakeExtension,
) -> None:
    store = typed_store(upstream)
    at_init = store.model_sync()  # module level, during INIT
    seen: list[Config] = []
    app = FastAPI()

    @app.get("/")
    async def index(config: Annotated[Config, Depends(store.model)]) -> dict[str, Any]:
        seen.append(config)
        return {"port": config.port, "api_key": config.api_key, "db": config.db}

    app.add_middleware(ParametersSecretsMiddleware, values=store)
    handler = Mangum(app, lifespan="off")
    responses = [invoke(handler, kind, "/") for kind in EVENT_KINDS]
    assert [r.status for r in responses] == [200] * len(EVENT_KINDS)
    assert responses[0].json() == {
        "port": 5432,
        "api_key": "**********",
        "db": {"username": "app", "password": "**********"},
    }
    assert not any(API_KEY in r.body or PASSWORD in r.body for r in responses)
    assert all(config is at_init for config in seen)
    assert upstream_calls(upstream) == once_each()  # INIT's load served every request
    assert VALIDATIONS == [5432]


def test_a_flask_view_under_the_wsgi_middleware_reads_model_sync(upstream: FakeExtension) -> None:
    store = typed_store(upstream)
    app = Flask(__name__)
    seen: list[Config] = []

    @app.get("/")
    def index() -> dict[str, Any]:
        config = store.model_sync()
        seen.append(config)
        return {"port": config.port, "user": config.db.username}

    app.wsgi_app = ParametersSecretsWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, values=store
    )
    handler = make_lambda_handler(app)
    responses = [invoke(handler, "http_api_v2", "/") for _ in range(3)]
    assert [(r.status, r.json()) for r in responses] == [(200, {"port": 5432, "user": "app"})] * 3
    assert seen[0] is seen[1] is seen[2]
    assert upstream_calls(upstream) == once_each()
