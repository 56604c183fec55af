"""Metrics export (issue 20, item 3): ``PARAMETERS_SECRETS_METRICS=otel|emf``.

A scripted sequence (a load at INIT, warm requests through a real Mangum handler, the
ASGI and the WSGI middleware, a TTL refresh, a stale serve after a transient failure, a
value that does not exist) against the fake extension on 127.0.0.1; then the exported
counts are compared with the store's ``stats``. OpenTelemetry is read with the SDK's
``InMemoryMetricReader``; EMF lines are checked against AWS's specification
(CloudWatch_Embedded_Metric_Format_Specification). Off by default: a fresh interpreter
imports nothing of it and prints nothing.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from apig_wsgi import make_lambda_handler
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parameters_secrets import (
    ConfigurationError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    ParametersSecretsWSGIMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._declarations import ValueRequest
from parameters_secrets._sources import Outcome
from parameters_secrets.sources import ExtensionSource
from tests import faults
from tests.conftest import TOKEN, FakeClock
from tests.extension_server import FakeExtension
from tests.lambda_events import invoke
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
SENTINEL = "Metrics-Sentinel-9b41c7"  # every value contains it: never in a metric
NAMES = ("/app/api-key", "prod/db", "/app/missing", "api-key", "missing")
VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "db": Secret("prod/db", transform="json"),
    "missing": Parameter("/app/missing", required=False, default=None),
}
FIELDS = ("hits", "fetches", "refreshes", "stale_serves", "errors")
OTEL_NAMES = {
    "hits": "cache.hits",
    "fetches": "cache.misses",
    "refreshes": "cache.refreshes",
    "stale_serves": "cache.stale_serves",
    "errors": "fetch.errors",
}
EMF_NAMES = {
    "hits": "CacheHits",
    "fetches": "CacheMisses",
    "refreshes": "CacheRefreshes",
    "stale_serves": "CacheStaleServes",
    "errors": "FetchErrors",
}


class RoundCountingSource(ExtensionSource):
    """The extension's source, counting calls of its fetch: one fetch round each."""

    rounds = 0

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        type(self).rounds += 1
        return await super().fetch(requests, deadline)


def seed(extension: FakeExtension, version: int) -> None:
    extension.put_parameter("/app/api-key", f"{SENTINEL}-key-{version}", type="SecureString")
    extension.put_secret("prod/db", string=json.dumps({"password": f"{SENTINEL}-pw-{version}"}))


def asgi_handler(store: ParametersSecrets) -> Mangum:
    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"length": len(request.state.db["password"])})

    return Mangum(
        ParametersSecretsMiddleware(Starlette(routes=[Route("/", index)]), values=store),
        lifespan="off",
    )


def wsgi_handler(store: ParametersSecrets) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        password = environ["parameters_secrets.values"]["db"]["password"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(password)).encode()]

    return make_lambda_handler(ParametersSecretsWSGIMiddleware(app, values=store))


def scripted_sequence(extension: FakeExtension, store: ParametersSecrets, clock: FakeClock) -> None:
    """INIT load; warm requests (ASGI under Mangum, WSGI under apig-wsgi, warm get_sync);
    a TTL refresh; a stale serve on a 500; a parameter that does not exist, every round."""
    seed(extension, 1)
    store.load_sync()  # at INIT: cold, three values asked, /app/missing not found
    asgi, wsgi = asgi_handler(store), wsgi_handler(store)
    for kind in ("http_api_v2", "api_gateway_v1", "alb", "function_url"):
        assert invoke(asgi, kind).status == 200  # warm
    assert invoke(wsgi, "api_gateway_v1").status == 200  # warm
    assert store.get_sync("db")["password"] == f"{SENTINEL}-pw-1"  # warm, one value
    seed(extension, 2)
    clock.advance(301)  # every value expired: refreshed on the next request
    assert invoke(asgi, "http_api_v2").status == 200
    assert invoke(wsgi, "api_gateway_v1").status == 200  # warm again
    clock.advance(301)
    extension.fail(
        faults.server_error("InternalServerError"), times=1, match="prod/db"
    )  # transient: served stale
    assert invoke(asgi, "http_api_v2").status == 200
    assert store.get_sync("db")["password"] == f"{SENTINEL}-pw-2"


