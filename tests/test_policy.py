"""``parameters-secrets policy MODULE:ATTR``: the least-privilege IAM policy for what an app
declares, action by action and ARN by ARN, for every kind of declaration and every object
that holds them; the command as a user runs it, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parameters_secrets import Parameter, ParametersByPath, Secret
from parameters_secrets._cli import main
from parameters_secrets._policy import PolicyError, Scope, declarations_of, policy, scope
from tests import policy_targets
from tests.policy_targets import OTHER_ACCOUNT_PARAMETER, SECRET_ARN, VALUES
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
AMI = "ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/reader"


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The statements by Sid, with Action and Resource always lists."""
    assert document["Version"] == "2012-10-17"
    found = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = {
            key: value if isinstance(value, list) else [value]
            for key, value in statement.items()
            if key in ("Action", "Resource")
        }
        found[statement["Sid"]] = {**statement, **listed}
    assert len(found) == len(document["Statement"])  # no Sid twice
    return found


def run_command(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parameters_secrets", "policy", *arguments],
        cwd=cwd,
        env=clean_environment({"PYTHONPATH": str(ROOT / "middleware")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- each kind of declaration, ARN by ARN --------------------------------------------


def test_every_kind_without_region_or_account_uses_wildcards() -> None:
    found = statements(policy(VALUES.values()))
    assert list(found) == [
        "ReadDeclaredParameters",
        "ReadDeclaredPaths",
        "ReadDeclaredSecrets",
        "BatchReadSecrets",
        "DecryptThroughDeclaredServices",
    ]
    parameters = found["ReadDeclaredParameters"]
    assert parameters["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert parameters["Resource"] == sorted(
        [
            "arn:aws:ssm:*:*:parameter/app/prod/api-key",  # no leading slash after parameter
            "arn:aws:ssm:*:*:parameter/app/prod/pinned",  # the version changes nothing
            "arn:aws:ssm:*:*:parameter/plain-name",  # nor the label; a name without a slash
            OTHER_ACCOUNT_PARAMETER,  # an ARN as is
            "arn:aws:ssm:*:*:parameter/aws/reference/secretsmanager/app/referenced",
            f"arn:aws:ssm:*::parameter/aws/service/{AMI}",  # public: no account
        ]
    )
    paths = found["ReadDeclaredPaths"]
    assert paths["Action"] == ["ssm:GetParametersByPath"]
    # Authorised against the path itself (recursive or not), without its trailing slash.
    assert paths["Resource"] == [
        "arn:aws:ssm:*:*:parameter/app/prod/level",
        "arn:aws:ssm:*:*:parameter/app/prod/tree",
    ]
    secrets = found["ReadDeclaredSecrets"]
    assert secrets["Action"] == ["secretsmanager:GetSecretValue"]
    assert secrets["Resource"] == sorted(
        [
            "arn:aws:secretsmanager:*:*:secret:app/prod/db-??????",
            "arn:aws:secretsmanager:*:*:secret:app/referenced-??????",  # the reference's
            SECRET_ARN,  # an ARN as is, whatever the version stage
        ]
    )
    batch = found["BatchReadSecrets"]
    assert batch["Action"] == ["secretsmanager:BatchGetSecretValue"]
    assert batch["Resource"] == ["*"]
    decrypt = found["DecryptThroughDeclaredServices"]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Resource"] == ["*"]
    assert decrypt["Condition"] == {
        "StringLike": {"kms:ViaService": ["secretsmanager.*.amazonaws.com", "ssm.*.amazonaws.com"]}
    }


def test_region_and_account_fill_every_arn_but_given_arns_and_public_parameters() -> None:
    found = statements(policy(VALUES.values(), scope("eu-west-1", ACCOUNT)))
    assert (
        f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/app/prod/api-key"
        in (found["ReadDeclaredParameters"]["Resource"])
    )
    assert OTHER_ACCOUNT_PARAMETER in found["ReadDeclaredParameters"]["Resource"]
    assert (
        f"arn:aws:ssm:eu-west-1::parameter/aws/service/{AMI}"
        in (found["ReadDeclaredParameters"]["Resource"])
    )
    assert found["ReadDeclaredPaths"]["Resource"] == [
        f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/app/prod/level",
        f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/app/prod/tree",
    ]
    assert found["ReadDeclaredSecrets"]["Resource"] == sorted(
        [
            f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:app/prod/db-??????",
            f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:app/referenced-??????",
            SECRET_ARN,
        ]
    )
    every_arn = [arn for s in found.values() for arn in s["Resource"] if arn != "*"]
    assert not any(":*:" in arn for arn in every_arn)
    assert found["DecryptThroughDeclaredServices"]["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [
                "secretsmanager.eu-west-1.amazonaws.com",
                "ssm.eu-west-1.amazonaws.com",
            ]
        }
    }


def test_only_the_account_given_leaves_the_region_a_wildcard() -> None:
    found = statements(policy([Parameter("/app/key")], scope(account=ACCOUNT)))
    assert found["ReadDeclaredParameters"]["Resource"] == [
        f"arn:aws:ssm:*:{ACCOUNT}:parameter/app/key"
    ]


@pytest.mark.parametrize(
    ("region", "partition", "expected_partition", "suffix"),
    [
        ("cn-north-1", None, "aws-cn", "amazonaws.com.cn"),
        ("us-gov-west-1", None, "aws-us-gov", "amazonaws.com"),
        ("us-east-1", None, "aws", "amazonaws.com"),
        (None, "aws-cn", "aws-cn", "amazonaws.com.cn"),
        ("cn-north-1", "aws", "aws", "amazonaws.com"),  # the flag wins
    ],
)
def test_partition_follows_the_region_unless_given(
    region: str | None, partition: str | None, expected_partition: str, suffix: str
) -> None:
    where = scope(region, ACCOUNT, partition)
    found = statements(policy([Parameter("/app/key"), Secret("db")], where))
    shown_region = region or "*"
    assert found["ReadDeclaredParameters"]["Resource"] == [
        f"arn:{expected_partition}:ssm:{shown_region}:{ACCOUNT}:parameter/app/key"
    ]
    assert found["ReadDeclaredSecrets"]["Resource"] == [
        f"arn:{expected_partition}:secretsmanager:{shown_region}:{ACCOUNT}:secret:db-??????"
    ]
    (hosts,) = found["DecryptThroughDeclaredServices"]["Condition"].values()
    assert hosts["kms:ViaService"] == [
        f"secretsmanager.{shown_region}.{suffix}",
        f"ssm.{shown_region}.{suffix}",
    ]


def test_no_decryption_asked_means_no_kms_statement() -> None:
    declared = [
        Parameter("/app/flags", decrypt=False),
        ParametersByPath("/app/tree", decrypt=False),
        Parameter("/aws/service/global-infrastructure/current-region"),  # public: a String
    ]
    found = statements(policy(declared))
    assert list(found) == ["ReadDeclaredParameters", "ReadDeclaredPaths"]


def test_a_secure_string_decrypts_through_ssm_only() -> None:
    found = statements(policy([Parameter("/app/key")], scope("us-east-1")))
    assert list(found) == ["ReadDeclaredParameters", "DecryptThroughDeclaredServices"]
    assert found["DecryptThroughDeclaredServices"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}
    }


