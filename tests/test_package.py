"""The deployable zip (``nox -s package``, ``scripts/lambda_package.py``): built for the
Lambda runtime and architecture, not for this machine, and holding exactly the FastAPI
example's dependency closure.

The python3.12 / x86_64 zip is unzipped and its handler imported by a real Python 3.12
(``-I -S``: nothing but the zip and the standard library on ``sys.path``, as on Lambda),
then invoked through Mangum against the local extension-compatible server. The arm64 zip
cannot run here: its wheels' tags and every native file's ELF machine are checked instead.

Each build downloads the target's wheels (a few seconds once pip's cache holds them). Only
the run under Python 3.12 skips, and only when no Python 3.12 is installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import lambda_package
from tests.lambda_events import make_event
from tests.local_server import LocalServer
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
VALUES_FILE = ROOT / "examples" / "local-values.json"
TOKEN = "package-test-token"
TARGET_PYTHON = "3.12"
# What the Flask and Starlette examples, the local server or the tests need, and the
# FastAPI function does not.
NEVER_IN_THE_ZIP = {"flask", "jinja2", "werkzeug", "asgiref", "uvicorn", "click", "websockets"}

# Run by the target Python: import the handler from the unzipped directory alone, invoke
# it with each event on stdin, and report the responses and where every module came from.
RUNNER = r"""
import json, sys, sysconfig, time
sys.path.insert(0, sys.argv[1])
import examples.fastapi_app as app

class Context:
    function_name = "package-test"
    aws_request_id = "0"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:package-test"
    memory_limit_in_mb = "512"
    _deadline = time.monotonic() + 30
    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

responses = [app.handler(event, Context()) for event in json.load(sys.stdin)]
stdlib = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "responses": responses,
    "outside": [f for f in files if not f.startswith(sys.argv[1]) and
                not any(f.startswith(path) for path in stdlib)],
    "native": [f for f in files if f.endswith(".so")],
}))
"""


def find_python(version: str) -> str | None:
    """An interpreter for ``version``: ``pythonX.Y`` on PATH, else pyenv's."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    for candidate in candidates:
        if candidate is None:
            continue
        result = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip() == version:
            return candidate
    return None


# The zips built (once for the module): Python 3.12 on each architecture, and Python 3.10,
# whose markers differ from 3.12's (anyio needs exceptiongroup before 3.11).
TARGETS = [(TARGET_PYTHON, "x86_64"), (TARGET_PYTHON, "arm64"), ("3.10", "x86_64")]
Target = tuple[str, str]


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[Target, Path]:
    directory = tmp_path_factory.mktemp("zips")
    return {
        (python, arch): lambda_package.build_lambda_zip(
            directory / f"lambda-{python}-{arch}.zip", python_version=python, arch=arch
        )
        for python, arch in TARGETS
    }


def distributions_in(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(_dist_infos(archive))


def _dist_infos(archive: zipfile.ZipFile) -> dict[str, str]:
    """Each distribution's canonical name -> its ``.dist-info`` directory in the zip."""
    directories = {name.split("/")[0] for name in archive.namelist()}
    return {
        canonicalize_name(directory.removesuffix(".dist-info").rsplit("-", 1)[0]): directory
        for directory in directories
        if directory.endswith(".dist-info")
    }


def _closure(archive: zipfile.ZipFile, python: str, arch: str) -> set[str]:
    """The distributions ``asgi-parameters-secrets[fastapi]`` requires on the target, from
    the metadata in the zip itself (a missing one fails here)."""
    dist_infos = _dist_infos(archive)
    # Marker.evaluate() fills in the rest from this interpreter.
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": lambda_package.ARCHITECTURES[arch].elf_name,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    wanted: list[tuple[str, frozenset[str]]] = [
        ("asgi-parameters-secrets", frozenset({lambda_package.EXTRA}))
    ]
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        name, extras = wanted.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        assert name in dist_infos, f"{name} is required but not in the zip"
        metadata = Parser().parsestr(archive.read(f"{dist_infos[name]}/METADATA").decode())
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({**environment, "extra": extra}) for extra in {"", *extras}
            ):
                wanted.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen}


def _files_by_distribution(archive: zipfile.ZipFile) -> Iterator[tuple[str, list[str]]]:
    for name, directory in _dist_infos(archive).items():
        record = archive.read(f"{directory}/RECORD").decode()
        yield name, [line.rsplit(",", 2)[0] for line in record.splitlines() if line]


@pytest.mark.parametrize(("python", "arch"), TARGETS)
def test_zip_holds_exactly_the_fastapi_example_and_its_dependency_closure(
    zips: dict[Target, Path], python: str, arch: str
) -> None:
    with zipfile.ZipFile(zips[python, arch]) as archive:
        names = set(archive.namelist())
        distributions = set(_dist_infos(archive))
        assert distributions == _closure(archive, python, arch)
        assert not distributions & NEVER_IN_THE_ZIP
        assert {"fastapi", "mangum", "starlette", "pydantic-core", "httpx"} <= distributions
        # Every file belongs to an installed distribution (its RECORD) or is the example.
        recorded = {file for _, files in _files_by_distribution(archive) for file in files}
        examples = {name for name in names if name.startswith("examples/")}
        assert examples == set(lambda_package.EXAMPLE_FILES)
        assert names - examples <= recorded
    assert not any(name.startswith("bin/") or name.endswith(".pyc") for name in names)


