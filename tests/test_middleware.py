"""The middleware through real Mangum invocations against a real extension-compatible server."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Request
from mangum import Mangum
from mangum.types import LifespanMode
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from parameters_secrets import (
    ConfigurationError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsError,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
    current_values,
)
from parameters_secrets._sources.extension import ExtensionSource as _ExtensionSource
from parameters_secrets.fastapi import Value
from parameters_secrets.sources import (
    AwsSource,
    ExtensionSource,
    Outcome,
    Source,
    StaticSource,
    ValueRequest,
)
from tests import faults
from tests.conftest import TOKEN, FakeClock, detail_503
from tests.extension_server import FakeExtension
from tests.faults import Fault
from tests.lambda_events import EVENT_KINDS, EventKind, LambdaContext, invoke

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def extension_source(port: int, token: str | None = TOKEN, **kwargs: Any) -> ExtensionSource:
    return ExtensionSource(port=port, token=token, **kwargs)


def seed(extension: FakeExtension) -> None:
    extension.put_parameter("/app/api-key", "sk_live_abc", type="SecureString")
    extension.put_parameter("/app/flags", '{"beta": true, "limits": [1, 2]}')
    extension.put_parameter(
        "/app/origins", "https://a.example,https://b.example", type="StringList"
    )
    extension.put_secret("prod/db", string='{"username": "app", "password": "pw"}')


VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "flags": Parameter("/app/flags", transform="json"),
    "origins": Parameter("/app/origins", transform="list"),
    "db": Secret("prod/db", transform="json"),
}


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        return {
            "user": request.state.db["username"],
            "beta": request.state.flags["beta"],
            "origins": request.state.origins,
            "key_length": len(request.state.api_key),
            "keys": sorted(current_values()),
        }

    @app.get("/mutate")
    async def mutate(request: Request) -> dict[str, str]:
        try:
            request.state.flags["beta"] = False
        except TypeError:
            outcome = "refused"
        else:
            outcome = "changed"
        request.state.flags = {"beta": "replaced"}  # only this request's state
        return {"outcome": outcome}

    return app


def wrap(
    extension: FakeExtension,
    values: dict[str, Parameter | Secret] | None = None,
    *,
    clock: FakeClock | None = None,
    settings: Settings | None = None,
    app: Any = None,
) -> ParametersSecretsMiddleware:
    """The test app behind the middleware, on the fake extension; a 503 names what failed."""
    settings = settings or Settings()
    store = ParametersSecrets(
        VALUES if values is None else values,
        source=extension_source(extension.port, settings=settings),
        settings=settings,
        **({"clock": clock} if clock is not None else {}),
    )
    return ParametersSecretsMiddleware(
        app if app is not None else fastapi_app(), values=store, on_failure=detail_503
    )


@pytest.mark.parametrize("lifespan", ["auto", "off"])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_values_reach_routes_and_are_fetched_once_across_invocations(
    extension: FakeExtension, kind: EventKind, lifespan: LifespanMode
) -> None:
    seed(extension)
    middleware = wrap(extension)
    handler = Mangum(middleware, lifespan=lifespan)
    for _ in range(4):
        response = invoke(handler, kind, "/")
        assert response.status == 200, response.body
        assert response.json() == {
            "user": "app",
            "beta": True,
            "origins": ["https://a.example", "https://b.example"],
            "key_length": len("sk_live_abc"),
            "keys": ["api_key", "db", "flags", "origins"],
        }
    assert extension.calls("parameter", "/app/api-key") == 1
    assert extension.calls("parameter", "/app/flags") == 1
    assert extension.calls("secret", "prod/db") == 1
    assert extension.total_calls == 4
    assert middleware.stats.fetches == 4
    assert middleware.stats.hits == 12


def test_nothing_is_fetched_at_construction_or_lifespan(extension: FakeExtension) -> None:
    seed(extension)
    events: list[str] = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await fastapi_app()(scope, receive, send)

    handler = Mangum(wrap(extension, app=lifespan_app), lifespan="on")
    assert extension.total_calls == 0
    response = invoke(handler, "http_api_v2", "/")
    assert response.status == 200
    assert events == ["lifespan.startup", "lifespan.shutdown"]  # passed straight through
    assert extension.total_calls == 4


def test_first_request_fetches_every_value_concurrently(extension: FakeExtension) -> None:
    seed(extension)
    extension.fail(faults.delay(0.2), times=4)
    handler = Mangum(wrap(extension), lifespan="off")
    assert invoke(handler, "http_api_v2", "/").status == 200
    # Sequential requests over a keep-alive pool would share one connection: four slow
    # answers at once need four.
    assert extension.connections == 4
    assert invoke(handler, "http_api_v2", "/").status == 200
    assert extension.connections == 4
    assert extension.total_calls == 4


def test_extension_requests_carry_the_token_and_the_full_identity(
    extension: FakeExtension, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    extension.put_parameter("/p", "v1", labels=["release"])
    extension.put_parameter("/p", "v2")
    extension.put_secret("s", string="old")
    extension.put_secret("s", string="new")
    values: dict[str, Parameter | Secret] = {
        "by_version": Parameter("/p", version=1),
        "by_label": Parameter("/p", label="release"),
        "latest": Parameter("/p", decrypt=False),
        "previous": Secret("s", version_stage="AWSPREVIOUS"),
        "current": Secret("s"),
    }
    app = Starlette()

    async def show(scope: Any, receive: Any, send: Any) -> None:
        values = current_values()
        await PlainTextResponse(",".join(str(values[k]) for k in sorted(values)))(
            scope, receive, send
        )

    middleware = ParametersSecretsMiddleware(
        show, values=values, source=extension_source(extension.port, token=None)
    )
    del app
    response = invoke(Mangum(middleware, lifespan="off"), "alb", "/")
    assert response.status == 200
    assert response.body == "v1,v1,new,v2,old"
    queries = sorted(r.raw_query for r in extension.requests)
    assert queries == [
        "name=%2Fp&label=release&withDecryption=true",
        "name=%2Fp&version=1&withDecryption=true",
        "name=%2Fp&withDecryption=false",
        "secretId=s",
        "secretId=s&versionStage=AWSPREVIOUS",
    ]
    assert {r.headers["x-aws-parameters-secrets-token"] for r in extension.requests} == {TOKEN}


def test_same_identity_declared_twice_is_fetched_once(extension: FakeExtension) -> None:
    extension.put_parameter("/p", '["a", "b"]')
    values: dict[str, Parameter | Secret] = {
        "text": Parameter("/p"),
        "parsed": Parameter("/p", transform="json"),
        "other_label": Parameter("/p", label="x", required=False, default="none"),
    }
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope["state"])
        await PlainTextResponse("ok")(scope, receive, send)

    response = invoke(Mangum(wrap(extension, values, app=app), lifespan="off"), "http_api_v2")
    assert response.status == 200
    assert seen == {"text": '["a", "b"]', "parsed": ["a", "b"], "other_label": "none"}
    assert extension.calls("parameter", "/p") == 2  # the label is another identity


def test_hundred_concurrent_first_requests_make_one_upstream_call_per_key(
    extension: FakeExtension,
) -> None:
    seed(extension)
    extension.fail(faults.delay(0.2), times=4)
    middleware = wrap(extension)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            responses = await asyncio.gather(*(client.get("/") for _ in range(100)))
        await middleware.store.aclose()
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 100
    assert extension.calls("parameter", "/app/api-key") == 1
    assert extension.calls("parameter", "/app/flags") == 1
    assert extension.calls("parameter", "/app/origins") == 1
    assert extension.calls("secret", "prod/db") == 1


def test_value_is_refetched_after_its_ttl_and_not_before(
    extension: FakeExtension, clock: FakeClock
) -> None:
    seed(extension)
    settings = Settings(parameter_ttl=60, secret_ttl=300)
    handler = Mangum(wrap(extension, clock=clock, settings=settings), lifespan="off")
    assert invoke(handler, "api_gateway_v1", "/").status == 200
    clock.advance(59.9)
    assert invoke(handler, "api_gateway_v1", "/").status == 200
    assert extension.calls("parameter", "/app/flags") == 1
    extension.put_parameter("/app/flags", '{"beta": false}')
    clock.advance(0.2)
    response = invoke(handler, "api_gateway_v1", "/")
    assert response.json()["beta"] is False
    assert extension.calls("parameter", "/app/flags") == 2
    assert extension.calls("secret", "prod/db") == 1  # its TTL is 300


def test_declaration_ttl_overrides_the_kind_ttl(extension: FakeExtension, clock: FakeClock) -> None:
    seed(extension)
    values: dict[str, Parameter | Secret] = {
        **VALUES,
        "flags": Parameter("/app/flags", transform="json", ttl=1200),
    }
    handler = Mangum(wrap(extension, values, clock=clock), lifespan="off")
    invoke(handler, "http_api_v2", "/")
    clock.advance(600)
    invoke(handler, "http_api_v2", "/")
    assert extension.calls("parameter", "/app/flags") == 1
    assert extension.calls("parameter", "/app/api-key") == 2


@pytest.mark.parametrize(
    ("variables", "parameter_calls", "secret_calls"),
    [
        ({"SSM_PARAMETER_STORE_TTL": "0"}, 3, 1),
        ({"SECRETS_MANAGER_TTL": "0"}, 1, 3),
        ({"PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED": "FALSE"}, 3, 3),
        ({"PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE": "0"}, 3, 3),
    ],
)
def test_environment_bypasses_the_cache_as_the_extension_does(
    extension: FakeExtension,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    parameter_calls: int,
    secret_calls: int,
) -> None:
    seed(extension)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    handler = Mangum(wrap(extension, settings=settings), lifespan="off")
    for _ in range(3):
        assert invoke(handler, "http_api_v2", "/").status == 200
    assert extension.calls("parameter", "/app/flags") == parameter_calls
    assert extension.calls("secret", "prod/db") == secret_calls


def test_cache_size_bounds_entries_least_recently_used_first(extension: FakeExtension) -> None:
    for name in ("a", "b", "c"):
        extension.put_parameter(f"/{name}", f"value-{name}")
    store = ParametersSecrets(
        {n: Parameter(f"/{n}") for n in ("a", "b", "c")},
        source=extension_source(extension.port),
        settings=Settings(cache_size=2),
    )

    def use(key: str) -> dict[str, int]:
        """Read ``key``; then what upstream has been asked for each key so far."""
        assert store.get_sync(key) == f"value-{key}"
        return {n: extension.calls("parameter", f"/{n}") for n in ("a", "b", "c")}

    assert use("a") == {"a": 1, "b": 0, "c": 0}
    assert use("b") == {"a": 1, "b": 1, "c": 0}
    assert use("a") == {"a": 1, "b": 1, "c": 0}  # a hit: b is now the least recently used
    assert use("c") == {"a": 1, "b": 1, "c": 1}  # full: b is evicted, not a (first in)
    assert store.stats.size == 2
    assert use("a") == {"a": 1, "b": 1, "c": 1}  # a was kept
    assert use("b") == {"a": 1, "b": 2, "c": 1}  # b fetched again; c (older than a) goes
    assert use("a") == {"a": 1, "b": 2, "c": 1}
    assert use("c") == {"a": 1, "b": 2, "c": 2}  # c fetched again; b goes
    assert use("b") == {"a": 1, "b": 3, "c": 2}  # and again: a goes
    assert store.stats.size == 2
    # A request through the middleware reads the same bounded cache: only a is fetched.
    app = ParametersSecretsMiddleware(PlainTextResponse("ok"), values=store, on_failure=detail_503)
    assert invoke(Mangum(app, lifespan="off"), "http_api_v2", "/").status == 200
    assert {n: extension.calls("parameter", f"/{n}") for n in ("a", "b", "c")} == {
        "a": 2,
        "b": 3,
        "c": 2,
    }
    assert store.stats.size == 2


def test_not_ready_extension_is_retried_briefly(extension: FakeExtension) -> None:
    seed(extension)
    extension.fail(faults.NOT_READY, times=3, match="/app/flags")
    response = invoke(Mangum(wrap(extension), lifespan="off"), "http_api_v2", "/")
    assert response.status == 200
    assert extension.calls("parameter", "/app/flags") == 4


FAULTS = [
    pytest.param(faults.server_error("InternalServerError"), "InternalServerError", id="error_500"),
    pytest.param(faults.throttle(), "ThrottlingException", id="throttle"),
    pytest.param(faults.malformed(), "MalformedResponse", id="malformed_json"),
    pytest.param(faults.reset(), "ConnectionError", id="drop_mid_body"),
    pytest.param(faults.ACCESS_DENIED, "AccessDeniedException", id="access_denied"),
    pytest.param(faults.NOT_READY, "ExtensionNotReady", id="not_ready"),
]


@pytest.mark.parametrize(("fault", "code"), FAULTS)
def test_first_load_failure_answers_503_without_calling_the_app(
    extension: FakeExtension, fault: Fault, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed(extension)
    extension.fail(fault, match="prod/db")
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)
        await PlainTextResponse("ok")(scope, receive, send)

    # Throttling is retried until the fetch's time bound: keep that bound short, but not
    # shorter than a first answer over a socket on a loaded machine (CI: 300 ms was not).
    settings = Settings(secret_timeout_ms=1000)
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        response = invoke(
            Mangum(wrap(extension, app=app, settings=settings), lifespan="off"), "http_api_v2", "/"
        )
    assert response.status == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": f"could not load 'db' ({code})"}
    if code == "ThrottlingException":
        assert extension.calls("secret", "prod/db") > 1  # retried, not given up at once
    assert called == []
    assert any(r.levelno == logging.ERROR and "'db'" in r.getMessage() for r in caplog.records)
    extension.clear_faults()
    handler = Mangum(wrap(extension, app=app), lifespan="off")
    assert invoke(handler, "http_api_v2", "/").status == 200  # recovers when the fault clears


def test_refused_connection_answers_503_naming_the_layer(
    extension: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    seed(extension)
    handler = Mangum(wrap(extension), lifespan="off")
    extension.stop()
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        response = invoke(handler, "http_api_v2", "/")
    assert response.status == 503
    assert "ConnectionError" in response.json()["detail"]
    assert "is the extension layer attached?" in caplog.text


def test_slow_upstream_times_out_per_setting(extension: FakeExtension) -> None:
    seed(extension)
    extension.fail(faults.delay(5.0), match="/app/flags")
    settings = Settings(parameter_timeout_ms=150)
    response = invoke(Mangum(wrap(extension, settings=settings), lifespan="off"), "alb", "/")
    assert response.status == 503
    assert response.json() == {"detail": "could not load 'flags' (Timeout)"}


def test_slow_upstream_is_bounded_by_the_lambdas_remaining_time(
    extension: FakeExtension,
) -> None:
    seed(extension)
    extension.fail(faults.delay(5.0), match="prod/db")
    handler = Mangum(wrap(extension), lifespan="off")
    response = invoke(handler, "function_url", "/", context=LambdaContext(remaining_ms=300))
    assert response.status == 503
    assert response.json() == {"detail": "could not load 'db' (Timeout)"}


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param(
            faults.server_error("InternalServerError"), "InternalServerError", id="error_500"
        ),
        pytest.param(faults.throttle(), "ThrottlingException", id="throttle"),
        # Only this one waits (past the 1 s bound): every other fault must answer at
        # once, or the refresh would time out before meeting it.
        pytest.param(faults.delay(3.0), "Timeout", id="slow"),
        pytest.param(faults.malformed(), "MalformedResponse", id="malformed_json"),
    ],
)
def test_transient_refresh_failure_serves_the_previous_value(
    extension: FakeExtension,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    code: str,
) -> None:
    seed(extension)
    settings = Settings(secret_timeout_ms=1000)  # a first answer's time on a loaded machine
    middleware = wrap(extension, clock=clock, settings=settings)
    handler = Mangum(middleware, lifespan="off")
    assert invoke(handler, "http_api_v2", "/").status == 200
    clock.advance(301)
    asked_before = len(extension.call_log())
    extension.fail(fault, match="prod/db")
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        response = invoke(handler, "http_api_v2", "/")
    assert response.status == 200
    assert response.json()["user"] == "app"
    assert middleware.stats.stale_serves == 1
    # The refresh met the injected fault, every time it asked, and the warning names it.
    asked = [entry for entry in extension.call_log()[asked_before:] if entry[0] == "secret"]
    assert asked
    assert set(asked) == {("secret", "prod/db", fault)}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "prod/db" in warnings[0]
    assert f"({code}); serving the previous value" in warnings[0]
    # Recovery: once the fault clears and the retry pause passes, the new value is fetched.
    extension.clear_faults()
    extension.put_secret("prod/db", string='{"username": "rotated"}')
    clock.advance(10)
    assert invoke(handler, "http_api_v2", "/").json()["user"] == "rotated"


def test_stale_value_is_not_served_when_disabled(
    extension: FakeExtension, clock: FakeClock
) -> None:
    seed(extension)
    handler = Mangum(
        wrap(extension, clock=clock, settings=Settings(stale_if_error=False)), lifespan="off"
    )
    assert invoke(handler, "http_api_v2", "/").status == 200
    clock.advance(301)
    extension.fail(faults.server_error("InternalServerError"), match="prod/db")
    assert invoke(handler, "http_api_v2", "/").status == 503


def test_access_denied_on_refresh_is_not_masked_by_the_old_value(
    extension: FakeExtension, clock: FakeClock
) -> None:
    seed(extension)
    handler = Mangum(wrap(extension, clock=clock), lifespan="off")
    assert invoke(handler, "http_api_v2", "/").status == 200
    clock.advance(301)
    extension.fail(faults.ACCESS_DENIED, match="prod/db")
    response = invoke(handler, "http_api_v2", "/")
    assert response.status == 503
    assert response.json() == {"detail": "could not load 'db' (AccessDeniedException)"}


def test_optional_missing_value_gets_its_default_and_is_not_refetched_each_time(
    extension: FakeExtension,
) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["state"]["feature"])
        await PlainTextResponse("ok")(scope, receive, send)

    values: dict[str, Parameter | Secret] = {
        "feature": Parameter("/missing", required=False, default={"on": False})
    }
    handler = Mangum(wrap(extension, values, app=app), lifespan="off")
    for _ in range(3):
        assert invoke(handler, "http_api_v2", "/").status == 200
    assert seen == [{"on": False}] * 3
    assert extension.calls("parameter", "/missing") == 1


def test_required_missing_value_answers_503_with_the_aws_code(extension: FakeExtension) -> None:
    values: dict[str, Parameter | Secret] = {"thing": Secret("nope")}
    response = invoke(Mangum(wrap(extension, values), lifespan="off"), "api_gateway_v1", "/")
    assert response.status == 503
    assert response.json() == {"detail": "could not load 'thing' (ResourceNotFoundException)"}


def test_wrong_token_answers_503_unauthorized(extension: FakeExtension) -> None:
    seed(extension)
    middleware = ParametersSecretsMiddleware(
        fastapi_app(),
        values=VALUES,
        source=extension_source(extension.port, token="wrong"),
        on_failure=detail_503,
    )
    response = invoke(Mangum(middleware, lifespan="off"), "http_api_v2", "/")
    assert response.status == 503
    assert "(Unauthorized)" in response.json()["detail"]


def test_values_cannot_be_changed_by_one_request_for_another(extension: FakeExtension) -> None:
    seed(extension)
    handler = Mangum(wrap(extension), lifespan="off")
    assert invoke(handler, "http_api_v2", "/mutate").json() == {"outcome": "refused"}
    assert invoke(handler, "http_api_v2", "/").json()["beta"] is True


def test_fastapi_injection_gives_the_declared_value(extension: FakeExtension) -> None:
    seed(extension)
    app = FastAPI()

    @app.get("/")
    async def index(
        user: Annotated[Any, Value("db")], origins: Annotated[Any, Value("origins")]
    ) -> dict[str, Any]:
        return {"user": user["username"], "origins": len(origins)}

    response = invoke(Mangum(wrap(extension, app=app), lifespan="off"), "http_api_v2", "/")
    assert response.json() == {"user": "app", "origins": 2}


def test_websocket_is_refused_with_a_retryable_503_where_the_server_can_deny(
    extension: FakeExtension,
) -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(current_values()["db"]["username"])
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    seed(extension)
    with TestClient(wrap(extension, app=app)) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "app"
    extension.delete_secret("prod/db")
    # Starlette's test client, like uvicorn, offers the "websocket.http.response" extension.
    with (
        TestClient(wrap(extension, app=app)) as client,
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/ws"),
    ):
        pass
    assert refused.value.status_code == 503
    assert refused.value.headers["retry-after"] == "5"
    assert refused.value.json() == {"detail": "Service Unavailable"}


def test_websocket_is_accepted_and_closed_with_1011_where_the_server_cannot_deny(
    extension: FakeExtension, event_loop_per_test: asyncio.AbstractEventLoop
) -> None:
    seed(extension)
    extension.delete_secret("prod/db")
    app = wrap(extension, app=PlainTextResponse("never reached"))
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    event_loop_per_test.run_until_complete(app(scope, receive, send))
    # Closing before accepting would be a 403 "forbidden": accept, then close with 1011.
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 1011, "reason": "Service Unavailable"},
    ]


# The connections of a client whose loop has closed can only be dropped, not closed:
# their transports warn when collected. That is the old loop's loss, not a leak here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")
def test_a_new_event_loop_per_call_rebuilds_the_client(extension: FakeExtension) -> None:
    # Mangum < 0.21 and test clients run each call on a new loop.
    seed(extension)
    middleware = wrap(extension, settings=Settings(parameter_ttl=0, secret_ttl=0))

    async def get(last: bool = False) -> int:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            status = (await client.get("/")).status_code
        if last:
            await middleware.store.aclose()
        return status

    assert [asyncio.run(get()), asyncio.run(get()), asyncio.run(get(last=True))] == [200] * 3
    assert extension.calls("secret", "prod/db") == 3
    assert extension.connections == 12  # a pool per loop, four values at once in each
    gc.collect()  # let the dead loops' transports warn here, under this test's filters


def test_current_values_outside_a_request_is_a_clear_error() -> None:
    with pytest.raises(ParametersSecretsError, match="outside a request"):
        current_values()


@pytest.mark.parametrize("key", ["not-an-identifier", "class", "_state", "1st", ""])
def test_bad_keys_are_rejected_at_construction(key: str) -> None:
    with pytest.raises(ConfigurationError, match="values key"):
        ParametersSecretsMiddleware(
            fastapi_app(), values={key: Parameter("/p")}, source=StaticSource()
        )


def test_declarations_must_be_parameters_or_secrets() -> None:
    with pytest.raises(
        ConfigurationError, match="must be a Parameter, a Secret or a ParametersByPath"
    ):
        ParametersSecretsMiddleware(
            fastapi_app(),
            values={"x": "/p"},  # type: ignore[dict-item]
            source=StaticSource(),
        )


def test_source_is_chosen_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text('{"parameters": {"/p": "v"}}')
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", f"file:{values_file}")
    middleware = ParametersSecretsMiddleware(fastapi_app(), values={"p": Parameter("/p")})
    assert isinstance(middleware.store.source, StaticSource)
    monkeypatch.delenv("PARAMETERS_SECRETS_SOURCE")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2999")
    middleware = ParametersSecretsMiddleware(fastapi_app(), values={"p": Parameter("/p")})
    assert isinstance(middleware.store.source, _ExtensionSource)
    assert middleware.store.source.port == 2999
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    middleware = ParametersSecretsMiddleware(fastapi_app(), values={"p": Parameter("/p")})
    assert isinstance(middleware.store.source, AwsSource)


def test_log_level_variable_sets_the_library_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug")
    ParametersSecretsMiddleware(fastapi_app(), values={}, source=StaticSource())
    assert logging.getLogger("parameters_secrets").level == logging.DEBUG
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "none")
    ParametersSecretsMiddleware(fastapi_app(), values={}, source=StaticSource())
    assert logging.getLogger("parameters_secrets").level > logging.CRITICAL


def test_counters_are_logged_at_debug(
    extension: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    seed(extension)
    middleware = wrap(extension, settings=Settings(log_level="debug"))
    with caplog.at_level(logging.DEBUG, logger="parameters_secrets"):
        invoke(Mangum(middleware, lifespan="off"), "http_api_v2", "/")
    assert "fetches=4" in caplog.text


def test_optional_value_that_fails_otherwise_gets_its_default_with_a_warning(
    extension: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    extension.put_parameter("/denied", "x")
    extension.fail(faults.ACCESS_DENIED, match="/denied")
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["state"]["feature"])
        await PlainTextResponse("ok")(scope, receive, send)

    values: dict[str, Parameter | Secret] = {
        "feature": Parameter("/denied", required=False, default="off")
    }
    with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
        response = invoke(Mangum(wrap(extension, values, app=app), lifespan="off"), "alb", "/")
    assert response.status == 200
    assert seen == ["off"]
    assert "AccessDeniedException" in caplog.text


# -- a Lambda context or an on_failure that misbehaves ------------------------------------


class OddContext(LambdaContext):
    def __init__(self, remaining: float) -> None:
        super().__init__()
        self.remaining = remaining

    def get_remaining_time_in_millis(self) -> Any:
        return self.remaining


class DeadlineRecorder(Source):
    """A source answering every parameter with "value", noting the deadline it was given."""

    checks_records = True

    def __init__(self) -> None:
        self.deadlines: list[float | None] = []

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        self.deadlines.append(deadline)
        return [{"Name": "/key", "Value": "value"} for _ in requests]

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("remaining", [float("inf"), float("-inf"), float("nan")])
def test_a_remaining_time_that_is_not_finite_counts_as_no_deadline(remaining: float) -> None:
    source = DeadlineRecorder()
    app = ParametersSecretsMiddleware(
        PlainTextResponse("ok"), values={"key": Parameter("/key")}, source=source
    )
    context = OddContext(remaining)
    before = time.monotonic()
    response = invoke(Mangum(app, lifespan="off"), "http_api_v2", "/", context=context)
    after = time.monotonic()
    assert response.status == 200
    # The fetch ends by the default ceiling (10 s from when it began), not at once (-inf)
    # and not never (inf).
    [deadline] = source.deadlines
    assert deadline is not None
    assert before + 10 <= deadline <= after + 10


async def _raising_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the failure page broke")


def _raises(error: Exception) -> Any:
    raise RuntimeError("on_failure broke")


async def _async_on_failure(error: Exception) -> Any:
    return PlainTextResponse("never sent", status_code=500)


@pytest.mark.parametrize(
    ("on_failure", "logged"),
    [
        (_raises, "on_failure raised RuntimeError"),
        (_async_on_failure, "not an awaitable: is it an async function?"),
        (lambda error: {"status": 500}, "not dict"),
        (lambda error: _raising_app, "on_failure's answer raised RuntimeError"),
    ],
    ids=["raises", "async", "not-an-app", "app-raises"],
)
def test_an_on_failure_that_misbehaves_gives_the_default_503_and_an_error_naming_it(
    on_failure: Any, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = ParametersSecretsMiddleware(
        PlainTextResponse("ok"),
        values={"key": Parameter("/missing")},
        source=StaticSource(parameters={}),
        on_failure=on_failure,
    )
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        response = invoke(Mangum(app, lifespan="off"), "http_api_v2", "/")
    assert response.status == 503
    assert response.json() == {"detail": "Service Unavailable"}
    assert response.headers["retry-after"] == "5"
    assert logged in caplog.text
