r"""A Flask app on AWS Lambda, through ``asgiref.wsgi.WsgiToAsgi`` and Mangum.

Flask views read values with ``current_values()``: asgiref copies context variables
into the WSGI thread, but nothing of the ASGI scope's ``state`` into the environ.

Locally::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json \
        uvicorn examples.flask_app:app

On Lambda: handler ``examples.flask_app.handler``, with the AWS Parameters and Secrets
Lambda Extension layer attached (see ``examples/fastapi_app.py``).
"""

from __future__ import annotations

import os
from typing import Any

from asgiref.wsgi import WsgiToAsgi
from flask import Flask
from mangum import Mangum

from parameters_secrets import (
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
    current_values,
)

# The names' prefix, read as in examples/fastapi_app.py.
PREFIX = os.environ.get("APP_PREFIX", "demo-app/prod")

VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter(f"/{PREFIX}/api-key"),
    "flags": Parameter(f"/{PREFIX}/flags", transform="json", ttl=60),
    "allowed_origins": Parameter(f"/{PREFIX}/allowed-origins", transform="list"),
    "db": Secret(f"{PREFIX}/db", transform="json"),
}
# Built at import, as in every example: a bad declaration or values file fails here.
config = ParametersSecrets(VALUES)

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> dict[str, Any]:
    values = current_values()
    return {
        "user": values.db["username"],
        "beta": values.flags["beta"],
        "origins": len(values.allowed_origins),
    }


asgi_app = WsgiToAsgi(flask_app)  # type: ignore[no-untyped-call]  # asgiref leaves it unannotated
app = ParametersSecretsMiddleware(asgi_app, values=config)
# lifespan="off": WsgiToAsgi rejects lifespan scopes, and Mangum would send one (and log
# an ERROR) on every invocation.
handler = Mangum(app, lifespan="off")
