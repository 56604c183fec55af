"""The local extension-compatible server as a child process, for tests and benchmarks.

    with LocalServer("file:values.json", clean_environment({"AWS_SESSION_TOKEN": TOKEN})) as server:
        requests.get(f"{server.url}/secretsmanager/get?secretId=x", headers=...)

``python -m parameters_secrets serve --port 0 --source SOURCE`` (this interpreter) on
127.0.0.1 and an ephemeral port, read from its line ``parameters-secrets: ready on
http://127.0.0.1:PORT``. The wait is bounded; the server is always terminated.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO

from tests.processes import STARTUP_TIMEOUT, ReadyLineProcess

__all__ = ["READY_PATTERN", "LocalServer"]

READY_PATTERN = r"parameters-secrets: ready on http://127\.0\.0\.1:(\d+)"


class LocalServer(ReadyLineProcess):
    """``parameters-secrets serve --port 0 --source SOURCE``; ``.port``, ``.url`` and
    ``.ready_line`` once started.

    Args:
        source: ``file:PATH``, ``aws``...: the ``--source`` argument.
        env: The server's whole environment (default: this process's); the token it
            checks is its ``AWS_SESSION_TOKEN``.
        startup_timeout: Seconds to wait for the ready line.
        stderr: Where the server's log goes (``None``: read with its output).
    """

    def __init__(
        self,
        source: str,
        env: Mapping[str, str] | None = None,
        *,
        startup_timeout: float = STARTUP_TIMEOUT,
        stderr: IO[bytes] | None = None,
    ) -> None:
        argv = [sys.executable, "-m", "parameters_secrets", "serve", "--port", "0"]
        super().__init__(
            [*argv, "--source", source],
            os.environ if env is None else env,
            READY_PATTERN,
            startup_timeout=startup_timeout,
            stderr=stderr,
        )
        self.source = source
