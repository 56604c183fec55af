"""ParametersSecretsWSGIMiddleware: a WSGI app (Flask) with no ASGI adapter, under a threaded
WSGI server on 127.0.0.1 and under apig-wsgi's Lambda handler."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from apig_wsgi import make_lambda_handler
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from parameters_secrets import (
    ExtensionSource,
    LoadError,
    Outcome,
    Parameter,
    ParametersSecrets,
    ParametersSecretsError,
    ParametersSecretsWSGIMiddleware,
    Secret,
    Source,
    StaticSource,
    ValueRequest,
    current_values,
)
from tests.conftest import TOKEN
from tests.extension_server import FakeExtension
from tests.lambda_events import LambdaContext, invoke

DELAY = 0.3
VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "db": Secret("prod/db", transform="json"),
}
ROOT = Path(__file__).resolve().parent.parent


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> dict[str, Any]:
        from_environ = request.environ["parameters_secrets.values"]
        from_context = current_values()
        return {
            "environ": from_environ["db"]["password"],
            "context": from_context.db["password"],
            "same": from_environ is from_context,
        }

    @app.get("/health")
    def health() -> str:
        return "ok"

    @app.get("/stream")
    def stream() -> Any:
        def body() -> Iterator[str]:
            yield "password="
            yield current_values().db["password"]  # while the body is produced

        return app.response_class(body())

    return app


def wrapped(store: ParametersSecrets, **kwargs: Any) -> Flask:
    app = flask_app()
    app.wsgi_app = ParametersSecretsWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, values=store, **kwargs
    )
    return app


@pytest.fixture
def upstream(extension: FakeExtension) -> FakeExtension:
    extension.put_parameter("/app/api-key", "key-1", type="SecureString")
    extension.put_secret("prod/db", string=json.dumps({"password": "pw-1"}))
    return extension


def on(extension: FakeExtension) -> ParametersSecrets:
    return ParametersSecrets(VALUES, source=ExtensionSource(extension.port, TOKEN))


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve a WSGI app with werkzeug's threaded server on 127.0.0.1; yields its URL."""
    servers: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_thirty_concurrent_first_requests_make_one_upstream_call_per_key(
    upstream: FakeExtension, serve: Any
) -> None:
    upstream.fail("slow", delay=DELAY)  # every request arrives during the first fetch
    url = serve(wrapped(on(upstream)))
    go = threading.Event()
    answers: list[Any] = []

    def get() -> None:
        go.wait(10)
        with httpx.Client(timeout=30) as client:
            response = client.get(f"{url}/")
        answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=get, daemon=True) for _ in range(30)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    # Each request sees its values in the environ and through current_values(), the same.
    assert answers == [(200, {"environ": "pw-1", "context": "pw-1", "same": True})] * 30
    assert upstream.calls("parameter", "/app/api-key") == 1
    assert upstream.calls("secret", "prod/db") == 1


def test_a_streamed_body_reads_the_values_while_it_is_produced(
    upstream: FakeExtension, serve: Any
) -> None:
    url = serve(wrapped(on(upstream)))
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{url}/stream").text == "password=pw-1"


def test_values_are_not_current_after_the_response_is_closed(upstream: FakeExtension) -> None:
    app = wrapped(on(upstream))
    with app.test_client() as client:
        response = client.get("/")
        assert response.status_code == 200
        assert current_values()["db"]["password"] == "pw-1"  # the body is still open
        response.close()  # as a WSGI server does once the body is sent (PEP 3333)
    with pytest.raises(ParametersSecretsError, match="outside a request"):
        current_values()


class DeadlineRecorder(Source):
    """Answers every request from a StaticSource, noting the deadline it was given."""

    checks_records = True

    def __init__(self) -> None:
        self.inner = StaticSource(
            parameters={"/app/api-key": "key-1"},
            secrets={"prod/db": {"json": {"password": "pw-1"}}},
        )
        self.deadlines: list[float | None] = []

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        self.deadlines.append(deadline)
        return await self.inner.fetch(requests, deadline)

    async def aclose(self) -> None:
        pass


