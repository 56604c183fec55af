"""ParametersSecretsWSGIMiddleware: a WSGI app (Flask) with no ASGI adapter, under a threaded
WSGI server on 127.0.0.1 and under apig-wsgi's Lambda handler."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from wsgiref import simple_server
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import httpx
import pytest
from apig_wsgi import make_lambda_handler
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from parameters_secrets import (
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsError,
    ParametersSecretsWSGIMiddleware,
    Secret,
    current_values,
)
from parameters_secrets.sources import (
    ExtensionSource,
    Outcome,
    Source,
    StaticSource,
    ValueRequest,
)
from tests import faults
from tests.conftest import TOKEN
from tests.extension_server import FakeExtension
from tests.lambda_events import LambdaContext, invoke
from tests.processes import ReadyLineProcess, clean_environment

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
    upstream.fail(faults.delay(DELAY))  # every request arrives during the first fetch
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


def test_values_are_never_left_current_in_the_servers_thread(upstream: FakeExtension) -> None:
    app = wrapped(on(upstream))
    with app.test_client() as client:
        response = client.get("/stream", buffered=False)  # the body not read yet
        with pytest.raises(ParametersSecretsError, match="outside a request"):
            current_values()
        assert response.get_data() == b"password=pw-1"  # set while each chunk is made
        with pytest.raises(ParametersSecretsError, match="outside a request"):
            current_values()
        response.close()
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


# The middleware is invisible to the server: what the server would do with the app's own
# response (Content-Length from a one-chunk body, sendfile for its file wrapper), it does.

KEY_VALUES = {"key": Parameter("/app/key")}
BODY = b"hello, server"


def static_store() -> ParametersSecrets:
    return ParametersSecrets(KEY_VALUES, source=StaticSource(parameters={"/app/key": "k-1"}))


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class SendfileRecorder(ServerHandler):
    """wsgiref's handler, noting each response it recognised as its file wrapper (wsgiref
    asks ``sendfile()`` only then); it then writes the file as wsgiref does by default."""

    sent_files: ClassVar[list[object]] = []

    def sendfile(self) -> bool:
        self.sent_files.append(self.result)  # type: ignore[attr-defined]  # set by run()
        return False  # wsgiref iterates the wrapper instead


@pytest.fixture
def wsgiref_serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Serve a WSGI app with the standard library's wsgiref on 127.0.0.1; yields its URL."""
    monkeypatch.setattr(simple_server, "ServerHandler", SendfileRecorder)
    monkeypatch.setattr(SendfileRecorder, "sent_files", [])
    servers: list[tuple[WSGIServer, threading.Thread]] = []

    def start(app: Any) -> str:
        server = simple_server.make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(10)


def headers_of(url: str) -> tuple[dict[str, str], bytes]:
    with httpx.Client(timeout=10) as client:
        response = client.get(url)
    assert response.status_code == 200
    headers = {k: v for k, v in response.headers.items() if k != "date"}  # the clock's
    return headers, response.content


def one_chunk_list(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # no Content-Length
    return [BODY]


def test_a_one_chunk_list_body_keeps_its_content_length_under_wsgiref(
    wsgiref_serve: Any,
) -> None:
    bare = headers_of(wsgiref_serve(one_chunk_list))
    wrapped = headers_of(
        wsgiref_serve(ParametersSecretsWSGIMiddleware(one_chunk_list, values=static_store()))
    )
    assert bare[0]["content-length"] == str(len(BODY))  # what wsgiref adds for one chunk
    assert wrapped == bare


@pytest.mark.parametrize("body", [[BODY], (BODY,)], ids=["list", "tuple"])
def test_a_body_made_already_is_returned_as_the_app_gave_it(body: Any) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return body

    middleware: Any = ParametersSecretsWSGIMiddleware(app, values=static_store())
    assert middleware({"PATH_INFO": "/"}, lambda status, headers: None) is body


def test_a_body_iterator_without_close_gives_its_chunks_and_closes_quietly() -> None:
    # An iterator (not a list) is wrapped, to set the values while it runs; a server
    # calls close() on what it got, whether the app's body had one or not.
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return iter([BODY, BODY])  # a list_iterator: no close()

    middleware: Any = ParametersSecretsWSGIMiddleware(app, values=static_store())
    body = middleware({"PATH_INFO": "/"}, lambda status, headers: None)
    assert list(body) == [BODY, BODY]
    body.close()  # nothing to close behind it: no error


class OneChunkWithClose:
    """A sized body that runs the app's code on close: it must be wrapped, and still sized."""

    def __init__(self) -> None:
        self.closed_with: list[str] = []
        self.closed = threading.Event()

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[bytes]:
        yield BODY

    def close(self) -> None:
        self.closed_with.append(current_values().key)
        self.closed.set()


def test_a_sized_body_with_close_keeps_its_content_length_and_has_the_values_on_close(
    wsgiref_serve: Any,
) -> None:
    body = OneChunkWithClose()

    def app(environ: Any, start_response: Any) -> OneChunkWithClose:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    headers, _ = headers_of(
        wsgiref_serve(ParametersSecretsWSGIMiddleware(app, values=static_store()))
    )
    assert headers["content-length"] == str(len(BODY))
    assert body.closed.wait(10)  # the server closes the body after sending it
    assert body.closed_with == ["k-1"]  # with the request's values


@pytest.fixture
def served_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.txt"
    path.write_bytes(BODY * 1000)
    return path


def file_app(path: Path, returned: list[object]) -> Any:
    def app(environ: Any, start_response: Any) -> Any:
        size = path.stat().st_size
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(size))])
        returned.append(environ["wsgi.file_wrapper"](path.open("rb"), 8192))
        return returned[-1]

    return app


