"""A threaded HTTP server on 127.0.0.1 that tracks its connections, for the test servers,
and a handler that serves an ASGI app on it.

Stopping a test server must also cut its keep-alive connections, so that a pooled client
sees "connection refused" after ``stop()`` rather than an old connection still answering.

:class:`ASGIRequestHandler` runs an ASGI app for each request, in an event loop of the
request's own thread, so the app's waits never hold up another connection. It writes what
the app sends as it is sent (a body sent a byte at a time arrives a byte at a time), cuts
the connection when the app fails after starting its answer (a body cut off), and tells
the app ``http.disconnect`` when the client closes its end or the server cuts the
connection (``stop()``), so a waiting app ends with its connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar, cast
from urllib.parse import unquote

import anyio
from starlette.types import ASGIApp, Message

from tests.processes import StartsAndStops

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
        self._open_lock = threading.Condition()
        self._sent = 0
        self._on_accept = on_accept
        super().__init__(("127.0.0.1", port), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self._on_accept()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._open_lock:
            self._open.discard(request)
            self._open_lock.notify_all()

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        with self._open_lock:
            return len(self._open)

    def wait_all_closed(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every accepted connection is closed."""
        with self._open_lock:
            return self._open_lock.wait_for(lambda: not self._open, timeout)

    @property
    def bytes_sent(self) -> int:
        """Bytes of answers' bodies written to clients (by ``ASGIRequestHandler``)."""
        with self._open_lock:
            return self._sent

    def count_sent(self, size: int) -> None:
        with self._open_lock:
            self._sent += size

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silence tracebacks of connections the client (or an injected fault) broke."""

    def drop_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class LoopbackASGIServer(LoopbackHTTPServer):
    """A :class:`LoopbackHTTPServer` whose requests ``app`` answers."""

    def __init__(
        self, app: ASGIApp, port: int = 0, *, on_accept: Callable[[], None] = lambda: None
    ) -> None:
        self.app = app
        super().__init__(ASGIRequestHandler, port, on_accept=on_accept)


class ASGIRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 for a :class:`LoopbackASGIServer`'s app: one ASGI call per request."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """No stderr logging."""

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or len(self.raw_requestline) > 65536:
            self.close_connection = True
            return
        if not self.parse_request():  # it has answered the error itself
            return
        anyio.run(self._call_app, self._read_body())

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.close_connection = True  # no body to read: nor a next request
            return b""
        return self.rfile.read(int(length))

    async def _call_app(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.command,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers.items()
            ],
            "client": self.client_address,
            "server": self.server.server_address,
        }
        request: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        started = complete = chunked = False

        async def receive() -> Message:
            if request:
                return request.pop()
            await self._disconnected()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal started, complete, chunked
            if message["type"] == "http.response.start":
                self.send_response_only(message["status"])
                names = set()
                for name, value in message.get("headers", []):
                    names.add(name.lower())
                    self.send_header(name.decode("latin-1"), value.decode("latin-1"))
                chunked = b"transfer-encoding" in names
                if not names & {b"content-length", b"transfer-encoding"}:
                    self.send_header("Connection", "close")  # the body ends with it
                self.end_headers()
                started = True
            elif message["type"] == "http.response.body" and started and not complete:
                complete = not message.get("more_body", False)
                if self.command != "HEAD":
                    self._write(message.get("body", b""), chunked=chunked, last=complete)

        try:
            await cast(LoopbackASGIServer, self.server).app(scope, receive, send)
        except Exception:
            if started:  # a body cut off
                self._cut()
                return
            self.close_connection = True  # as ASGI servers answer an app that failed
            with contextlib.suppress(OSError):
                self.send_error(500)
            return
        if not complete:  # the app stopped answering (its client went away)
            self._cut()

    def _write(self, body: bytes, *, chunked: bool, last: bool) -> None:
        """Send a piece of the body (raises once the client is gone)."""
        if not chunked:
            self.wfile.write(body)
        elif body:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
        if chunked and last:
            self.wfile.write(b"0\r\n\r\n")
        cast(LoopbackHTTPServer, self.server).count_sent(len(body))

    async def _disconnected(self) -> None:
        """Return once the client has closed its end, or the server cut the connection."""
        await anyio.wait_readable(self.connection)
        with contextlib.suppress(OSError):
            if self.connection.recv(1, socket.MSG_PEEK):
                await anyio.sleep_forever()  # the next request, not a close: nothing to tell

    def _cut(self) -> None:
        """Close the connection now, mid-answer if need be (the client sees it cut off)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class ServedInThread(StartsAndStops):
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

    def wait_all_closed(self, timeout: float = 5.0) -> bool:
        """Wait (bounded) until the server has seen every connection it accepted close:
        a client's close reaches it shortly after the client made it."""
        return self._server is None or self._server.wait_all_closed(timeout)

    @property
    def bytes_sent(self) -> int:
        """Bytes of answers' bodies sent by the server running now (0 if stopped)."""
        return 0 if self._server is None else self._server.bytes_sent