def test_the_same_value_declared_twice_is_allowed_once() -> None:
    declared = [Parameter("/app/key"), Parameter("/app/key", version=2), Secret("db")] * 2
    found = statements(policy(declared))
    assert found["ReadDeclaredParameters"]["Resource"] == ["arn:aws:ssm:*:*:parameter/app/key"]
    assert found["ReadDeclaredSecrets"]["Resource"] == [
        "arn:aws:secretsmanager:*:*:secret:db-??????"
    ]


def test_the_root_path_is_every_parameter() -> None:
    found = statements(policy([ParametersByPath("/")]))
    assert found["ReadDeclaredPaths"]["Resource"] == ["arn:aws:ssm:*:*:parameter/*"]


# --- options that other changes add: role_arn, follow_rotation ------------------------


def test_a_value_read_through_a_role_needs_only_assume_role_from_the_function() -> None:
    declared = [Parameter("/other/key", role_arn=ROLE), Parameter("/app/key")]
    found = statements(policy(declared))
    assert found["AssumeDeclaredRoles"]["Action"] == ["sts:AssumeRole"]
    assert found["AssumeDeclaredRoles"]["Resource"] == [ROLE]
    assert found["ReadDeclaredParameters"]["Resource"] == ["arn:aws:ssm:*:*:parameter/app/key"]