@pytest.fixture
def store_for(
    extension: FakeExtension, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], ParametersSecrets]:
    RoundCountingSource.rounds = 0

    def make(mode: str) -> ParametersSecrets:
        monkeypatch.setenv("PARAMETERS_SECRETS_METRICS", mode)
        return ParametersSecrets(
            VALUES, source=RoundCountingSource(extension.port, TOKEN), clock=clock
        )

    return make


# -- OpenTelemetry ------------------------------------------------------------------------


def _reset_meter_provider() -> None:
    # The API lets a process set its global meter provider once; the SDK's own tests
    # reset these globals between tests (opentelemetry-test-utils' reset_metrics_globals).
    from opentelemetry.metrics import _internal
    from opentelemetry.util._once import Once

    _internal._METER_PROVIDER_SET_ONCE = Once()
    _internal._METER_PROVIDER = None
    _internal._PROXY_METER_PROVIDER = _internal._ProxyMeterProvider()


@pytest.fixture
def otel_reader() -> Iterator[Any]:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    _reset_meter_provider()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    yield reader
    provider.shutdown()
    _reset_meter_provider()


def exported(reader: Any) -> dict[str, list[Any]]:
    """Metric name -> data points, for the meter ``parameters_secrets``."""
    points: dict[str, list[Any]] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "parameters_secrets"
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    return points


def test_otel_two_stores_share_one_set_of_instruments_and_their_counts_add_up(
    otel_reader: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from parameters_secrets.sources import StaticSource

    monkeypatch.setenv("PARAMETERS_SECRETS_METRICS", "otel")
    stores = [
        ParametersSecrets({key: Parameter(f"/{key}")}, source=StaticSource({f"/{key}": key}))
        for key in ("a", "b")
    ]
    with caplog.at_level(logging.WARNING):
        for store in stores:
            store.load_sync()
    fetches = exported(otel_reader)[OTEL_NAMES["fetches"]]
    assert sum(point.value for point in fetches) == 2
    # The SDK warns when an instrument is made twice: made once per provider, it is not.
    assert "has been created already" not in caplog.text


def test_otel_counts_equal_the_stores_stats_with_only_kind_and_error_type(
    extension: FakeExtension, clock: FakeClock, store_for: Any, otel_reader: Any
) -> None:
    store = store_for("otel")
    scripted_sequence(extension, store, clock)
    stats = store.stats
    points = exported(otel_reader)
    assert stats.hits > 0
    assert stats.refreshes > 0
    assert stats.stale_serves == 1
    for field in FIELDS:
        total = sum(point.value for point in points[OTEL_NAMES[field]])
        assert total == getattr(stats, field), field
    hits = {point.attributes["kind"]: point.value for point in points["cache.hits"]}
    assert set(hits) == {"parameter", "secret"}
    errors = {
        (point.attributes["kind"], point.attributes["error.type"]): point.value
        for point in points["fetch.errors"]
    }
    assert errors[("parameter", "ParameterNotFound")] == 3  # INIT, refresh, stale round
    assert [kind for kind, code in errors if code != "ParameterNotFound"] == ["secret"]
    durations = points["fetch.duration"]
    assert sum(point.count for point in durations) == RoundCountingSource.rounds == 3
    everything = json.dumps(
        [dict(point.attributes) for metric in points.values() for point in metric]
    )
    for point in (p for metric in points.values() for p in metric):
        assert set(point.attributes) <= {"kind", "error.type"}
        assert point.attributes["kind"] in ("parameter", "secret", "mixed")
    for secret in (SENTINEL, *NAMES):
        assert secret not in everything


def test_otel_warm_hits_are_counted_at_collection_and_keep_growing(
    extension: FakeExtension, clock: FakeClock, store_for: Any, otel_reader: Any
) -> None:
    store = store_for("otel")
    seed(extension, 1)
    store.load_sync()
    handler = asgi_handler(store)
    for expected in (1, 2):  # cumulative across collections: nothing lost, nothing twice
        for _ in range(5):
            assert invoke(handler, "http_api_v2").status == 200
        hits = sum(point.value for point in exported(otel_reader)["cache.hits"])
        assert hits == store.stats.hits == expected * 5 * len(VALUES)


def test_otel_without_opentelemetry_installed_is_a_configuration_error() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "from parameters_secrets import ConfigurationError, Parameter, ParametersSecrets\n"
        "from parameters_secrets.sources import StaticSource\n"
        "try:\n"
        "    ParametersSecrets({'k': Parameter('/k')}, source=StaticSource(parameters={}))\n"
        "except ConfigurationError as error:\n"
        "    print(error)\n"
    )
    completed = run_python(code, PARAMETERS_SECRETS_METRICS="otel")
    assert "PARAMETERS_SECRETS_METRICS=otel needs opentelemetry-api" in completed.stdout
    assert "[otel]" in completed.stdout


