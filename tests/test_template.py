"""The SAM template deploys as is: it passes cfn-lint and the SAM CLI's validator, creates
what the FastAPI example reads (but the SecureString, which the one command of
docs/deploying.md creates), and its role allows exactly what the example declares, whatever
the prefix.

``sam validate --lint`` needs the SAM CLI, which is too big and too tightly pinned (boto3,
click, cfn-lint) for the test extra: ``nox -s template`` installs it and runs this module
with ``REQUIRE_SAM_CLI=1``, so there it cannot be skipped.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from parameters_secrets import Parameter, Secret, _packaging
from parameters_secrets._settings import ENVIRONMENT
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "template.yaml"
DEPLOYING = ROOT / "docs" / "deploying.md"
LOCAL_VALUES: dict[str, Any] = json.loads(
    (ROOT / "examples" / "local-values.json").read_text(encoding="utf-8")
)
PUBLIC_LAYER = "/aws/service/aws-parameters-and-secrets-lambda-extension/{}/latest"
# A broken copy of the template: the layer's condition names no condition.
BROKEN_LAYER_CONDITION = ("            - Arm64\n", "            - Graviton\n")

LoadFastapiExample = Callable[[str | None], ModuleType]


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    template, matches = decode(str(path))
    assert not matches, matches
    assert template is not None
    return dict(template)


def function_properties(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"]["ApiFunction"]["Properties"]
    return properties


def broken_template(tmp_path: Path) -> Path:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.count(BROKEN_LAYER_CONDITION[0]) == 1
    path = tmp_path / "template.yaml"
    path.write_text(text.replace(*BROKEN_LAYER_CONDITION), encoding="utf-8")
    return path


@pytest.fixture
def fastapi_example(monkeypatch: pytest.MonkeyPatch) -> LoadFastapiExample:
    """Import ``examples.fastapi_app`` afresh with ``APP_PREFIX`` set, as the template
    sets it on Lambda, or unset (None). (Imported in the test: the module builds a Mangum
    handler, which adopts the test's loop.)"""

    def load_with(prefix: str | None) -> ModuleType:
        if prefix is None:
            monkeypatch.delenv("APP_PREFIX", raising=False)
        else:
            monkeypatch.setenv("APP_PREFIX", prefix)
        monkeypatch.delitem(sys.modules, "examples.fastapi_app", raising=False)
        return importlib.import_module("examples.fastapi_app")

    return load_with


# --- validators ----------------------------------------------------------------------


def test_template_passes_cfn_lint() -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(match) for match in matches] == []


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    matches = lint_file(broken_template(tmp_path), config=ManualArgs(regions=["us-east-1"]))
    assert any("Graviton" in str(match) for match in matches)


def _sam_cli() -> str:
    sam = os.environ.get("SAM_CLI") or shutil.which("sam")
    if sam is None:
        if os.environ.get("REQUIRE_SAM_CLI"):
            pytest.fail("REQUIRE_SAM_CLI is set but no SAM CLI is installed (`sam`, or SAM_CLI)")
        pytest.skip("no SAM CLI installed here: `nox -s template` installs it and runs this")
    return sam


