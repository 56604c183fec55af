"""StaticSource: values from memory or a JSON file, in the AWS APIs' own shapes."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum
from starlette.responses import PlainTextResponse

from parameters_secrets import (
    ConfigurationError,
    FetchError,
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    Secret,
)
from parameters_secrets._declarations import (
    ParameterRequest,
    Record,
    SecretRequest,
    ValueRequest,
    apply_transform,
)
from parameters_secrets.sources import Source, StaticSource
from tests.lambda_events import invoke

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Value-XYZ"

# The keys of GetParameter's ``Parameter`` object and of a GetSecretValue response.
PARAMETER_KEYS = {
    "ARN",
    "DataType",
    "LastModifiedDate",
    "Name",
    "Selector",
    "SourceResult",
    "Type",
    "Value",
    "Version",
}
SECRET_KEYS = {"ARN", "Name", "VersionId", "VersionStages", "CreatedDate"}

VALUES: dict[str, dict[str, Any]] = {
    "parameters": {
        "/my-app/prod/key": "plain",
        "plain-name": "unrooted",
        "/my-app/prod/hosts": ["a.example", "b.example"],
        "/my-app/prod/api-key": {"value": SECRET, "type": "SecureString"},
        "/my-app/prod/flags": {"json": {"beta": True}, "version": 3, "labels": ["release"]},
    },
    "secrets": {
        "prod/db": {"json": {"username": "admin", "password": SECRET}},
        "prod/token": SECRET,
        "prod/staged": {
            "string": "stage-text",
            "version_id": "v-1",
            "stages": ["AWSCURRENT", "prod"],
        },
        "prod/pending": {"string": "pending-text", "version_id": "v-9", "stages": ["AWSPENDING"]},
        "prod/cert": {"binary": base64.b64encode(b"\x00\xffcert").decode()},
    },
}


@pytest.fixture
def source() -> StaticSource:
    return StaticSource(parameters=VALUES["parameters"], secrets=VALUES["secrets"])


async def fetch_one(source: StaticSource, request: ValueRequest) -> Record | FetchError:
    [outcome] = await source.fetch([request])
    return outcome


async def record_of(source: StaticSource, request: ValueRequest) -> Record:
    outcome = await fetch_one(source, request)
    assert not isinstance(outcome, FetchError), outcome.code
    return outcome


async def error_of(source: StaticSource, request: ValueRequest) -> FetchError:
    outcome = await fetch_one(source, request)
    assert isinstance(outcome, FetchError), "expected an error, got a record"
    return outcome


def test_static_source_is_a_source(source: StaticSource) -> None:
    assert isinstance(source, Source)


# --- record shapes -------------------------------------------------------------------------


async def test_parameter_record_has_get_parameters_shape(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/key"))
    assert set(record) == PARAMETER_KEYS
    assert record["Name"] == "/my-app/prod/key"
    assert record["Type"] == "String"
    assert record["Value"] == "plain"
    assert record["Version"] == 1
    assert record["DataType"] == "text"
    assert record["Selector"] is None
    assert record["ARN"].startswith("arn:aws:ssm:")
    assert record["ARN"].endswith(":parameter/my-app/prod/key")


async def test_secret_string_record_has_get_secret_value_shape(source: StaticSource) -> None:
    record = await record_of(source, SecretRequest("prod/token"))
    assert set(record) == SECRET_KEYS | {"SecretString"}
    assert record["Name"] == "prod/token"
    assert record["SecretString"] == SECRET
    assert record["VersionStages"] == ["AWSCURRENT"]
    assert record["ARN"].startswith("arn:aws:secretsmanager:")
    assert ":secret:prod/token-" in record["ARN"]
    assert isinstance(record["VersionId"], str)
    assert record["VersionId"]


async def test_outcomes_come_back_in_request_order(source: StaticSource) -> None:
    outcomes = await source.fetch(
        [
            SecretRequest("prod/token"),
            ParameterRequest("/missing"),
            ParameterRequest("/my-app/prod/key"),
        ],
        deadline=12345.0,
    )
    assert len(outcomes) == 3
    first, second, third = outcomes
    assert not isinstance(first, FetchError)
    assert first["Name"] == "prod/token"
    assert isinstance(second, FetchError)
    assert not isinstance(third, FetchError)
    assert third["Name"] == "/my-app/prod/key"


async def test_aclose_is_harmless(source: StaticSource) -> None:
    await source.aclose()
    assert (await record_of(source, ParameterRequest("/my-app/prod/key")))["Value"] == "plain"


# --- not found -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (ParameterRequest("/nope"), "ParameterNotFound"),
        (ParameterRequest("/my-app/prod/flags", version=2), "ParameterVersionNotFound"),
        (ParameterRequest("/my-app/prod/flags", label="beta"), "ParameterVersionLabelNotFound"),
        (SecretRequest("nope"), "ResourceNotFoundException"),
        (SecretRequest("prod/staged", version_id="v-2"), "ResourceNotFoundException"),
        (SecretRequest("prod/staged", version_stage="AWSPREVIOUS"), "ResourceNotFoundException"),
        (SecretRequest("prod/staged", "AWSPREVIOUS", "v-1"), "ResourceNotFoundException"),
        (SecretRequest("prod/pending"), "ResourceNotFoundException"),
    ],
)
async def test_missing_value_is_a_not_found_error_with_the_aws_code(
    source: StaticSource, request_: ValueRequest, code: str
) -> None:
    error = await error_of(source, request_)
    assert error.code == code
    assert error.not_found
    assert not error.transient


async def test_empty_source_finds_nothing() -> None:
    source = StaticSource()
    assert (await error_of(source, ParameterRequest("/a"))).code == "ParameterNotFound"
    assert (await error_of(source, SecretRequest("a"))).code == "ResourceNotFoundException"


# --- selection -----------------------------------------------------------------------------


async def test_parameter_version_selects_and_sets_selector(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/flags", version=3))
    assert record["Version"] == 3
    assert record["Selector"] == ":3"


async def test_parameter_label_selects_and_sets_selector(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/flags", label="release"))
    assert record["Version"] == 3
    assert record["Selector"] == ":release"
    assert "Labels" not in record


@pytest.mark.parametrize(
    "request_",
    [
        SecretRequest("prod/staged"),
        SecretRequest("prod/staged", version_stage="prod"),
        SecretRequest("prod/staged", version_id="v-1"),
        SecretRequest("prod/staged", version_stage="prod", version_id="v-1"),
    ],
)
async def test_secret_stage_and_version_id_select(
    source: StaticSource, request_: SecretRequest
) -> None:
    record = await record_of(source, request_)
    assert record["SecretString"] == "stage-text"
    assert record["VersionId"] == "v-1"
    assert record["VersionStages"] == ["AWSCURRENT", "prod"]


async def test_secret_without_current_stage_is_found_by_version_id(source: StaticSource) -> None:
    record = await record_of(source, SecretRequest("prod/pending", version_id="v-9"))
    assert record["SecretString"] == "pending-text"


# --- SecureString --------------------------------------------------------------------------


async def test_secure_string_is_decrypted_when_asked(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/api-key", decrypt=True))
    assert record["Type"] == "SecureString"
    assert record["Value"] == SECRET


async def test_secure_string_without_decrypt_does_not_return_the_value(
    source: StaticSource,
) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/api-key", decrypt=False))
    assert record["Type"] == "SecureString"
    assert record["Value"] != SECRET
    assert SECRET not in json.dumps(record)
    assert SECRET.encode() not in base64.b64decode(record["Value"])
    again = await record_of(source, ParameterRequest("/my-app/prod/api-key", decrypt=False))
    assert again["Value"] == record["Value"]


async def test_string_without_decrypt_is_returned_as_is(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/key", decrypt=False))
    assert record["Value"] == "plain"


# --- ARNs ----------------------------------------------------------------------------------


async def test_parameter_is_found_by_its_arn(source: StaticSource) -> None:
    arn = (await record_of(source, ParameterRequest("/my-app/prod/key")))["ARN"]
    record = await record_of(source, ParameterRequest(arn))
    assert record["Value"] == "plain"
    assert record["Name"] == "/my-app/prod/key"


async def test_unrooted_parameter_is_found_by_its_arn(source: StaticSource) -> None:
    arn = (await record_of(source, ParameterRequest("plain-name")))["ARN"]
    record = await record_of(source, ParameterRequest(arn))
    assert record["Value"] == "unrooted"


async def test_unknown_parameter_arn_is_not_found(source: StaticSource) -> None:
    arn = "arn:aws:ssm:local:000000000000:parameter/nope"
    assert (await error_of(source, ParameterRequest(arn))).code == "ParameterNotFound"


async def test_secret_is_found_by_its_arn(source: StaticSource) -> None:
    arn = (await record_of(source, SecretRequest("prod/token")))["ARN"]
    record = await record_of(source, SecretRequest(arn))
    assert record["Name"] == "prod/token"
    assert record["SecretString"] == SECRET


# --- shorthands ----------------------------------------------------------------------------


async def test_json_shorthand_stores_the_json_text(source: StaticSource) -> None:
    parameter = await record_of(source, ParameterRequest("/my-app/prod/flags"))
    assert parameter["Type"] == "String"
    assert json.loads(parameter["Value"]) == {"beta": True}
    secret = await record_of(source, SecretRequest("prod/db"))
    assert json.loads(secret["SecretString"]) == {"username": "admin", "password": SECRET}
    assert apply_transform(Secret("prod/db", transform="json"), secret)["username"] == "admin"


@pytest.mark.parametrize(
    "spec", [["a.example", "b.example"], {"value": ["a.example", "b.example"]}]
)
async def test_list_is_a_string_list(spec: Any) -> None:
    source = StaticSource(parameters={"/hosts": spec})
    record = await record_of(source, ParameterRequest("/hosts"))
    assert record["Type"] == "StringList"
    assert record["Value"] == "a.example,b.example"
    assert apply_transform(Parameter("/hosts", transform="list"), record) == [
        "a.example",
        "b.example",
    ]


async def test_bytes_are_a_base64_secret_binary() -> None:
    source = StaticSource(secrets={"blob": b"\x00\xffbytes"})
    record = await record_of(source, SecretRequest("blob"))
    assert set(record) == SECRET_KEYS | {"SecretBinary"}
    assert record["SecretBinary"] == base64.b64encode(b"\x00\xffbytes").decode()
    assert apply_transform(Secret("blob"), record) == b"\x00\xffbytes"


async def test_binary_field_is_a_secret_binary(source: StaticSource) -> None:
    record = await record_of(source, SecretRequest("prod/cert"))
    assert "SecretString" not in record
    assert base64.b64decode(record["SecretBinary"]) == b"\x00\xffcert"


# --- bad entries ---------------------------------------------------------------------------

BAD_PARAMETERS: list[Any] = [
    5,
    None,
    [SECRET, 5],
    {"value": SECRET, "json": {"a": SECRET}},
    {},
    {"value": SECRET, "colour": "red"},
    {"value": SECRET, "type": "Bogus"},
    {"value": SECRET, "version": 0},
    {"value": SECRET, "version": True},
    {"value": SECRET, "labels": [1]},
    {"value": 5},
]


@pytest.mark.parametrize("spec", BAD_PARAMETERS)
def test_bad_parameter_entry_is_an_error_naming_it_without_the_value(spec: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        StaticSource(parameters={"/bad": spec})
    assert "'/bad'" in str(info.value)
    assert SECRET not in str(info.value)


BAD_SECRETS: list[Any] = [
    5,
    None,
    {"string": SECRET, "binary": "AAAA"},
    {"string": SECRET, "json": 1},
    {},
    {"string": SECRET, "colour": "red"},
    {"string": 5},
    {"binary": SECRET + "!"},
    {"string": SECRET, "stages": [1]},
    {"string": SECRET, "version_id": 5},
]


@pytest.mark.parametrize("spec", BAD_SECRETS)
def test_bad_secret_entry_is_an_error_naming_it_without_the_value(spec: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        StaticSource(secrets={"bad": spec})
    assert "'bad'" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("parameters", "secrets"),
    [
        ({}, {"s": {"string": "x", "stages": "AWSCURRENT"}}),
        ({"/p": {"value": "x", "labels": "release"}}, {}),
    ],
    ids=["stages", "labels"],
)
def test_string_instead_of_a_list_of_stages_or_labels_is_an_error(
    parameters: dict[str, Any], secrets: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        StaticSource(parameters=parameters, secrets=secrets)


# --- files ---------------------------------------------------------------------------------


async def test_from_file_reads_parameters_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(VALUES), encoding="utf-8")
    for source in (StaticSource.from_file(path), StaticSource.from_file(str(path))):
        assert (await record_of(source, ParameterRequest("/my-app/prod/key")))["Value"] == "plain"
        flags = await record_of(source, ParameterRequest("/my-app/prod/flags", label="release"))
        assert flags["Version"] == 3
        secret = await record_of(source, SecretRequest("prod/staged", version_stage="prod"))
        assert secret["SecretString"] == "stage-text"


async def test_from_file_with_one_section_only(tmp_path: Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps({"secrets": {"s": "v"}}), encoding="utf-8")
    source = StaticSource.from_file(path)
    assert (await record_of(source, SecretRequest("s")))["SecretString"] == "v"
    assert (await error_of(source, ParameterRequest("/a"))).code == "ParameterNotFound"


BAD_FILES: list[tuple[str, bytes | None]] = [
    ("missing", None),
    ("truncated", b'{"parameters": {"/a": "' + SECRET.encode() + b'"'),
    ("not-utf8", b'{"parameters": {"/a": "\xff' + SECRET.encode() + b'"}}'),
    ("array", json.dumps([SECRET]).encode()),
    ("unknown-section", json.dumps({"params": {"/a": SECRET}}).encode()),
    ("section-not-object", json.dumps({"parameters": [SECRET]}).encode()),
    ("secrets-not-object", json.dumps({"secrets": SECRET}).encode()),
]


@pytest.mark.parametrize(("name", "content"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_bad_file_is_an_error_naming_the_file_without_a_value(
    tmp_path: Path, name: str, content: bytes | None
) -> None:
    path = tmp_path / f"{name}.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as info:
        StaticSource.from_file(path)
    assert str(path) in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None


def test_bad_entry_in_a_file_is_an_error_without_the_value(tmp_path: Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps({"parameters": {"/a": {"value": SECRET, "type": "Bogus"}}}))
    with pytest.raises(ConfigurationError) as info:
        StaticSource.from_file(path)
    assert "'/a'" in str(info.value)
    assert SECRET not in str(info.value)


def test_bad_entry_in_a_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps({"secrets": {"s": {"binary": "not base64!"}}}))
    with pytest.raises(ConfigurationError) as info:
        StaticSource.from_file(path)
    assert str(path) in str(info.value)


# --- repr and isolation --------------------------------------------------------------------


def test_repr_names_values_without_showing_them(source: StaticSource) -> None:
    text = repr(source)
    assert "/my-app/prod/api-key" in text
    assert "prod/db" in text
    for value in (SECRET, "unrooted", "stage-text", "pending-text", "a.example"):
        assert value not in text


async def test_changing_a_returned_parameter_record_does_not_change_the_source(
    source: StaticSource,
) -> None:
    record = await record_of(source, ParameterRequest("/my-app/prod/key"))
    assert isinstance(record, dict)
    record["Value"] = "changed"
    record["Version"] = 99
    again = await record_of(source, ParameterRequest("/my-app/prod/key"))
    assert again["Value"] == "plain"
    assert again["Version"] == 1


async def test_changing_a_returned_secret_string_does_not_change_the_source(
    source: StaticSource,
) -> None:
    record = await record_of(source, SecretRequest("prod/token"))
    assert isinstance(record, dict)
    record["SecretString"] = "changed"
    again = await record_of(source, SecretRequest("prod/token"))
    assert again["SecretString"] == SECRET


async def test_changing_returned_version_stages_does_not_change_the_source(
    source: StaticSource,
) -> None:
    record = await record_of(source, SecretRequest("prod/token"))
    record["VersionStages"].clear()
    again = await record_of(source, SecretRequest("prod/token"))
    assert again["VersionStages"] == ["AWSCURRENT"]


async def test_changing_the_input_mappings_after_construction_changes_nothing() -> None:
    labels = ["release"]
    stages = ["AWSCURRENT"]
    parameters: dict[str, Any] = {"/p": {"value": "v", "labels": labels}}
    secrets: dict[str, Any] = {"s": {"string": "v", "stages": stages}}
    source = StaticSource(parameters=parameters, secrets=secrets)
    labels.clear()
    stages.clear()
    parameters["/q"] = "new"
    secrets["s"] = "changed"
    assert (await record_of(source, ParameterRequest("/p", label="release")))["Value"] == "v"
    assert (await record_of(source, SecretRequest("s")))["SecretString"] == "v"
    assert (await error_of(source, ParameterRequest("/q"))).code == "ParameterNotFound"


# --- selectors in the name, as GetParameter takes them -------------------------------------

ARN_PREFIX = "arn:aws:ssm:local:000000000000:parameter"


@pytest.mark.parametrize(
    ("name", "selector"),
    [
        ("/my-app/prod/flags:3", ":3"),
        ("/my-app/prod/flags:release", ":release"),
        (f"{ARN_PREFIX}/my-app/prod/flags:3", ":3"),
        (f"{ARN_PREFIX}/my-app/prod/flags:release", ":release"),
    ],
)
async def test_selector_in_the_name_selects_as_in_the_request(
    source: StaticSource, name: str, selector: str
) -> None:
    record = await record_of(source, ParameterRequest(name))
    assert record["Name"] == "/my-app/prod/flags"
    assert record["Version"] == 3
    assert record["Selector"] == selector
    assert set(record) == PARAMETER_KEYS
    in_request = (
        ParameterRequest("/my-app/prod/flags", version=3)
        if selector == ":3"
        else ParameterRequest("/my-app/prod/flags", label="release")
    )
    assert record == await record_of(source, in_request)


async def test_selector_in_an_unrooted_name_selects(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest("plain-name:1"))
    assert (record["Name"], record["Value"], record["Selector"]) == ("plain-name", "unrooted", ":1")
    arn = f"{ARN_PREFIX}/plain-name:1"
    assert (await record_of(source, ParameterRequest(arn)))["Value"] == "unrooted"


async def test_declared_parameter_with_a_selector_in_its_name_gives_its_value(
    source: StaticSource,
) -> None:
    declaration = Parameter("/my-app/prod/flags:release", transform="json")
    record = await record_of(source, declaration.request)
    assert apply_transform(declaration, record) == {"beta": True}


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (ParameterRequest("/my-app/prod/flags:2"), "ParameterVersionNotFound"),
        (ParameterRequest("/my-app/prod/flags:" + "9" * 5000), "ParameterVersionNotFound"),
        (ParameterRequest("/my-app/prod/flags:beta"), "ParameterVersionLabelNotFound"),
        (ParameterRequest("/nope:3"), "ParameterNotFound"),
        (ParameterRequest("/nope:release"), "ParameterNotFound"),
        (ParameterRequest("/my-app/prod/flags:"), "ValidationException"),
        (ParameterRequest("/my-app/prod/flags:3:release"), "ValidationException"),
        (ParameterRequest("/my-app/prod/flags:3", label="release"), "ValidationException"),
        (ParameterRequest("/my-app/prod/flags:release", version=3), "ValidationException"),
    ],
)
async def test_bad_selector_in_the_name_is_an_aws_error(
    source: StaticSource, request_: ParameterRequest, code: str
) -> None:
    error = await error_of(source, request_)
    assert error.code == code
    assert not error.transient


def test_parameter_name_with_a_colon_cannot_be_stored() -> None:
    with pytest.raises(ConfigurationError) as info:
        StaticSource(parameters={"/app/key:3": "x"})
    assert "'/app/key:3'" in str(info.value)
    assert "cannot hold ':'" in str(info.value)


# --- /aws/reference/secretsmanager/... -----------------------------------------------------

REFERENCE = "/aws/reference/secretsmanager/"


async def test_reference_answers_with_the_secret_in_aws_shape(source: StaticSource) -> None:
    record = await record_of(source, ParameterRequest(REFERENCE + "prod/token"))
    secret = await record_of(source, SecretRequest("prod/token"))
    assert set(record) == PARAMETER_KEYS
    assert record["Name"] == REFERENCE + "prod/token"
    assert record["Type"] == "SecureString"
    assert record["Value"] == SECRET
    assert record["ARN"] == secret["ARN"]  # the secret's ARN, as AWS answers
    assert record["Selector"] is None
    assert record["Version"] == 0
    assert json.loads(record["SourceResult"]) == secret  # GetSecretValue's answer


async def test_reference_to_a_json_secret_gives_the_declared_value(source: StaticSource) -> None:
    declaration = Parameter(REFERENCE + "prod/db", transform="json")
    record = await record_of(source, declaration.request)
    assert apply_transform(declaration, record) == {"username": "admin", "password": SECRET}


async def test_reference_to_a_binary_secret_gives_its_base64(source: StaticSource) -> None:
    declaration = Parameter(REFERENCE + "prod/cert", transform="binary")
    record = await record_of(source, declaration.request)
    assert record["Value"] == base64.b64encode(b"\x00\xffcert").decode()
    assert apply_transform(declaration, record) == b"\x00\xffcert"


@pytest.mark.parametrize(
    ("request_", "selector", "value"),
    [
        (ParameterRequest(REFERENCE + "prod/staged:v-1"), ":v-1", "stage-text"),
        (ParameterRequest(REFERENCE + "prod/staged:prod"), ":prod", "stage-text"),
        (ParameterRequest(REFERENCE + "prod/staged:AWSCURRENT"), ":AWSCURRENT", "stage-text"),
        (ParameterRequest(REFERENCE + "prod/staged", label="prod"), ":prod", "stage-text"),
        (ParameterRequest(REFERENCE + "prod/pending:AWSPENDING"), ":AWSPENDING", "pending-text"),
        (ParameterRequest(REFERENCE + "prod/pending:v-9"), ":v-9", "pending-text"),
    ],
)
async def test_reference_selector_picks_a_version_id_or_a_stage(
    source: StaticSource, request_: ParameterRequest, selector: str, value: str
) -> None:
    record = await record_of(source, request_)
    assert record["Selector"] == selector
    assert record["Value"] == value
    assert record["Name"] == REFERENCE + request_.name.removeprefix(REFERENCE).split(":")[0]


async def test_reference_by_the_secrets_arn_with_and_without_a_selector(
    source: StaticSource,
) -> None:
    arn = (await record_of(source, SecretRequest("prod/staged")))["ARN"]
    assert (await record_of(source, ParameterRequest(REFERENCE + arn)))["Value"] == "stage-text"
    record = await record_of(source, ParameterRequest(REFERENCE + arn + ":prod"))
    assert (record["Value"], record["Selector"]) == ("stage-text", ":prod")
    error = await error_of(source, ParameterRequest(REFERENCE + arn + ":AWSPREVIOUS"))
    assert error.code == "ParameterNotFound"


@pytest.mark.parametrize(
    "name",
    [
        REFERENCE + "nope",
        REFERENCE + "prod/staged:AWSPREVIOUS",
        REFERENCE + "prod/staged:v-2",
        REFERENCE + "prod/pending",  # no AWSCURRENT version
        REFERENCE,
    ],
)
async def test_reference_to_a_missing_secret_or_version_is_parameter_not_found(
    source: StaticSource, name: str
) -> None:
    error = await error_of(source, ParameterRequest(name))
    assert error.code == "ParameterNotFound"
    assert error.not_found


@pytest.mark.parametrize("name", ["prod/token", "nope"])
async def test_reference_without_decryption_is_refused_as_aws_refuses_it(
    source: StaticSource, name: str
) -> None:
    error = await error_of(source, ParameterRequest(REFERENCE + name, decrypt=False))
    assert error.code == "ValidationException"
    assert str(error) == (
        "WithDecryption flag must be True for retrieving a Secret Manager secret."
    )
    assert not error.transient
    assert not error.not_found


@pytest.mark.parametrize("name", ["prod/staged:", "prod/staged:v-1:prod"])
async def test_reference_with_an_empty_or_second_selector_is_a_validation_error(
    source: StaticSource, name: str
) -> None:
    assert (await error_of(source, ParameterRequest(REFERENCE + name))).code == (
        "ValidationException"
    )


def test_a_parameter_cannot_be_stored_under_the_reference_prefix() -> None:
    with pytest.raises(ConfigurationError, match="secrets"):
        StaticSource(parameters={REFERENCE + "x": "v"})


def test_reference_and_selector_resolve_through_the_middleware_under_mangum(
    source: StaticSource,
) -> None:
    values = {
        "flags": Parameter("/my-app/prod/flags:release", transform="json"),
        "db": Parameter(REFERENCE + "prod/db", transform="json"),
        "staged": Parameter(REFERENCE + "prod/staged:prod"),
    }
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        state = scope["state"]
        seen.append({"beta": state["flags"]["beta"], "user": state["db"]["username"]})
        await PlainTextResponse(state["staged"])(scope, receive, send)

    handler = Mangum(ParametersSecretsMiddleware(app, values=values, source=source), lifespan="off")
    response = invoke(handler, "http_api_v2", "/")
    assert response.status == 200
    assert response.body == "stage-text"
    assert seen == [{"beta": True, "user": "admin"}]


def test_the_error_for_a_value_missing_from_the_file_names_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps({"parameters": {"/present": "x"}}))
    store = ParametersSecrets(
        {"missing": Parameter("/absent")}, source=StaticSource.from_file(values_file)
    )
    with caplog.at_level(logging.ERROR, logger="parameters_secrets"), pytest.raises(LoadError):
        store.load_sync()
    assert f"from StaticSource.from_file({str(values_file)!r}) (ParameterNotFound)" in caplog.text
