"""What is shared between threads and event loops, what belongs to one loop, and what
blocks. The whole concurrency model of the package is here; nothing else tracks loops.

* **Shared by every thread and loop**: the cache's entries, counters and fetches in flight
  (behind the cache's one lock), the store's snapshot of fresh values (one tuple, replaced
  whole, never by one built from older entries: the cache numbers its changes), the
  credentials (behind the provider's lock). No lock is held across an ``await``, a
  network call, or a user's code.
* **A fetch in flight** is a :class:`Flight`: its leader fetches in its own task and
  settles it; everyone else who needs the same keys, on any thread or loop, waits for
  that outcome. A waiter on an event loop waits on its own loop (the wake-up is posted to
  it, thread-safe), so it never blocks that loop, and never beyond its own time bound. A
  leader that is cancelled settles with no outcome, and a waiter leads instead; a leader
  whose loop stopped running (an asyncio loop stopped or closed without cancelling its
  tasks) is replaced.
* **Belongs to one loop**: an ``httpx.AsyncClient`` and its connections. :class:`PerLoop`
  keeps one per running loop (in an anyio ``RunVar``, which anyio keeps with the loop)
  and closes it when that loop finalises its async generators
  (``asyncio.run``, ``asyncio.Runner``, ``anyio.run``, ``trio.run``), or on ``aclose()``.
* **Blocks**: the sync methods on a cache miss. Each store keeps one event loop for them
  (:class:`SyncLoop`), run by a daemon thread of its own started on first use (nothing
  at import or construction): a caller in any thread hands its coroutine to that loop
  and waits for its own call only, so every thread's sync calls share the loop's pools
  and connections, and many can be in flight at once. One loop per store, not per
  process: it belongs to what it serves, so it closes with it (``aclose()``, or when the
  store is collected), and one store's ``aclose()`` leaves another's calls alone; an app
  has one store, so in practice one loop per process. It closes cleanly at interpreter
  exit, is made anew in a forked child (the parent's loop and connections are left
  untouched there) and after a SnapStart restore. The caller's thread never gets a
  current loop, so Mangum's loop in the same process is left alone. A sync call inside
  a running event loop (that loop's own thread included) is refused rather than
  blocking it. Credentials from the container endpoint or botocore are fetched by a
  worker thread (:func:`in_thread`) that callers wait for within their own time bound
  (a container endpoint's call runs on a private loop there: :func:`run_blocking`).
* **Never blocks**: a warm read (sync or async), and an async caller's wait for a fetch
  led elsewhere.
* **SnapStart**: what was made before a snapshot must not be used after a restore (cached
  values may be long out of date, connections are dead, credentials expired). Each holder
  registers with :func:`drop_after_restore`; when ``snapshot_restore_py`` is importable
  (the Lambda runtime provides it), one after-restore hook drops all of it, without a
  network call and whatever the clocks say: the next use fetches again.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import importlib
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel
import sniffio

from .exceptions import ParametersSecretsError

T = TypeVar("T")

# A leader still unsettled this long after its own time bound is presumed gone (its loop
# blocked or its thread stuck): the next caller leads instead.
STALLED_AFTER_SECONDS = 1.0


def _call_soon_threadsafe() -> Callable[[Callable[[], object]], object]:
    """How to run a callback on the running loop from any thread, without blocking."""
    native: Any = anyio.lowlevel.current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        return native.call_soon_threadsafe
    return native.run_sync_soon  # type: ignore[no-any-return]  # a trio.lowlevel.TrioToken


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Flight(Generic[T]):
    """An outcome one caller produces and any number of callers, on any thread or event
    loop, wait for.

    Args:
        give_up_at: When its leader's work ends at the latest (``time.monotonic()``).
    """

    __slots__ = ("__weakref__", "_lock", "_loop", "_outcome", "_settled", "_wakers", "give_up_at")

    def __init__(self, give_up_at: float) -> None:
        self._lock = threading.Lock()
        self._settled = False
        self._outcome: T | None = None
        self._wakers: list[Callable[[], None]] = []
        # The leader's asyncio loop: if it stops running, this flight will never settle.
        self._loop = _running_asyncio_loop()
        self.give_up_at = give_up_at

    @property
    def settled(self) -> bool:
        return self._settled

    def stalled(self) -> bool:
        """Whether its leader can no longer settle it: its loop stopped, or it is long
        past its time bound."""
        if self._settled:
            return False
        loop = self._loop
        if loop is not None and not loop.is_running():
            return True
        return time.monotonic() > self.give_up_at + STALLED_AFTER_SECONDS

    def settle(self, outcome: T | None) -> None:
        """Give every waiter ``outcome`` (``None``: the leader stopped without one)."""
        with self._lock:
            if self._settled:
                return
            self._outcome, self._settled = outcome, True
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    async def wait(self, until: float) -> tuple[bool, T | None]:
        """Wait on the running loop, never blocking it, until settled or ``until``
        (``time.monotonic()``) passes.

        Returns:
            ``(settled, outcome)``.
        """
        event = anyio.Event()
        post = _call_soon_threadsafe()

        def wake() -> None:
            # RuntimeError: that loop has closed (trio's RunFinishedError is one).
            with contextlib.suppress(RuntimeError):
                post(event.set)

        with self._lock:
            if self._settled:
                return True, self._outcome
            self._wakers.append(wake)
        try:
            with anyio.move_on_after(max(0.0, until - time.monotonic())):
                await event.wait()
        finally:
            with self._lock:
                if wake in self._wakers:
                    self._wakers.remove(wake)
        return self._settled, self._outcome


async def concurrently(calls: Sequence[Awaitable[None]]) -> None:
    """Await every call at once, in this task's task group (a single call, directly)."""
    if len(calls) <= 1:
        for call in calls:
            await call
        return
    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(_awaited, call)