def test_the_servers_file_wrapper_reaches_it_as_the_same_object(
    wsgiref_serve: Any, served_file: Path
) -> None:
    returned: list[object] = []
    bare = headers_of(wsgiref_serve(file_app(served_file, returned)))
    wrapped = ParametersSecretsWSGIMiddleware(
        file_app(served_file, returned), values=static_store()
    )
    assert headers_of(wsgiref_serve(wrapped)) == bare
    assert bare[1] == served_file.read_bytes()
    # wsgiref offered each response to sendfile(): it recognised its own wrapper both times.
    assert len(returned) == 2
    assert [id(sent) for sent in SendfileRecorder.sent_files] == [id(body) for body in returned]


GUNICORN_APP = """
import os
from pathlib import Path

from parameters_secrets import (
    Parameter, ParametersSecrets, ParametersSecretsWSGIMiddleware, current_values
)
from parameters_secrets.sources import StaticSource

PATH = Path(os.environ["SERVED_FILE"])


def file_app(environ, start_response):
    headers = [("Content-Length", str(PATH.stat().st_size))]
    if environ.get("parameters_secrets.values") is not None:
        headers.append(("X-Key", current_values().key))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](PATH.open("rb"))


wrapped = ParametersSecretsWSGIMiddleware(
    file_app,
    values=ParametersSecrets(
        {"key": Parameter("/app/key")}, source=StaticSource(parameters={"/app/key": "k-1"})
    ),
)


def app(environ, start_response):
    chosen = wrapped if environ["PATH_INFO"] == "/wrapped" else file_app
    return chosen(environ, start_response)
"""

# Gunicorn's hook: note, in a file, whether each response went out with sendfile. Written
# before the body is sent, so it is there when the client has the body.
GUNICORN_CONFIG = """
import os


def post_worker_init(worker):
    from gunicorn.http import wsgi

    original = wsgi.Response.sendfile

    def sendfile(self, respiter):
        sent = original(self, respiter)
        with open(os.environ["SENDFILE_LOG"], "a") as log:
            log.write(f"{self.req.path} {sent}\\n")
        return sent

    wsgi.Response.sendfile = sendfile
"""


def test_under_gunicorn_a_file_response_goes_out_with_sendfile(
    tmp_path: Path, served_file: Path
) -> None:
    pytest.importorskip("gunicorn", reason="gunicorn runs on Unix only")
    (tmp_path / "gunicorn_app.py").write_text(GUNICORN_APP)
    (tmp_path / "gunicorn_conf.py").write_text(GUNICORN_CONFIG)
    log = tmp_path / "sendfile.log"
    env = clean_environment(
        {
            "SERVED_FILE": str(served_file),
            "SENDFILE_LOG": str(log),
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "middleware")]),
        }
    )
    argv = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1"]
    argv += ["--config", str(tmp_path / "gunicorn_conf.py"), "gunicorn_app:app"]
    with ReadyLineProcess(argv, env, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        with httpx.Client(timeout=30) as client:
            bare = client.get(f"{server.url}/bare")
            wrapped = client.get(f"{server.url}/wrapped")
        output = server.output()
    assert (bare.status_code, wrapped.status_code) == (200, 200), output
    assert bare.content == wrapped.content == served_file.read_bytes()
    assert wrapped.headers["x-key"] == "k-1"  # the values were there when the app ran
    # Gunicorn recognised the file wrapper behind the middleware and sent the file itself.
    assert log.read_text().splitlines() == ["/bare True", "/wrapped True"], output
