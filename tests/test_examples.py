"""The examples, invoked as Lambda would: their Mangum handlers with real-shaped events."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest

from parameters_secrets import (
    CacheStats,
    ConfigurationError,
    ParametersSecretsError,
    ParametersSecretsMiddleware,
)
from tests.conftest import TOKEN
from tests.extension_server import FakeExtension
from tests.lambda_events import EVENT_KINDS, EventKind, LambdaResponse, invoke

ROOT = Path(__file__).resolve().parent.parent
VALUES_FILE = ROOT / "examples" / "local-values.json"
LOCAL_VALUES: dict[str, Any] = json.loads(VALUES_FILE.read_text(encoding="utf-8"))
API_KEY: str = LOCAL_VALUES["parameters"]["/demo-app/prod/api-key"]["value"]
DB_PASSWORD: str = LOCAL_VALUES["secrets"]["demo-app/prod/db"]["json"]["password"]
INDEX_BODY = {"user": "demo", "beta": True, "origins": 2}
DECLARED = 4  # api_key, flags, allowed_origins, db in every example


class LoadExample(Protocol):
    def __call__(self, name: str) -> ModuleType: ...


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch, isolated_environment: None) -> LoadExample:
    """Import an example afresh with the file source: the middleware reads the
    environment when it is constructed, which is at import (or, under Starlette, on
    the first call)."""
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", f"file:{VALUES_FILE}")

    def load(name: str) -> ModuleType:
        module_name = f"examples.{name}"
        monkeypatch.delitem(sys.modules, module_name, raising=False)
        return importlib.import_module(module_name)

    return load


def middleware_of(app: Any) -> ParametersSecretsMiddleware:
    node = getattr(app, "middleware_stack", None) or app
    while node is not None:
        if isinstance(node, ParametersSecretsMiddleware):
            return node
        node = getattr(node, "app", None)
    raise LookupError("no ParametersSecretsMiddleware in the app")


def invoke_every_kind(module: ModuleType, path: str = "/") -> list[LambdaResponse]:
    """Invoke ``module.handler`` with each event kind, twice, checking the counters: the
    first request fetches every declared value, the later ones only hit the cache."""
    responses: list[LambdaResponse] = []
    kinds: list[EventKind] = [*EVENT_KINDS, *EVENT_KINDS]
    for number, kind in enumerate(kinds, start=1):
        responses.append(invoke(module.handler, kind, path))
        stats = middleware_of(module.app).stats
        assert stats == CacheStats(hits=DECLARED * (number - 1), fetches=DECLARED, size=DECLARED), (
            number,
            kind,
        )
    return responses


@pytest.mark.parametrize("name", ["fastapi_app", "starlette_app", "flask_app"])
def test_example_serves_values_on_every_event_kind_from_one_fetch(
    load_example: LoadExample, name: str
) -> None:
    module = load_example(name)
    responses = invoke_every_kind(module)
    assert [r.status for r in responses] == [200] * len(responses)
    assert [r.json() for r in responses] == [INDEX_BODY] * len(responses)
    assert all(r.headers["content-type"] == "application/json" for r in responses)


@pytest.mark.parametrize(
    "name", ["fastapi_app", "starlette_app", "flask_app", "flask_wsgi_app", "typed_config_app"]
)
def test_example_fails_at_import_on_a_bad_values_file(
    load_example: LoadExample, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """Each example builds its store at import: a bad values file is a clean error there,
    not a 500 on every request (Starlette builds its middleware on the first request)."""
    bad = tmp_path / "values.json"
    bad.write_text('{"parameters": {"/demo-app/prod/api-key": 3}}', encoding="utf-8")
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", f"file:{bad}")
    monkeypatch.delitem(sys.modules, f"examples.{name}", raising=False)
    with pytest.raises(ConfigurationError, match=r"values\.json"):
        importlib.import_module(f"examples.{name}")


def test_typed_config_example_serves_one_model_from_one_fetch_with_secrets_masked(
    load_example: LoadExample,
) -> None:
    module = load_example("typed_config_app")
    responses = [invoke(module.handler, kind, "/") for kind in [*EVENT_KINDS, *EVENT_KINDS]]
    assert [(r.status, r.json()) for r in responses] == [(200, INDEX_BODY)] * len(responses)
    shown = invoke(module.handler, "http_api_v2", "/config")
    assert shown.status == 200
    assert shown.json()["api_key"] == "**********"
    assert shown.json()["db"] == {
        "username": "demo",
        "password": "**********",
        "host": "localhost",
        "port": 5432,
    }
    assert (shown.json()["flags"], shown.json()["page_size"]) == (
        {"beta": True, "max_items": 25},
        20,
    )
    assert API_KEY not in shown.body
    assert DB_PASSWORD not in shown.body
    assert middleware_of(module.app).stats.fetches == DECLARED  # the routes' models fetched nothing
    assert module.store.model_sync() is module.store.model_sync()


def test_typed_config_example_answers_503_when_a_value_fails_validation(
    load_example: LoadExample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = json.loads(VALUES_FILE.read_text(encoding="utf-8"))
    values["secrets"]["demo-app/prod/db"]["json"]["port"] = "not-a-port"
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", f"file:{path}")
    monkeypatch.delitem(sys.modules, "examples.typed_config_app", raising=False)
    module = importlib.import_module("examples.typed_config_app")
    response = invoke(module.handler, "alb", "/")
    assert (response.status, response.json()) == (503, {"detail": "Service Unavailable"})


def test_flask_view_reads_current_values(load_example: LoadExample) -> None:
    module = load_example("flask_app")
    # The middleware wraps WsgiToAsgi directly: no Starlette stack to walk.
    assert isinstance(module.app, ParametersSecretsMiddleware)
    response = invoke(module.handler, "alb", "/")
    assert (response.status, response.json()) == (200, INDEX_BODY)
    # Outside a request there are no values, so the view got them from the ContextVar.
    with pytest.raises(ParametersSecretsError, match=r"outside a request"):
        module.index()


def test_fastapi_injected_value_is_used_but_not_echoed(load_example: LoadExample) -> None:
    module = load_example("fastapi_app")
    responses = invoke_every_kind(module, "/injected")
    expected = {"api_key_length": len(API_KEY), "test_mode": True}
    assert [(r.status, r.json()) for r in responses] == [(200, expected)] * len(responses)
    assert not any(API_KEY in r.body for r in responses)


def test_fastapi_routes_share_one_cache(load_example: LoadExample) -> None:
    module = load_example("fastapi_app")
    assert invoke(module.handler, "http_api_v2", "/").json() == INDEX_BODY
    assert invoke(module.handler, "api_gateway_v1", "/injected").status == 200
    assert middleware_of(module.app).stats.fetches == DECLARED


def test_example_answers_503_when_the_values_file_lacks_a_value(
    load_example: LoadExample,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    partial = {"parameters": LOCAL_VALUES["parameters"]}  # no db secret
    path = tmp_path / "values.json"
    path.write_text(json.dumps(partial), encoding="utf-8")
    module = load_example("starlette_app")  # sets the source to the full file...
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", f"file:{path}")  # ...replaced here
    module = importlib.reload(module)
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"):
        response = invoke(module.handler, "function_url", "/")
    assert response.status == 503
    assert response.json() == {"detail": "Service Unavailable"}  # the caller learns nothing
    assert response.headers["retry-after"] == "5"
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "'db'" in error
    assert "ResourceNotFoundException" in error


def test_starlette_websocket_gets_the_username(load_example: LoadExample) -> None:
    module = load_example("starlette_app")
    with warnings.catch_warnings():
        # Starlette 1.x prefers httpx2 for its test client; httpx works and is what we have.
        warnings.filterwarnings(
            "ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning
        )
        from starlette.testclient import TestClient

    with TestClient(module.app) as client:
        for _ in range(2):
            with client.websocket_connect("/ws") as websocket:
                assert websocket.receive_json() == {"user": "demo"}
    stats = middleware_of(module.app).stats
    assert (stats.fetches, stats.hits) == (DECLARED, DECLARED)


def test_demo_runs_offline_shows_a_refresh_and_a_503_and_leaks_no_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "PARAMETERS_SECRETS_"))
        },
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "refreshed" in result.stdout
    assert " 503 " in result.stdout
    assert "'webhook_secret'" in result.stdout
    assert "(ParameterNotFound)" in result.stdout
    assert '"beta":false' in result.stdout  # the refreshed value
    assert "secret values found in the output: 0" in result.stdout
    assert API_KEY not in output
    assert DB_PASSWORD not in output


# --- the FastAPI example's store, shared with a plain handler and the lifespan ------------


@pytest.fixture
def example_on_extension(
    load_example: LoadExample, monkeypatch: pytest.MonkeyPatch, extension: FakeExtension
) -> ModuleType:
    """The FastAPI example (and, through it, the SQS handler) on the fake extension."""
    for name, spec in LOCAL_VALUES["parameters"].items():
        if isinstance(spec, list):
            extension.put_parameter(name, ",".join(spec), type="StringList")
        elif isinstance(spec, str):
            extension.put_parameter(name, spec)
        else:
            extension.put_parameter(name, spec.get("value") or json.dumps(spec["json"]))
    for name, spec in LOCAL_VALUES["secrets"].items():
        extension.put_secret(name, string=json.dumps(spec["json"]))
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", "extension")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(extension.port))
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.delitem(sys.modules, "examples.sqs_handler", raising=False)
    return load_example("fastapi_app")


def test_sqs_handler_and_mangum_handler_share_one_cache(
    example_on_extension: ModuleType, extension: FakeExtension
) -> None:
    sqs = importlib.import_module("examples.sqs_handler")
    event = {"Records": [{"messageId": "1", "body": '{"id": 7}'}, {"messageId": "2", "body": "x"}]}
    assert sqs.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    for kind in EVENT_KINDS:
        assert invoke(example_on_extension.handler, kind, "/").json() == INDEX_BODY
    assert sqs.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert extension.total_calls == DECLARED  # the SQS handler's load served them all


def test_fastapi_example_refreshes_a_rotated_key_after_the_provider_rejects_it(
    example_on_extension: ModuleType, extension: FakeExtension
) -> None:
    module = example_on_extension
    extension.put_parameter("/demo-app/prod/api-key", "sk_revoked_4f1")
    assert invoke(module.handler, "http_api_v2", "/").status == 200  # cached: the old key
    extension.put_parameter("/demo-app/prod/api-key", "sk_test_rotated_9c2")  # rotated
    response = invoke(module.handler, "http_api_v2", "/pay", method="POST")
    assert (response.status, response.json()) == (200, {"charged": 100, "test_mode": True})
    assert extension.calls("parameter", "/demo-app/prod/api-key") == 2  # one refresh
    assert invoke(module.handler, "http_api_v2", "/pay", method="POST").status == 200
    assert extension.calls("parameter", "/demo-app/prod/api-key") == 2


def test_fastapi_example_health_answers_while_values_cannot_load(
    example_on_extension: ModuleType, extension: FakeExtension
) -> None:
    extension.stop()
    assert invoke(example_on_extension.handler, "alb", "/health").json() == {"status": "ok"}
    assert invoke(example_on_extension.handler, "alb", "/").status == 503
