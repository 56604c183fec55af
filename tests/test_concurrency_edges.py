"""The sync road's loop and the SnapStart hook at their edges (found by branch coverage): a
store closed while a sync call is still waiting on its upstream, and a store made on
Lambda where the runtime has no SnapStart module."""

from __future__ import annotations

import sys
import threading

import anyio
import httpx
import pytest

from parameters_secrets import Parameter, ParametersSecrets, ParametersSecretsError
from parameters_secrets.sources import ExtensionSource

WAIT = 30.0  # seconds any step here may take at most


def test_closing_the_store_fails_a_sync_call_still_running_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fetch's own bound is far away: only the close can end the call.
    monkeypatch.setenv("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "120000")
    asked = threading.Event()

    async def never_answers(request: httpx.Request) -> httpx.Response:
        asked.set()
        await anyio.sleep(2 * WAIT)  # cancelled by the close long before
        return httpx.Response(500)

    source = ExtensionSource(2773, "token", transport=httpx.MockTransport(never_answers))
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    raised: list[BaseException] = []

    def load() -> None:
        try:
            store.load_sync()
        except BaseException as exc:
            raised.append(exc)

    caller = threading.Thread(target=load, daemon=True)
    caller.start()
    assert asked.wait(WAIT)
    anyio.run(store.aclose)
    caller.join(WAIT)
    assert not caller.is_alive()
    (error,) = raised
    assert isinstance(error, ParametersSecretsError)
    assert str(error) == "load_sync() was cancelled: the store was closed while it ran"


def test_a_store_on_lambda_without_the_snapstart_module_is_made_and_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On Lambda (its variable set) the hook imports snapshot_restore_py, which only a
    # SnapStart runtime provides (the test extra installs it: made unimportable here).
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "edges")
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Parameter": {"Name": "/p", "Value": "v", "Version": 1}})

    source = ExtensionSource(2773, "token", transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    assert store.load_sync().p == "v"
