"""Declarations: validation, request identity (the cache key), and transforms."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import math
import operator
import pickle
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from parameters_secrets import ConfigurationError, FetchError, Parameter, Secret
from parameters_secrets._declarations import (
    ParameterRequest,
    SecretRequest,
    apply_transform,
)
from parameters_secrets._frozen import FrozenDict, FrozenList

SECRET = "s3cr3t-Value-XYZ"


def parameter_record(value: str, kind: str = "String") -> dict[str, Any]:
    """A GetParameter ``Parameter`` object."""
    return {
        "Name": "/my-app/prod/key",
        "Type": kind,
        "Value": value,
        "Version": 1,
        "ARN": "arn:aws:ssm:eu-west-1:123456789012:parameter/my-app/prod/key",
        "DataType": "text",
    }


def secret_string_record(value: str) -> dict[str, Any]:
    """A GetSecretValue response with a SecretString."""
    return {
        "ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
        "Name": "prod/db",
        "VersionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
        "SecretString": value,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1523477145.713,
    }


def secret_binary_record(value: bytes) -> dict[str, Any]:
    """A GetSecretValue response with a SecretBinary, base64 as the JSON API sends it."""
    record = secret_string_record("")
    del record["SecretString"]
    record["SecretBinary"] = base64.b64encode(value).decode()
    return record


# --- validation ----------------------------------------------------------------------------


def test_parameter_with_version_and_label_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="version or label"):
        Parameter("/a", version=2, label="release")


@pytest.mark.parametrize("transform", ["yaml", "JSON", "", 5])
def test_unknown_transform_is_an_error_listing_the_known_ones(transform: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        Parameter("/a", transform=transform)
    assert "transform" in str(info.value)
    assert "'json', 'binary', 'list'" in str(info.value)
    with pytest.raises(ConfigurationError):
        Secret("s", transform=transform)


@pytest.mark.parametrize("ttl", [-1, -0.001, 3600.001, 3601, True, "60", math.nan, math.inf])
def test_ttl_outside_0_to_3600_is_an_error(ttl: Any) -> None:
    with pytest.raises(ConfigurationError, match="ttl must be a number of seconds from 0 to 3600"):
        Parameter("/a", ttl=ttl)
    with pytest.raises(ConfigurationError, match="ttl"):
        Secret("s", ttl=ttl)


@pytest.mark.parametrize("ttl", [None, 0, 0.5, 300, 3600])
def test_ttl_within_0_to_3600_is_accepted(ttl: float | None) -> None:
    assert Parameter("/a", ttl=ttl).ttl == ttl
    assert Secret("s", ttl=ttl).ttl == ttl


@pytest.mark.parametrize("name", ["", "   ", None, 5])
def test_empty_or_non_string_name_is_an_error(name: Any) -> None:
    with pytest.raises(ConfigurationError, match="Parameter name"):
        Parameter(name)
    with pytest.raises(ConfigurationError, match="Secret secret_id"):
        Secret(name)


@pytest.mark.parametrize("version", [True, False, 0, -1, "1", 1.0])
def test_version_that_is_not_a_positive_integer_is_an_error(version: Any) -> None:
    with pytest.raises(ConfigurationError, match="version must be a positive integer"):
        Parameter("/a", version=version)


def test_empty_label_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="label"):
        Parameter("/a", label="")


@pytest.mark.parametrize("argument", ["version_stage", "version_id"])
def test_empty_secret_selector_is_an_error(argument: str) -> None:
    arguments: dict[str, Any] = {argument: " "}
    with pytest.raises(ConfigurationError, match=argument):
        Secret("s", **arguments)


def test_secret_may_name_both_stage_and_version_id() -> None:
    secret = Secret("s", version_stage="AWSPREVIOUS", version_id="v-1")
    assert secret.request == SecretRequest("s", "AWSPREVIOUS", "v-1")


@pytest.mark.parametrize(
    "name",
    [
        "/my-app/prod/key",
        "plain-name",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/my-app/key",
        "/aws/service/global-infrastructure/regions",
        "/aws/reference/secretsmanager/prod/db",
    ],
)
def test_every_kind_of_parameter_name_is_accepted(name: str) -> None:
    assert Parameter(name).request.name == name


def test_declarations_are_immutable() -> None:
    parameter = Parameter("/a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parameter.name = "/b"  # type: ignore[misc]
    secret = Secret("s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        secret.secret_id = "t"  # type: ignore[misc]


def test_declaration_repr_does_not_show_the_default() -> None:
    assert SECRET not in repr(Parameter("/a", required=False, default=SECRET))
    assert SECRET not in repr(Secret("s", required=False, default=SECRET))


# --- request identity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (Parameter("/a"), Parameter("/b")),
        (Parameter("/a"), Parameter("/a", version=1)),
        (Parameter("/a", version=1), Parameter("/a", version=2)),
        (Parameter("/a"), Parameter("/a", label="release")),
        (Parameter("/a", label="release"), Parameter("/a", label="beta")),
        (Parameter("/a"), Parameter("/a", decrypt=False)),
        (Secret("s"), Secret("t")),
        (Secret("s"), Secret("s", version_stage="AWSPREVIOUS")),
        (Secret("s", version_stage="AWSCURRENT"), Secret("s", version_stage="AWSPREVIOUS")),
        (Secret("s", version_id="v-1"), Secret("s", version_id="v-2")),
        (Secret("s", version_id="v-1"), Secret("s", version_id="v-1", version_stage="X")),
        (Parameter("s"), Secret("s")),
    ],
)
def test_different_requests_are_different_cache_keys(
    left: Parameter | Secret, right: Parameter | Secret
) -> None:
    assert left.request != right.request
    assert len({left.request: 1, right.request: 2}) == 2


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (Parameter("/a"), Parameter("/a")),
        (Parameter("/a", transform="json", ttl=5, required=False, default="x"), Parameter("/a")),
        (Parameter("/a", version=3, decrypt=False), Parameter("/a", version=3, decrypt=False)),
        (Parameter("/a", label="release"), Parameter("/a", label="release")),
        (Secret("s", version_stage="X", version_id="v"), Secret("s", "X", "v")),
        (Secret("s", transform="json", ttl=0), Secret("s")),
    ],
)
def test_equal_requests_are_the_same_cache_key(
    left: Parameter | Secret, right: Parameter | Secret
) -> None:
    assert left.request == right.request
    assert hash(left.request) == hash(right.request)
    assert {left.request: 1, right.request: 2} == {left.request: 2}


def test_request_carries_every_part_of_the_identity() -> None:
    assert Parameter("/a", version=7, decrypt=False).request == ParameterRequest(
        "/a", 7, None, False
    )
    assert Parameter("/a", label="release").request == ParameterRequest("/a", None, "release")
    assert Parameter("/a").request.kind == "parameter"
    assert Secret("s").request.kind == "secret"


# --- transforms ----------------------------------------------------------------------------


def test_no_transform_gives_the_parameter_string() -> None:
    assert apply_transform(Parameter("/a"), parameter_record("plain text")) == "plain text"


def test_no_transform_gives_the_secret_string() -> None:
    assert apply_transform(Secret("s"), secret_string_record("plain text")) == "plain text"


def test_secret_binary_gives_bytes() -> None:
    value = apply_transform(Secret("s"), secret_binary_record(b"\x00\xffraw"))
    assert value == b"\x00\xffraw"
    assert type(value) is bytes


def test_secret_binary_already_bytes_gives_bytes() -> None:
    record = secret_string_record("")
    del record["SecretString"]
    record["SecretBinary"] = b"\x01\x02"
    assert apply_transform(Secret("s"), record) == b"\x01\x02"


JSON_TEXT = '{"user": "admin", "nested": {"ports": [1, 2]}, "rows": [{"id": 1}]}'
JSON_VALUE = {"user": "admin", "nested": {"ports": [1, 2]}, "rows": [{"id": 1}]}


def test_json_transform_parses_parameter_and_secret() -> None:
    assert apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT)) == (
        JSON_VALUE
    )
    assert apply_transform(Secret("s", transform="json"), secret_string_record(JSON_TEXT)) == (
        JSON_VALUE
    )


def test_json_transform_of_secret_binary_parses_the_bytes() -> None:
    record = secret_binary_record(JSON_TEXT.encode())
    assert apply_transform(Secret("s", transform="json"), record) == JSON_VALUE


def test_json_result_is_read_only_all_the_way_down() -> None:
    value = apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT))
    assert type(value) is FrozenDict
    assert type(value["nested"]) is FrozenDict
    assert type(value["nested"]["ports"]) is FrozenList
    assert type(value["rows"]) is FrozenList
    assert type(value["rows"][0]) is FrozenDict
    assert isinstance(value, dict)
    assert isinstance(value["rows"], list)
    assert json.loads(json.dumps(value)) == JSON_VALUE


def test_json_scalar_and_array_results() -> None:
    transform = Parameter("/a", transform="json")
    assert apply_transform(transform, parameter_record("5")) == 5
    array = apply_transform(transform, parameter_record('["a", {"b": 1}]'))
    assert type(array) is FrozenList
    assert type(array[1]) is FrozenDict


DICT_MUTATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("setitem", lambda d: d.__setitem__("new", 1)),
    ("setitem existing", lambda d: operator.setitem(d, "user", "root")),
    ("delitem", lambda d: operator.delitem(d, "user")),
    ("clear", lambda d: d.clear()),
    ("pop", lambda d: d.pop("user")),
    ("pop missing with default", lambda d: d.pop("missing", None)),
    ("popitem", lambda d: d.popitem()),
    ("setdefault", lambda d: d.setdefault("new", 1)),
    ("update", lambda d: d.update(new=1)),
    ("update empty", lambda d: d.update({})),
    ("ior", lambda d: d.__ior__({"new": 1})),
]


@pytest.mark.parametrize(("name", "mutate"), DICT_MUTATIONS, ids=[m[0] for m in DICT_MUTATIONS])
def test_frozen_dict_refuses_every_mutation(name: str, mutate: Callable[[Any], object]) -> None:
    value = apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT))
    with pytest.raises(TypeError, match="read-only"):
        mutate(value)
    assert value == JSON_VALUE


LIST_MUTATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("setitem", lambda items: operator.setitem(items, 0, 9)),
    ("setitem slice", lambda items: operator.setitem(items, slice(0, 1), [])),
    ("delitem", lambda items: operator.delitem(items, 0)),
    ("delitem slice", lambda items: operator.delitem(items, slice(None))),
    ("append", lambda items: items.append(3)),
    ("extend", lambda items: items.extend([3])),
    ("insert", lambda items: items.insert(0, 3)),
    ("pop", lambda items: items.pop()),
    ("remove", lambda items: items.remove(1)),
    ("clear", lambda items: items.clear()),
    ("sort", lambda items: items.sort(reverse=True)),
    ("reverse", lambda items: items.reverse()),
    ("iadd", lambda items: items.__iadd__([3])),
    ("imul", lambda items: items.__imul__(2)),
]


@pytest.mark.parametrize(("name", "mutate"), LIST_MUTATIONS, ids=[m[0] for m in LIST_MUTATIONS])
def test_frozen_list_refuses_every_mutation(name: str, mutate: Callable[[Any], object]) -> None:
    value = apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT))
    ports = value["nested"]["ports"]
    with pytest.raises(TypeError, match="read-only"):
        mutate(ports)
    assert ports == [1, 2]


def test_json_result_survives_pickle_still_read_only() -> None:
    value = apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT))
    copied = pickle.loads(pickle.dumps(value))  # noqa: S301 - our own bytes
    assert copied == JSON_VALUE
    assert copied is not value
    assert type(copied) is FrozenDict
    assert type(copied["nested"]["ports"]) is FrozenList
    with pytest.raises(TypeError):
        copied["new"] = 1
    with pytest.raises(TypeError):
        copied["nested"]["ports"].append(3)


def test_deepcopy_of_a_json_result_is_plain_and_mutable_all_the_way_down() -> None:
    value = apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT))
    copied = copy.deepcopy(value)
    assert copied == JSON_VALUE
    assert type(copied) is dict
    assert type(copied["nested"]["ports"]) is list
    assert type(copied["rows"][0]) is dict
    copied["nested"]["ports"].append(3)
    copied["new"] = 1
    assert value == JSON_VALUE  # the shared value did not change


def test_shallow_copy_of_a_json_result_is_equal() -> None:
    value = apply_transform(Parameter("/a", transform="json"), parameter_record(JSON_TEXT))
    assert copy.copy(value) == JSON_VALUE
    mutable = dict(value)  # the documented way out: copy into a plain dict
    mutable["new"] = 1
    assert "new" not in value


def test_binary_transform_decodes_base64_parameter() -> None:
    record = parameter_record(base64.b64encode(b"\x00\x01binary").decode())
    assert apply_transform(Parameter("/a", transform="binary"), record) == b"\x00\x01binary"


@pytest.mark.parametrize("text", ["aGVs*bG8=", "aGVs bG8=", "aGVsbG8"])
def test_binary_transform_rejects_what_is_not_strict_base64(text: str) -> None:
    with pytest.raises(FetchError) as info:
        apply_transform(Parameter("/a", transform="binary"), parameter_record(text))
    assert info.value.code == "TransformFailed"


def test_binary_transform_of_secret_binary_gives_its_bytes() -> None:
    record = secret_binary_record(b"\xde\xad\xbe\xef")
    assert apply_transform(Secret("s", transform="binary"), record) == b"\xde\xad\xbe\xef"


def test_list_transform_splits_a_string_list_read_only() -> None:
    value = apply_transform(
        Parameter("/a", transform="list"), parameter_record("a,b,c", kind="StringList")
    )
    assert value == ["a", "b", "c"]
    assert type(value) is FrozenList
    with pytest.raises(TypeError):
        value.append("d")


def test_callable_transform_gets_the_raw_value() -> None:
    seen: list[object] = []

    def upper(raw: str) -> str:
        seen.append(raw)
        return raw.upper()

    assert apply_transform(Parameter("/a", transform=upper), parameter_record("abc")) == "ABC"
    assert seen == ["abc"]


def test_callable_transform_result_is_frozen() -> None:
    value = apply_transform(
        Secret("s", transform=lambda raw: {"parts": raw.split("-")}),
        secret_string_record("x-y"),
    )
    assert value == {"parts": ["x", "y"]}
    assert type(value) is FrozenDict
    assert type(value["parts"]) is FrozenList


def test_callable_transform_of_secret_binary_gets_bytes() -> None:
    seen: list[object] = []

    def keep(raw: bytes) -> int:
        seen.append(raw)
        return len(raw)

    assert apply_transform(Secret("s", transform=keep), secret_binary_record(b"1234")) == 4
    assert seen == [b"1234"]


# --- failed transforms never carry the value -----------------------------------------------


class Leaky(Exception):
    """A user's exception that quotes the value in its message and its args."""


