"""A FastAPI app on AWS Lambda that reads SSM parameters and a Secrets Manager secret.

Locally, with the values in ``examples/local-values.json`` (no AWS account needed)::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json \\
        uvicorn examples.fastapi_app:app --reload
    curl localhost:8000/ localhost:8000/injected

Locally against real AWS, drop ``PARAMETERS_SECRETS_SOURCE`` (or set it to ``aws``) and
use your usual credentials (``AWS_PROFILE``...).

On Lambda: ``examples/template.yaml`` deploys it (``nox -s package`` builds the zip): the
handler is ``examples.fastapi_app.handler``, with the AWS Parameters and Secrets Lambda
Extension layer attached and a role allowed ``ssm:GetParameter`` and
``secretsmanager:GetSecretValue`` on exactly the names below. The names start with
``APP_PREFIX`` (default ``demo-app/prod``, the names in ``examples/local-values.json``),
which the template sets from its ``AppPrefix``. With ``PARAMETERS_SECRETS_SOURCE`` unset,
values come from the extension on the first request and are cached in process
(``SSM_PARAMETER_STORE_TTL``, ``SECRETS_MANAGER_TTL``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import FastAPI, Request
from mangum import Mangum

from parameters_secrets import Parameter, ParametersSecretsMiddleware, Secret
from parameters_secrets.fastapi import Value

# The parameters' path and the secret's name prefix, without a leading slash: the
# template's AppPrefix reaches the function as APP_PREFIX, so the role and the names agree.
PREFIX = os.environ.get("APP_PREFIX", "demo-app/prod")

# Annotated: mypy would infer dict[str, object] from a mix of Parameter and Secret.
VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter(f"/{PREFIX}/api-key"),  # a SecureString, decrypted
    # Flags change more often than the rest: re-read them after a minute.
    "flags": Parameter(f"/{PREFIX}/flags", transform="json", ttl=60),
    "allowed_origins": Parameter(f"/{PREFIX}/allowed-origins", transform="list"),
    "db": Secret(f"{PREFIX}/db", transform="json"),
}

app = FastAPI()
# No source: PARAMETERS_SECRETS_SOURCE picks it, else the extension when in Lambda.
app.add_middleware(ParametersSecretsMiddleware, values=VALUES)


@app.get("/")
async def index(request: Request) -> dict[str, Any]:
    """Values are on ``request.state``, loaded before the route runs."""
    return {
        "user": request.state.db["username"],
        "beta": request.state.flags["beta"],
        "origins": len(request.state.allowed_origins),
    }


@app.get("/injected")
async def injected(api_key: Annotated[str, Value("api_key")]) -> dict[str, Any]:
    """A value injected as a dependency. A real app would hand it to a client; it never
    echoes it."""
    return {"api_key_length": len(api_key), "test_mode": api_key.startswith("sk_test_")}


# lifespan="off": Mangum would run the lifespan on every invocation, and nothing here needs it.
handler = Mangum(app, lifespan="off")
