"""Check an installed copy of the package: import the FastAPI example's handler and run it once.

    python scripts/check_install.py      (nox -s dist runs it in fresh virtualenvs)

Run by an interpreter that has ``asgi-parameters-secrets[fastapi,package]`` installed (from the
wheel, the checkout or a git URL, as docs/index.md's Install section says), never the
source tree: it fails if ``parameters_secrets`` is imported from ``middleware/``. The
example reads ``examples/local-values.json``; no network, no AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """0 if the installed wheel serves the example app and builds a zip; else 1."""
    os.environ["PARAMETERS_SECRETS_SOURCE"] = f"file:{ROOT / 'examples' / 'local-values.json'}"
    sys.path.insert(0, str(ROOT))  # for examples/, which the wheel does not hold

    import parameters_secrets
    from examples import fastapi_app
    from examples.demo import DemoContext, http_api_v2_event

    location = Path(parameters_secrets.__file__).resolve()
    if ROOT / "middleware" in location.parents:
        print(f"check_install: imported the source tree, not an install: {location}")
        return 1
    # Typed as Lambda calls it: Mangum's annotation wants its own context type.
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = fastapi_app.handler
    response = handler(http_api_v2_event("/"), DemoContext())
    body = json.loads(response["body"])
    version = metadata.version("asgi-parameters-secrets")
    print(f"check_install: asgi-parameters-secrets {version} from {location.parent}")
    print(f"check_install: GET / -> {response['statusCode']} {body}")
    if response["statusCode"] != 200 or body.get("user") != "demo":
        return 1
    return check_package_command()


def check_package_command() -> int:
    """The installed ``parameters-secrets package --help`` (the zip builder, in the
    ``package`` extra) works outside the clone."""
    command = Path(sys.executable).parent / "parameters-secrets"
    result = subprocess.run(  # noqa: S603 - the console script this install made
        [str(command), "package", "--help"], capture_output=True, text=True, check=False
    )
    print(f"check_install: parameters-secrets package --help -> {result.returncode}")
    if result.returncode != 0 or "exit status: 0 built" not in " ".join(result.stdout.split()):
        print(result.stdout + result.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