def leaky(raw: str) -> object:
    raise Leaky(f"cannot use {raw}", raw)


def chained(raw: str) -> object:
    try:
        int(raw)
    except ValueError as exc:
        raise RuntimeError(f"bad {raw}") from exc
    return raw


FAILING: list[tuple[str, Parameter | Secret, dict[str, Any], str]] = [
    ("json", Parameter("/a", transform="json"), parameter_record(SECRET), "JSONDecodeError"),
    ("json-secret", Secret("s", transform="json"), secret_string_record(SECRET), "JSONDecodeError"),
    ("binary", Parameter("/a", transform="binary"), parameter_record(SECRET + "!"), "Error"),
    ("int", Parameter("/a", transform=int), parameter_record(SECRET), "ValueError"),
    ("lambda-int", Secret("s", transform=lambda v: int(v)), secret_string_record(SECRET), "Value"),
    ("leaky", Parameter("/a", transform=leaky), parameter_record(SECRET), "Leaky"),
    ("chained", Parameter("/a", transform=chained), parameter_record(SECRET), "RuntimeError"),
]


@pytest.mark.parametrize(
    ("name", "declaration", "record", "failure"), FAILING, ids=[f[0] for f in FAILING]
)
def test_failed_transform_is_transform_failed_without_the_value(
    name: str, declaration: Parameter | Secret, record: dict[str, Any], failure: str
) -> None:
    with pytest.raises(FetchError) as info:
        apply_transform(declaration, record)
    error = info.value
    assert error.code == "TransformFailed"
    assert not error.transient
    assert not error.not_found
    assert failure in str(error)
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or link.__context__
    assert chain == [error]  # nothing chained that could quote the value
    for text in (str(error), repr(error), repr(error.args), *traceback.format_exception(error)):
        assert SECRET not in text
    assert SECRET.encode() not in pickle.dumps(error)


def test_failed_transform_names_the_transform() -> None:
    with pytest.raises(FetchError, match="'json'"):
        apply_transform(Parameter("/a", transform="json"), parameter_record(SECRET))
    with pytest.raises(FetchError, match=r"leaky\(\)"):
        apply_transform(Parameter("/a", transform=leaky), parameter_record(SECRET))


def test_record_without_a_value_is_transform_failed() -> None:
    record = secret_string_record("")
    del record["SecretString"]
    with pytest.raises(FetchError) as info:
        apply_transform(Secret("s"), record)
    assert info.value.code == "TransformFailed"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Parameter("/p", decrypt="no"),  # type: ignore[arg-type]
        lambda: Parameter("/p", required="yes"),  # type: ignore[arg-type]
        lambda: Secret("s", required=1),  # type: ignore[arg-type]
    ],
)
def test_flags_must_be_booleans(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError, match="must be True or False"):
        make()
