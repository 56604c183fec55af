"""The store at its edges (found by branch coverage): warm reads with metrics on after one
value expired. The extension's API is scripted with ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from parameters_secrets import Parameter, ParametersSecrets
from parameters_secrets.sources import ExtensionSource
from tests.conftest import FakeClock

VALUES = {"/short": "s1", "/long": "l1"}


class Extension:
    """The extension's GetParameter route over ``VALUES``, counting calls per name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params["name"]
        self.calls[name] += 1
        parameter = {"Name": name, "Type": "String", "Value": VALUES[name], "Version": 1}
        return httpx.Response(200, json={"Parameter": parameter})

    def source(self) -> ExtensionSource:
        return ExtensionSource(2773, "token", transport=httpx.MockTransport(self))


def test_with_metrics_on_a_long_lived_value_is_read_warm_after_a_short_one_expired(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_METRICS", "emf")
    clock = FakeClock()
    extension = Extension()
    store = ParametersSecrets(
        {"short": Parameter("/short", ttl=60), "long": Parameter("/long", ttl=300)},
        source=extension.source(),
        clock=clock,
    )
    store.load_sync()
    clock.advance(61)  # "short" expired: the snapshot of every value is gone
    hits = store.stats.hits
    assert store.get_sync("long") == "l1"  # from the cache, no call
    assert extension.calls == Counter({"/short": 1, "/long": 1})
    assert store.stats.hits == hits + 1  # counted, as every warm read with metrics on
    assert store.get_sync("short") == "s1"  # expired: asked again
    assert extension.calls == Counter({"/short": 2, "/long": 1})
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(documents) == 2  # one metrics line per fetch round
    assert documents[1]["CacheHits"] == 1  # the warm read, reported with the next round
