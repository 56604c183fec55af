"""What importing the package costs a cold start: no AWS-direct code (SigV4, credentials,
AwsSource) and no HTTP client until a source needs them, checked in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
VALUES_FILE = ROOT / "examples" / "local-values.json"
AWS_DIRECT = (
    "parameters_secrets._sources.aws",
    "parameters_secrets._sigv4",
    "parameters_secrets._credentials",
    "parameters_secrets._sources._endpoints",
    "botocore",
)

REPORT = """
import json, sys
{code}
aws = sorted(m for m in {aws!r} if m in sys.modules)
print(json.dumps({{"aws": aws, "httpx": "httpx" in sys.modules or "httpx2" in sys.modules}}))
"""


def loaded_after(code: str, **environ: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", REPORT.format(code=code, aws=AWS_DIRECT)],
        # This checkout's package first, whatever is installed.
        env=clean_environment(
            {"PYTHONPATH": os.pathsep.join([str(ROOT / "middleware"), str(ROOT)]), **environ}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("module", ["parameters_secrets", "parameters_secrets.sources"])
def test_importing_the_package_loads_no_aws_code_and_no_http_client(module: str) -> None:
    assert loaded_after(f"import {module}") == {"aws": [], "httpx": False}


def test_a_store_on_the_extension_loads_no_aws_code() -> None:
    code = (
        "from parameters_secrets import Parameter, ParametersSecrets\n"
        "from parameters_secrets.sources import ExtensionSource\n"
        "config = ParametersSecrets({'k': Parameter('/k')}, source=ExtensionSource(2773, 't'))"
    )
    assert loaded_after(code) == {"aws": [], "httpx": False}


@pytest.mark.parametrize("how", ["explicit", "variable"])
def test_a_store_on_a_values_file_loads_and_serves_without_aws_code_or_http(how: str) -> None:
    if how == "explicit":
        code = (
            "from parameters_secrets import Parameter, ParametersSecrets\n"
            "from parameters_secrets.sources import StaticSource\n"
            "config = ParametersSecrets({'k': Parameter('/demo-app/prod/api-key')},"
            f" source=StaticSource.from_file({str(VALUES_FILE)!r}))\n"
            "config.load_sync()"
        )
        assert loaded_after(code) == {"aws": [], "httpx": False}
    else:
        code = (
            "from parameters_secrets import Parameter, ParametersSecrets\n"
            "config = ParametersSecrets({'k': Parameter('/demo-app/prod/api-key')})\n"
            "config.load_sync()"
        )
        report = loaded_after(code, PARAMETERS_SECRETS_SOURCE=f"file:{VALUES_FILE}")
        assert report == {"aws": [], "httpx": False}


def test_the_aws_source_is_what_loads_the_aws_code() -> None:
    # The control: the check above does see these modules when they are imported.
    report = loaded_after("from parameters_secrets.sources import AwsSource")
    assert report["aws"] == sorted(AWS_DIRECT[:4])
    assert report["httpx"] is True


def test_the_experimental_source_loads_on_first_use() -> None:
    code = (
        "import parameters_secrets.sources, sys\n"
        "assert 'parameters_secrets._sources.cloud_extensions' not in sys.modules\n"
        "from parameters_secrets.sources import CloudExtensionsSource\n"
        "assert 'parameters_secrets._sources.cloud_extensions' in sys.modules"
    )
    assert loaded_after(code)["aws"]  # and the AWS-direct code it is built on


def test_credentials_load_only_the_signing_code() -> None:
    report = loaded_after("from parameters_secrets.sources import Credentials")
    assert report == {"aws": ["parameters_secrets._sigv4"], "httpx": False}


PYDANTIC_REPORT = """
import sys
{code}
print("pydantic" in sys.modules)
"""


def pydantic_loaded_after(code: str) -> bool:
    completed = subprocess.run(
        [sys.executable, "-c", PYDANTIC_REPORT.format(code=code)],
        # This checkout's package first, whatever is installed.
        env=clean_environment(
            {"PYTHONPATH": os.pathsep.join([str(ROOT / "middleware"), str(ROOT)])}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return bool(json.loads(completed.stdout.splitlines()[-1].lower()))


def test_a_store_that_loads_its_values_never_imports_pydantic() -> None:
    code = (
        "import parameters_secrets\n"
        "from parameters_secrets import Parameter, ParametersSecrets\n"
        "from parameters_secrets.sources import StaticSource\n"
        "config = ParametersSecrets({'k': Parameter('/demo-app/prod/api-key')},"
        f" source=StaticSource.from_file({str(VALUES_FILE)!r}))\n"
        "config.load_sync(); config.get_sync('k')"
    )
    assert pydantic_loaded_after(code) is False


def test_from_model_is_what_imports_pydantic() -> None:
    # The control: the check above does see pydantic once from_model() runs (here on a
    # class that is not a model, so that nothing else imports pydantic).
    code = (
        "from parameters_secrets import ConfigurationError, ParametersSecrets\n"
        "try:\n"
        "    ParametersSecrets.from_model(dict)\n"
        "except ConfigurationError:\n"
        "    pass"
    )
    assert pydantic_loaded_after(code) is True


# What only `parameters-secrets package` needs: the zip builder and packaging.
BUILDER = ("parameters_secrets._packaging", "packaging.requirements")

BUILDER_REPORT = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))
"""


def builder_loaded_after(code: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", BUILDER_REPORT.format(code=code, modules=BUILDER)],
        env=clean_environment(
            {"PYTHONPATH": os.pathsep.join([str(ROOT / "middleware"), str(ROOT)])}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(completed.stdout.splitlines()[-1])
    return loaded


# The serve command's own parsing and settings, up to where it would start uvicorn.
SERVE = (
    "import parameters_secrets._cli as cli\n"
    "cli._serve = lambda port, source: 0\n"
    "assert cli.main(['serve', '--port', '0']) == 0"
)


@pytest.mark.parametrize(
    "code", ["import parameters_secrets", SERVE], ids=["import", "serve command"]
)
def test_neither_the_package_nor_serve_imports_the_zip_builder(code: str) -> None:
    assert builder_loaded_after(code) == []


def test_the_package_command_is_what_imports_the_zip_builder() -> None:
    # The control: `package --help` loads the builder (and exits 0 after printing).
    code = (
        "import contextlib, io, parameters_secrets._cli as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli.main(['package', '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0"
    )
    assert builder_loaded_after(code) == sorted(BUILDER)
