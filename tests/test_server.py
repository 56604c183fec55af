"""The local extension-compatible server: its HTTP contract in process, and the real command."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mangum import Mangum
from starlette.responses import JSONResponse

from parameters_secrets import (
    FetchError,
    Parameter,
    ParametersSecretsMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._cli import main
from parameters_secrets._declarations import ValueRequest
from parameters_secrets._server import ExtensionServer
from parameters_secrets._sources import Outcome
from parameters_secrets.sources import ExtensionSource, StaticSource
from tests import faults
from tests.lambda_events import invoke
from tests.local_server import LocalServer
from tests.moto_server import CountingProxy, MotoServer, create_secret, put_parameter
from tests.processes import clean_environment

pytestmark = pytest.mark.anyio
TOKEN = "server-test-token"
VALUES_FILE: dict[str, dict[str, Any]] = {
    "parameters": {
        "/my/parameter": "plain value",
        "/slack/webhook/url/devops": {"value": "https://hooks.example/x", "type": "SecureString"},
        "/versioned": {"value": "v3", "version": 3, "labels": ["release"]},
        "/flags": {"json": {"beta": True}},
    },
    "secrets": {"prod/db": {"json": {"username": "app"}}, "blob": b"\x00\x01".hex()},
}


class CountingSource:
    """A StaticSource that counts fetches, or answers with a given error."""

    checks_records = True  # StaticSource's records, or errors

    def __init__(self, error: FetchError | None = None) -> None:
        data = {**VALUES_FILE, "secrets": {"prod/db": {"json": {"username": "app"}}}}
        self.inner = StaticSource(parameters=data["parameters"], secrets=data["secrets"])
        self.error = error
        self.fetched: list[ValueRequest] = []

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        self.fetched.extend(requests)
        if self.error is not None:
            return [self.error] * len(requests)
        return await self.inner.fetch(requests, deadline)

    async def aclose(self) -> None:
        pass


def client_for(source: Any, **overrides: Any) -> httpx.AsyncClient:
    server = ExtensionServer(source, token=TOKEN, settings=Settings(**overrides))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server),
        base_url="http://127.0.0.1:2773",
        headers={"X-Aws-Parameters-Secrets-Token": TOKEN},
    )


@pytest.mark.parametrize(
    "path", ["/systemsmanager/parameters/get", "/systemsmanager/parameters/get/"]
)
async def test_parameter_answer_is_get_parameters_own_json(path: str) -> None:
    async with client_for(CountingSource()) as client:
        response = await client.get(f"{path}?name=%2Fmy%2Fparameter")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"Parameter", "ResultMetadata"}
    assert body["Parameter"]["Name"] == "/my/parameter"
    assert body["Parameter"]["Value"] == "plain value"
    assert body["Parameter"]["Type"] == "String"


@pytest.mark.parametrize("path", ["/secretsmanager/get", "/secretsmanager/get/"])
async def test_secret_answer_is_get_secret_values_own_json(path: str) -> None:
    async with client_for(CountingSource()) as client:
        response = await client.get(f"{path}?secretId=prod%2Fdb")
    assert response.status_code == 200
    body = response.json()
    assert json.loads(body["SecretString"]) == {"username": "app"}
    assert body["Name"] == "prod/db"
    assert "AWSCURRENT" in body["VersionStages"]


@pytest.mark.parametrize(
    ("query", "value_or_code"),
    [
        ("name=%2Fversioned&version=3&label=nope", "v3"),  # version first: label ignored
        ("name=%2Fversioned&label=release&version=99", "v3"),  # label first: version ignored
        ("name=%2Fversioned&label=nope&version=3", "ParameterVersionLabelNotFound"),
        ("name=%2Fversioned&version=99&label=release", "ParameterVersionNotFound"),
    ],
)
async def test_version_or_label_first_after_the_question_mark_wins(
    query: str, value_or_code: str
) -> None:
    async with client_for(CountingSource()) as client:
        response = await client.get(f"/systemsmanager/parameters/get?{query}")
    body = response.json()
    if response.status_code == 200:
        assert body["Parameter"]["Value"] == value_or_code
    else:
        assert (response.status_code, body["__type"]) == (400, value_or_code)


async def test_secure_string_is_decrypted_only_when_asked() -> None:
    name = "%2Fslack%2Fwebhook%2Furl%2Fdevops"
    async with client_for(CountingSource()) as client:
        plain = await client.get(f"/systemsmanager/parameters/get?name={name}")
        decrypted = await client.get(
            f"/systemsmanager/parameters/get?name={name}&withDecryption=TRUE"
        )
    assert plain.json()["Parameter"]["Value"] != "https://hooks.example/x"
    assert decrypted.json()["Parameter"]["Value"] == "https://hooks.example/x"


P = "/systemsmanager/parameters/get"
S = "/secretsmanager/get"
H = "X-Aws-Parameters-Secrets-Token"
REFERENCE = "/aws/reference/secretsmanager/"
# A file source answers as AWS does: selectors in the name, references to secrets.
AS_AWS_ANSWERS = [
    ("name=%2Fversioned%3A3", 200, ":3"),
    ("name=/versioned:release", 200, ":release"),
    ("name=%2Fversioned%3A2", 400, "ParameterVersionNotFound"),
    ("name=%2Fversioned%3Abeta", 400, "ParameterVersionLabelNotFound"),
    ("name=%2Fversioned%3A3&label=release", 400, "ValidationException"),
    (f"name={REFERENCE}prod/db&withDecryption=true", 200, None),
    (f"name={REFERENCE}prod/db:AWSCURRENT&withDecryption=true", 200, ":AWSCURRENT"),
    (f"name={REFERENCE}prod/db&withDecryption=false", 400, "ValidationException"),
    (f"name={REFERENCE}prod/db", 400, "ValidationException"),  # withDecryption defaults false
    (f"name={REFERENCE}nope&withDecryption=true", 400, "ParameterNotFound"),
]


def check_as_aws_answers(status: int, body: Any, expected_status: int, expected: Any) -> None:
    """One answer of ``AS_AWS_ANSWERS``: the selected value in AWS's shape, or AWS's error."""
    assert status == expected_status, body
    if status != 200:
        assert body["__type"] == expected
        return
    parameter = body["Parameter"]
    assert parameter["Selector"] == expected
    if parameter["Name"].startswith(REFERENCE):
        assert parameter["Name"] == f"{REFERENCE}prod/db"
        assert parameter["Type"] == "SecureString"
        assert json.loads(parameter["Value"]) == {"username": "app"}
        source_result = json.loads(parameter["SourceResult"])  # GetSecretValue's answer
        assert source_result["Name"] == "prod/db"
        assert source_result["SecretString"] == parameter["Value"]
        assert parameter["ARN"] == source_result["ARN"]
    else:
        assert (parameter["Name"], parameter["Value"], parameter["Version"]) == (
            "/versioned",
            "v3",
            3,
        )


@pytest.mark.parametrize(("query", "status", "expected"), AS_AWS_ANSWERS)
async def test_file_source_answers_selectors_and_references_as_aws(
    query: str, status: int, expected: Any
) -> None:
    async with client_for(CountingSource()) as client:
        response = await client.get(f"{P}?{query}")
    check_as_aws_answers(response.status_code, response.json(), status, expected)


@pytest.mark.parametrize(
    ("headers", "method", "path", "status", "code"),
    [
        ({H: ""}, "GET", f"{S}?secretId=x", 401, "Unauthorized"),
        ({H: "wrong"}, "GET", f"{S}?secretId=x", 401, "Unauthorized"),
        ({"X-Forwarded-For": "203.0.113.9"}, "GET", f"{S}?secretId=prod%2Fdb", 400, "BadRequest"),
        ({}, "POST", f"{S}?secretId=prod%2Fdb", 405, "MethodNotAllowed"),
        ({}, "DELETE", f"{P}?name=x", 405, "MethodNotAllowed"),
        ({}, "GET", "/secretsmanager/list", 404, "NotFound"),
        ({}, "GET", S, 400, "ValidationException"),
        ({}, "GET", f"{P}?name=x&version=abc", 400, "ValidationException"),
        ({}, "GET", f"{P}?name=x&withDecryption=maybe", 400, "ValidationException"),
        ({}, "GET", f"{P}?name=%2Fnope", 400, "ParameterNotFound"),
        ({}, "GET", f"{S}?secretId=nope", 400, "ResourceNotFoundException"),
    ],
)
async def test_refusals_and_errors_keep_aws_shape(
    headers: dict[str, str], method: str, path: str, status: int, code: str
) -> None:
    async with client_for(CountingSource()) as client:
        response = await client.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.json()["__type"] == code
    assert "plain value" not in response.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (FetchError("slow", code="Timeout", transient=True), 504),
        (FetchError("refused", code="ConnectionError", transient=True), 502),
        (FetchError("denied", code="AccessDeniedException", status=400), 400),
        (FetchError("throttled", code="ThrottlingException", transient=True, status=400), 400),
        (FetchError("boom", code="InternalServerError", transient=True, status=500), 500),
    ],
)
async def test_upstream_failures_keep_aws_status_or_answer_502_504(
    error: FetchError, status: int
) -> None:
    async with client_for(CountingSource(error)) as client:
        response = await client.get("/secretsmanager/get?secretId=prod%2Fdb")
    assert response.status_code == status
    assert response.json()["__type"] == error.code


async def test_server_caches_with_the_extensions_ttl_settings() -> None:
    source = CountingSource()
    async with client_for(source) as client:
        for _ in range(3):
            assert (
                await client.get("/systemsmanager/parameters/get?name=%2Fflags")
            ).status_code == 200
    assert len(source.fetched) == 1
    source = CountingSource()
    async with client_for(source, parameter_ttl=0) as client:
        for _ in range(3):
            await client.get("/systemsmanager/parameters/get?name=%2Fflags")
    assert len(source.fetched) == 3


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        [
            "/systemsmanager/parameters/get",
            "/systemsmanager/parameters/get/",
            "/secretsmanager/get",
            "/x",
        ]
    ),
    query=st.binary(max_size=80),
    token=st.one_of(st.just(TOKEN), st.text(max_size=10)),
)
async def test_hostile_queries_never_cause_a_500_or_a_value_without_the_token(
    path: str, query: bytes, token: str
) -> None:
    server = ExtensionServer(CountingSource(), token=TOKEN, settings=Settings())
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(b"x-aws-parameters-secrets-token", token.encode("utf-8", "replace"))],
    }
    await server(scope, receive, send)
    status = sent[0]["status"]
    assert status in (200, 400, 401, 404)
    if token != TOKEN:
        assert status in (401, 404)
        assert b"plain value" not in sent[1]["body"]


# -- the real command ------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """`python -m parameters_secrets serve --port 0` on a values file; yields its port."""
    data = json.loads(json.dumps(VALUES_FILE))
    data["secrets"]["blob"] = {"binary": base64.b64encode(b"\x00\x01").decode()}
    values = tmp_path / "values.json"
    values.write_text(json.dumps(data))
    env = clean_environment({"AWS_SESSION_TOKEN": TOKEN})
    with LocalServer(f"file:{values}", env) as server:
        assert TOKEN not in server.ready_line
        yield server.port


def test_documentation_snippet_with_urllib_works_unchanged_but_the_port(served: int) -> None:
    # AWS's Systems Manager user guide example, with its port.
    aws_session_token = TOKEN
    req = urllib.request.Request(
        f"http://localhost:{served}/systemsmanager/parameters/get?name=%2Fmy%2Fparameter"
    )
    req.add_header("X-Aws-Parameters-Secrets-Token", aws_session_token)
    config = urllib.request.urlopen(req).read()  # noqa: S310 - loopback
    assert json.loads(config)["Parameter"]["Value"] == "plain value"


def test_documentation_snippets_with_requests_work_unchanged_but_the_port(served: int) -> None:
    # The Secrets Manager user guide example.
    headers = {"X-Aws-Parameters-Secrets-Token": TOKEN}
    secrets_extension_http_port = str(served)
    secrets_extension_endpoint = (
        "http://localhost:"
        + secrets_extension_http_port
        + "/secretsmanager/get?secretId="
        + "prod/db"
    )
    r = requests.get(secrets_extension_endpoint, headers=headers, timeout=10)
    secret = json.loads(r.text)["SecretString"]
    assert json.loads(secret) == {"username": "app"}
    # The CDK post's example: requests.utils.quote leaves the slashes unencoded.
    url = f"http://localhost:{served}"
    parameter_encode = requests.utils.quote("/slack/webhook/url/devops")  # type: ignore[attr-defined]
    path = f"systemsmanager/parameters/get?name={parameter_encode}&withDecryption=true"
    res = requests.get(f"{url}/{path}", headers=headers, timeout=10)
    assert res.status_code == 200
    assert res.json()["Parameter"]["Value"] == "https://hooks.example/x"


def test_extension_source_works_against_the_server(served: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        state = scope["state"]
        await JSONResponse(
            {
                "user": state["db"]["username"],
                "beta": state["flags"]["beta"],
                "blob": list(state["blob"]),
            }
        )(scope, receive, send)

    values: dict[str, Parameter | Secret] = {
        "db": Secret("prod/db", transform="json"),
        "flags": Parameter("/flags", transform="json"),
        "blob": Secret("blob"),
    }
    middleware = ParametersSecretsMiddleware(
        app, values=values, source=ExtensionSource(port=served, token=TOKEN)
    )
    handler = Mangum(middleware, lifespan="off")
    for _ in range(3):
        response = invoke(handler, "http_api_v2", "/")
        assert response.status == 200
        assert response.json() == {"user": "app", "beta": True, "blob": [0, 1]}
    assert middleware.stats.fetches == 3


@pytest.mark.parametrize(("query", "status", "expected"), AS_AWS_ANSWERS)
def test_served_file_answers_selectors_and_references_as_aws(
    served: int, query: str, status: int, expected: Any
) -> None:
    response = requests.get(f"http://127.0.0.1:{served}{P}?{query}", headers={H: TOKEN}, timeout=10)
    check_as_aws_answers(response.status_code, response.json(), status, expected)


def test_selectors_and_references_reach_the_app_through_the_served_file(served: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        state = scope["state"]
        body = {"db": state["db"]["username"], "v": state["v"], "label": state["label"]}
        await JSONResponse(body)(scope, receive, send)

    values: dict[str, Parameter | Secret] = {
        "db": Parameter(REFERENCE + "prod/db:AWSCURRENT", transform="json"),
        "v": Parameter("/versioned:3"),
        "label": Parameter("/versioned", label="release"),
    }
    middleware = ParametersSecretsMiddleware(
        app, values=values, source=ExtensionSource(port=served, token=TOKEN)
    )
    response = invoke(Mangum(middleware, lifespan="off"), "alb", "/")
    assert response.status == 200
    assert response.json() == {"db": "app", "v": "v3", "label": "v3"}


def test_server_refuses_to_use_the_extension_as_its_source() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "parameters_secrets", "serve", "--source", "extension"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot use the extension" in result.stderr


SERVE = [sys.executable, "-m", "parameters_secrets", "serve"]
BAD_ENVIRONMENT = [
    ("SSM_PARAMETER_STORE_TTL", "9" * 5000),
    ("SSM_PARAMETER_STORE_TTL", "-1"),
    ("SECRETS_MANAGER_TTL", "9" * 5000),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "9" * 5000),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1001"),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "9" * 5000),
    ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "0"),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "9" * 5000),
    ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "0"),
    ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "9" * 5000),
    ("SECRETS_MANAGER_TIMEOUT_MILLIS", "3600001"),
    ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "yes"),
    ("PARAMETERS_SECRETS_STALE_IF_ERROR", "1"),
    ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "verbose"),
    ("PARAMETERS_SECRETS_SOURCE", "s3"),
]


@pytest.mark.parametrize(
    ("variable", "raw"),
    BAD_ENVIRONMENT,
    ids=[f"{variable}={raw[:8]}" for variable, raw in BAD_ENVIRONMENT],
)
def test_bad_variable_makes_the_command_print_one_line_naming_it_and_exit_2(
    tmp_path: Path, variable: str, raw: str
) -> None:
    values = tmp_path / "values.json"
    values.write_text(json.dumps(VALUES_FILE))
    result = subprocess.run(
        [*SERVE, "--port", "0", "--source", f"file:{values}"],
        env=clean_environment({"AWS_SESSION_TOKEN": TOKEN, variable: raw}),
        capture_output=True,
        text=True,
        timeout=30,  # a command that started serving would run on: the test fails here
        check=False,
    )
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"parameters-secrets: {variable} must be ")
    assert len(line) < 200
    assert "ready on" not in result.stdout


def test_bad_source_argument_makes_the_command_print_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [*SERVE, "--source", "s3"],
        env=clean_environment({"AWS_SESSION_TOKEN": TOKEN}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "parameters-secrets: --source must be 'aws' or 'file:PATH', not 's3'"
    ]


def test_without_uvicorn_the_command_names_an_install_that_works_before_publication(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    assert main(["serve", "--port", "0"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    # Not the PyPI name with the extra: the package is not published yet.
    assert "pip install 'uvicorn>=0.30'" in line
    assert "pip install '.[server]'" in line
    assert "asgi-parameters-secrets[server]" not in line


# -- in front of moto ------------------------------------------------------------------


def from_aws(env: dict[str, str]) -> LocalServer:
    """`parameters-secrets serve --port 0 --source aws` with dummy credentials and ``env``."""
    full_env = {
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        **env,
    }
    return LocalServer("aws", clean_environment(full_env))


def get(port: int, path: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}{path}", headers={H: TOKEN}, timeout=30)


def test_server_in_front_of_moto_answers_and_caches(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    put_parameter(moto, "/moto/p", "from-moto", type="SecureString")
    create_secret(moto, "moto/s", string="secret-from-moto")
    with from_aws({"AWS_ENDPOINT_URL": moto_proxy.url}) as server:
        port = server.port
        for _ in range(3):
            parameter = get(port, f"{P}?name=%2Fmoto%2Fp&withDecryption=true")
            secret = get(port, f"{S}?secretId=moto%2Fs")
            assert parameter.status_code == secret.status_code == 200
            assert parameter.json()["Parameter"]["Value"] == "from-moto"
            assert secret.json()["SecretString"] == "secret-from-moto"
        missing = get(port, f"{S}?secretId=nope")
        # The upstream's own status is kept: moto answers 404 here where AWS answers 400.
        assert missing.status_code == 404
        assert missing.json()["__type"] == "ResourceNotFoundException"
    assert moto_proxy.calls("AmazonSSM.GetParameter") == 1
    assert moto_proxy.calls("secretsmanager.GetSecretValue") == 2  # the value, then "nope"


def test_server_answers_502_when_aws_is_unreachable_and_504_when_too_slow(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    put_parameter(moto, "/slow", "x")
    moto_proxy.fail(faults.delay(5.0), match="AmazonSSM.GetParameter")
    env = {"AWS_ENDPOINT_URL": moto_proxy.url, "SSM_PARAMETER_STORE_TIMEOUT_MILLIS": "300"}
    with from_aws(env) as server:
        slow = get(server.port, f"{P}?name=%2Fslow")
        assert (slow.status_code, slow.json()["__type"]) == (504, "Timeout")
    unreachable = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "SECRETS_MANAGER_TIMEOUT_MILLIS": "3000",
    }
    with from_aws(unreachable) as server:
        refused = get(server.port, f"{S}?secretId=any")
        assert (refused.status_code, refused.json()["__type"]) == (502, "ConnectionError")
