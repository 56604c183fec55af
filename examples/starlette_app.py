r"""A plain Starlette app on AWS Lambda, with an HTTP route and a websocket route.

Locally (the websocket route works under uvicorn; API Gateway websockets are not served
through Mangum)::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json \
        uvicorn examples.starlette_app:app

On Lambda: handler ``examples.starlette_app.handler``, with the AWS Parameters and
Secrets Lambda Extension layer attached (see ``examples/fastapi_app.py``).
"""

from __future__ import annotations

import os

from mangum import Mangum
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from parameters_secrets import Parameter, ParametersSecrets, ParametersSecretsMiddleware, Secret

# The names' prefix, read as in examples/fastapi_app.py.
PREFIX = os.environ.get("APP_PREFIX", "demo-app/prod")

VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter(f"/{PREFIX}/api-key"),
    "flags": Parameter(f"/{PREFIX}/flags", transform="json", ttl=60),
    "allowed_origins": Parameter(f"/{PREFIX}/allowed-origins", transform="list"),
    "db": Secret(f"{PREFIX}/db", transform="json"),
}
# Built at import: Starlette builds its middleware on the first request, where a bad
# declaration or values file would answer 500 to every request instead of failing here.
config = ParametersSecrets(VALUES)


async def index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "user": request.state.db["username"],
            "beta": request.state.flags["beta"],
            "origins": len(request.state.allowed_origins),
        }
    )


async def ws(websocket: WebSocket) -> None:
    # A required value that cannot be loaded closes the socket with 1011 before this runs.
    await websocket.accept()
    await websocket.send_json({"user": websocket.state.db["username"]})
    await websocket.close()


app = Starlette(
    routes=[Route("/", index), WebSocketRoute("/ws", ws)],
    middleware=[Middleware(ParametersSecretsMiddleware, values=config)],
)
handler = Mangum(app, lifespan="off")