def _native_machines(archive: zipfile.ZipFile) -> dict[str, int]:
    machines: dict[str, int] = {}
    for name in archive.namelist():
        with archive.open(name) as file:
            machine = lambda_package.elf_machine(file.read(20))
        if machine is not None:
            machines[name] = machine
    return machines


def test_markers_are_those_of_the_target_python_not_of_the_python_that_builds(
    zips: dict[Target, Path],
) -> None:
    # pip alone would follow the builder's markers: a 3.12 zip built by 3.10 would hold
    # exceptiongroup, and a 3.10 zip built by 3.11+ would lack it (an ImportError on Lambda).
    assert "exceptiongroup" in distributions_in(zips["3.10", "x86_64"])
    assert "exceptiongroup" not in distributions_in(zips[TARGET_PYTHON, "x86_64"])


@pytest.mark.parametrize(("python", "arch"), TARGETS)
def test_zip_holds_only_wheels_for_its_python_and_architecture_or_pure_ones(
    zips: dict[Target, Path], python: str, arch: str
) -> None:
    target = lambda_package.ARCHITECTURES[arch]
    abis = {f"cp{python.replace('.', '')}", "abi3", "none"}
    with zipfile.ZipFile(zips[python, arch]) as archive:
        tags = {
            name: Parser().parsestr(archive.read(f"{directory}/WHEEL").decode()).get_all("Tag")
            for name, directory in _dist_infos(archive).items()
        }
        machines = _native_machines(archive)
    for name, wheel_tags in tags.items():
        assert wheel_tags, name
        for tag in wheel_tags:
            _, abi, platform = tag.split("-")
            assert platform == "any" or (platform.endswith(target.elf_name) and abi in abis), (
                name,
                tag,
            )
    # pydantic-core is native: the check has something to bite on.
    assert any(name.startswith("pydantic_core/") for name in machines)
    assert {
        name: machine for name, machine in machines.items() if machine != target.elf_machine
    } == {}


def test_zip_for_python_3_12_on_x86_64_runs_its_handler_on_python_3_12_through_mangum(
    zips: dict[Target, Path], tmp_path: Path
) -> None:
    python = find_python(TARGET_PYTHON)
    if python is None:
        pytest.skip(f"no Python {TARGET_PYTHON} here to import the zip with")
    unzipped = tmp_path / "task"  # Lambda's /var/task
    with zipfile.ZipFile(zips[TARGET_PYTHON, "x86_64"]) as archive:
        archive.extractall(unzipped)
    events = [make_event("http_api_v2", "/"), make_event("api_gateway_v1", "/injected")]
    with LocalServer(
        f"file:{VALUES_FILE}", clean_environment({"AWS_SESSION_TOKEN": TOKEN})
    ) as server:
        result = subprocess.run(
            [python, "-I", "-S", "-c", RUNNER, str(unzipped)],
            input=json.dumps(events),
            # As on Lambda: the function's name, its session token, the extension's port.
            env=clean_environment(
                {
                    "AWS_LAMBDA_FUNCTION_NAME": "package-test",
                    "AWS_SESSION_TOKEN": TOKEN,
                    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(server.port),
                }
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["version"] == [3, 12]
    assert report["outside"] == []  # every module came from the zip or the standard library
    assert any(path.endswith("cpython-312-x86_64-linux-gnu.so") for path in report["native"])
    statuses = [response["statusCode"] for response in report["responses"]]
    bodies = [json.loads(response["body"]) for response in report["responses"]]
    assert statuses == [200, 200], report["responses"]
    assert bodies == [
        {"user": "demo", "beta": True, "origins": 2},
        {"api_key_length": 24, "test_mode": True},
    ]


def test_zip_entries_are_sorted_and_dated_1980_so_a_rebuild_is_identical(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / "b").mkdir(parents=True)
    (staging / "b" / "module.py").write_text("x = 1\n")
    (staging / "a.py").write_text("y = 2\n")
    (staging / "bin").mkdir()
    (staging / "bin" / "script").write_text("#!/usr/bin/python3.11\n")
    first = lambda_package.write_zip(staging, tmp_path / "first.zip")
    os.utime(staging / "a.py", (0, 0))
    second = lambda_package.write_zip(staging, tmp_path / "second.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["a.py", "b/module.py"]  # bin/ left out
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_a_native_file_for_another_architecture_is_refused(tmp_path: Path) -> None:
    x86_64 = lambda_package.ARCHITECTURES["x86_64"].elf_machine
    header = b"\x7fELF\x02\x01\x01" + bytes(11) + x86_64.to_bytes(2, "little")
    (tmp_path / "native.so").write_bytes(header + bytes(100))
    (tmp_path / "pure.py").write_text("x = 1\n")
    assert lambda_package.wrong_architecture(tmp_path, "arm64") == ["native.so (x86_64)"]
    assert lambda_package.wrong_architecture(tmp_path, "x86_64") == []


def test_package_command_rejects_a_bad_python_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lambda_package.main(["--python-version", "312"])
    assert exit_info.value.code == 2
    assert "--python-version must look like 3.12, not '312'" in capsys.readouterr().err
