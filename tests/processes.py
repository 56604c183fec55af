"""Child processes on 127.0.0.1, for the tests and the benchmarks: a free port, stopping a
child, a clean environment, and :class:`ReadyLineProcess`, a child that announces its port
on a line of its output (``tests/local_server.py``, the benchmarks' proxy).

Every wait is bounded; every child is terminated. Standard library only.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

__all__ = ["ReadyLineProcess", "clean_environment", "free_port", "terminate"]

STARTUP_TIMEOUT = 30.0
# Settings a child must not inherit from the machine: credentials, endpoints, moto's,
# Powertools' and this project's (the extension's variables included).
_INHERITED_PREFIXES = ("AWS_", "MOTO_", "POWERTOOLS_", "PARAMETERS_SECRETS_", "SSM_", "SECRETS_")
_Child = TypeVar("_Child", bound="ReadyLineProcess")
_Started = TypeVar("_Started", bound="StartsAndStops")


class StartsAndStops:
    """A server or a child process that ``with`` starts, and stops however its block
    ends: ``start()`` returns the thing started."""

    def start(self: _Started) -> _Started:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Started) -> _Started:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A port nothing listens on right now (another process may take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[Any] | None) -> None:
    """Stop a child we started: terminate, then kill after a bounded wait."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AWS, moto, Powertools or this project's
    settings, plus ``extra``."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)
    }
    env.update(extra or {})
    return env


class ReadyLineProcess(StartsAndStops):
    """A child whose output announces its port: the first line matching ``pattern`` (its
    group 1 is the port). Its output (stdout and stderr) is drained for its whole life,
    so the pipe never fills up; the last lines are kept for error messages.

    Args:
        argv: The command.
        env: The child's whole environment.
        pattern: A regular expression whose group 1 is the port.
        startup_timeout: Seconds to wait for the line.
        cwd: The child's working directory (default: this process's).
        stderr: Where the child's stderr goes (a file, to keep all of it); ``None``: into
            the output read for the line.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        pattern: str,
        *,
        startup_timeout: float = STARTUP_TIMEOUT,
        cwd: str | Path | None = None,
        stderr: IO[bytes] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.pattern = re.compile(pattern)
        self.startup_timeout = startup_timeout
        self.cwd = cwd
        self.stderr = stderr
        self.port = 0
        self.ready_line = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: collections.deque[str] = collections.deque(maxlen=40)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        """Whether the child was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """The child's last lines of output."""
        return "".join(self._tail)

    def start(self: _Child) -> _Child:
        if self._process is not None:
            raise RuntimeError(f"{self.argv[1:4]} already started")
        self._process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if self.stderr is None else self.stderr,
        )
        self._thread = threading.Thread(
            target=self._drain, args=(self._process.stdout,), daemon=True
        )
        self._thread.start()
        try:
            self._wait_for_ready_line()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_ready_line(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:  # exited
                break
            found = self.pattern.search(line)
            if found:
                self.port = int(found.group(1))
                self.ready_line = line
                return
        raise RuntimeError(
            f"{self.argv[1:4]} did not start within {self.startup_timeout} s:\n{self.output()}"
        )

    def _drain(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        announced = False
        for raw in stream:
            line = raw.decode(errors="replace")
            self._tail.append(line)
            if not announced:
                self._lines.put(line)
                announced = bool(self.pattern.search(line))
        self._lines.put(None)

    def stop(self) -> None:
        process, self._process = self._process, None
        thread, self._thread = self._thread, None
        terminate(process)
        if thread is not None:
            thread.join(timeout=5)  # the output ends with the child
        if process is not None and process.stdout is not None:
            process.stdout.close()
