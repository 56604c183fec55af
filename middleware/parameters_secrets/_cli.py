"""``parameters-secrets serve``: the extension's HTTP API on 127.0.0.1, for local work."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import sys
from collections.abc import Sequence

from ._settings import Settings
from ._sources import default_source
from .exceptions import ConfigurationError

HOST = "127.0.0.1"  # never another interface: the API hands out secrets to any caller


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parameters-secrets`` command."""
    parser = argparse.ArgumentParser(
        prog="parameters-secrets",
        description="A local stand-in for the AWS Parameters and Secrets Lambda Extension.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the extension's HTTP API on 127.0.0.1",
        description=(
            "Serve GET /systemsmanager/parameters/get and GET /secretsmanager/get on "
            "127.0.0.1, with the extension's cache and environment variables. Requests must "
            "carry X-Aws-Parameters-Secrets-Token equal to this server's AWS_SESSION_TOKEN "
            "(one is generated and printed if it is unset)."
        ),
    )
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: PARAMETERS_SECRETS_EXTENSION_HTTP_PORT or 2773; 0: any free port)",
    )
    serve.add_argument(
        "--source",
        default=None,
        help="aws (default) or file:PATH (default: PARAMETERS_SECRETS_SOURCE)",
    )
    args = parser.parse_args(argv)
    try:
        return _serve(args.port, args.source)
    except ConfigurationError as error:
        print(f"parameters-secrets: {error}", file=sys.stderr)
        return 2


def _serve(port: int | None, source_name: str | None) -> int:
    try:
        import uvicorn
    except ImportError:
        # The package is not on PyPI yet: name what installs from where it came from.
        raise ConfigurationError(
            "the server needs uvicorn: pip install 'uvicorn>=0.30' (or, in a clone of "
            "asgi-parameters-secrets, pip install '.[server]')"
        ) from None
    from ._server import ExtensionServer

    logging.basicConfig(
        level=logging.INFO,
        format="[parameters-secrets] %(asctime)s %(levelname)s %(message)s",
    )
    settings = Settings.from_env()
    settings.apply_log_level()
    source = source_name or settings.source or "aws"
    if source == "extension":
        raise ConfigurationError("the server cannot use the extension as its own source")
    if source_name is not None and not (source == "aws" or source.startswith("file:")):
        raise ConfigurationError(f"--source must be 'aws' or 'file:PATH', not {source!r}")
    settings = dataclasses.replace(settings, source=source)
    if port is None:
        port = settings.http_port
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port must be 0 to 65535, not {port}")
    token = os.environ.get("AWS_SESSION_TOKEN")
    generated = not token
    if not token:
        token = secrets.token_urlsafe(24)
    app = ExtensionServer(default_source(settings), token=token, settings=settings)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
            await super().startup(sockets=sockets)  # type: ignore[arg-type]
            if self.should_exit:
                return
            bound = self.servers[0].sockets[0].getsockname()[1] if self.servers else port
            # The line scripts and tests wait for; it names no value and no token
            # (unless the token was generated here, for the caller to use).
            print(
                f"parameters-secrets: ready on http://{HOST}:{bound} "
                f"(source: {settings.source}; TTL parameters {settings.parameter_ttl} s, "
                f"secrets {settings.secret_ttl} s)",
                flush=True,
            )
            if generated:
                print(f"export AWS_SESSION_TOKEN={token}", flush=True)

    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        # No websocket support, even when uvicorn[standard] brings a library for it: an
        # upgrade request is answered as the plain GET it also is, never with a 500.
        ws="none",
    )
    Server(config).run()
    return 0
