"""Things that belong to one event loop: its identity, and resources closed with it.

An ``httpx.AsyncClient`` (its connections) and an ``anyio.Event`` work only on the loop
that made them. Mangum >= 0.21 keeps one loop for every invocation, but Mangum < 0.21
(``asyncio.run`` per invocation), test clients and ``load_sync()`` each run on a loop of
their own: what was made on one loop is rebuilt on the next, and released when its own
loop ends.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

import anyio.lowlevel

T = TypeVar("T")


def current_loop() -> object:
    """A hashable identity of the running event loop, asyncio's or trio's."""
    return anyio.lowlevel.current_token()


def _is_closed(loop: object) -> bool:
    native = getattr(loop, "native_token", None)
    return isinstance(native, asyncio.AbstractEventLoop) and native.is_closed()


# Every closer, by loop, held here as well as by its owner: an owner collected as part
# of a reference cycle (a web app usually is one) must not take its pool into the same
# garbage collection pass, where the pool's sockets would be finalised unclosed. Kept
# here, a pool closes with its loop whatever became of its owner.
_closers: dict[object, set[AsyncGenerator[None, None]]] = {}


async def _release_with_loop(close: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
    # An async generator left suspended here is finalised by its loop when the loop
    # ends (asyncio.run, asyncio.Runner, anyio.run and trio.run all call aclose() on the
    # generators still alive), which runs this ``finally`` on that loop, while it can
    # still close sockets cleanly.
    try:
        yield
    finally:
        await close()


class _Held(dict[object, tuple[T, AsyncGenerator[None, None]]]):
    """What a :class:`PerLoop` holds, per loop (a dict that can be weakly referenced)."""


class PerLoop(Generic[T]):
    """One ``T`` per running event loop, made on first use and closed when its loop ends.

    Args:
        make: Builds a ``T`` (called inside the loop that will use it).
        close: Releases a ``T``; awaited on the loop that made it, when that loop shuts
            down, or by :meth:`aclose`.
    """

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        # loop -> (resource, the suspended generator that closes it with the loop)
        self._held: _Held[T] = _Held()

    async def get(self) -> T:
        """The running loop's ``T``."""
        loop = current_loop()
        held = self._held.get(loop)
        if held is not None:
            return held[0]
        # Forget loops that closed without finalising their generators (a bare
        # loop.close()): nothing can run on them any more.
        for gone in [other for other in self._held if _is_closed(other)]:
            del self._held[gone]
        for gone in [other for other in _closers if _is_closed(other)]:
            del _closers[gone]
        resource = self._make()
        kept = _closers.setdefault(loop, set())
        # The closer refers to this object only weakly: it may outlive it.
        holder, release = weakref.ref(self._held), self._close

        async def close() -> None:
            still_held = holder()
            if still_held is not None:
                still_held.pop(loop, None)
            kept.discard(releaser)
            if not kept and _closers.get(loop) is kept:
                del _closers[loop]
            await release(resource)

        releaser = _release_with_loop(close)
        await releaser.__anext__()  # registers it with the running loop
        kept.add(releaser)
        self._held[loop] = (resource, releaser)
        return resource

    async def aclose(self) -> None:
        """Close the running loop's ``T``; those of other loops close with their loops."""
        held = self._held.pop(current_loop(), None)
        if held is not None:
            await held[1].aclose()
