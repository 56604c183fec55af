"""The examples run locally as their docstrings and the docs say, with what the
``examples`` extra installs:

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json uvicorn examples.starlette_app:app

uvicorn runs as a child process on 127.0.0.1 and an ephemeral port. The Starlette
example's websocket route needs a websocket library in the server's environment, which
the extra brings (websockets); without one, uvicorn refuses the upgrade ("No supported
WebSocket library detected"). The client side is a plain socket (RFC 6455's handshake and
one unmasked server frame), so the test needs no websocket library itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.processes import ReadyLineProcess, clean_environment

ROOT = Path(__file__).resolve().parent.parent
INDEX_BODY = {"user": "demo", "beta": True, "origins": 2}
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READY_PATTERN = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"


def uvicorn(app: str) -> ReadyLineProcess:
    return ReadyLineProcess(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0"],
        clean_environment({"PARAMETERS_SECRETS_SOURCE": "file:examples/local-values.json"}),
        READY_PATTERN,
        cwd=ROOT,
    )


@pytest.mark.parametrize("name", ["fastapi_app", "starlette_app", "flask_app"])
def test_example_serves_its_values_under_uvicorn(name: str) -> None:
    with uvicorn(f"examples.{name}:app") as server:
        response = httpx.get(f"{server.url}/", timeout=10)
    assert (response.status_code, response.json()) == (200, INDEX_BODY), server.output()


def websocket_first_message(port: int, path: str) -> tuple[str, bytes]:
    """Open a websocket on 127.0.0.1:``port``: the handshake's status line, and the payload
    of the server's first frame (empty if the upgrade was refused)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        stream = sock.makefile("rb")
        head = []
        while (line := stream.readline(65536)) not in (b"\r\n", b""):
            head.append(line.decode().strip())
        status = head[0] if head else ""
        if " 101 " not in status:
            return status, b""
        accept = base64.b64encode(
            hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest()
        )
        headers = dict(line.split(": ", 1) for line in head[1:])
        assert {k.lower(): v for k, v in headers.items()}["sec-websocket-accept"] == accept.decode()
        first, second = stream.read(2)
        assert first == 0x81, hex(first)  # FIN, text frame
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(stream.read(2), "big")
        return status, stream.read(length)


def test_starlette_example_websocket_works_under_uvicorn() -> None:
    with uvicorn("examples.starlette_app:app") as server:
        status, message = websocket_first_message(server.port, "/ws")
        output = server.output()
    assert " 101 " in status, f"uvicorn refused the websocket upgrade ({status}):\n{output}"
    assert json.loads(message) == {"user": "demo"}


def test_websocket_whose_values_cannot_load_is_refused_with_a_retryable_503(
    tmp_path: Path,
) -> None:
    """uvicorn offers ASGI's websocket denial response: the handshake gets the same 503
    and Retry-After as an HTTP request (never a 403 "forbidden"), seen by a real client."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    values = json.loads((ROOT / "examples" / "local-values.json").read_text(encoding="utf-8"))
    del values["secrets"]["demo-app/prod/db"]  # a required value that does not exist
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values), encoding="utf-8")
    command = [sys.executable, "-m", "uvicorn", "examples.starlette_app:app"]
    server = ReadyLineProcess(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        clean_environment({"PARAMETERS_SECRETS_SOURCE": f"file:{values_file}"}),
        READY_PATTERN,
        cwd=ROOT,
    )
    with server, pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=10)
    response = refused.value.response
    assert response.status_code == 503, server.output()
    assert response.headers["Retry-After"] == "5"
    assert json.loads(response.body) == {"detail": "Service Unavailable"}
