"""``parameters-secrets serve``: the extension's HTTP API on 127.0.0.1, for local work;
``parameters-secrets policy``: the IAM policy for what an app declares;
``parameters-secrets package``: a Lambda zip of an app (``_packaging``, imported only then);
``parameters-secrets invoke``: a built zip's handler run once here (``_invoke``)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from ._settings import Settings
from ._sources import default_source
from .exceptions import ConfigurationError

HOST = "127.0.0.1"  # never another interface: the API hands out secrets to any caller


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parameters-secrets`` command."""
    parser = argparse.ArgumentParser(
        prog="parameters-secrets",
        description="A local stand-in for the AWS Parameters and Secrets Lambda Extension"
        " (serve), the IAM policy an app needs (policy), its Lambda zip (package) and a"
        " try of that zip here (invoke).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve_command(commands)
    _add_policy_command(commands)
    _add_deploy_commands(commands)
    # `package` passes what follows it to the builder's own parser (its --help too), so
    # that its options are written once, in the module only that command imports.
    args, rest = parser.parse_known_args(argv)
    if args.command == "package":
        return _package(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "policy":
        return _policy(args.target, args.region, args.account, args.partition, args.role)
    if args.command == "invoke":
        from . import _invoke

        return _invoke.main(args)
    return _serve_command(args.port, args.source)


def _serve_command(port: int | None, source_name: str | None) -> int:
    """``parameters-secrets serve``: a bad setting or option said in one line (status 2)."""
    try:
        return _serve(port, source_name)
    except ConfigurationError as error:
        print(f"parameters-secrets: {error}", file=sys.stderr)
        return 2


def _add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_policy_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser(
        "policy",
        help="print the IAM policy the values an app declares need",
        description=(
            "Print the least-privilege IAM policy (JSON) for the values MODULE:ATTR "
            "declares: a ParametersSecrets store, a middleware, a mapping of key to "
            "declaration, or a model class with Annotated[..., Parameter(...)] fields. "
            "MODULE is imported from the current directory first. Where the region or "
            "account is not given, the ARNs hold '*'."
        ),
    )
    policy.add_argument("target", metavar="MODULE:ATTR", help="e.g. myapp:config")
    policy.add_argument("--region", default=None, help="the values' region (default: *)")
    policy.add_argument("--account", default=None, help="the values' account id (default: *)")
    policy.add_argument(
        "--partition",
        default=None,
        help="aws, aws-cn, aws-us-gov... (default: the region's, else aws)",
    )
    policy.add_argument(
        "--role",
        default=None,
        metavar="ROLE_ARN",
        help=(
            "print the policy of this role_arn, for the values declared with it "
            "(default: the function's own role)"
        ),
    )


def _add_deploy_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    commands.add_parser(
        "package",
        add_help=False,  # the builder's parser answers --help
        help="build a Lambda zip of your app for the runtime (needs the [package] extra;"
        " parameters-secrets package --help for its options)",
    )
    from ._invoke import add_arguments  # the standard library only

    add_arguments(
        commands.add_parser(
            "invoke",
            help="run a built zip's handler once here with a sample HTTP event",
            description=(
                "Unpack ZIP read-only and call its handler once in a fresh python -I -S"
                " (only the zip and the standard library on sys.path, Lambda's variables"
                " set), with a sample event; print the response as JSON. Exit status: 0"
                " the handler returned, 1 it raised, 2 a bad input."
            ),
        )
    )


def _package(argv: list[str]) -> int:
    try:
        from . import _packaging
    except ImportError as exc:
        print(
            f"parameters-secrets package: needs {exc.name}: pip install"
            " 'asgi-parameters-secrets[package]'",
            file=sys.stderr,
        )
        return 2
    return _packaging.main(argv)


def _policy(
    target: str,
    region: str | None,
    account: str | None,
    partition: str | None,
    role: str | None,
) -> int:
    import json

    from . import _policy

    try:
        where = _policy.scope(region, account, partition)
        declared = _policy.declarations_of(_resolve(target))
        document = _policy.policy(declared, where, role=role)
    except _policy.PolicyError as error:
        print(f"parameters-secrets policy: {error}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    return 0


def _resolve(target: str) -> object:
    """The object MODULE:ATTR names, MODULE imported as ``python -m`` would, from the
    current directory first (a console script's ``sys.path`` starts elsewhere)."""
    from ._policy import PolicyError

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise PolicyError(f"give the target as MODULE:ATTR (e.g. myapp:config), not {target!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return _attribute(_import(module_name), module_name, attribute)


def _import(module_name: str) -> object:
    """The module ``module_name``, imported; whatever it raises, a one-line PolicyError."""
    import importlib

    from ._policy import PolicyError

    try:
        return importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - the user's module may raise anything
        raise PolicyError(
            f"cannot import {module_name}: {type(exc).__name__}: {_one_line(exc)}"
        ) from None


def _attribute(module: object, module_name: str, attribute: str) -> object:
    """The (dotted) ``attribute`` of ``module``, or a one-line PolicyError."""
    from ._policy import PolicyError

    found = module
    for name in attribute.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise PolicyError(f"{module_name} has no attribute {attribute!r}") from None
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "(no message)"


def _server_settings(source_name: str | None) -> Settings:
    """The settings from the environment, with the source ``--source`` names (checked)."""
    settings = Settings.from_env()
    settings.apply_log_level()
    source = source_name or settings.source or "aws"
    _check_server_source(source, given=source_name is not None)
    return dataclasses.replace(settings, source=source)


def _check_server_source(source: str, *, given: bool) -> None:
    """Refuse the extension as the server's source, and a ``--source`` (``given``) that is
    neither ``aws`` nor a file."""
    if source == "extension":
        raise ConfigurationError("the server cannot use the extension as its own source")
    if given and not (source == "aws" or source.startswith("file:")):
        raise ConfigurationError(f"--source must be 'aws' or 'file:PATH', not {source!r}")


def _server_port(port: int | None, settings: Settings) -> int:
    """``--port``, else the settings' port; checked."""
    if port is None:
        port = settings.http_port
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port must be 0 to 65535, not {port}")
    return port


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
    settings = _server_settings(source_name)
    port = _server_port(port, settings)
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
