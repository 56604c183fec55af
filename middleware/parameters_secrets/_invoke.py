"""``parameters-secrets invoke ZIP``: run a built Lambda zip's handler once on this machine,
with a sample HTTP event, before deploying it.

The zip is unpacked into a temporary directory made read-only (as ``/var/task`` is) and
its handler runs in a fresh ``python -I -S -B``: nothing on ``sys.path`` but the unpacked
zip and the standard library, as on Lambda, so a module the zip lacks fails here as it
would there. The environment is this one's (``PARAMETERS_SECRETS_SOURCE=file:...`` for
values without AWS, or AWS credentials) plus Lambda's variables where unset; the context
object counts down from ``--timeout``. The handler's response is printed as JSON on
stdout; what the function logs goes to stderr.

Standard library only: imported only when the command runs, it needs no extra.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._interpreters import find_python

PROG = "parameters-secrets invoke"
EXIT_HANDLER_FAILED = 1
EXIT_BAD_INPUT = 2
EXAMPLE_HANDLER = "examples.fastapi_app.handler"
REGION = "us-east-1"
ACCOUNT = "123456789012"
SOURCE_IP = "203.0.113.7"


class InvokeError(Exception):
    """A bad input: the zip, the event or the handler's name (exit status 2)."""


# -- sample events ---------------------------------------------------------------------


def _v1_event(path: str, host: str) -> dict[str, Any]:
    headers = {"Host": host, "User-Agent": "parameters-secrets-invoke", "Accept": "*/*"}
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": "GET",
            "path": f"/prod{path}",
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": SOURCE_IP, "userAgent": "parameters-secrets-invoke"},
            "domainName": host,
            "apiId": host.split(".", 1)[0],
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _v2_event(path: str, host: str) -> dict[str, Any]:
    api_id = host.split(".", 1)[0]
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": host, "user-agent": "parameters-secrets-invoke", "accept": "*/*"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": api_id,
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": "parameters-secrets-invoke",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }


def _alb_event(path: str, host: str) -> dict[str, Any]:
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:"
                "targetgroup/invoke/0123456789abcdef"
            }
        },
        "httpMethod": "GET",
        "path": path,
        "queryStringParameters": {},
        "headers": {"host": host, "user-agent": "parameters-secrets-invoke", "accept": "*/*"},
        "body": "",
        "isBase64Encoded": False,
    }


# Each sample: how it is made and the host it names (the shapes Mangum tells apart).
EVENTS = {
    "apigw-v2": (_v2_event, f"abcdef1234.execute-api.{REGION}.amazonaws.com"),
    "apigw-v1": (_v1_event, f"abcdef1234.execute-api.{REGION}.amazonaws.com"),
    "alb": (_alb_event, f"invoke-1234567890.{REGION}.elb.amazonaws.com"),
    "function-url": (_v2_event, f"abcdefghijklmnopqrstuvwxyz234567.lambda-url.{REGION}.on.aws"),
}


def sample_event(kind: str, path: str = "/") -> dict[str, Any]:
    """A GET of ``path`` as the integration ``kind`` (a key of :data:`EVENTS`) sends it."""
    make, host = EVENTS[kind]
    return make(path, host)


