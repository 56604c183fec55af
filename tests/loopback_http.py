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
from typing import Any


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
