"""An upstream that hangs: it accepts every connection on 127.0.0.1 and never answers.

What a stalled AWS endpoint looks like to a client (the TCP handshake succeeds, the request
is read by nobody): only the client's own time bound can end the wait. Connections are
held until ``stop()``; ``connections`` counts those accepted, so a test can assert the
client did reach it (the fault, not a refused connection, is what happened)::

    with HangingServer() as hang:
        ...  # point the client at hang.url
        assert hang.connections >= 1
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

_ACCEPT_POLL_SECONDS = 0.1


class HangingServer:
    """A loopback TCP listener that accepts and never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(_ACCEPT_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="hanging-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._held)

    def start(self) -> HangingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for held in self._held:
                held.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():  # bounded: stop() ends it within one poll
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._held.append(connection)

    def __enter__(self) -> HangingServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