def _sam_validate(template: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_sam_cli(), "validate", "--lint", "--template-file", str(template)],
        cwd=cwd,  # the SAM CLI writes a .aws-sam directory where it runs
        env=clean_environment({"AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_template_passes_sam_validate_lint(tmp_path: Path) -> None:
    result = _sam_validate(TEMPLATE, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def test_sam_validate_lint_catches_a_broken_template(tmp_path: Path) -> None:
    result = _sam_validate(broken_template(tmp_path), tmp_path)
    assert result.returncode != 0
    assert "Graviton" in result.stdout + result.stderr


# --- the role matches the code ---------------------------------------------------------


REGION = "eu-west-1"
ACCOUNT = "123456789012"


def _resolved(resource: Any, prefix: str) -> Any:
    """A policy value with the stack's pseudo parameters and ``AppPrefix`` filled in."""
    if isinstance(resource, list):
        return [_resolved(item, prefix) for item in resource]
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text: str = resource["Fn::Sub"]
        return (
            text.replace("${AWS::Partition}", "aws")
            .replace("${AWS::Region}", REGION)
            .replace("${AWS::AccountId}", ACCOUNT)
            .replace("${AWS::URLSuffix}", "amazonaws.com")
            .replace("${AppPrefix}", prefix)
        )
    if isinstance(resource, dict):
        return {key: _resolved(value, prefix) for key, value in resource.items()}
    return resource


def _policy_command(prefix: str) -> dict[str, Any]:
    """What ``parameters-secrets policy examples.fastapi_app:config`` prints for the
    example run with ``APP_PREFIX=prefix``, as the template runs it."""
    command = ["policy", "examples.fastapi_app:config", "--region", REGION, "--account", ACCOUNT]
    completed = subprocess.run(
        [sys.executable, "-m", "parameters_secrets", *command],
        cwd=ROOT,
        env=clean_environment(
            {"PYTHONPATH": os.pathsep.join([str(ROOT / "middleware"), str(ROOT)])}
            | {"APP_PREFIX": prefix}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


@pytest.mark.parametrize("prefix", ["default", "billing/staging"])
def test_role_is_the_policy_command_s_for_the_example(prefix: str) -> None:
    template = load()
    if prefix == "default":
        prefix = template["Parameters"]["AppPrefix"]["Default"]
    (policy,) = function_properties(template)["Policies"]
    assert _resolved(policy, prefix) == _policy_command(prefix)


@pytest.mark.parametrize("prefix", ["default", "billing/staging"])
def test_role_allows_exactly_the_declared_values_and_nothing_broader(
    fastapi_example: LoadFastapiExample, prefix: str
) -> None:
    template = load()
    if prefix == "default":
        prefix = template["Parameters"]["AppPrefix"]["Default"]
    values = fastapi_example(prefix).VALUES
    (policy,) = function_properties(template)["Policies"]
    statements = {s["Sid"]: s for s in _resolved(policy, prefix)["Statement"]}
    parameters = statements["ReadDeclaredParameters"]
    secrets = statements["ReadDeclaredSecrets"]
    assert parameters["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert secrets["Action"] == "secretsmanager:GetSecretValue"
    allowed_parameters = set(parameters["Resource"])
    allowed_secrets = {secrets["Resource"]}
    declared_parameters = {
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{d.name}"
        for d in values.values()
        if isinstance(d, Parameter)
    }
    declared_secrets = {
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{d.secret_id}-??????"
        for d in values.values()
        if isinstance(d, Secret)
    }
    assert allowed_parameters == declared_parameters
    assert allowed_secrets == declared_secrets
    assert not any("*" in arn for arn in allowed_parameters | allowed_secrets)
    assert all(f"/{prefix}/" in arn for arn in allowed_parameters)
    # Decryption only through the two services, in the stack's region.
    decrypt = statements["DecryptThroughDeclaredServices"]
    assert decrypt["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [
                f"secretsmanager.{REGION}.amazonaws.com",
                f"ssm.{REGION}.amazonaws.com",
            ]
        }
    }


def test_example_default_prefix_is_the_template_default_and_the_local_values_names(
    fastapi_example: LoadFastapiExample,
) -> None:
    module = fastapi_example(None)
    default = load()["Parameters"]["AppPrefix"]["Default"]
    assert default == module.PREFIX
    for declaration in module.VALUES.values():
        if isinstance(declaration, Parameter):
            assert declaration.name in LOCAL_VALUES["parameters"]
        else:
            assert declaration.secret_id in LOCAL_VALUES["secrets"]


def test_function_reads_the_prefix_the_role_is_built_from() -> None:
    variables = function_properties(load())["Environment"]["Variables"]
    assert variables["APP_PREFIX"] == {"Ref": "AppPrefix"}


# --- what the template creates ----------------------------------------------------------


def _created(template: dict[str, Any], kind: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The resources of ``kind``, by their resolved ``Name``."""
    return {
        _resolved(resource["Properties"]["Name"], prefix): resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == kind
    }


def deploying_secure_string_names() -> list[str]:
    """The names in docs/deploying.md's ``aws ssm put-parameter ... --type SecureString``
    commands."""
    text = DEPLOYING.read_text(encoding="utf-8")
    return re.findall(r"aws ssm put-parameter --name (\S+) --type SecureString", text)


def test_template_creates_every_declared_value_but_the_secure_string_the_docs_put(
    fastapi_example: LoadFastapiExample,
) -> None:
    template = load()
    prefix = template["Parameters"]["AppPrefix"]["Default"]
    values = fastapi_example(prefix).VALUES
    parameters = _created(template, "AWS::SSM::Parameter", prefix)
    secrets = _created(template, "AWS::SecretsManager::Secret", prefix)
    secure_strings = deploying_secure_string_names()
    declared_parameters = {d.name for d in values.values() if isinstance(d, Parameter)}
    declared_secrets = {d.secret_id for d in values.values() if isinstance(d, Secret)}
    assert secure_strings == [f"/{prefix}/api-key"]
    assert set(parameters) | set(secure_strings) == declared_parameters
    assert not set(parameters) & set(secure_strings)
    assert set(secrets) == declared_secrets
    # CloudFormation creates String and StringList parameters only.
    assert {p["Type"] for p in parameters.values()} <= {"String", "StringList"}


def test_created_values_are_the_local_values_file_s(fastapi_example: LoadFastapiExample) -> None:
    template = load()
    prefix = template["Parameters"]["AppPrefix"]["Default"]
    parameters = _created(template, "AWS::SSM::Parameter", prefix)
    local = LOCAL_VALUES["parameters"]
    assert parameters[f"/{prefix}/flags"]["Type"] == "String"
    assert json.loads(parameters[f"/{prefix}/flags"]["Value"]) == local[f"/{prefix}/flags"]["json"]
    origins = parameters[f"/{prefix}/allowed-origins"]
    assert origins["Type"] == "StringList"
    assert origins["Value"].split(",") == local[f"/{prefix}/allowed-origins"]
    # The secret: the same JSON as the local one, but a password generated at deployment.
    (secret,) = _created(template, "AWS::SecretsManager::Secret", prefix).values()
    generated = secret["GenerateSecretString"]
    shape = json.loads(generated["SecretStringTemplate"])
    assert generated["GenerateStringKey"] == "password"
    assert {**shape, "password": "..."}.keys() == LOCAL_VALUES["secrets"][f"{prefix}/db"][
        "json"
    ].keys()
    assert shape["username"] == LOCAL_VALUES["secrets"][f"{prefix}/db"]["json"]["username"]


def test_api_url_is_an_output() -> None:
    value = load()["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert value.startswith("https://${ServerlessHttpApi}.execute-api.")


# --- runtime, architecture and layer -------------------------------------------------


def test_runtime_and_architecture_are_parameters_with_the_package_s_defaults() -> None:
    template = load()
    properties = function_properties(template)
    assert properties["Runtime"] == {"Ref": "Runtime"}
    assert properties["Architectures"] == [{"Ref": "Architecture"}]
    runtime = template["Parameters"]["Runtime"]
    architecture = template["Parameters"]["Architecture"]
    assert runtime["Default"] == f"python{_packaging.DEFAULT_PYTHON_VERSION}"
    assert architecture["Default"] == _packaging.DEFAULT_ARCH
    assert set(architecture["AllowedValues"]) == set(_packaging.ARCHITECTURES)
    # Every runtime offered is a Python the package supports (its classifiers).
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in runtime["AllowedValues"]:
        assert f"Programming Language :: Python :: {name.removeprefix('python')}" in pyproject


def test_code_is_the_zip_nox_package_builds() -> None:
    code_uri = function_properties(load())["CodeUri"]
    assert (TEMPLATE.parent / code_uri).resolve() == _packaging.DEFAULT_OUTPUT
    assert function_properties(load())["Handler"] == "examples.fastapi_app.handler"
    assert "examples/fastapi_app.py" in _packaging.EXAMPLE_FILES


def test_layer_follows_the_architecture_unless_pinned() -> None:
    template = load()
    layers = function_properties(template)["Layers"]
    assert layers == [
        {
            "Fn::If": [
                "PinnedLayer",
                {"Ref": "ExtensionLayerArn"},
                {
                    "Fn::If": [
                        "Arm64",
                        "{{resolve:ssm:" + PUBLIC_LAYER.format("arm64") + "}}",
                        "{{resolve:ssm:" + PUBLIC_LAYER.format("x86") + "}}",
                    ]
                },
            ]
        }
    ]
    assert template["Conditions"]["Arm64"] == {"Fn::Equals": [{"Ref": "Architecture"}, "arm64"]}


def test_environment_sets_the_prefix_and_only_known_extension_variables() -> None:
    variables = function_properties(load())["Environment"]["Variables"]
    assert set(variables) - {"APP_PREFIX"} <= set(ENVIRONMENT.values())
