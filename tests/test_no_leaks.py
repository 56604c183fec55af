"""No value ever reaches a log line, an exception, a repr or an error response.

Every path runs at DEBUG, for our logger and every other (httpx, httpcore, mangum), with a
distinctive secret; the test then searches everything that left the code for it.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from mangum import Mangum
from starlette.responses import JSONResponse

from parameters_secrets import (
    ExtensionSource,
    FetchError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
    StaticSource,
    current_values,
)
from parameters_secrets._declarations import apply_transform
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
    extension.fail("error_500")
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
