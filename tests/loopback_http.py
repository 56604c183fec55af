"""A threaded HTTP server on 127.0.0.1 that tracks its connections, for the test servers.

Stopping a test server must also cut its keep-alive connections, so that a pooled client
sees "connection refused" after ``stop()`` rather than an old connection still answering.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

S = TypeVar("S", bound="ServedInThread")


class LoopbackHTTPServer(ThreadingHTTPServer):
    """Tells ``on_accept`` of every connection and can drop the open ones."""

    daemon_threads = True

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        port: int = 0,
        *,
        on_accept: Callable[[], None] = lambda: None,
    ) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._on_accept = on_accept
        super().__init__(("127.0.0.1", port), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self._on_accept()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        with self._open_lock:
            return len(self._open)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silence tracebacks of connections the client (or an injected fault) broke."""

    def drop_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class ServedInThread:
    """A test server's lifecycle: a :class:`LoopbackHTTPServer` served by a daemon thread.

    ``stop()`` closes the listening socket (later connects are refused), cuts open
    keep-alive connections and sets ``_stopping`` (which handlers' waits watch). What the
    server holds survives a stop: ``start(port=old_port)`` is the same server restarted.
    Subclasses build their server in ``_make_server``.
    """

    thread_name = "loopback-server"

    def __init__(self) -> None:
        self.port = 0
        self._stopping = threading.Event()
        self._server: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self, port: int) -> LoopbackHTTPServer:
        raise NotImplementedError

    def start(self: S, *, port: int = 0) -> S:
        """Serve on ``port`` (0: an ephemeral one)."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._stopping.clear()
        server = self._make_server(port)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (see the class)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_open_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
