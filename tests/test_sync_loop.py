"""The sync road's one long-lived event loop (issue 19, item 8): ``load_sync``,
``get_sync`` and ``refresh_sync`` from any thread run on one loop the store keeps, so
its pools and connections are reused; it is refused inside a running loop, closes with
the store, and is made anew after a fork and after a SnapStart restore.

The upstream is the fake extension on 127.0.0.1 (``tests/extension_server.py``), which
counts the TCP connections it accepts.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import anyio
import pytest

from parameters_secrets import (
    LoadError,
    Parameter,
    ParametersSecrets,
    ParametersSecretsError,
)
from parameters_secrets._concurrency import SyncLoop
from parameters_secrets._declarations import ValueRequest
from parameters_secrets._sources import Outcome
from parameters_secrets.sources import ExtensionSource, Source
from tests import faults
from tests.conftest import TOKEN, SnapStartRuntime
from tests.extension_server import FakeExtension
from tests.processes import clean_environment

JOIN_SECONDS = 30.0


def on_extension(extension: FakeExtension, *names: str) -> ParametersSecrets:
    """A store of parameters ``/k/<name>`` (``k`` alone by default) on the fake, over TCP."""
    names = names or ("k",)
    for name in names:
        extension.put_parameter(f"/k/{name}", f"value-of-{name}")
    return ParametersSecrets(
        {name: Parameter(f"/k/{name}") for name in names},
        source=ExtensionSource(extension.port, TOKEN),
    )


def wait_until_the_server_sees_every_close(extension: FakeExtension) -> None:
    extension.wait_all_closed()  # the server sees the client's close shortly after it


# -- connections are reused ----------------------------------------------------------------


def test_five_sync_refreshes_open_at_most_two_connections(extension: FakeExtension) -> None:
    store = on_extension(extension)
    for _ in range(5):
        assert store.refresh_sync().k == "value-of-k"
    assert extension.calls("parameter", "/k/k") == 5
    assert extension.connections <= 2


def test_sync_calls_from_many_threads_share_the_loops_connections(
    extension: FakeExtension,
) -> None:
    store = on_extension(extension)
    store.load_sync()

    def refresh() -> None:
        for _ in range(5):
            store.refresh_sync()

    threads = [threading.Thread(target=refresh, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads)
    # Refreshes overlapping in time need a connection each; never one per call (21).
    assert extension.connections <= 5
    assert extension.calls("parameter", "/k/k") > 5


# -- single flight across threads -------------------------------------------------------------


@pytest.mark.parametrize("method", ["load_sync", "get_sync"])
def test_threads_loading_cold_at_once_make_one_upstream_call_per_key(
    extension: FakeExtension, method: str
) -> None:
    names = ("a", "b", "c")
    store = on_extension(extension, *names)
    extension.fail(faults.delay(0.2))  # keeps the first fetches open while threads join
    go = threading.Barrier(16, timeout=JOIN_SECONDS)
    results: list[object] = []

    def load(index: int) -> None:
        go.wait()
        name = names[index % len(names)]
        try:
            if method == "load_sync":
                results.append(store.load_sync()[name] == f"value-of-{name}")
            else:
                results.append(store.get_sync(name) == f"value-of-{name}")
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert results == [True] * 16
    assert [extension.calls("parameter", f"/k/{name}") for name in names] == [1, 1, 1]


# -- refused inside a running loop, never a deadlock --------------------------------------------


class CallsBack(Source):
    """Fetches by calling the store's ``load_sync()``, in the fetch's own task and in a
    plain callback of the loop it runs on, and keeps what each raised."""

    checks_records = True

    def __init__(self) -> None:
        self.store: ParametersSecrets | None = None
        self.raised: dict[str, BaseException] = {}

    def _call_store(self, where: str) -> None:
        assert self.store is not None
        try:
            self.store.load_sync()
        except BaseException as exc:  # kept for the test to look at
            self.raised[where] = exc

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        self._call_store("task")
        called_back = asyncio.Event()

        def callback() -> None:
            self._call_store("callback")
            called_back.set()

        asyncio.get_running_loop().call_soon(callback)
        await called_back.wait()
        return [{"Name": r.name, "Value": "v"} for r in requests]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        pass


def test_a_sync_call_on_the_stores_own_loop_is_refused_with_the_clear_error() -> None:
    source = CallsBack()
    store = source.store = ParametersSecrets({"k": Parameter("/k")}, source=source)
    assert store.load_sync().k == "v"  # the fetch ran on the store's loop, and ended
    assert set(source.raised) == {"task", "callback"}
    for raised in source.raised.values():
        assert isinstance(raised, ParametersSecretsError)
        assert "use 'await store.load()' there" in str(raised)


def test_a_sync_call_in_a_plain_callback_of_a_running_loop_is_refused(
    event_loop_per_test: asyncio.AbstractEventLoop,
) -> None:
    store = ParametersSecrets({"k": Parameter("/k")}, source=ExtensionSource(1, TOKEN))
    raised: list[BaseException] = []

    def callback() -> None:
        try:
            store.get_sync("k")
        except BaseException as exc:  # kept for the test to look at
            raised.append(exc)

    async def main() -> None:
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0)  # one turn of the loop: the callback has run

    event_loop_per_test.run_until_complete(main())  # asyncio's own: no sniffio marker
    assert len(raised) == 1
    assert isinstance(raised[0], ParametersSecretsError)
    assert "use 'await store.get()' there" in str(raised[0])


# -- the waiting thread ----------------------------------------------------------------------


class HangsOnce(Source):
    """A first fetch that never answers (it tells when it started and when it was
    cancelled); later ones answer."""

    checks_records = True

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        if not self.started.is_set():
            self.started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
        return [{"Name": r.name, "Value": "v"} for r in requests]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="pthread_kill")
def test_a_keyboard_interrupt_while_waiting_cancels_the_call_on_the_loop() -> None:
    source = HangsOnce()
    store = ParametersSecrets({"k": Parameter("/k")}, source=source)
    main = threading.get_ident()

    def interrupt() -> None:
        if source.started.wait(JOIN_SECONDS):
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        store.load_sync()
    assert source.cancelled.wait(JOIN_SECONDS)  # the fetch did not run on for nobody
    assert store.load_sync().k == "v"  # the next call leads a new fetch at once
    # Cancelled by the interrupt (it counts as nothing), not ended by its time bound
    # (that would count an error).
    assert (store.stats.fetches, store.stats.errors) == (1, 0)


def test_an_exception_reaches_the_caller_unchanged(extension: FakeExtension) -> None:
    store = on_extension(extension)
    extension.fail(faults.ACCESS_DENIED)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert type(failed.value) is LoadError
    assert failed.value.failures["k"].code == "AccessDeniedException"


# -- closed with the store, re-made after ----------------------------------------------------


def test_aclose_closes_the_loops_connections_and_a_later_call_makes_a_new_loop(
    extension: FakeExtension,
) -> None:
    store = on_extension(extension)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.refresh_sync()
        store.refresh_sync()
        assert extension.connections == 1
        anyio.run(store.aclose)
        wait_until_the_server_sees_every_close(extension)
        assert extension.open_connections == 0  # closed by aclose(), not left open
        assert store.refresh_sync().k == "value-of-k"  # a new loop, a new pool
        assert store.refresh_sync().k == "value-of-k"
        assert extension.connections == 2
        anyio.run(store.aclose, backend="trio")  # from any event loop
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    wait_until_the_server_sees_every_close(extension)
    assert extension.open_connections == 0


def test_a_collected_store_closes_its_loop_and_connections(extension: FakeExtension) -> None:
    store = on_extension(extension)
    store.refresh_sync()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del store
        gc.collect()
        wait_until_the_server_sees_every_close(extension)
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert extension.open_connections == 0


def test_after_a_snapstart_restore_the_next_sync_load_uses_a_fresh_connection(
    extension: FakeExtension, snapstart_runtime: SnapStartRuntime
) -> None:
    runtime = snapstart_runtime
    store = on_extension(extension)
    store.refresh_sync()
    store.refresh_sync()
    assert extension.connections == 1
    runtime.restore()
    assert extension.connections == 1  # the hook made no call
    assert store.load_sync().k == "value-of-k"  # values dropped: fetched again
    assert extension.connections == 2  # on a new connection: the old one died
    store.refresh_sync()
    assert extension.connections == 2  # which is kept again
    anyio.run(store.aclose)


def _refresh_in_child(store: ParametersSecrets, answer: Connection) -> None:
    answer.send(store.refresh_sync().k)


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
# Python 3.12+ warns of fork() in a process with threads (the fake's, the store's); the
# child here only runs the store's code, which re-makes what it needs.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_after_a_fork_the_child_makes_its_own_loop_and_the_parents_keeps_its_connection(
    extension: FakeExtension,
) -> None:
    store = on_extension(extension)
    store.refresh_sync()  # the parent's loop and its pooled connection
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_refresh_in_child, args=(store, send), daemon=True)
    child.start()
    child.join(JOIN_SECONDS)
    alive = child.is_alive()
    if alive:
        child.kill()
        child.join(JOIN_SECONDS)
    assert not alive, "the child hung on its parent's loop"
    assert child.exitcode == 0
    assert receive.poll(0)
    assert receive.recv() == "value-of-k"
    assert extension.calls("parameter", "/k/k") == 2
    assert extension.connections == 2  # the child's own
    store.refresh_sync()
    assert extension.connections == 2  # the parent's connection was left alone
    anyio.run(store.aclose)


def test_a_warm_sync_read_submits_nothing_to_the_loop(
    extension: FakeExtension, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = on_extension(extension)
    store.load_sync()
    submitted: list[Any] = []

    def refuse(self: SyncLoop, *args: Any) -> Any:
        submitted.append(args)
        raise AssertionError("a warm read must run no event loop")

    monkeypatch.setattr(SyncLoop, "run", refuse)
    assert store.load_sync().k == "value-of-k"
    assert store.get_sync("k") == "value-of-k"
    assert submitted == []


EXITS_WITHOUT_ACLOSE = """
import sys
from parameters_secrets import Parameter, ParametersSecrets
from parameters_secrets.sources import ExtensionSource

port, token = int(sys.argv[1]), sys.argv[2]
store = ParametersSecrets({"k": Parameter("/k/k")}, source=ExtensionSource(port, token))
for _ in range(3):
    assert store.refresh_sync().k == "value-of-k"
print("loaded")
if sys.argv[3] == "dropped":  # its loop closes in its thread while the interpreter exits
    del store
"""


@pytest.mark.parametrize("store_at_exit", ["kept", "dropped"])
def test_the_interpreter_exits_cleanly_with_the_loop_and_its_connection_open(
    extension: FakeExtension, store_at_exit: str
) -> None:
    extension.put_parameter("/k/k", "value-of-k")
    # Every warning shown (ResourceWarning included); an exception in a finalizer at exit
    # ("Event loop is closed") is printed whatever the filter.
    completed = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            EXITS_WITHOUT_ACLOSE,
            str(extension.port),
            TOKEN,
            store_at_exit,
        ],
        capture_output=True,
        text=True,
        timeout=JOIN_SECONDS,
        env=clean_environment({"PYTHONPATH": os.pathsep.join(sys.path)}),
        check=False,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "loaded\n", "")
    assert extension.connections == 1
