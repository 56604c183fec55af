"""The ``parameters-secrets`` command's edges (found by branch coverage): arguments it does
not know, ``package`` without its extra, ``invoke`` on a small zip run here with this
Python (no download), and ``serve`` with its port and token left to the environment."""

from __future__ import annotations

import importlib.abc
import json
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import requests

import parameters_secrets
from parameters_secrets._cli import main
from parameters_secrets._invoke import EXIT_BAD_INPUT
from tests.processes import clean_environment, free_port

# A handler that answers with what it was given: the event's path and the context's name.
APP = (
    "def handler(event, context):\n"
    "    path = event.get('rawPath') or event.get('path')\n"
    "    return {'statusCode': 200, 'body': path + ' ' + context.function_name}\n"
)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    return line


def test_arguments_a_command_does_not_take_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["policy", "myapp:config", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


class _NoPackaging(importlib.abc.MetaPathFinder):
    """Finds no ``packaging``, as an environment without the [package] extra."""

    def find_spec(self, name: str, *args: object) -> None:
        if name.split(".", maxsplit=1)[0] == "packaging":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def test_package_without_its_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As where `packaging` is not installed: the builder's module fails to import.
    monkeypatch.delattr(parameters_secrets, "_packaging", raising=False)
    for name in [n for n in sys.modules if n.split(".")[0] == "packaging"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "parameters_secrets._packaging", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPackaging(), *sys.meta_path])
    assert main(["package", "--app", "myapp.py"]) == 2
    assert one_line_error(capsys) == (
        "parameters-secrets package: needs packaging: pip install"
        " 'asgi-parameters-secrets[package]'"
    )


# -- invoke ------------------------------------------------------------------------------


@pytest.fixture
def app_zip(tmp_path: Path) -> Path:
    """A zip of one module, ``myapp.py``, with no bytecode."""
    archive_path = tmp_path / "app.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("myapp.py", APP)
    return archive_path


def test_invoke_runs_the_handler_with_the_python_given(
    app_zip: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    status = main(["invoke", str(app_zip), "--python", sys.executable, "--path", "/health"])
    assert status == 0
    response = json.loads(capfd.readouterr().out)
    assert response == {"statusCode": 200, "body": "/health parameters-secrets-invoke"}


def test_invoke_runs_a_zip_without_bytecode_with_this_python_and_says_nothing(
    app_zip: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoke", str(app_zip), "--event", "apigw-v1", "--path", "/items"]) == 0
    captured = capfd.readouterr()
    assert json.loads(captured.out)["body"] == "/items parameters-secrets-invoke"
    assert "warning" not in captured.err


def test_invoke_warns_when_the_zips_python_is_not_here_and_runs_it_with_this_one(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    archive_path = tmp_path / "app.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("myapp.py", APP)
        # Bytecode for a Python no machine has: none is found to run it.
        archive.writestr("__pycache__/myapp.cpython-399.pyc", b"")
    assert main(["invoke", str(archive_path), "--event", "alb"]) == 0
    captured = capfd.readouterr()
    assert json.loads(captured.out)["body"] == "/ parameters-secrets-invoke"
    this = sys.version.split()[0]
    assert (
        "parameters-secrets invoke: warning: the zip is built for Python 3.99, which is not"
        f" here: running it with {this} (--python to choose)"
    ) in captured.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", "the event must be a JSON object"),
    ],
)
def test_invoke_refuses_an_event_file_that_is_not_a_json_object(
    app_zip: Path,
    tmp_path: Path,
    content: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = tmp_path / "event.json"
    event.write_text(content, encoding="utf-8")
    assert main(["invoke", str(app_zip), "--event", str(event)]) == EXIT_BAD_INPUT
    assert one_line_error(capsys).startswith(
        f"parameters-secrets invoke: --event {event}: {message}"
    )


def test_invoke_refuses_a_handler_without_its_module(
    app_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoke", str(app_zip), "--handler", "handler"]) == EXIT_BAD_INPUT
    assert one_line_error(capsys) == (
        "parameters-secrets invoke: --handler handler: give it as MODULE.NAME (e.g. myapp.handler)"
    )


# -- serve -------------------------------------------------------------------------------

SERVE_TIMEOUT = 60.0  # seconds the server may take to print its two lines
TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"


def first_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines the server prints; it is killed if they take too long."""
    stop = threading.Timer(SERVE_TIMEOUT, process.kill)
    stop.start()
    try:
        assert process.stdout is not None
        return [process.stdout.readline() for _ in range(count)]
    finally:
        stop.cancel()


def test_serve_takes_the_extensions_port_variable_and_prints_a_generated_token(
    tmp_path: Path,
) -> None:
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"parameters": {"/app/name": "demo"}}), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(  # no --port, no AWS_SESSION_TOKEN
        [sys.executable, "-m", "parameters_secrets", "serve", "--source", f"file:{values}"],
        env=clean_environment({"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(port)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, export = first_lines(process, 2)
        assert ready.startswith(f"parameters-secrets: ready on http://127.0.0.1:{port} ")
        assert export.startswith("export AWS_SESSION_TOKEN=")
        token = export.removeprefix("export AWS_SESSION_TOKEN=").strip()
        assert len(token) >= 24
        url = f"http://127.0.0.1:{port}/systemsmanager/parameters/get?name=%2Fapp%2Fname"
        answer = requests.get(url, headers={TOKEN_HEADER: token}, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["Parameter"]["Value"] == "demo"
        assert requests.get(url, headers={TOKEN_HEADER: "guess"}, timeout=30).status_code == 401
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
