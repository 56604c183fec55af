"""Lambda's Runtime API on 127.0.0.1, with Lambda's INIT limit, to run a handler as Lambda does.

The documented endpoints a runtime client (``awslambdaric``, what the managed Python
runtime runs) calls:

* ``GET /2018-06-01/runtime/invocation/next``: the next event. The first call ends INIT.
* ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``.../{id}/error``.
* ``POST /2018-06-01/runtime/init/error``: INIT failed (the runtime then exits).

:func:`run_function` starts ``python -m awslambdaric module.handler`` against it and, as
Lambda does for an on-demand INIT, kills the process if INIT has not ended (no ``next``,
no ``init/error``) within ``init_limit`` seconds of its start: silently, so what the
runtime reported before that is all there is. Each event is then served, and the
process is stopped once they have been answered. Every wait is bounded::

    run = run_function("app.handler", env, cwd=tmp_path, events=[{"x": 1}])
    assert run.init_error is None and run.responses == [...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.processes import terminate

PREFIX = "/2018-06-01/runtime"
# Lambda's limit on an on-demand INIT, counted from the start of the environment.
INIT_LIMIT_SECONDS = 10.0
# The longest a run may take after INIT (every event answered by then).
INVOKE_LIMIT_SECONDS = 30.0
# The longest a "next" is held open once no event is left, so a stop is never waited for.
IDLE_NEXT_SECONDS = 30.0


@dataclass
class Run:
    """What Lambda saw of one run, times in seconds from the process's start."""

    init_ended_at: float | None = None  # the first "next": INIT succeeded
    init_error: dict[str, Any] | None = None
    init_error_at: float | None = None
    killed_at_init_limit: bool = False
    responses: list[Any] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    exit_code: int | None = None
    output: str = ""


class _Api:
    """The shared state of the server: events to give, what came back."""

    def __init__(self, events: Sequence[Any], started: float) -> None:
        self.events = list(events)
        self.started = started
        self.run = Run()
        self.changed = threading.Condition()
        self.stopping = threading.Event()

    def since_start(self) -> float:
        return time.monotonic() - self.started

    def record(self, **fields: Any) -> None:
        with self.changed:
            for name, value in fields.items():
                setattr(self.run, name, value)
            self.changed.notify_all()

    def answered(self) -> bool:
        return not self.events and len(self.run.responses) + len(self.run.errors) >= self.given

    given = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test reads what was recorded

    def do_GET(self) -> None:
        api = self.server.api
        if self.path != f"{PREFIX}/invocation/next":
            self._answer(404, {"errorType": "NotFound"})
            return
        with api.changed:
            if api.run.init_ended_at is None:
                api.run.init_ended_at = api.since_start()
                api.changed.notify_all()
            event = api.events.pop(0) if api.events else None
            if event is not None:
                api.given += 1
        if event is None:
            # No more work: hold the call, as Lambda does between invocations.
            api.stopping.wait(IDLE_NEXT_SECONDS)
            self._answer(500, {"errorType": "Stopped"})
            return
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + 60) * 1000)
        self._answer(
            200,
            event,
            {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": (
                    "arn:aws:lambda:us-east-1:123456789012:function:test"
                ),
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            },
        )

    def do_POST(self) -> None:
        api = self.server.api
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        if self.path == f"{PREFIX}/init/error":
            api.record(init_error=body, init_error_at=api.since_start())
        elif self.path.startswith(f"{PREFIX}/invocation/") and self.path.endswith("/response"):
            with api.changed:
                api.run.responses.append(body)
                api.changed.notify_all()
        elif self.path.startswith(f"{PREFIX}/invocation/") and self.path.endswith("/error"):
            with api.changed:
                api.run.errors.append(body)
                api.changed.notify_all()
        else:
            self._answer(404, {"errorType": "NotFound"})
            return
        self._answer(202, {"status": "OK"})

    def _answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: _Api) -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)


def run_function(
    handler: str,
    env: Mapping[str, str],
    *,
    cwd: Path,
    events: Sequence[Any] = (),
    init_limit: float = INIT_LIMIT_SECONDS,
) -> Run:
    """Run ``handler`` (``module.function``, importable from ``cwd``) under
    ``awslambdaric`` as Lambda would: INIT, killed at ``init_limit`` s if it has not
    ended, then each of ``events``. ``env`` is the whole environment of the process
    (``AWS_LAMBDA_RUNTIME_API`` is added)."""
    api = _Api(events, time.monotonic())
    server = _Server(api)
    serving = threading.Thread(target=server.serve_forever, name="runtime-api", daemon=True)
    serving.start()
    argv = [sys.executable, "-m", "awslambdaric", handler]
    full_env = {**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}"}
    api.started = time.monotonic()
    process = subprocess.Popen(
        argv,
        env=full_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _supervise(api, process, init_limit)
    finally:
        api.stopping.set()
        terminate(process)
        api.run.exit_code = process.returncode
        api.run.output = process.stdout.read() if process.stdout is not None else ""
        if process.stdout is not None:
            process.stdout.close()
        server.shutdown()
        server.server_close()
        serving.join(timeout=5)
    return api.run


def _supervise(api: _Api, process: subprocess.Popen[str], init_limit: float) -> None:
    """Lambda's side: end INIT at its limit; wait for every event to be answered."""
    watcher = threading.Thread(target=_notify_exit, args=(api, process), daemon=True)
    watcher.start()
    with api.changed:
        api.changed.wait_for(
            lambda: (
                api.run.init_ended_at is not None
                or api.run.init_error is not None
                or process.poll() is not None
            ),
            timeout=max(0.0, init_limit - api.since_start()),
        )
    if api.run.init_ended_at is None and api.run.init_error is None and process.poll() is None:
        process.kill()  # Lambda's INIT limit: no word to the function
        api.run.killed_at_init_limit = True
        return
    if api.run.init_error is not None:
        process.wait(timeout=5)  # the runtime exits after reporting it
        return
    with api.changed:
        api.changed.wait_for(
            lambda: api.answered() or process.poll() is not None,
            timeout=INVOKE_LIMIT_SECONDS,
        )


def _notify_exit(api: _Api, process: subprocess.Popen[str]) -> None:
    """Wake the supervisor when the process exits (bounded: it is killed by then)."""
    try:
        process.wait(timeout=INIT_LIMIT_SECONDS + INVOKE_LIMIT_SECONDS + 10)
    except subprocess.TimeoutExpired:
        return
    api.record()
