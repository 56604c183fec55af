"""Typed config at its edges (found by branch coverage): list fields, whose refetched but
unchanged values keep the model already validated, and whose items failing alike are
reported once. The extension's API is scripted with ``httpx.MockTransport``: each answer
is parsed anew, as from a real upstream."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import httpx
import pytest
from pydantic import BaseModel

from parameters_secrets import LoadError, Parameter, ParametersSecrets
from parameters_secrets.sources import ExtensionSource
from tests.conftest import FakeClock


class Extension:
    """The extension's GetParameter route over ``values``, counting calls per name."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.calls: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params["name"]
        self.calls[name] += 1
        parameter = {"Name": name, "Type": "String", "Value": self.values[name], "Version": 1}
        return httpx.Response(200, json={"Parameter": parameter})

    def source(self) -> ExtensionSource:
        return ExtensionSource(2773, "token", transport=httpx.MockTransport(self))


class Routing(BaseModel):
    hosts: Annotated[list[str], Parameter("/routing/hosts", transform="json", ttl=60)]
    ports: Annotated[list[int], Parameter("/routing/ports", transform="json", ttl=60)]


def test_refetched_unchanged_lists_keep_the_model_already_validated() -> None:
    clock = FakeClock()
    extension = Extension({"/routing/hosts": '["a", "b"]', "/routing/ports": "[80, 443]"})
    store = ParametersSecrets.from_model(Routing, source=extension.source(), clock=clock)
    first = store.model_sync()
    assert first == Routing(hosts=["a", "b"], ports=[80, 443])
    clock.advance(61)  # both expired: asked again, the same lists answered
    assert store.model_sync() is first
    assert extension.calls == Counter({"/routing/hosts": 2, "/routing/ports": 2})
    extension.values["/routing/ports"] = "[80, 8443]"
    clock.advance(61)
    changed = store.model_sync()
    assert changed.ports == [80, 8443]
    assert changed is not first


def test_items_of_a_list_failing_alike_are_reported_once() -> None:
    extension = Extension({"/routing/hosts": '["a"]', "/routing/ports": '["http", "https"]'})
    store = ParametersSecrets.from_model(Routing, source=extension.source())
    with pytest.raises(LoadError) as failed:
        store.model_sync()
    (failure,) = failed.value.failures.values()
    assert str(failure) == "field 'ports' of Routing failed validation (int_parsing)"
    assert "https" not in str(failure)