# -- CloudWatch embedded metric format ----------------------------------------------------

UNITS = {  # CloudWatch's units (the spec's MetricDefinition.Unit)
    *("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes"),
    *("Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits"),
    *("Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second"),
    *("Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second"),
    *("Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"),
}


def check_emf_document(document: dict[str, Any]) -> None:
    """AWS's EMF specification, structurally: the root has ``_aws`` (an object with
    exactly ``Timestamp``, ms since the epoch, and ``CloudWatchMetrics``, an array of
    MetricDirectives); a MetricDirective has exactly ``Namespace`` (a string),
    ``Dimensions`` (an array of DimensionSets: arrays of at most 30 strings, each naming a
    root member whose value is a string) and ``Metrics`` (at most 100 MetricDefinitions:
    ``Name``, optional ``Unit`` from CloudWatch's units, optional ``StorageResolution``),
    each Name a root member whose value is a number (or an array of at most 100)."""
    metadata = document["_aws"]
    assert set(metadata) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(metadata["Timestamp"], int)
    assert 1_500_000_000_000 < metadata["Timestamp"] < 5_000_000_000_000  # ms, not s
    assert isinstance(metadata["CloudWatchMetrics"], list)
    assert metadata["CloudWatchMetrics"]
    for directive in metadata["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str)
        assert 1 <= len(directive["Namespace"]) <= 1024
        assert isinstance(directive["Dimensions"], list)
        assert directive["Dimensions"]
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list)
            assert len(dimension_set) <= 30
            for dimension in dimension_set:
                assert isinstance(document[dimension], str)
                assert 1 <= len(document[dimension]) <= 1024
        assert isinstance(directive["Metrics"], list)
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            assert set(definition) <= {"Name", "Unit", "StorageResolution"}
            assert isinstance(definition["Name"], str)
            assert 1 <= len(definition["Name"]) <= 1024
            assert definition.get("Unit", "None") in UNITS
            value = document[definition["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100
            assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def emf_documents(output: str) -> list[dict[str, Any]]:
    lines = output.splitlines()
    documents = [json.loads(line) for line in lines]  # every line is one JSON document
    for document in documents:
        check_emf_document(document)
    return documents


def test_emf_lines_follow_the_spec_one_per_round_and_add_up_to_stats(
    extension: FakeExtension,
    clock: FakeClock,
    store_for: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = store_for("emf")
    scripted_sequence(extension, store, clock)
    output = capsys.readouterr().out
    stats = store.stats  # after the last round's line: every count is in a line
    documents = emf_documents(output)
    assert len(documents) == RoundCountingSource.rounds == 3  # one per fetch round
    # Every count is in a line, but the one hit of the warm get_sync() after the last round.
    for field in FIELDS:
        total = sum(document[EMF_NAMES[field]] for document in documents)
        assert total == getattr(stats, field) - (field == "hits"), field
    assert documents[-1]["CacheStaleServes"] == 1
    assert all(
        d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "parameters_secrets" for d in documents
    )
    for secret in (SENTINEL, *NAMES):
        assert secret not in output


def test_emf_hits_since_the_last_line_come_with_the_next_round(
    extension: FakeExtension,
    clock: FakeClock,
    store_for: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = store_for("emf")
    seed(extension, 1)
    store.load_sync()
    handler = asgi_handler(store)
    for _ in range(4):
        assert invoke(handler, "http_api_v2").status == 200
    assert capsys.readouterr().out.count("\n") == 1  # warm requests write nothing
    store.refresh_sync()
    (document,) = emf_documents(capsys.readouterr().out)
    assert document["CacheHits"] == 4 * len(VALUES)
    assert document["CacheMisses"] == document["CacheRefreshes"] + 1 == 3  # missing: not found
    assert 0 <= document["FetchDuration"] < 10
    totals = store.stats
    assert (totals.hits, totals.fetches) == (4 * len(VALUES), 6)


def test_emf_on_lambda_has_the_function_name_as_its_dimension(
    extension: FakeExtension,
    clock: FakeClock,
    store_for: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    store = store_for("emf")
    seed(extension, 1)
    store.load_sync()
    (document,) = emf_documents(capsys.readouterr().out)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName"]]
    assert document["FunctionName"] == "orders-api"


# -- off by default; the setting ----------------------------------------------------------


def run_python(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=clean_environment({"PYTHONPATH": f"{ROOT / 'middleware'}:{ROOT}", **environ}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


OFF = """
import json, sys
from parameters_secrets import Parameter, ParametersSecrets, Secret
from parameters_secrets.sources import StaticSource
store = ParametersSecrets(
    {"k": Parameter("/k"), "s": Secret("s")},
    source=StaticSource(parameters={"/k": "v"}, secrets={"s": "w"}),
)
store.load_sync(); store.load_sync(); store.get_sync("k"); store.refresh_sync()
ours = ("opentelemetry", "parameters_secrets._metrics")
loaded = sorted(m for m in sys.modules if m.startswith(ours))
print(json.dumps({"loaded": loaded, "fetches": store.stats.fetches}))
"""


@pytest.mark.parametrize("setting", [None, "", "none", "NONE"])
def test_metrics_are_off_by_default_nothing_imported_nothing_printed(setting: str | None) -> None:
    environ = {} if setting is None else {"PARAMETERS_SECRETS_METRICS": setting}
    completed = run_python(OFF, **environ)
    assert completed.stdout.splitlines() == [json.dumps({"loaded": [], "fetches": 4})]


def test_the_setting_is_parsed_and_a_bad_value_names_the_variable() -> None:
    assert Settings.from_env({}).metrics is None
    assert Settings.from_env({"PARAMETERS_SECRETS_METRICS": "OTel"}).metrics == "otel"
    assert Settings.from_env({"PARAMETERS_SECRETS_METRICS": "emf"}).metrics == "emf"
    assert Settings.from_env({"PARAMETERS_SECRETS_METRICS": "none"}).metrics is None
    assert Settings(metrics="EMF").metrics == "emf"  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"PARAMETERS_SECRETS_METRICS": "prometheus"})
    assert str(raised.value) == (
        "PARAMETERS_SECRETS_METRICS must be 'otel', 'emf' or 'none', not 'prometheus'"
    )
    with pytest.raises(ConfigurationError, match=r"^metrics must be 'otel', 'emf' or 'none'"):
        Settings(metrics="statsd")  # type: ignore[arg-type]