def test_the_role_s_own_policy_reads_the_values_declared_with_it() -> None:
    declared = [Parameter("/other/key", role_arn=ROLE), Parameter("/app/key")]
    found = statements(policy(declared, scope(account=ACCOUNT), role=ROLE))
    assert "AssumeDeclaredRoles" not in found
    assert found["ReadDeclaredParameters"]["Resource"] == [
        f"arn:aws:ssm:*:{ACCOUNT}:parameter/other/key"
    ]


def test_follow_rotation_adds_describe_secret_on_that_secret_only() -> None:
    declared = [Secret("rotating", follow_rotation=True), Secret("still")]
    found = statements(policy(declared))
    assert found["FollowRotation"]["Action"] == ["secretsmanager:DescribeSecret"]
    assert found["FollowRotation"]["Resource"] == [
        "arn:aws:secretsmanager:*:*:secret:rotating-??????"
    ]
    assert len(found["ReadDeclaredSecrets"]["Resource"]) == 2


# --- what holds the declarations ------------------------------------------------------


@pytest.mark.parametrize("attribute", ["VALUES", "store", "asgi", "wsgi"])
def test_a_store_a_middleware_or_a_mapping_gives_its_declarations(attribute: str) -> None:
    held = declarations_of(getattr(policy_targets, attribute))
    assert sorted(map(repr, held)) == sorted(map(repr, VALUES.values()))


def test_a_starlette_app_with_the_middleware_gives_the_middleware_s_declarations() -> None:
    from starlette.applications import Starlette

    from parameters_secrets import ParametersSecretsMiddleware

    app = Starlette()
    app.add_middleware(ParametersSecretsMiddleware, values=policy_targets.store)
    assert sorted(map(repr, declarations_of(app))) == sorted(map(repr, VALUES.values()))


def test_a_model_class_gives_the_declarations_in_its_annotated_fields() -> None:
    held = declarations_of(policy_targets.Model)
    assert held == [
        Parameter("/app/prod/api-key"),
        Secret("app/prod/db"),
        ParametersByPath("/app/prod/tree"),
    ]


@pytest.mark.parametrize("target", [policy_targets.NOTHING, {}, 42, int, print])
def test_an_object_that_declares_nothing_is_refused(target: object) -> None:
    with pytest.raises(PolicyError, match="declares no value"):
        declarations_of(target)


