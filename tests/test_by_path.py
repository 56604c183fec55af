"""ParametersByPath: a whole hierarchy of parameters as one value (issue 13, part 1).

Against moto's server behind a counting proxy (pages counted), the values file, the
middleware under a real Mangum handler, and the extension with AWS directly for paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parameters_secrets import (
    ConfigurationError,
    LoadError,
    Parameter,
    ParametersByPath,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
)
from parameters_secrets.sources import AwsSource, ExtensionSource, StaticSource
from tests.conftest import TOKEN
from tests.extension_server import FakeExtension
from tests.lambda_events import invoke
from tests.moto_server import CountingProxy, MotoServer, create_iam_user, put_parameter

PREFIX = "/app/prod"
# 23 parameters under the path (3 pages of 10), nested two levels; a SecureString; and
# siblings that share the path's first characters but are not under it.
UNDER: dict[str, tuple[str, str]] = {
    **{f"{PREFIX}/p{i:02}": (f"v{i}", "String") for i in range(20)},
    f"{PREFIX}/db/host": ("db.internal", "String"),
    f"{PREFIX}/db/password": ("pw-by-path", "SecureString"),
    f"{PREFIX}/flags": (json.dumps({"beta": True}), "String"),
}
SIBLINGS = {"/app/production/leak": "no", "/app/other/leak": "no", "/app/prod-x": "no"}
EXPECTED = {name.removeprefix(PREFIX + "/"): value for name, (value, _) in UNDER.items()}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def seeded(moto: MotoServer) -> MotoServer:
    for name, (value, kind) in UNDER.items():
        put_parameter(moto, name, value, type=kind)  # type: ignore[arg-type]
    for name, value in SIBLINGS.items():
        put_parameter(moto, name, value)
    return moto


def values_file() -> StaticSource:
    return StaticSource(
        parameters={
            **{name: {"value": value, "type": kind} for name, (value, kind) in UNDER.items()},
            **SIBLINGS,
        }
    )


@pytest.mark.usefixtures("aws_env")
def test_a_path_of_several_pages_is_one_value_of_every_parameter_under_it(
    seeded: MotoServer, moto_proxy: CountingProxy
) -> None:
    store = ParametersSecrets(
        {"config": ParametersByPath(PREFIX)},
        source=AwsSource(endpoint_url=moto_proxy.url),
    )
    config = store.load_sync().config
    assert dict(config) == EXPECTED  # nested names, the SecureString decrypted, no sibling
    assert moto_proxy.calls("AmazonSSM.GetParametersByPath") == 3  # 23 parameters, 10 a page
    store.load_sync()
    store.get_sync("config")
    assert moto_proxy.calls("AmazonSSM.GetParametersByPath") == 3  # one cache entry
    with pytest.raises(TypeError):
        config["p00"] = "changed"


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("source_kind", ["aws", "file"])
def test_options_answer_alike_from_aws_and_from_the_values_file(
    seeded: MotoServer, source_kind: str
) -> None:
    source = AwsSource(endpoint_url=seeded.url) if source_kind == "aws" else values_file()
    store = ParametersSecrets(
        {
            "children": ParametersByPath(f"{PREFIX}/", recursive=False),
            "db": ParametersByPath(f"{PREFIX}/db"),
            "encrypted": ParametersByPath(f"{PREFIX}/db", decrypt=False),
            "flags": ParametersByPath(PREFIX, recursive=False, transform=lambda v: v.upper()),
            "nothing": ParametersByPath("/app/none"),
        },
        source=source,
    )
    values = store.load_sync()
    assert set(values.children) == {f"p{i:02}" for i in range(20)} | {"flags"}  # no db/...
    assert dict(values.db) == {"host": "db.internal", "password": "pw-by-path"}
    assert values.encrypted["host"] == "db.internal"
    assert values.encrypted["password"] != "pw-by-path"  # not decrypted
    assert values.flags["p01"] == "V1"  # the transform, on each value
    assert values.nothing == {}  # an empty path is an empty mapping, not an error


def test_a_json_transform_applies_to_each_value_and_each_result_is_read_only() -> None:
    store = ParametersSecrets(
        {"flags": ParametersByPath("/flags", transform="json")},
        source=StaticSource(
            parameters={"/flags/a": {"json": {"on": True}}, "/flags/b": {"json": [1, 2]}}
        ),
    )
    flags = store.load_sync().flags
    assert flags == {"a": {"on": True}, "b": [1, 2]}
    with pytest.raises(TypeError):
        flags["a"]["on"] = False


def test_a_value_a_transform_cannot_read_names_the_parameter_not_its_value() -> None:
    store = ParametersSecrets(
        {"flags": ParametersByPath("/flags", transform="json")},
        source=StaticSource(parameters={"/flags/good": "{}", "/flags/bad": "not-json-SECRET"}),
    )
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    error = failed.value.failures["flags"]
    assert error.code == "TransformFailed"
    assert "'bad'" in str(error)
    assert "SECRET" not in str(error)


class SwappableStaticSource(StaticSource):
    """A values file whose contents the test replaces, as a deployment would upstream."""

    def swap(self, parameters: dict[str, Any]) -> None:
        self.__dict__.update(StaticSource(parameters=parameters).__dict__)


def test_an_optional_path_with_a_value_a_transform_cannot_read_is_its_default() -> None:
    # Powertools' get_parameters(path, transform="json") gives None for that one value;
    # here the path is one value: all of it or, when optional, its default.
    store = ParametersSecrets(
        {"flags": ParametersByPath("/flags", transform="json", required=False)},
        source=StaticSource(parameters={"/flags/good": "{}", "/flags/bad": "not-json"}),
    )
    assert store.load_sync().flags == {}


def test_a_refresh_that_finds_a_value_a_transform_cannot_read_keeps_the_previous_path() -> None:
    now = [0.0]
    source = SwappableStaticSource(parameters={"/flags/a": "{}", "/flags/b": "[1]"})
    store = ParametersSecrets(
        {"flags": ParametersByPath("/flags", transform="json", ttl=60)},
        source=source,
        clock=lambda: now[0],
    )
    assert store.load_sync().flags == {"a": {}, "b": [1]}
    source.swap({"/flags/a": '{"new": 1}', "/flags/b": "not-json"})
    now[0] = 61.0  # past the TTL
    assert store.load_sync().flags == {"a": {}, "b": [1]}  # the whole previous mapping
    assert store.refresh_sync("flags").flags == {"a": {}, "b": [1]}
    assert store.stats.stale_serves == 2


def test_a_path_through_the_middleware_under_mangum_reaches_the_route() -> None:
    async def route(request: Request) -> JSONResponse:
        return JSONResponse({"host": request.state.config["db/host"]})

    app = ParametersSecretsMiddleware(
        Starlette(routes=[Route("/", route)]),
        values={"config": ParametersByPath(PREFIX)},
        source=values_file(),
    )
    handler = Mangum(app, lifespan="off")
    for _ in range(3):
        assert invoke(handler, "http_api_v2", "/").json() == {"host": "db.internal"}
    assert app.stats.fetches == 1


@pytest.mark.usefixtures("aws_env")
def test_with_the_extension_a_path_comes_from_aws_and_every_other_value_from_the_extension(
    seeded: MotoServer,
    moto_proxy: CountingProxy,
    extension: FakeExtension,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_proxy.url)  # what the AwsSource it makes uses
    extension.put_parameter("/single", "from-the-extension")
    extension.put_secret("prod/db", string="secret-from-the-extension")
    store = ParametersSecrets(
        {
            "config": ParametersByPath(PREFIX),
            "single": Parameter("/single"),
            "db": Secret("prod/db"),
        },
        source=ExtensionSource(extension.port, TOKEN),  # no configuration for paths
    )
    values = store.load_sync()
    assert dict(values.config) == EXPECTED
    assert (values.single, values.db) == ("from-the-extension", "secret-from-the-extension")
    assert extension.total_calls == 2
    assert moto_proxy.counts == {"AmazonSSM.GetParametersByPath": 3}


def test_a_path_that_cannot_be_read_fails_if_required_and_is_empty_if_not(
    moto_auth: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    access_key, secret_key = create_iam_user(moto_auth, ["ssm:GetParameter"])  # not by path
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    source = AwsSource(region="us-east-1", endpoint_url=moto_auth.url)
    required = ParametersSecrets({"config": ParametersByPath(PREFIX)}, source=source)
    with pytest.raises(LoadError) as failed:
        required.load_sync()
    assert failed.value.failures["config"].code == "AccessDenied"  # moto's code for it
    optional = ParametersSecrets(
        {"config": ParametersByPath(PREFIX, required=False)}, source=source
    )
    assert optional.load_sync().config == {}


def test_a_trailing_slash_changes_nothing() -> None:
    assert ParametersByPath("/app/prod/").request == ParametersByPath("/app/prod").request
    assert ParametersByPath("/").request.path == "/"


@pytest.mark.parametrize("bad", ["app/prod", "", "/app//prod", "arn:aws:ssm:x:1:parameter/a", 3])
def test_a_path_that_is_not_a_hierarchy_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="ParametersByPath path"):
        ParametersByPath(bad)


def test_the_values_file_serves_paths_to_the_store(tmp_path: Path) -> None:
    file = tmp_path / "values.json"
    file.write_text(json.dumps({"parameters": {"/svc/a": "1", "/svc/b/c": "2", "/x": "3"}}))
    store = ParametersSecrets(
        {"svc": ParametersByPath("/svc")}, source=StaticSource.from_file(file)
    )
    assert dict(store.load_sync().svc) == {"a": "1", "b/c": "2"}
