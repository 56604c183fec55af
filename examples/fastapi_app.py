r"""A FastAPI app on AWS Lambda that reads SSM parameters and a Secrets Manager secret.

Locally, with the values in ``examples/local-values.json`` (no AWS account needed)::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json \
        uvicorn examples.fastapi_app:app --reload
    curl localhost:8000/ localhost:8000/injected
    curl -X POST localhost:8000/pay

Locally against real AWS, drop ``PARAMETERS_SECRETS_SOURCE`` (or set it to ``aws``) and
use your usual credentials (``AWS_PROFILE``...).

On Lambda: ``examples/template.yaml`` deploys it (``nox -s package`` builds the zip): the
handler is ``examples.fastapi_app.handler``, with the AWS Parameters and Secrets Lambda
Extension layer attached and a role allowed to read exactly the names below: the policy
``parameters-secrets policy examples.fastapi_app:config`` prints. The names start with
``APP_PREFIX`` (default ``demo-app/prod``, the names in ``examples/local-values.json``),
which the template sets from its ``AppPrefix``. With ``PARAMETERS_SECRETS_SOURCE`` unset,
values come from the extension on the first request and are cached in process
(``SSM_PARAMETER_STORE_TTL``, ``SECRETS_MANAGER_TTL``).

The values live in a store, ``config``, that the middleware and the rest of the app share:
the lifespan builds a client from one of them, ``examples/sqs_handler.py`` (a plain
Lambda handler for SQS events) reads them with ``config.load_sync()``, and ``POST /pay``
refreshes the API key when the payment provider rejects it after a rotation.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from mangum import Mangum

from parameters_secrets import Parameter, ParametersSecrets, ParametersSecretsMiddleware, Secret
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

# No source: PARAMETERS_SECRETS_SOURCE picks it, else the extension when in Lambda. Built
# at import, so a bad declaration fails here rather than on every request.
config = ParametersSecrets(VALUES)


class PaymentsClient:
    """Stands in for an SDK client that is built once from a secret value."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __repr__(self) -> str:  # never show the key
        return "PaymentsClient(api_key=...)"

    def charge(self, cents: int) -> dict[str, Any]:
        # A real provider answers 401 to a key that was rotated away.
        if self._api_key.startswith("sk_revoked_"):
            raise PermissionError("the payment provider rejected the API key")
        return {"charged": cents, "test_mode": self._api_key.startswith("sk_test_")}


_payments: PaymentsClient | None = None


async def payments() -> PaymentsClient:
    """One client per process, built from ``api_key`` at startup (the lifespan, under
    uvicorn) or on first use (on Lambda, where Mangum runs no lifespan here)."""
    global _payments
    if _payments is None:
        _payments = PaymentsClient(api_key=await config.get("api_key"))
    return _payments


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # With a file or AwsSource, values load at startup and a missing one stops the app
    # from starting. (The extension does not answer during Lambda's INIT phase.)
    await payments()
    yield
    await config.aclose()


app = FastAPI(lifespan=lifespan)
app.add_middleware(ParametersSecretsMiddleware, values=config, exclude_paths=("/health",))


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


@app.post("/pay")
async def pay(client: Annotated[PaymentsClient, Depends(payments)]) -> dict[str, Any]:
    """After a rotation the provider rejects the cached key: fetch it again, now, and retry
    once with a client built from the new one."""
    global _payments
    try:
        return client.charge(100)
    except PermissionError:
        await config.refresh("api_key")
        _payments = None
        return (await payments()).charge(100)


@app.get("/health")
async def health() -> dict[str, str]:
    """Excluded from loading: answers even while the values cannot be loaded."""
    return {"status": "ok"}


# lifespan="off": Mangum would run the lifespan on every invocation; `payments()` builds
# the client on first use instead.
handler = Mangum(app, lifespan="off")