# --- the command ----------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["VALUES", "store", "asgi", "wsgi"])
def test_command_prints_the_policy_as_indented_json(attribute: str) -> None:
    result = run_command(f"tests.policy_targets:{attribute}", "--account", ACCOUNT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = policy(VALUES.values(), Scope(account=ACCOUNT))
    assert result.stdout == json.dumps(expected, indent=2) + "\n"


def test_command_reads_the_flags() -> None:
    result = run_command(
        "tests.policy_targets:Model", "--region", "cn-north-1", "--account", ACCOUNT
    )
    assert result.returncode == 0, result.stderr
    found = statements(json.loads(result.stdout))
    assert found["ReadDeclaredParameters"]["Resource"] == [
        f"arn:aws-cn:ssm:cn-north-1:{ACCOUNT}:parameter/app/prod/api-key"
    ]


def test_command_imports_the_module_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the console script runs: sys.path starts with the script's directory, not here.
    (tmp_path / "policy_cwd_app.py").write_text(
        "from parameters_secrets import Secret\nVALUES = {'db': Secret('prod/db')}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "policy_cwd_app", raising=False)
    assert main(["policy", "policy_cwd_app:VALUES"]) == 0
    monkeypatch.delitem(sys.modules, "policy_cwd_app")
    found = statements(json.loads(capsys.readouterr().out))
    assert found["ReadDeclaredSecrets"]["Resource"] == [
        "arn:aws:secretsmanager:*:*:secret:prod/db-??????"
    ]


def _write_failing_module(directory: Path) -> None:
    (directory / "policy_broken_app.py").write_text(
        "raise RuntimeError('no\\nconfig here')\n", encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["tests.policy_targets"], "give the target as MODULE:ATTR"),
        ([":VALUES"], "give the target as MODULE:ATTR"),
        (["no_such_module_here:x"], "cannot import no_such_module_here: ModuleNotFoundError"),
        (["policy_broken_app:x"], "cannot import policy_broken_app: RuntimeError: no config here"),
        (["tests.policy_targets:missing"], "has no attribute 'missing'"),
        (["tests.policy_targets:NOTHING"], "dict declares no value"),
        (["tests.policy_targets:VALUES", "--region", "Mars"], "--region must be"),
        (["tests.policy_targets:VALUES", "--account", "12345"], "--account must be"),
        (["tests.policy_targets:VALUES", "--partition", "azure"], "--partition must be"),
        (["tests.policy_targets:VALUES", "--role", ROLE], "no value is declared with role_arn"),
        (["tests.policy_targets:VALUES", "--role", "reader"], "--role must be an IAM role ARN"),
    ],
)
def test_command_errors_are_one_line_and_exit_2(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    _write_failing_module(tmp_path)
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    result = run_command(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("parameters-secrets policy: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_is_still_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "parameters_secrets", "serve", "--help"],
        env=clean_environment({"PYTHONPATH": str(ROOT / "middleware")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--port" in result.stdout


# --- an IAM linter's view -------------------------------------------------------------

PARLIAMENT = """
import json, sys, warnings
warnings.simplefilter("ignore")  # parliament imports pkg_resources and leaves a file open
try:
    from parliament import analyze_policy_string
except ImportError as exc:
    print(json.dumps({"unavailable": str(exc)}))
    raise SystemExit(0)
found = analyze_policy_string(sys.stdin.read()).findings
print(json.dumps({"findings": [[f.issue, f.detail] for f in found]}))
"""


def parliament_findings(document: dict[str, Any]) -> list[list[Any]]:
    completed = subprocess.run(
        [sys.executable, "-c", PARLIAMENT],
        input=json.dumps(document),
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(completed.stdout)
    if "unavailable" in report:
        pytest.skip(f"parliament does not import here: {report['unavailable']}")
    findings: list[list[Any]] = report["findings"]
    return findings


@pytest.mark.parametrize(
    "where", [Scope(), Scope("eu-west-1", ACCOUNT), Scope("cn-north-1", ACCOUNT, "aws-cn")]
)
def test_parliament_finds_nothing_but_the_documented_kms_wildcard(where: Scope) -> None:
    declared = [*VALUES.values(), Secret("rotating", follow_rotation=True)]
    declared.append(Parameter("/other", role_arn=ROLE))
    # The one finding: kms:Decrypt on "*". The key is not in the declarations; the
    # kms:ViaService condition limits it to decryption SSM and Secrets Manager ask for.
    assert parliament_findings(policy(declared, where)) == [["RESOURCE_STAR", ["kms:Decrypt"]]]


def test_parliament_would_see_a_bad_policy() -> None:
    broken = policy([Parameter("/app/key", decrypt=False)])
    broken["Statement"][0]["Action"] = ["ssm:GetParameterz"]
    assert parliament_findings(broken) != []


def test_environment_region_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # The policy is written where the function does not run (a laptop, CI): a region
    # picked up from there would lock the role to it. Only --region narrows it.
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert scope() == Scope("*", "*", "aws")


def test_the_deploy_docs_show_what_the_command_prints_for_the_example() -> None:
    text = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    command = "$ parameters-secrets policy examples.fastapi_app:config\n"
    after = text[text.index(command) :]
    shown = after[after.index("```json\n") + len("```json\n") :].split("```", 1)[0]
    result = run_command("examples.fastapi_app:config")
    assert result.returncode == 0, result.stderr
    assert shown == result.stdout


def test_the_generator_is_imported_only_by_the_command() -> None:
    code = (
        "import sys, parameters_secrets, parameters_secrets._cli\n"
        "print('parameters_secrets._policy' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_environment({"PYTHONPATH": str(ROOT / "middleware")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.strip() == "False"
