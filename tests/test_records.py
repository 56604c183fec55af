"""Whether an answer is the record asked for (``_sources/_records.py``): every name AWS may
legitimately answer with is accepted; a record about another value is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parameters_secrets import FetchError, Settings
from parameters_secrets._server import ExtensionServer
from parameters_secrets._sources._records import checked_record
from parameters_secrets.sources import AwsSource, ParameterRequest, PathRequest, SecretRequest
from tests.moto_server import MotoServer, create_secret

pytestmark = pytest.mark.anyio
TOKEN = "records-token"
ARN = "arn:aws:ssm:us-east-1:123456789012:parameter"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret"


def parameter(name: str) -> dict[str, Any]:
    return {"Name": name, "Value": "v", "Type": "String", "Version": 1}


def secret(name: str, arn: str | None = None) -> dict[str, Any]:
    return {"Name": name, "ARN": arn or f"{SECRET_ARN}:{name}-AbCdEf", "SecretString": "s"}


# (asked, the Name answered): each a right record
RIGHT_PARAMETERS = [
    ("/app/key", "/app/key"),
    ("/app/key:3", "/app/key"),  # the asked name without its selector
    ("/app/key:release", "/app/key"),
    ("/app/key:3", "/app/key:3"),
    (f"{ARN}/app/key", "/app/key"),  # the plain name of an asked ARN
    (f"{ARN}/plain", "plain"),
    (f"{ARN}/app/key", f"{ARN}/app/key"),  # a shared parameter: the ARN itself
    (f"{ARN}/app/key:2", f"{ARN}/app/key"),
    ("/app/key", f"{ARN}/app/key"),
    # A reference to a secret: the reference, or the secret's own name or ARN.
    ("/aws/reference/secretsmanager/prod/db", "/aws/reference/secretsmanager/prod/db"),
    ("/aws/reference/secretsmanager/prod/db", "prod/db"),  # what moto answers
    ("/aws/reference/secretsmanager/prod/db:AWSPREVIOUS", "prod/db"),
    ("/aws/reference/secretsmanager/prod/db", f"{SECRET_ARN}:prod/db-AbCdEf"),
    (f"/aws/reference/secretsmanager/{SECRET_ARN}:prod/db-AbCdEf", "prod/db"),
    (f"/aws/reference/secretsmanager/{SECRET_ARN}:prod/db-AbCdEf:AWSCURRENT", "prod/db"),
    (f"/aws/reference/secretsmanager/{SECRET_ARN}:prod/db", f"{SECRET_ARN}:prod/db-AbCdEf"),
]
WRONG_PARAMETERS = [
    ("/app/key", "/app/other"),
    ("/app/key:3", "/app/other"),
    (f"{ARN}/app/key", "/app/other"),
    (f"{ARN}/app/key", f"{ARN}/app/other"),
    ("/aws/reference/secretsmanager/prod/db", "prod/other"),
    ("/aws/reference/secretsmanager/prod/db", f"{SECRET_ARN}:prod/other-AbCdEf"),
    ("/aws/reference/secretsmanager/prod/db", "/aws/reference/secretsmanager/prod/other"),
]


@pytest.mark.parametrize(("asked", "answered"), RIGHT_PARAMETERS)
def test_every_name_aws_may_answer_for_a_parameter_is_the_right_record(
    asked: str, answered: str
) -> None:
    record = parameter(answered)
    assert checked_record(ParameterRequest(asked), record) is record


@pytest.mark.parametrize(("asked", "answered"), WRONG_PARAMETERS)
def test_a_parameter_record_about_another_value_is_malformed(asked: str, answered: str) -> None:
    outcome = checked_record(ParameterRequest(asked), parameter(answered))
    assert isinstance(outcome, FetchError)
    assert (outcome.code, outcome.transient) == ("MalformedResponse", True)
    assert "is about another parameter" in str(outcome)


@pytest.mark.parametrize(
    ("asked", "record"),
    [
        ("prod/db", secret("prod/db")),
        (f"{SECRET_ARN}:prod/db-AbCdEf", secret("prod/db")),  # the full ARN
        (f"{SECRET_ARN}:prod/db", secret("prod/db")),  # a partial ARN
        ("prod/db", secret(f"{SECRET_ARN}:prod/db-AbCdEf")),  # the ARN as its Name
        ("prod/db-AbCdEf", secret("prod/db-AbCdEf")),  # a name that looks like a suffix
    ],
)
def test_every_id_aws_may_answer_for_a_secret_is_the_right_record(
    asked: str, record: dict[str, Any]
) -> None:
    assert checked_record(SecretRequest(asked), record) is record


@pytest.mark.parametrize(
    ("asked", "record"),
    [
        ("prod/db", secret("prod/other")),
        (f"{SECRET_ARN}:prod/db-AbCdEf", secret("prod/other")),
        ("prod/db", secret("prod/db-AbCdEf", arn=f"{SECRET_ARN}:prod/db-AbCdEf-XyZ123")),
    ],
)
def test_a_secret_record_about_another_value_is_malformed(
    asked: str, record: dict[str, Any]
) -> None:
    outcome = checked_record(SecretRequest(asked), record)
    assert isinstance(outcome, FetchError)
    assert outcome.code == "MalformedResponse"


@pytest.mark.usefixtures("aws_environment")
async def test_a_reference_answered_by_moto_reaches_the_app_through_the_local_server(
    moto: MotoServer,
) -> None:
    create_secret(moto, "prod/db", string="secret-from-moto")
    server = ExtensionServer(
        AwsSource(region="us-east-1", endpoint_url=moto.url), token=TOKEN, settings=Settings()
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server),
        base_url="http://127.0.0.1:2773",
        headers={"X-Aws-Parameters-Secrets-Token": TOKEN},
    ) as client:
        response = await client.get(
            "/systemsmanager/parameters/get",
            params={"name": "/aws/reference/secretsmanager/prod/db", "withDecryption": "true"},
        )
    await server.source.aclose()
    assert response.status_code == 200, response.text
    assert response.json()["Parameter"]["Name"] == "prod/db"  # moto's answer, accepted
    assert response.json()["Parameter"]["Value"] == "secret-from-moto"


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


# (a path answer, what the error says is wrong with it)
MALFORMED_PATH_ANSWERS = [
    ({}, "has no Parameters"),
    ({"Parameters": "/app/a"}, "has no Parameters"),
    ({"Parameters": ["/app/a"]}, "has a parameter without a Value"),
    ({"Parameters": [{"Name": "/app/a", "Value": 3}]}, "has a parameter without a Value"),
    ({"Parameters": [{"Value": "v"}]}, "holds a parameter outside the path"),
    ({"Parameters": [{"Name": "/other/a", "Value": "v"}]}, "holds a parameter outside the path"),
    ({"Parameters": [{"Name": "/app/a/b", "Value": "v"}]}, "holds a parameter outside the path"),
]


@pytest.mark.parametrize(("answer", "problem"), MALFORMED_PATH_ANSWERS)
def test_a_path_answer_without_usable_parameters_under_the_path_is_malformed(
    answer: dict[str, Any], problem: str
) -> None:
    request = PathRequest("/app", recursive=False)
    error = checked_record(request, answer, origin="extension's answer")
    assert isinstance(error, FetchError)
    assert (error.code, error.transient) == ("MalformedResponse", True)
    assert str(error) == f"parameters under /app (not recursive): the extension's answer {problem}"


def test_a_path_answer_with_parameters_under_the_path_is_the_record() -> None:
    answer = {"Parameters": [{"Name": "/app/a", "Value": "1"}, {"Name": "/app/b/c", "Value": ""}]}
    assert checked_record(PathRequest("/app"), answer) is answer