def test_under_apig_wsgi_on_an_http_api_event_with_the_lambdas_deadline() -> None:
    source = DeadlineRecorder()
    handler = make_lambda_handler(wrapped(ParametersSecrets(VALUES, source=source)))
    for _ in range(3):
        response = invoke(handler, "http_api_v2", "/", context=LambdaContext(remaining_ms=5000))
        assert response.status == 200
        assert response.json() == {"environ": "pw-1", "context": "pw-1", "same": True}
    assert len(source.deadlines) == 1  # one fetch of both values for three invocations
    assert source.deadlines[0] is not None  # the Lambda's remaining time bounds it


def test_the_serverless_wsgi_context_bounds_loading_too() -> None:
    source = DeadlineRecorder()
    app = wrapped(ParametersSecrets(VALUES, source=source))
    environ = {"serverless.context": LambdaContext(remaining_ms=5000)}
    with app.test_client() as client:
        assert client.get("/", environ_base=environ).status_code == 200
    assert source.deadlines[0] is not None


def test_a_value_that_cannot_load_answers_503_and_logs_only_keys_and_codes(
    upstream: FakeExtension, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.delete_secret("prod/db")
    app = wrapped(on(upstream))
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"), app.test_client() as client:
        response = client.get("/")
    assert response.status_code == 503
    assert response.json == {"detail": "Service Unavailable"}
    assert response.headers["Retry-After"] == "5"
    assert "'db' (secret prod/db) could not be loaded from ExtensionSource(port=" in caplog.text
    assert "(ResourceNotFoundException)" in caplog.text
    assert "pw-1" not in caplog.text


def test_on_failure_answers_with_the_wsgi_app_it_returns(upstream: FakeExtension) -> None:
    upstream.delete_secret("prod/db")

    def on_failure(error: LoadError) -> Any:
        def answer(environ: Any, start_response: Any) -> list[bytes]:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"missing: {', '.join(error.failures)}".encode()]

        return answer

    app = wrapped(on(upstream), on_failure=on_failure)
    with app.test_client() as client:
        response = client.get("/")
    assert (response.status_code, response.text) == (503, "missing: db")


@pytest.mark.parametrize(
    ("on_failure", "logged"),
    [(lambda error: 1 / 0, "raised ZeroDivisionError"), (lambda error: "text", "not str")],
    ids=["raises", "not-an-app"],
)
def test_an_on_failure_that_misbehaves_gives_the_default_503(
    upstream: FakeExtension, on_failure: Any, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.delete_secret("prod/db")
    app = wrapped(on(upstream), on_failure=on_failure)
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"), app.test_client() as client:
        response = client.get("/")
    assert response.status_code == 503
    assert response.json == {"detail": "Service Unavailable"}
    assert logged in caplog.text


def test_an_excluded_path_answers_without_loading(upstream: FakeExtension) -> None:
    upstream.stop()  # the extension is down
    app = wrapped(on(upstream), exclude_paths=("/health",))
    with app.test_client() as client:
        assert client.get("/health").text == "ok"
        assert client.get("/").status_code == 503
    assert upstream.total_calls == 0


def test_the_flask_wsgi_example_serves_its_values_under_apig_wsgi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "PARAMETERS_SECRETS_SOURCE", f"file:{ROOT / 'examples' / 'local-values.json'}"
    )
    monkeypatch.delitem(sys.modules, "examples.flask_wsgi_app", raising=False)
    example = importlib.import_module("examples.flask_wsgi_app")
    for path, body in [
        ("/", {"user": "demo", "beta": True, "origins": 2}),
        ("/environ", {"user": "demo"}),
    ]:
        response = invoke(example.handler, "http_api_v2", path)
        assert (response.status, response.json()) == (200, body)
    assert example.config.stats.fetches == 4  # once, for both requests
    assert invoke(example.handler, "api_gateway_v1", "/health").body == "ok"
