"""What a callable transform may return besides dicts and lists (found by branch
coverage): named tuples, sets, bytearrays, cycles and very deep nesting are shared
read-only between requests, masked in their repr, and thawed by ``copy.deepcopy``."""

from __future__ import annotations

import copy
import dataclasses
import sys
from typing import Any, NamedTuple

import pytest

from parameters_secrets import FetchError, Secret
from parameters_secrets._declarations import apply_transform
from parameters_secrets._frozen import FrozenList, masked_repr

SECRET = "frozen-canary-Zq9"


class Endpoint(NamedTuple):
    host: str
    ports: list[int]


def transformed(value: Any) -> Any:
    """``value`` as the store hands out what a callable transform returned."""
    record = {"Name": "s", "SecretString": SECRET}
    return apply_transform(Secret("s", transform=lambda raw: value), record)


def test_a_named_tuple_keeps_its_type_and_fields_and_its_lists_become_read_only() -> None:
    value = transformed({"endpoint": Endpoint(SECRET, [443])})
    endpoint = value["endpoint"]
    assert type(endpoint) is Endpoint
    assert endpoint.host == SECRET
    assert type(endpoint.ports) is not list  # frozen
    assert repr(value) == "{'endpoint': Endpoint(host='***', ports=['***'])}"
    thawed = copy.deepcopy(value)
    assert type(thawed["endpoint"]) is Endpoint
    thawed["endpoint"].ports.append(80)  # a mutable copy all the way down
    assert value["endpoint"].ports == [443]


def test_a_plain_tuple_inside_stays_a_tuple_masked_and_thawed() -> None:
    value = transformed({"pair": (SECRET, [1])})
    assert value["pair"][0] == SECRET
    assert repr(value) == "{'pair': ('***', ['***'])}"
    thawed = copy.deepcopy(value)
    assert type(thawed["pair"]) is tuple
    assert type(thawed["pair"][1]) is list


def test_a_set_becomes_a_frozenset_whose_repr_shows_neither_members_nor_count() -> None:
    value = transformed({"hosts": {SECRET, "b"}, "none": set()})
    assert value["hosts"] == frozenset({SECRET, "b"})
    assert isinstance(value["hosts"], frozenset)
    assert repr(value) == "{'hosts': {'***'}, 'none': set()}"


def test_a_bytearray_becomes_bytes() -> None:
    value = transformed({"key": bytearray(SECRET.encode())})
    assert value["key"] == SECRET.encode()
    assert type(value["key"]) is bytes


def test_a_cyclic_result_fails_the_transform_without_showing_the_value() -> None:
    cyclic: list[Any] = [SECRET]
    cyclic.append(cyclic)
    with pytest.raises(FetchError) as raised:
        transformed(cyclic)
    assert raised.value.code == "TransformFailed"
    assert "(RecursionError)" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_masked_repr_shows_a_cycle_as_ellipsis() -> None:
    # A frozen container's repr of something that holds itself (a FrozenList cannot be
    # made to, but list.append on one bypasses the refusal): no RecursionError.
    cyclic = FrozenList([SECRET])
    list.append(cyclic, cyclic)
    assert repr(cyclic) == "['***', Ellipsis]"


def test_nesting_deeper_than_the_stack_shows_its_type_not_a_value_or_an_error() -> None:
    deep: Any = SECRET
    for _ in range(sys.getrecursionlimit() + 10):
        deep = [deep]
    assert masked_repr(deep) == "<list nested too deeply to show>"


@dataclasses.dataclass(frozen=True)
class Endpoints:
    hosts: tuple[str, ...]


def test_an_object_a_transform_built_is_handed_out_as_it_is_and_masked_in_a_repr() -> None:
    built = Endpoints((SECRET,))
    value = transformed({"endpoints": built})
    assert value["endpoints"] is built  # immutable already: the transform's own business
    assert repr(value) == "{'endpoints': '***'}"
