"""What ``parameters-secrets policy`` is pointed at in tests/test_policy.py: one module
declaring every kind of value, held in each way the command accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from parameters_secrets import (
    Parameter,
    ParametersByPath,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    ParametersSecretsWSGIMiddleware,
    Secret,
)
from parameters_secrets._types import Receive, Scope, Send
from parameters_secrets.sources import StaticSource

OTHER_ACCOUNT_PARAMETER = "arn:aws:ssm:eu-west-1:210987654321:parameter/shared/flags"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:210987654321:secret:shared/db-AbCdEf"

VALUES: dict[str, Parameter | Secret | ParametersByPath] = {
    "api_key": Parameter("/app/prod/api-key"),  # a SecureString, decrypted
    "pinned": Parameter("/app/prod/pinned", version=3, decrypt=False),
    "labelled": Parameter("plain-name", label="release", decrypt=False),
    "shared": Parameter(OTHER_ACCOUNT_PARAMETER, decrypt=False),
    "tree": ParametersByPath("/app/prod/tree/"),
    "level": ParametersByPath("/app/prod/level", recursive=False, decrypt=False),
    "referenced": Parameter("/aws/reference/secretsmanager/app/referenced"),
    "ami": Parameter("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"),
    "db": Secret("app/prod/db", transform="json"),
    "shared_db": Secret(SECRET_ARN, version_stage="AWSPREVIOUS"),
}

store = ParametersSecrets(VALUES, source=StaticSource())


async def _asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise NotImplementedError  # never called: the command only reads the declarations


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise NotImplementedError


asgi = ParametersSecretsMiddleware(_asgi_app, values=store)
wsgi = ParametersSecretsWSGIMiddleware(_wsgi_app, values=VALUES, source=StaticSource())


@dataclass
class Model:
    """A typed config as a pydantic model declares it (found through type hints)."""

    api_key: Annotated[str, Parameter("/app/prod/api-key")]
    db: Annotated[dict[str, str], "unrelated metadata", Secret("app/prod/db")]
    tree: Annotated[dict[str, str], ParametersByPath("/app/prod/tree")]
    plain: int = 3


NOTHING: dict[str, Any] = {"not": "a declaration"}
