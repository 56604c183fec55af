"""The store (issue 8): the same values and cache for requests, lifespans, background work,
plain Lambda handlers and scripts; forced refresh; exclude_paths; on_failure.

Upstreams are real servers on 127.0.0.1 (the fake extension, moto) that count the calls
they receive; the Lambda path is a real Mangum handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from parameters_secrets import (
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsError,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets.sources import AwsSource, ExtensionSource, StaticSource
from tests import faults
from tests.conftest import TOKEN, FakeClock
from tests.extension_server import FakeExtension
from tests.lambda_events import invoke
from tests.moto_server import CountingProxy, MotoServer, create_secret, put_parameter

CANARY = "Store-Canary-5f02d1"  # part of every value: never in a log, repr or error


def seed(extension: FakeExtension, version: int = 1) -> None:
    extension.put_parameter("/app/api-key", f"{CANARY}-key-{version}", type="SecureString")
    extension.put_secret("prod/db", string=json.dumps({"password": f"{CANARY}-pw-{version}"}))


VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "db": Secret("prod/db", transform="json"),
}


def on_extension(extension: FakeExtension, **kwargs: Any) -> ParametersSecrets:
    return ParametersSecrets(VALUES, source=ExtensionSource(extension.port, TOKEN), **kwargs)


def app_reading(store: ParametersSecrets, **kwargs: Any) -> ParametersSecretsMiddleware:
    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"password_length": len(request.state.db["password"])})

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", index), Route("/health", health)])
    return ParametersSecretsMiddleware(app, values=store, **kwargs)


# --- load, get, refresh ------------------------------------------------------------------


@pytest.mark.anyio
async def test_load_returns_every_value_and_get_one(extension: FakeExtension) -> None:
    seed(extension)
    store = on_extension(extension)
    values = await store.load()
    assert sorted(values) == ["api_key", "db"]
    assert values.db["password"] == f"{CANARY}-pw-1"
    assert await store.get("api_key") == f"{CANARY}-key-1"
    assert extension.total_calls == 2
    assert store.stats.fetches == 2
    with pytest.raises(KeyError, match="'nope' is not declared"):
        await store.get("nope")
    await store.aclose()


@pytest.mark.anyio
async def test_load_raises_load_error_naming_each_failed_key_and_code(
    extension: FakeExtension,
) -> None:
    extension.put_parameter("/app/api-key", "k")
    store = on_extension(extension)
    with pytest.raises(LoadError) as raised:
        await store.load()
    assert list(raised.value.failures) == ["db"]
    assert raised.value.failures["db"].code == "ResourceNotFoundException"
    assert str(raised.value) == "could not load 'db' (ResourceNotFoundException)"
    with pytest.raises(LoadError):
        await store.get("db")
    assert await store.get("api_key") == "k"
    await store.aclose()


@pytest.mark.anyio
async def test_optional_value_that_does_not_exist_gets_its_default() -> None:
    store = ParametersSecrets(
        {"flag": Parameter("/missing", required=False, default="off")}, source=StaticSource()
    )
    assert (await store.load()).flag == "off"
    assert await store.get("flag") == "off"


@pytest.mark.anyio
async def test_refresh_reaches_upstream_whatever_the_ttl(extension: FakeExtension) -> None:
    seed(extension)
    store = on_extension(extension)
    await store.load()
    seed(extension, version=2)  # rotated upstream; the TTL (300 s) has not passed
    assert (await store.load()).db["password"] == f"{CANARY}-pw-1"
    refreshed = await store.refresh("db")
    assert list(refreshed) == ["db"]
    assert refreshed.db["password"] == f"{CANARY}-pw-2"
    assert (await store.load()).db["password"] == f"{CANARY}-pw-2"  # and for everyone
    assert extension.calls("secret", "prod/db") == 2
    assert extension.calls("parameter", "/app/api-key") == 1
    assert sorted(await store.refresh()) == ["api_key", "db"]  # no key: every value
    assert extension.total_calls == 5
    await store.aclose()


def test_refresh_by_fifty_concurrent_callers_makes_one_upstream_call_per_key(
    extension: FakeExtension,
) -> None:
    seed(extension)
    store = on_extension(extension)
    results: list[str] = []

    async def main() -> None:
        await store.load()
        seed(extension, version=2)
        extension.fail(faults.delay(0.2), times=2)  # callers arrive during the fetch

        async def refresh() -> None:
            results.append((await store.refresh()).db["password"])

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(refresh)
        await store.aclose()

    asyncio.get_event_loop().run_until_complete(main())
    assert results == [f"{CANARY}-pw-2"] * 50
    assert extension.calls("secret", "prod/db") == 2  # the load, then one refresh
    assert extension.calls("parameter", "/app/api-key") == 2


def test_a_load_that_began_before_a_refresh_does_not_keep_its_older_values(
    extension: FakeExtension,
) -> None:
    seed(extension)
    extension.fail(faults.trickle(0.005), times=2)  # the load's answers, slowly
    store = on_extension(extension)
    loaded: list[str] = []

    async def main() -> str:
        async with anyio.create_task_group() as group:

            async def load() -> None:
                loaded.append((await store.load()).db["password"])

            group.start_soon(load)
            assert await anyio.to_thread.run_sync(extension.wait_for_calls, 2)
            seed(extension, version=2)  # rotated while the load is in flight
            group.start_soon(store.refresh)
        after: str = (await store.load()).db["password"]
        await store.aclose()
        return after

    after = asyncio.get_event_loop().run_until_complete(main())
    assert loaded == [f"{CANARY}-pw-1"]  # the load answers with what it fetched
    assert after == f"{CANARY}-pw-2"  # but does not keep it over the refresh's value


# --- sync methods, and a plain handler beside a Mangum handler ------------------------------


def no_event_loop() -> asyncio.AbstractEventLoop:
    raise AssertionError("a warm load_sync() must not run an event loop")


def test_plain_handler_with_load_sync_shares_the_mangum_handlers_cache(
    extension: FakeExtension,
) -> None:
    seed(extension)
    store = on_extension(extension)
    http_handler = Mangum(app_reading(store), lifespan="off")

    def sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        values = store.load_sync()
        return {"processed": len(event["Records"]), "user_key": len(values.api_key)}

    sqs_event = {"Records": [{"messageId": "1", "body": "{}"}, {"messageId": "2", "body": "{}"}]}
    assert sqs_handler(sqs_event, None)["processed"] == 2  # first: loads
    assert invoke(http_handler, "http_api_v2").status == 200  # then served from that cache
    with pytest.MonkeyPatch.context() as patch:  # warm: no network and no event loop
        patch.setattr(asyncio, "new_event_loop", no_event_loop)
        assert sqs_handler(sqs_event, None)["processed"] == 2
    assert invoke(http_handler, "api_gateway_v1").status == 200
    assert store.get_sync("db")["password"] == f"{CANARY}-pw-1"
    assert extension.total_calls == 2  # one per value, whoever asked
    seed(extension, version=2)
    assert store.refresh_sync("db").db["password"] == f"{CANARY}-pw-2"
    assert invoke(http_handler, "http_api_v2").status == 200
    assert extension.total_calls == 3


def test_sync_methods_do_not_disturb_the_mangum_handlers_event_loop(
    extension: FakeExtension,
) -> None:
    seed(extension)
    store = on_extension(extension, settings=Settings(parameter_ttl=0, secret_ttl=0))
    http_handler = Mangum(app_reading(store), lifespan="off")
    loop = asyncio.get_event_loop()
    for _ in range(3):  # each sync call misses (TTL 0) and runs on a loop of its own
        assert invoke(http_handler, "http_api_v2").status == 200
        store.load_sync()
    assert asyncio.get_event_loop() is loop  # the thread's loop is still Mangum's
    assert not loop.is_closed()
    assert extension.total_calls == 12


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["load_sync", "get_sync", "refresh_sync"])
async def test_sync_methods_inside_a_running_loop_name_the_async_method(method: str) -> None:
    store = ParametersSecrets({"p": Parameter("/p")}, source=StaticSource(parameters={"/p": "v"}))
    args = ("p",) if method == "get_sync" else ()
    name = method.removesuffix("_sync")
    with pytest.raises(ParametersSecretsError, match=rf"use 'await store\.{name}\(\)'"):
        getattr(store, method)(*args)


def test_sync_methods_inside_trio_name_the_async_method() -> None:
    store = ParametersSecrets({"p": Parameter("/p")}, source=StaticSource(parameters={"/p": "v"}))

    async def main() -> None:
        with pytest.raises(ParametersSecretsError, match=r"\(trio\)"):
            store.load_sync()

    anyio.run(main, backend="trio")


# --- lifespans ----------------------------------------------------------------------------


def lifespan_app(store: ParametersSecrets, built: list[str]) -> ParametersSecretsMiddleware:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        values = await store.load()
        built.append("client")  # a client built from a value, as an app would
        yield {"client_key_length": len(values.api_key)}

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"client_key_length": request.state.client_key_length})

    app = Starlette(routes=[Route("/", index)], lifespan=lifespan)
    return ParametersSecretsMiddleware(app, values=store)


def test_lifespan_under_mangum_loads_once_for_every_invocation(extension: FakeExtension) -> None:
    # Mangum enters the lifespan on every invocation ("auto"), inside the invocation (after
    # Lambda's INIT phase), so the extension answers; the store's cache makes it cheap.
    seed(extension)
    built: list[str] = []
    handler = Mangum(lifespan_app(on_extension(extension), built), lifespan="auto")
    for kind in ("http_api_v2", "api_gateway_v1", "alb"):
        response = invoke(handler, kind)
        expected = {"client_key_length": len(f"{CANARY}-key-1")}
        assert (response.status, response.json()) == (200, expected)
    assert len(built) == 3
    assert extension.total_calls == 2


def test_lifespan_under_uvicorn_with_aws_source(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    put_parameter(moto, "/app/api-key", f"{CANARY}-key-1", type="SecureString")
    create_secret(moto, "prod/db", string=json.dumps({"password": "x"}))
    store = ParametersSecrets(VALUES, source=AwsSource(endpoint_url=moto_proxy.url))
    built: list[str] = []
    config = uvicorn.Config(
        lifespan_app(store, built), host="127.0.0.1", port=0, lifespan="on", log_level="error"
    )

    uvicorn_server: Any = uvicorn.Server

    class Server(uvicorn_server):  # type: ignore[misc]
        ready: anyio.Event  # set once its startup (the lifespan, then listening) is over

        async def startup(self, sockets: Any = None) -> None:
            try:
                await super().startup(sockets=sockets)
            finally:
                self.ready.set()

    server = Server(config)

    async def serve_and_ask() -> list[int]:
        server.ready = anyio.Event()  # made on the loop that waits for it
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            with anyio.fail_after(10):
                await server.ready.wait()
            assert server.started, "uvicorn did not start"
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                statuses = [(await client.get("/")).status_code for _ in range(3)]
            server.should_exit = True
        await store.aclose()
        return statuses

    assert asyncio.get_event_loop().run_until_complete(serve_and_ask()) == [200] * 3
    assert built == ["client"]  # uvicorn runs the lifespan once
    assert moto_proxy.total == 2  # loaded at startup; the requests were served from memory


def test_load_during_lambda_init_with_the_extension_is_a_transient_load_error(
    extension: FakeExtension,
) -> None:
    # During INIT the extension answers "not ready" (or refuses connections): the store
    # gives up after about a second with a LoadError, caches nothing, and the first
    # request loads the values once the extension serves.
    seed(extension)
    extension.fail(faults.NOT_READY)
    store = on_extension(extension)
    with pytest.raises(LoadError) as raised:
        store.load_sync()
    assert {e.code for e in raised.value.failures.values()} == {"ExtensionNotReady"}
    assert all(e.transient for e in raised.value.failures.values())
    assert store.stats.size == 0
    extension.clear_faults()
    handler = Mangum(app_reading(store), lifespan="off")
    assert invoke(handler, "http_api_v2").status == 200


# --- the middleware over a store: exclude_paths, on_failure -------------------------------


def test_excluded_paths_answer_while_the_extension_is_down(extension: FakeExtension) -> None:
    extension.stop()
    middleware = app_reading(on_extension(extension), exclude_paths=("/health", "/docs*"))
    handler = Mangum(middleware, lifespan="off")
    assert invoke(handler, "http_api_v2", "/health").body == "ok"
    assert invoke(handler, "http_api_v2", "/").status == 503
    assert extension.total_calls == 0


def test_excluded_path_gets_no_values() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope.get("state", {})))
        await PlainTextResponse("ok")(scope, receive, send)

    store = ParametersSecrets({"p": Parameter("/p")}, source=StaticSource(parameters={"/p": "v"}))
    handler = Mangum(
        ParametersSecretsMiddleware(app, values=store, exclude_paths=["/docs*"]), lifespan="off"
    )
    invoke(handler, "http_api_v2", "/docs/oauth2-redirect")
    invoke(handler, "http_api_v2", "/")
    assert seen == [{}, {"p": "v"}]
    assert store.stats.fetches == 1


@pytest.mark.parametrize("bad", ["/health", ["health"], [1]])
def test_bad_exclude_paths_are_a_configuration_error(bad: Any) -> None:
    from parameters_secrets import ConfigurationError

    with pytest.raises(ConfigurationError, match="exclude_paths"):
        ParametersSecretsMiddleware(PlainTextResponse("x"), values={}, exclude_paths=bad)


def test_default_failure_answer_tells_the_caller_nothing_and_logs_the_keys(
    extension: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Mangum(app_reading(on_extension(extension)), lifespan="off")
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        response = invoke(handler, "http_api_v2")
    assert response.status == 503
    assert response.json() == {"detail": "Service Unavailable"}
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "'db'" in logged
    assert "ResourceNotFoundException" in logged
    assert "/app/api-key" in logged


def test_on_failure_answers_with_the_app_it_returns(extension: FakeExtension) -> None:
    errors: list[LoadError] = []

    def on_failure(error: LoadError) -> JSONResponse:
        errors.append(error)
        return JSONResponse({"error": "maintenance"}, status_code=503, headers={"x-why": "v"})

    handler = Mangum(app_reading(on_extension(extension), on_failure=on_failure), lifespan="off")
    response = invoke(handler, "api_gateway_v1")
    assert (response.status, response.json()) == (503, {"error": "maintenance"})
    assert response.headers["x-why"] == "v"
    assert sorted(errors[0].failures) == ["api_key", "db"]


def test_a_store_and_source_settings_together_are_a_configuration_error() -> None:
    from parameters_secrets import ConfigurationError

    store = ParametersSecrets({}, source=StaticSource())
    with pytest.raises(ConfigurationError, match="to the ParametersSecrets store"):
        ParametersSecretsMiddleware(PlainTextResponse("x"), values=store, source=StaticSource())


# --- what it says, and what it never says ---------------------------------------------------


def test_source_choice_is_logged_once_at_info_and_settings_at_debug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    with caplog.at_level(logging.DEBUG, logger="parameters_secrets"):
        ParametersSecrets({"p": Parameter("/p")})
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(info) == 1
    assert "ExtensionSource" in info[0]
    assert "AWS_LAMBDA_FUNCTION_NAME" in info[0]
    assert any("parameter_ttl=300" in message for message in debug)


def test_no_value_in_any_log_repr_or_error_of_the_store(
    extension: FakeExtension, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    seed(extension)
    store = on_extension(extension, clock=clock, settings=Settings(log_level="debug"))
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        values = store.load_sync()
        texts += [repr(store), repr(values), repr(store.stats)]
        clock.advance(301)
        extension.fail(faults.server_error("InternalServerError"))
        texts.append(repr(store.refresh_sync()))  # stale-if-error: previous value, a warning
        extension.clear_faults()
        extension.fail(faults.ACCESS_DENIED)
        with pytest.raises(LoadError) as raised:
            store.refresh_sync("db")
        texts += [str(raised.value), repr(raised.value), repr(raised.value.failures)]
        with pytest.raises(KeyError) as missing:
            store.get_sync("password")
        texts.append(str(missing.value))
    texts += [caplog.text] + [repr(r.args) for r in caplog.records]
    assert [text for text in texts if CANARY in text] == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)