def load_event(given: str, path: str) -> dict[str, Any]:
    """The sample ``given`` names, or the JSON object in the file ``given``."""
    if given in EVENTS:
        return sample_event(given, path)
    try:
        event = json.loads(Path(given).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvokeError(
            f"--event {given}: not one of {', '.join(EVENTS)}, nor a file to read ({exc.strerror})"
        ) from None
    except ValueError as exc:
        raise InvokeError(f"--event {given}: not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise InvokeError(f"--event {given}: the event must be a JSON object")
    return event


# -- the zip ---------------------------------------------------------------------------


def default_handler(archive_path: Path, names: Sequence[str]) -> str:
    """The handler the builder names for this zip: the example's, or ``APP.handler`` for
    the one top-level module or package that no distribution's ``RECORD`` lists."""
    if "examples/fastapi_app.py" in names:
        return EXAMPLE_HANDLER
    apps = sorted(_top_level_modules(names) - _recorded_top_levels(archive_path, names))
    if len(apps) != 1:
        raise InvokeError(
            f"cannot tell the handler from the zip (top-level modules of its own:"
            f" {', '.join(apps) or 'none'}): give it as --handler MODULE.NAME"
        )
    return f"{apps[0]}.handler"


def _top_level_modules(names: Sequence[str]) -> set[str]:
    """The modules and packages at the top of the zip."""
    return {
        name.removesuffix(".py").removesuffix("/__init__")
        for name in names
        if _is_top_level_module(name)
    }


def _is_top_level_module(name: str) -> bool:
    """Whether the zip entry ``name`` is a module or a package at the top of the zip."""
    return (name.endswith(".py") and "/" not in name) or (
        name.count("/") == 1 and name.endswith("/__init__.py")
    )


def _recorded_top_levels(archive_path: Path, names: Sequence[str]) -> set[str]:
    """The top-level names the zip's distributions install (their ``RECORD`` rows)."""
    with zipfile.ZipFile(archive_path) as archive:
        records = [archive.read(n).decode() for n in names if n.endswith(".dist-info/RECORD")]
    return {
        line.split("/", 1)[0].split(",", 1)[0].removesuffix(".py")
        for record in records
        for line in record.splitlines()
    }


def zip_entries(archive_path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(archive_path) as archive:
            return archive.namelist()
    except FileNotFoundError:
        raise InvokeError(f"{archive_path}: no such file") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise InvokeError(f"{archive_path}: not a zip file") from None


def bytecode_version(names: Sequence[str]) -> str | None:
    """The Python the zip's bytecode is for (``cpython-312`` -> ``3.12``), if it has any."""
    for name in names:
        if "/__pycache__/" in f"/{name}" and ".cpython-3" in name:
            tag = name.rsplit(".cpython-", 1)[1].split(".", 1)[0]
            return f"{tag[0]}.{tag[1:]}"
    return None


def choose_python(given: str | None, names: Sequence[str]) -> str:
    """``--python``, else an interpreter of the version the zip's bytecode is for, else
    this one (it must match the native wheels the zip holds)."""
    if given:
        return given
    version = bytecode_version(names)
    found = find_python(version) if version else None
    if found is not None:
        return found.path
    if version:
        _warn_other_python(version)
    return sys.executable


def _warn_other_python(version: str) -> None:
    """Warn that the zip is run by this Python, if its bytecode is for another ``version``."""
    if version != "{}.{}".format(*sys.version_info[:2]):
        print(
            f"{PROG}: warning: the zip is built for Python {version}, which is not here:"
            f" running it with {sys.version.split()[0]} (--python to choose)",
            file=sys.stderr,
        )


# Run by the chosen Python in the unpacked zip: import the handler, call it once with the
# event on stdin and a context whose deadline is --timeout away, print its response. The
# function's own prints go to stderr, so that stdout holds the response alone.
RUNNER = r"""
import importlib, json, sys, time
task, handler_name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path.insert(0, task)
event = json.load(sys.stdin)
stdout, sys.stdout = sys.stdout, sys.stderr
module_name, _, attribute = handler_name.rpartition(".")
handler = getattr(importlib.import_module(module_name), attribute)

class Context:
    function_name = "parameters-secrets-invoke"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    memory_limit_in_mb = "512"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "invoke"
    identity = client_context = None
    _deadline = time.monotonic() + timeout
    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

response = handler(event, Context())
sys.stdout = stdout
print(json.dumps(response, indent=2))
"""


def lambda_environment(task: Path, handler: str) -> dict[str, str]:
    """The current environment, with the variables Lambda sets where they are unset."""
    environment = dict(os.environ)
    defaults = {
        "AWS_LAMBDA_FUNCTION_NAME": "parameters-secrets-invoke",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python",
        "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": handler,
    }
    for key, value in defaults.items():
        environment.setdefault(key, value)
    return environment


def invoke(
    archive_path: Path,
    event: dict[str, Any],
    *,
    handler: str | None = None,
    python: str | None = None,
    timeout: float = 30.0,
) -> int:
    """Unpack the zip read-only, run ``handler`` once on ``event``; the exit status of the
    interpreter that ran it (its output passes through)."""
    names = zip_entries(archive_path)
    handler = handler or default_handler(archive_path, names)
    if "." not in handler:
        raise InvokeError(f"--handler {handler}: give it as MODULE.NAME (e.g. myapp.handler)")
    interpreter = choose_python(python, names)
    with tempfile.TemporaryDirectory(prefix="parameters-secrets-invoke-") as temporary:
        task = Path(temporary, "task")
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(task)
        _set_writable(task, writable=False)
        try:
            return subprocess.run(  # noqa: S603 - the interpreter asked for, our runner
                [interpreter, "-I", "-S", "-B", "-c", RUNNER, str(task), handler, str(timeout)],
                input=json.dumps(event),
                env=lambda_environment(task, handler),
                cwd=temporary,
                text=True,
                timeout=timeout + 60,
                check=False,
            ).returncode
        finally:  # so that the temporary directory can be removed
            _set_writable(task, writable=True)


def _set_writable(directory: Path, *, writable: bool) -> None:
    for path in [directory, *directory.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~0o222)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("zip", type=Path, help="the zip parameters-secrets package built")
    parser.add_argument(
        "--event",
        default="apigw-v2",
        metavar="KIND|FILE.json",
        help=f"a sample GET ({', '.join(EVENTS)}; default apigw-v2) or a JSON event file",
    )
    parser.add_argument("--path", default="/", help="the sample event's path (default /)")
    parser.add_argument(
        "--handler",
        default=None,
        help="MODULE.NAME (default: the example's, or APP.handler for the app in the zip)",
    )
    parser.add_argument(
        "--python",
        default=None,
        help="the interpreter to run it with (default: the version the zip's bytecode is"
        " for, else this one)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds the context's get_remaining_time_in_millis() counts down from",
    )


def main(args: argparse.Namespace) -> int:
    """``parameters-secrets invoke``: 0 the handler returned (its response on stdout),
    1 it raised (the traceback on stderr), 2 a bad input."""
    try:
        event = load_event(args.event, args.path)
        status = invoke(
            args.zip, event, handler=args.handler, python=args.python, timeout=args.timeout
        )
    except InvokeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_HANDLER_FAILED if status else 0