async def _awaited(call: Awaitable[None]) -> None:
    await call


def in_thread(work: Callable[[], T], give_up_at: float) -> Flight[T | BaseException]:
    """Start ``work`` in a daemon thread; its result (or the exception it raised) settles
    the returned flight. Nobody's cancellation stops it: a caller that stops waiting
    leaves the outcome to the next one."""
    flight: Flight[T | BaseException] = Flight(give_up_at)

    def run() -> None:
        try:
            outcome: T | BaseException = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiters, whatever it is
            outcome = exc
        flight.settle(outcome)

    threading.Thread(target=run, name="parameters-secrets-refresh", daemon=True).start()
    return flight


def refuse_inside_a_loop(name: str) -> None:
    """Refuse a sync call where it would block a running event loop.

    Raises:
        ParametersSecretsError: The message names the async method to await instead.
    """
    try:
        library: str | None = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        # A plain callback on a running loop has no task for sniffio to find.
        library = None if _running_asyncio_loop() is None else "asyncio"
    if library is not None:
        raise ParametersSecretsError(
            f"{name}_sync() was called inside a running event loop ({library}): "
            f"use 'await store.{name}()' there"
        )


def run_blocking(name: str, method: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``method(*args)`` to completion in this thread, on a private asyncio loop.

    Never ``asyncio.run``: that would unset the thread's current loop, which Mangum keeps
    for every invocation. Connections opened on the private loop close with it.

    Raises:
        ParametersSecretsError: Called inside a running event loop (it would block it):
            the message names the async method to await instead.
    """
    refuse_inside_a_loop(name)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(method(*args))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


# -- the sync road's loop -------------------------------------------------------------------

# How long interpreter exit waits for a loop to close its pools: closing is local work
# (in-flight calls are cancelled), so this is reached only if a thread is stuck in a
# user's blocking code, and exit must not hang on our account then.
EXIT_WAIT_SECONDS = 2.0

_holders: weakref.WeakSet[SyncLoop] = weakref.WeakSet()  # those with a loop serving
_serving: set[_LoopThread] = set()  # every loop thread not yet ended, held or not
_holders_lock = threading.Lock()
_process_hooks_registered = False
# A forked child's copies of its parent's loops: never run, stopped or closed here (their
# threads and connections are the parent's; a TLS close from the child would end the
# parent's session), and kept, so that no finalizer warns about them.
_inherited: list[_LoopThread] = []


class _LoopThread:
    """An asyncio loop run forever by a daemon thread of its own, until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()  # never any thread's current loop
        self.ended: Flight[None] = Flight(math.inf)
        self.finalizer: weakref.finalize[Any, Any] | None = None
        self._stopping = False
        self.thread = threading.Thread(
            target=self._serve, name="parameters-secrets-sync", daemon=True
        )
        with _holders_lock:
            _serving.add(self)
        self.thread.start()

    def stop(self) -> None:
        """Ask the loop to stop: its calls still running are cancelled, its pools closed
        and the loop closed, in its thread. Does not wait."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(RuntimeError):  # it has closed already
            self.loop.call_soon_threadsafe(self.loop.stop)

    def disown(self) -> None:
        """Never stop it on its holder's collection (it is stopped otherwise, or not ours)."""
        if self.finalizer is not None:
            self.finalizer.detach()

    def abandon(self) -> None:
        """In a forked child: never touch this copy of the parent's loop (a stop would
        wake the parent's loop through the self-pipe they share)."""
        self.disown()
        self._stopping = True

    def _serve(self) -> None:
        """The loop thread: run until stopped, then shut down as ``asyncio.run`` does."""
        loop = self.loop
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_every_task(loop)
                # Closes every pool made on this loop (PerLoop's closers are its async
                # generators), so no connection is left for a finalizer to warn about.
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                with _holders_lock:
                    _serving.discard(self)
                self.ended.settle(None)


def _run_into(call: Coroutine[Any, Any, T], outcome: concurrent.futures.Future[T]) -> None:
    """On the loop: run ``call`` as a task whose end settles ``outcome``, and which a
    cancelled ``outcome`` cancels (``asyncio.run_coroutine_threadsafe``, but with the
    caller's future made first)."""
    if outcome.cancelled():
        call.close()
        return
    loop = asyncio.get_running_loop()
    task = loop.create_task(call)

    def settle(done: asyncio.Task[T]) -> None:
        if done.cancelled():
            outcome.cancel()
        elif outcome.set_running_or_notify_cancel():  # False: cancelled meanwhile
            error = done.exception()
            if error is None:
                outcome.set_result(done.result())
            else:
                outcome.set_exception(error)

    def cancel_if_cancelled(future: concurrent.futures.Future[T]) -> None:
        if future.cancelled():
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(task.cancel)

    task.add_done_callback(settle)
    outcome.add_done_callback(cancel_if_cancelled)


def _cancel_every_task(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


class SyncLoop:
    """The event loop a store's sync calls run on, from any thread: started on first
    use, closed by :meth:`aclose` or when this object is collected, and made anew after
    a fork (in the child) or a SnapStart restore. See the module doc ("Blocks")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: _LoopThread | None = None
        drop_after_restore(self)

    def run(self, name: str, method: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``method(*args)`` on the loop; wait, in this thread, for it alone.

        Its exceptions are raised here unchanged. Interrupted while waiting (a
        ``KeyboardInterrupt``), the call is cancelled on the loop.

        Raises:
            ParametersSecretsError: Called inside a running event loop (it would block
                it): the message names the async method to await instead. Or the loop
                was closed (``aclose()``) while the call ran.
        """
        refuse_inside_a_loop(name)
        # Made before the call is handed over, so that an interrupt at any point after
        # can cancel it.
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            self._submit(method(*args), outcome)
            return outcome.result()  # no timeout: the coroutine has its own time bounds
        except concurrent.futures.CancelledError:
            raise ParametersSecretsError(
                f"{name}_sync() was cancelled: the store was closed while it ran"
            ) from None
        except BaseException:
            outcome.cancel()  # interrupted while waiting: nobody wants the outcome now
            raise

    def _submit(self, call: Coroutine[Any, Any, T], outcome: concurrent.futures.Future[T]) -> None:
        # Under the lock: a loop being stopped is never handed a call.
        with self._lock:
            serving = self._serving
            if serving is None:
                serving = self._serving = self._start()
            try:
                serving.loop.call_soon_threadsafe(_run_into, call, outcome)
            except RuntimeError:  # the loop closed: the call never started
                call.close()  # no "never awaited" warning
                raise
            # An interrupt from here on cancels ``outcome``, which stops the call.

    def _start(self) -> _LoopThread:
        _register_process_hooks()
        serving = _LoopThread()
        serving.finalizer = weakref.finalize(self, serving.stop)
        serving.finalizer.atexit = False  # _close_at_exit closes it and waits
        with _holders_lock:
            _holders.add(self)
        return serving

    def _detach(self) -> _LoopThread | None:
        """Take the loop away from new calls; the caller stops it."""
        with self._lock:
            serving, self._serving = self._serving, None
        if serving is not None:
            serving.disown()
        return serving

    async def aclose(self) -> None:
        """Close the loop (calls still running on it are cancelled) and wait, without
        blocking the running loop, until its pools are closed. A later call starts a
        new loop."""
        serving = self._detach()
        if serving is None:
            return
        serving.stop()
        if threading.current_thread() is not serving.thread:  # else it closes after us
            await serving.ended.wait(math.inf)

    def drop_after_restore(self) -> None:
        """The loop made before a SnapStart snapshot closes (with its dead connections);
        the next call starts a new one."""
        serving = self._detach()
        if serving is not None:
            serving.stop()

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent's loop is not ours; the next call starts one."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._serving = None


def _register_process_hooks() -> None:
    """Close every loop at interpreter exit; forget them in a forked child. Once."""
    global _process_hooks_registered  # noqa: PLW0603 - once per process
    with _holders_lock:
        if _process_hooks_registered:
            return
        _process_hooks_registered = True
    atexit.register(_close_at_exit)
    # Only Windows has no os.register_at_fork (nor fork): never false where the tests run.
    if hasattr(os, "register_at_fork"):  # pragma: no branch
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_release_after_fork,
            after_in_child=_after_fork_in_child,
        )


def _close_at_exit() -> None:
    """Close every loop (a collected store's may still be closing) before the interpreter
    finalises: its connections close in order, and nothing is left for finalizers."""
    with _holders_lock:
        holders = list(_holders)
    for holder in holders:
        holder._detach()  # noqa: SLF001 - no new call reaches a loop being closed
    with _holders_lock:
        stopping = list(_serving)
    for serving in stopping:
        serving.stop()
    for serving in stopping:
        serving.thread.join(EXIT_WAIT_SECONDS)


def _before_fork() -> None:
    # Loop threads take these at any time (a collected store's loop closing its pools): a
    # fork while one is held would leave it held for ever in the child.
    _holders_lock.acquire()


def _release_after_fork() -> None:
    _holders_lock.release()


def _after_fork_in_child() -> None:
    _release_after_fork()
    for holder in list(_holders):
        holder._forget_after_fork()  # noqa: SLF001 - this module's own class
    for inherited in _serving:
        inherited.abandon()
    _inherited.extend(_serving)
    _serving.clear()


# -- resources that belong to one loop ------------------------------------------------------


async def _release_with_loop(
    close: Callable[[], Awaitable[None]], pending: dict[object, Any], key: object
) -> AsyncGenerator[None, None]:
    # An async generator left suspended here is finalised by its loop when the loop ends
    # (asyncio.run, asyncio.Runner, anyio.run and trio.run call aclose() on the generators
    # still alive), which runs this ``finally`` on that loop while it can still close
    # sockets cleanly.
    try:
        yield
    finally:
        # Forget this generator: it refers to its loop, and a RunVar's value that refers
        # to its loop keeps both alive for ever (anyio keys the values by the loop).
        pending.pop(key, None)
        await close()


class _Held(Generic[T]):
    """One loop's resource, and the closers not yet run (a restore may leave several)."""

    __slots__ = ("generation", "pending", "resource")

    def __init__(self, generation: int, resource: T) -> None:
        self.generation = generation
        self.resource = resource
        self.pending: dict[object, AsyncGenerator[None, None]] = {}


class PerLoop(Generic[T]):
    """One ``T`` per running event loop, made on first use and closed when its loop ends.

    The running loop's ``T`` is in an anyio ``RunVar``, which anyio keeps as long as the
    loop, whatever becomes of this object (an owner collected in a reference cycle does
    not take the pool's sockets into the same collection, unclosed). A RunVar's value is
    not closed when its loop ends: an async generator the loop finalises at its shutdown
    (:func:`_release_with_loop`) closes it, while its sockets can still close cleanly.

    Args:
        make: Builds a ``T`` (called inside the loop that will use it).
        close: Releases a ``T``; awaited on the loop that made it, when that loop shuts
            down, or by :meth:`aclose`.
    """

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        self._held: anyio.lowlevel.RunVar[_Held[T] | None] = anyio.lowlevel.RunVar(
            "parameters_secrets.PerLoop", None
        )
        # Bumped by a SnapStart restore: a loop's T made before it is not used again.
        self._generation = 0
        drop_after_restore(self)

    async def get(self) -> T:
        """The running loop's ``T``."""
        held = self._held.get()
        if held is not None and held.generation == self._generation:
            return held.resource
        # Only this loop's tasks see this loop's value, and nothing from here to the end
        # suspends: no other task of this loop can get in between.
        resource = self._make()
        if held is None:
            held = _Held(self._generation, resource)
            self._held.set(held)
        else:  # made before a restore: the old one still closes with its loop
            held.generation, held.resource = self._generation, resource
        key = object()
        # The closer does not refer to this object: it may outlive it.
        releaser = _release_with_loop(functools.partial(self._close, resource), held.pending, key)
        await releaser.__anext__()  # registers it with the running loop; never suspends
        held.pending[key] = releaser
        return resource

    async def aclose(self) -> None:
        """Close the running loop's ``T``; those of other loops close with their loops."""
        held = self._held.get()
        if held is None:
            return
        self._held.set(None)
        for releaser in list(held.pending.values()):
            await releaser.aclose()

    def drop_after_restore(self) -> None:
        """Forget every loop's ``T`` (their connections died with the snapshot): each
        loop makes a new one on next use; the old ones still close with their loops."""
        self._generation += 1


# -- SnapStart --------------------------------------------------------------------------


class _Restorable(Protocol):
    def drop_after_restore(self) -> None: ...


_restorables: weakref.WeakSet[_Restorable] = weakref.WeakSet()
_restorables_lock = threading.Lock()
_hooked: object = None  # the snapshot_restore_py module our hook is registered with


def drop_after_restore(holder: _Restorable) -> None:
    """Call ``holder.drop_after_restore()`` when a SnapStart snapshot is restored (the
    holder is referred to weakly)."""
    with _restorables_lock:
        _restorables.add(holder)


def hook_snapstart() -> None:
    """Register the after-restore hook with ``snapshot_restore_py``, once: the module the
    Lambda runtime provides (off Lambda, only if something imported it already, as tests
    do; an import that fails costs a search of the whole path on every cold start)."""
    global _hooked  # noqa: PLW0603 - once per process
    runtime = _snapstart_runtime()
    if runtime is None:
        return
    with _restorables_lock:
        if _hooked is runtime:
            return
        _hooked = runtime
    runtime.register_after_restore(_restored)


def _snapstart_runtime() -> Any:
    """``snapshot_restore_py``: imported already, or on Lambda imported now; else None."""
    runtime: Any = sys.modules.get("snapshot_restore_py")
    if runtime is None and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        try:
            runtime = importlib.import_module("snapshot_restore_py")
        except ImportError:
            return None
    return runtime


def _restored() -> None:
    with _restorables_lock:
        holders = list(_restorables)
    for holder in holders:
        holder.drop_after_restore()
