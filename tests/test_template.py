"""The SAM template: valid for cfn-lint, and its role allows exactly what the app declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from parameters_secrets import Parameter, Secret
from parameters_secrets._settings import ENVIRONMENT

TEMPLATE = Path(__file__).parent.parent / "examples" / "template.yaml"


def load() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    assert template is not None
    return dict(template)


def test_template_passes_cfn_lint() -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(match) for match in matches] == []


def _statements(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policy = template["Resources"]["ApiFunction"]["Properties"]["Policies"][0]
    statements: dict[str, dict[str, Any]] = {}
    for statement in policy["Statement"]:
        if "Fn::If" in statement:
            statement = statement["Fn::If"][1]
        statements[statement["Sid"]] = statement
    return statements


def _resolved(resource: Any, prefix: str) -> str:
    text: str = resource["Fn::Sub"]
    return (
        text.replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${AppPrefix}", prefix)
    )


def test_role_allows_exactly_the_declared_values_and_nothing_broader() -> None:
    # Imported here: the module builds a Mangum handler, which adopts the test's loop.
    from examples.fastapi_app import VALUES

    template = load()
    prefix = template["Parameters"]["AppPrefix"]["Default"]
    statements = _statements(template)
    parameters = statements["DeclaredParameters"]
    secrets = statements["DeclaredSecrets"]
    assert parameters["Action"] == "ssm:GetParameter"
    assert secrets["Action"] == "secretsmanager:GetSecretValue"
    allowed_parameters = {_resolved(r, prefix) for r in parameters["Resource"]}
    allowed_secrets = {_resolved(r, prefix) for r in secrets["Resource"]}
    declared_parameters = {
        f"arn:aws:ssm:us-east-1:123456789012:parameter{d.name}"
        for d in VALUES.values()
        if isinstance(d, Parameter)
    }
    declared_secrets = {
        f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{d.secret_id}-??????"
        for d in VALUES.values()
        if isinstance(d, Secret)
    }
    assert allowed_parameters == declared_parameters
    assert allowed_secrets == declared_secrets
    assert not any("*" in arn for arn in allowed_parameters | allowed_secrets)


def test_layer_comes_from_the_public_parameter_unless_pinned() -> None:
    template = load()
    assert (
        template["Parameters"]["ExtensionLayerFromSsm"]["Default"]
        == "/aws/service/aws-parameters-and-secrets-lambda-extension/x86/latest"
    )
    layers = template["Resources"]["ApiFunction"]["Properties"]["Layers"]
    assert layers == [
        {"Fn::If": ["PinnedLayer", {"Ref": "ExtensionLayerArn"}, {"Ref": "ExtensionLayerFromSsm"}]}
    ]


def test_environment_sets_only_known_extension_variables() -> None:
    template = load()
    variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert set(variables) <= set(ENVIRONMENT.values())
    assert template["Resources"]["ApiFunction"]["Properties"]["Handler"] == (
        "examples.fastapi_app.handler"
    )
