r"""A Flask app on AWS Lambda as a plain WSGI app: apig-wsgi, no ASGI adapter.

``ParametersSecretsWSGIMiddleware`` wraps the Flask app itself. Views read the values
with ``current_values()`` or from ``request.environ["parameters_secrets.values"]``;
apig-wsgi puts the Lambda context in the environ, so loading ends before the invocation
does. The store is built at import: a bad declaration or values file fails there, not
on every request.

Locally, under any WSGI server::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json \
        flask --app examples.flask_wsgi_app:app run

On Lambda: handler ``examples.flask_wsgi_app.handler``, with the AWS Parameters and
Secrets Lambda Extension layer attached (see ``examples/fastapi_app.py``).
"""

from __future__ import annotations

import os
from typing import Any

from apig_wsgi import make_lambda_handler
from flask import Flask, request

from parameters_secrets import (
    Parameter,
    ParametersSecrets,
    ParametersSecretsWSGIMiddleware,
    Secret,
    current_values,
)

# The names' prefix, read as in examples/fastapi_app.py.
PREFIX = os.environ.get("APP_PREFIX", "demo-app/prod")

config = ParametersSecrets(
    {
        "api_key": Parameter(f"/{PREFIX}/api-key"),
        "flags": Parameter(f"/{PREFIX}/flags", transform="json", ttl=60),
        "allowed_origins": Parameter(f"/{PREFIX}/allowed-origins", transform="list"),
        "db": Secret(f"{PREFIX}/db", transform="json"),
    }
)

app = Flask(__name__)


@app.get("/")
def index() -> dict[str, Any]:
    values = current_values()
    return {
        "user": values.db["username"],
        "beta": values.flags["beta"],
        "origins": len(values.allowed_origins),
    }


@app.get("/environ")
def from_environ() -> dict[str, Any]:
    # The same read-only values, for code that has the WSGI environ rather than a context.
    return {"user": request.environ["parameters_secrets.values"]["db"]["username"]}


@app.get("/health")
def health() -> str:
    return "ok"  # excluded: answers even when values cannot load


# Flask's own way to add WSGI middleware: app still runs under any WSGI server.
app.wsgi_app = ParametersSecretsWSGIMiddleware(  # type: ignore[method-assign]
    app.wsgi_app, values=config, exclude_paths=("/health",)
)
handler = make_lambda_handler(app)
