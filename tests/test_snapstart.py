"""SnapStart restores never serve values from the snapshot (issue 13, part 3).

``snapshot_restore_py`` is replaced by a stand-in that records the hooks registered with
it, so a test can "restore" by running them; the upstreams are the fake extension and a
container credentials endpoint on 127.0.0.1 with moto, counting what they are asked.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from parameters_secrets import LoadError, Parameter, ParametersSecrets, Secret, Settings
from parameters_secrets.sources import AwsSource, ExtensionSource
from tests import faults
from tests.conftest import TOKEN, FakeClock, SnapStartRuntime
from tests.credentials_endpoint import CredentialsEndpoint
from tests.extension_server import FakeExtension
from tests.moto_server import MotoServer, assume_role, put_parameter

VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "db": Secret("prod/db", transform="json"),
}


@pytest.fixture
def seeded(extension: FakeExtension) -> FakeExtension:
    extension.put_parameter("/app/api-key", "key-1", type="SecureString")
    extension.put_secret("prod/db", string=json.dumps({"password": "pw-1"}))
    return extension


def test_a_restore_drops_every_value_and_connection_without_calling_upstream(
    snapstart_runtime: SnapStartRuntime, seeded: FakeExtension
) -> None:
    store = ParametersSecrets(VALUES, source=ExtensionSource(seeded.port, TOKEN))
    assert len(snapstart_runtime.after_restore) == 1
    assert store.load_sync().db["password"] == "pw-1"  # at INIT: into the snapshot
    store.load_sync()
    assert (seeded.total_calls, seeded.connections) == (2, 2)
    snapstart_runtime.restore()
    assert (seeded.total_calls, seeded.connections) == (2, 2)  # the hook made no call
    assert store.cached() is None
    seeded.put_secret("prod/db", string=json.dumps({"password": "pw-2"}))  # rotated meanwhile
    assert store.load_sync().db["password"] == "pw-2"  # every value asked again
    assert seeded.calls("parameter", "/app/api-key") == 2
    assert seeded.calls("secret", "prod/db") == 2


def test_after_a_restore_a_failing_upstream_never_gets_the_snapshot_value_served(
    snapstart_runtime: SnapStartRuntime, seeded: FakeExtension, clock: FakeClock
) -> None:
    store = ParametersSecrets(VALUES, source=ExtensionSource(seeded.port, TOKEN), clock=clock)
    store.load_sync()
    snapstart_runtime.restore()
    seeded.fail(faults.server_error("InternalServerError"))
    # Stale-if-error would serve a previous value: after a restore there is none.
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert {e.code for e in failed.value.failures.values()} == {"InternalServerError"}


def test_a_restore_drops_pooled_connections_so_the_next_use_opens_new_ones(
    snapstart_runtime: SnapStartRuntime, seeded: FakeExtension, event_loop_per_test: Any
) -> None:
    store = ParametersSecrets(VALUES, source=ExtensionSource(seeded.port, TOKEN))

    async def load() -> None:
        await store.load()

    event_loop_per_test.run_until_complete(load())  # one loop: its pool is kept
    opened = seeded.connections
    snapstart_runtime.restore()
    store.drop_after_restore()  # the values too, so that the next load fetches
    event_loop_per_test.run_until_complete(load())
    assert seeded.connections > opened  # new connections: the old pool was dropped
    event_loop_per_test.run_until_complete(store.aclose())


def test_a_restore_drops_container_credentials_so_they_are_fetched_again(
    snapstart_runtime: SnapStartRuntime, moto_auth: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = assume_role(moto_auth, ["ssm:GetParameter"])
    put_parameter(moto_auth, "/snap/value", "from-moto")
    with CredentialsEndpoint(token="container-token") as endpoint:
        endpoint.issue(*keys)
        endpoint.issue(*keys)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token")
        store = ParametersSecrets(
            {"value": Parameter("/snap/value")},
            source=AwsSource(region="us-east-1", endpoint_url=moto_auth.url),
        )
        assert store.load_sync().value == "from-moto"
        assert endpoint.calls == 1
        snapstart_runtime.restore()
        assert endpoint.calls == 1  # no call from the hook itself
        assert store.load_sync().value == "from-moto"
        assert endpoint.calls == 2  # the snapshot's credentials were not used


def test_the_hook_is_registered_once_however_many_stores(
    snapstart_runtime: SnapStartRuntime, seeded: FakeExtension
) -> None:
    stores = [
        ParametersSecrets(VALUES, source=ExtensionSource(seeded.port, TOKEN)) for _ in range(5)
    ]
    for store in stores:
        store.load_sync()
    assert len(snapstart_runtime.after_restore) == 1
    snapstart_runtime.restore()
    assert all(store.cached() is None for store in stores)


def test_without_snapshot_restore_py_nothing_is_registered(
    monkeypatch: pytest.MonkeyPatch, seeded: FakeExtension
) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # not importable
    store = ParametersSecrets(VALUES, source=ExtensionSource(seeded.port, TOKEN))
    assert store.load_sync().db["password"] == "pw-1"


def test_the_hook_is_registered_with_the_real_module_the_runtime_reads() -> None:
    real = pytest.importorskip("snapshot_restore_py")
    ParametersSecrets(VALUES, source=ExtensionSource(2773, TOKEN), settings=Settings())
    hooks = [func for func, _args, _kwargs in real.get_after_restore()]
    assert any(
        getattr(func, "__module__", "") == "parameters_secrets._concurrency" for func in hooks
    )


@pytest.mark.parametrize("on_lambda", [True, False])
def test_the_runtime_module_is_imported_on_lambda_only(
    monkeypatch: pytest.MonkeyPatch, on_lambda: bool
) -> None:
    pytest.importorskip("snapshot_restore_py")  # installed with the test extra
    monkeypatch.delitem(sys.modules, "snapshot_restore_py")
    if on_lambda:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "demo")
    ParametersSecrets(VALUES, source=ExtensionSource(2773, TOKEN))
    # Off Lambda nothing restores a snapshot: no import (a failing one costs every cold start).
    assert ("snapshot_restore_py" in sys.modules) is on_lambda
    if on_lambda:
        runtime = sys.modules["snapshot_restore_py"]
        modules = [getattr(func, "__module__", "") for func, _, _ in runtime.get_after_restore()]
        assert "parameters_secrets._concurrency" in modules
