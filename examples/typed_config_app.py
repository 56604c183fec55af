r"""A FastAPI app on AWS Lambda whose SSM parameters and Secrets Manager secret arrive as one
validated pydantic model, with the secrets masked.

Locally, with the values in ``examples/local-values.json`` (no AWS account needed)::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json \
        uvicorn examples.typed_config_app:app --reload
    curl localhost:8000/ localhost:8000/config

The model's fields declare the values (``Annotated[T, Parameter(...)]``); the store built
from it is the one the middleware loads on each request, so a route's
``Depends(store.model)`` gets the model without another fetch: the same instance while no
value changed, validated again only when one did. On Lambda it deploys as
``examples/fastapi_app.py`` does (``examples/template.yaml``), with the handler
``examples.typed_config_app.handler``.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from mangum import Mangum
from pydantic import BaseModel, ConfigDict, SecretStr

from parameters_secrets import (
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
)

PREFIX = os.environ.get("APP_PREFIX", "demo-app/prod")


class Db(BaseModel):
    # One model instance serves every request until a value changes: make it read-only.
    model_config = ConfigDict(frozen=True)

    username: str
    password: SecretStr  # masked in repr, str and responses
    host: str
    port: int


class Flags(BaseModel):
    model_config = ConfigDict(frozen=True)

    beta: bool = False
    max_items: int = 10


class Config(BaseModel):
    model_config = ConfigDict(frozen=True)

    api_key: Annotated[SecretStr, Parameter(f"/{PREFIX}/api-key")]
    flags: Annotated[Flags, Parameter(f"/{PREFIX}/flags", transform="json", ttl=60)]
    allowed_origins: Annotated[
        tuple[str, ...], Parameter(f"/{PREFIX}/allowed-origins", transform="list")
    ]
    db: Annotated[Db, Secret(f"{PREFIX}/db", transform="json")]
    page_size: int = 20  # no declaration: a plain setting with its default, never fetched


# Built at import: a bad declaration (or values file) fails here, not on every request.
store = ParametersSecrets.from_model(Config)

app = FastAPI()
app.add_middleware(ParametersSecretsMiddleware, values=store, exclude_paths=("/health",))


@app.exception_handler(LoadError)
async def unavailable(request: Request, error: LoadError) -> JSONResponse:
    """A value that fails validation on its first load (logged with its field and
    pydantic's error type, never the value): the middleware's own 503, not a 500."""
    return JSONResponse({"detail": "Service Unavailable"}, status_code=503)


@app.get("/")
async def index(config: Annotated[Config, Depends(store.model)]) -> dict[str, Any]:
    """The middleware loaded the values; ``store.model`` validated them once."""
    return {
        "user": config.db.username,
        "beta": config.flags.beta,
        "origins": len(config.allowed_origins),
    }


@app.get("/config")
async def show_config(config: Annotated[Config, Depends(store.model)]) -> Config:
    """The whole model, as FastAPI serialises it: secrets come out as ``**********``."""
    return config


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
