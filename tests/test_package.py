"""The deployable zip (``nox -s package``, ``scripts/_packaging.py``): built for the
Lambda runtime and architecture, not for this machine, holding exactly the dependency
closure of the FastAPI example or of your own app (``--app``, ``--requirements``), and
the bytecode of the runtime's Python.

The python3.12 / x86_64 zips are unzipped read-only (as ``/var/task`` is) and their
handler imported by a real Python 3.12 (``-I -S``: nothing but the zip and the standard
library on ``sys.path``, as on Lambda), then invoked through Mangum, against the local
extension-compatible server (the example) or a values file (the apps); the runner counts
the modules of the zip that Python compiled from source. The arm64 zip cannot run here:
its wheels' tags and every native file's ELF machine are checked instead.

Each build downloads the target's wheels (a few seconds once pip's cache holds them).
What needs an interpreter of the target's Python skips, and only when none is installed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from parameters_secrets import _interpreters, _packaging
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

# Run by the target Python: import the handler's module from the unzipped directory alone,
# invoke the handler with each event on stdin, and report the responses, where every
# module came from, and which of the zip's modules Python compiled from source (none, when
# it uses the zip's bytecode).
RUNNER = r"""
import importlib, importlib._bootstrap_external as external, json, sys, sysconfig, time
compiled = []
_source_to_code = external.SourceLoader.source_to_code
def source_to_code(self, data, path, *args, **kwargs):
    compiled.append(path)
    return _source_to_code(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = source_to_code
sys.path.insert(0, sys.argv[1])
app = importlib.import_module(sys.argv[2])

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
    "from_zip": [f for f in files if f.startswith(sys.argv[1])],
    "compiled_from_source": [f for f in compiled if f.startswith(sys.argv[1])],
}))
"""


def target_python() -> str:
    """The path of a Python 3.12, or skip the test."""
    interpreter = _interpreters.find_python(TARGET_PYTHON)
    if interpreter is None:
        pytest.skip(f"no Python {TARGET_PYTHON} here to import the zip with")
    return interpreter.path


def unzip_read_only(archive_path: Path, directory: Path) -> Path:
    """Unpack as Lambda does into ``/var/task``: read-only. The files get the time of the
    unpacking, not the build's. (Root ignores the mode: the runner also runs with ``-B``.)"""
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(directory)
    for path in [directory, *directory.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    return directory


def run_handler(
    python: str, task: Path, module: str, events: Sequence[dict[str, Any]], env: dict[str, str]
) -> dict[str, Any]:
    """Import ``module`` from the unpacked ``task`` with ``python -I -S -B`` and invoke its
    handler with each event; the runner's report."""
    try:
        result = subprocess.run(
            [python, "-I", "-S", "-B", "-c", RUNNER, str(task), module],
            input=json.dumps(list(events)),
            env=env,
            cwd=task.parent,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:  # so that pytest can remove it
        for path in [task, *task.rglob("*")]:
            path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


# The zips built (once for the module): Python 3.12 on each architecture, and Python 3.10,
# whose markers differ from 3.12's (anyio needs exceptiongroup before 3.11).
TARGETS = [(TARGET_PYTHON, "x86_64"), (TARGET_PYTHON, "arm64"), ("3.10", "x86_64")]
Target = tuple[str, str]


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[Target, Path]:
    directory = tmp_path_factory.mktemp("zips")
    return {
        (python, arch): _packaging.build_lambda_zip(
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


def _closure(
    archive: zipfile.ZipFile, python: str, arch: str, roots: Iterable[str] | None = None
) -> set[str]:
    """The distributions ``roots`` (default ``asgi-parameters-secrets[fastapi]``) require
    on the target, from the metadata in the zip itself (a missing one fails here)."""
    dist_infos = _dist_infos(archive)
    # Marker.evaluate() fills in the rest from this interpreter.
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": _packaging.ARCHITECTURES[arch].elf_name,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    wanted = [
        (canonicalize_name(requirement.name), frozenset(requirement.extras))
        for requirement in map(
            Requirement, roots or [f"asgi-parameters-secrets[{_packaging.EXTRA}]"]
        )
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


def _without_bytecode(names: Iterable[str]) -> set[str]:
    return {name for name in names if not name.endswith(".pyc")}


def assert_nothing_names_the_build_directory(archive: zipfile.ZipFile) -> None:
    """No file records the build's random temporary directory (pip's direct_url.json for
    the wheel built there did): the same inputs give the same zip."""
    # tempfile's names: the prefix and 8 random characters (the builder's own source,
    # in the zip too, holds the prefix alone).
    named = re.compile(rb"lambda-package-[a-z0-9_]{8}")
    assert not [n for n in archive.namelist() if named.search(archive.read(n))]
    assert not [n for n in archive.namelist() if n.endswith("direct_url.json")]


@pytest.mark.network
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
        # Every file belongs to an installed distribution (its RECORD) or is the example,
        # but the bytecode compiled for the target.
        recorded = {file for _, files in _files_by_distribution(archive) for file in files}
        examples = {name for name in _without_bytecode(names) if name.startswith("examples/")}
        assert examples == set(_packaging.EXAMPLE_FILES)
        assert _without_bytecode(names) - examples <= recorded
        assert_nothing_names_the_build_directory(archive)
    assert not any(name.startswith("bin/") for name in names)


def assert_bytecode_for_every_module(
    archive: zipfile.ZipFile, interpreter: _interpreters.Interpreter
) -> None:
    """Every ``.py`` in the zip has ``__pycache__/NAME.<cache tag>.pyc`` beside it with
    ``interpreter``'s magic number, unchecked-hash; no other bytecode is there."""
    names = set(archive.namelist())
    sources = sorted(name for name in names if name.endswith(".py"))
    expected = {
        f"{os.path.dirname(name)}/__pycache__/{os.path.basename(name)[:-3]}."
        f"{interpreter.cache_tag}.pyc".lstrip("/")
        for name in sources
    }
    assert sources
    assert {name for name in names if name.endswith(".pyc")} == expected
    for name in expected:
        with archive.open(name) as file:
            header = file.read(8)
        assert header[:4] == interpreter.magic, name
        assert int.from_bytes(header[4:8], "little") == 0b01, name  # hash-based, unchecked


@pytest.mark.network
@pytest.mark.parametrize(("python", "arch"), TARGETS)
def test_zip_holds_bytecode_of_its_python_for_every_module(
    zips: dict[Target, Path], python: str, arch: str
) -> None:
    interpreter = _interpreters.find_python(python)
    if interpreter is None:
        pytest.skip(f"no Python {python} here: the zip has no bytecode")
    # The magic number as that interpreter itself reports it, not as the builder read it.
    magic = subprocess.run(
        [interpreter.path, "-I", "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert interpreter.magic.hex() == magic
    assert interpreter.cache_tag == f"cpython-{python.replace('.', '')}"
    with zipfile.ZipFile(zips[python, arch]) as archive:
        assert_bytecode_for_every_module(archive, interpreter)
        assert f"examples/__pycache__/fastapi_app.{interpreter.cache_tag}.pyc" in archive.namelist()


def _native_machines(archive: zipfile.ZipFile) -> dict[str, int]:
    machines: dict[str, int] = {}
    for name in archive.namelist():
        with archive.open(name) as file:
            machine = _packaging.elf_machine(file.read(20))
        if machine is not None:
            machines[name] = machine
    return machines


@pytest.mark.network
def test_markers_are_those_of_the_target_python_not_of_the_python_that_builds(
    zips: dict[Target, Path],
) -> None:
    # pip alone would follow the builder's markers: a 3.12 zip built by 3.10 would hold
    # exceptiongroup, and a 3.10 zip built by 3.11+ would lack it (an ImportError on Lambda).
    assert "exceptiongroup" in distributions_in(zips["3.10", "x86_64"])
    assert "exceptiongroup" not in distributions_in(zips[TARGET_PYTHON, "x86_64"])


@pytest.mark.network
@pytest.mark.parametrize(("python", "arch"), TARGETS)
def test_zip_holds_only_wheels_for_its_python_and_architecture_or_pure_ones(
    zips: dict[Target, Path], python: str, arch: str
) -> None:
    target = _packaging.ARCHITECTURES[arch]
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


@pytest.mark.network
def test_zip_for_python_3_12_on_x86_64_runs_its_handler_on_python_3_12_through_mangum(
    zips: dict[Target, Path], tmp_path: Path
) -> None:
    python = target_python()
    task = unzip_read_only(zips[TARGET_PYTHON, "x86_64"], tmp_path / "task")
    events = [make_event("http_api_v2", "/"), make_event("api_gateway_v1", "/injected")]
    with LocalServer(
        f"file:{VALUES_FILE}", clean_environment({"AWS_SESSION_TOKEN": TOKEN})
    ) as server:
        # As on Lambda: the function's name, its session token, the extension's port.
        env = clean_environment(
            {
                "AWS_LAMBDA_FUNCTION_NAME": "package-test",
                "AWS_SESSION_TOKEN": TOKEN,
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(server.port),
            }
        )
        report = run_handler(python, task, "examples.fastapi_app", events, env)
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
    # Every module of the zip came from its bytecode, although the unpacked sources are
    # newer than the build: nothing was compiled on this "cold start".
    assert len(report["from_zip"]) > 100
    assert report["compiled_from_source"] == []


# -- your own app ---------------------------------------------------------------------

APP_VALUES = {
    "parameters": {"/my-app/greeting": {"value": "hello from the file"}},
    "secrets": {"my-app/db": {"json": {"username": "app-user", "password": "pw-app-5Hq"}}},
}
# A FastAPI app as a user writes it; dateutil is what only the app needs.
APP_MODULE = """
from dateutil.parser import isoparse
from fastapi import FastAPI, Request
from mangum import Mangum

from parameters_secrets import Parameter, ParametersSecretsMiddleware, Secret

app = FastAPI()
app.add_middleware(
    ParametersSecretsMiddleware,
    values={
        "greeting": Parameter("/my-app/greeting"),
        "db": Secret("my-app/db", transform="json"),
    },
)


@app.get("/")
async def index(request: Request) -> dict[str, object]:
    return {
        "greeting": request.state.greeting,
        "user": request.state.db["username"],
        "year": isoparse("2024-05-06T07:08:09Z").year,
    }


handler = Mangum(app, lifespan="off")
"""
APP_REQUIREMENTS = "fastapi\nmangum>=0.21\npython-dateutil\n"
# The same app as a package: the handler in __init__.py, the routes in a submodule; its
# requirements name this project's extra (the builder installs the local wheel for it).
APP_PACKAGE = {
    "__init__.py": "from .routes import handler\n\n__all__ = ['handler']\n",
    "routes.py": APP_MODULE,
}
APP_PACKAGE_REQUIREMENTS = (
    "# what myapp/ imports besides the standard library\n"
    f"asgi-parameters-secrets[{_packaging.EXTRA}]\n"
    "python-dateutil>=2.8  # dates\n"
)
APP_ROOTS = {
    "module": ["asgi-parameters-secrets", "fastapi", "mangum", "python-dateutil"],
    "package": [f"asgi-parameters-secrets[{_packaging.EXTRA}]", "python-dateutil"],
}
APP_FILES = {
    "module": {"myapp.py"},
    "package": {"myapp/__init__.py", "myapp/routes.py"},
}


def write_app(directory: Path, kind: str) -> tuple[Path, Path]:
    """The app ``kind`` (``module`` or ``package``) and its requirements file."""
    directory.mkdir(parents=True, exist_ok=True)
    requirements = directory / "requirements.txt"
    if kind == "module":
        app = directory / "myapp.py"
        app.write_text(APP_MODULE, encoding="utf-8")
        requirements.write_text(APP_REQUIREMENTS, encoding="utf-8")
    else:
        app = directory / "myapp"
        app.mkdir()
        for name, text in APP_PACKAGE.items():
            (app / name).write_text(text, encoding="utf-8")
        # This machine's bytecode in the source tree is never packaged.
        (app / "__pycache__").mkdir()
        (app / "__pycache__" / "routes.cpython-311.pyc").write_bytes(b"not for the zip")
        requirements.write_text(APP_PACKAGE_REQUIREMENTS, encoding="utf-8")
    return app, requirements


@pytest.fixture(scope="module")
def app_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    built = {}
    for kind in ("module", "package"):
        directory = tmp_path_factory.mktemp(f"app-{kind}")
        app, requirements = write_app(directory / "src", kind)
        built[kind] = _packaging.build_lambda_zip(
            directory / "lambda.zip",
            app=app,
            requirements=requirements,
            python_version=TARGET_PYTHON,
            arch="x86_64",
        )
    return built


@pytest.mark.network
@pytest.mark.parametrize("kind", ["module", "package"])
def test_app_zip_holds_the_app_at_its_root_and_exactly_its_requirements_closure(
    app_zips: dict[str, Path], kind: str
) -> None:
    with zipfile.ZipFile(app_zips[kind]) as archive:
        names = _without_bytecode(archive.namelist())
        distributions = set(_dist_infos(archive))
        assert distributions == _closure(archive, TARGET_PYTHON, "x86_64", APP_ROOTS[kind])
        assert {"python-dateutil", "asgi-parameters-secrets", "fastapi", "mangum"} <= (
            distributions
        )
        assert "dateutil/parser/isoparser.py" in names
        assert not distributions & NEVER_IN_THE_ZIP
        recorded = {file for _, files in _files_by_distribution(archive) for file in files}
        assert names - recorded == APP_FILES[kind]  # the app, at the root, and nothing else
        assert_nothing_names_the_build_directory(archive)
        assert not any(name.startswith(("examples/", "bin/")) for name in names)


@pytest.mark.network
@pytest.mark.parametrize("kind", ["module", "package"])
def test_app_zip_holds_python_3_12_bytecode_for_the_app_and_every_dependency(
    app_zips: dict[str, Path], kind: str
) -> None:
    interpreter = _interpreters.find_python(TARGET_PYTHON)
    if interpreter is None:
        pytest.skip(f"no Python {TARGET_PYTHON} here: the zip has no bytecode")
    with zipfile.ZipFile(app_zips[kind]) as archive:
        assert_bytecode_for_every_module(archive, interpreter)
        names = set(archive.namelist())
    app_bytecode = {
        "module": {"__pycache__/myapp.cpython-312.pyc"},
        "package": {
            "myapp/__pycache__/__init__.cpython-312.pyc",
            "myapp/__pycache__/routes.cpython-312.pyc",
        },
    }
    assert app_bytecode[kind] <= names
    assert "myapp/__pycache__/routes.cpython-311.pyc" not in names


@pytest.mark.network
@pytest.mark.parametrize("kind", ["module", "package"])
def test_app_zip_answers_200_on_python_3_12_from_a_read_only_copy(
    app_zips: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    python = target_python()
    task = unzip_read_only(app_zips[kind], tmp_path / "task")
    values = tmp_path / "values.json"
    values.write_text(json.dumps(APP_VALUES), encoding="utf-8")
    env = clean_environment({"PARAMETERS_SECRETS_SOURCE": f"file:{values}"})
    events = [make_event("http_api_v2", "/"), make_event("api_gateway_v1", "/")]
    report = run_handler(python, task, "myapp", events, env)
    assert report["version"] == [3, 12]
    assert report["outside"] == []
    assert [response["statusCode"] for response in report["responses"]] == [200, 200]
    assert json.loads(report["responses"][0]["body"]) == {
        "greeting": "hello from the file",
        "user": "app-user",
        "year": 2024,
    }
    assert any("/dateutil/" in path for path in report["from_zip"])
    assert report["compiled_from_source"] == []


# -- bad inputs: one line each, before anything is built -------------------------------


def _package_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], status: int = _packaging.EXIT_BAD_INPUT
) -> str:
    assert _packaging.main(argv) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--app", "missing.py"],
            "parameters-secrets package: --app missing.py: no such file or directory",
        ),
        (
            ["--app", "notes.txt"],
            "parameters-secrets package: --app notes.txt: not a Python module (.py) or a package"
            " directory (with an __init__.py)",
        ),
        (
            ["--app", "plain"],
            "parameters-secrets package: --app plain: a directory must be a Python package (with an"
            " __init__.py)",
        ),
        (
            ["--app", "my-app.py"],
            "parameters-secrets package: --app my-app.py: 'my-app' is not an importable name"
            " (use a-z, 0-9, _)",
        ),
        (
            ["--app", "myapp.py", "--requirements", "missing.txt"],
            "parameters-secrets package: --requirements missing.txt: no such file",
        ),
        (
            ["--app", "myapp.py", "--requirements", "plain"],
            "parameters-secrets package: --requirements plain: not a file",
        ),
        (
            ["--requirements", "requirements.txt"],
            "parameters-secrets package: --requirements goes with --app (the example's"
            " requirements are this project's fastapi extra)",
        ),
        (
            ["--app", "myapp.py", "--requirements", "editable.txt"],
            "parameters-secrets package: --requirements {tmp}/editable.txt:2: an editable install"
            " ('-e ./lib') cannot go into a zip: name the distribution instead",
        ),
        (
            ["--app", "myapp.py", "--requirements", "hashed.txt"],
            "parameters-secrets package: --requirements {tmp}/hashed.txt:1: hash-checking (--hash,"
            " --require-hashes) is not supported: this package's wheel is built here and has"
            " no hash to pin; list the requirements without hashes",
        ),
        (
            ["--app", "myapp.py", "--requirements", "unreadable.txt"],
            "parameters-secrets package: --requirements {tmp}/unreadable.txt:1: cannot read"
            " 'https://example.com/lib.whl' as a requirement (write a URL or a path as"
            " 'name @ URL')",
        ),
    ],
)
def test_bad_inputs_are_refused_in_one_line(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myapp.py").write_text(APP_MODULE, encoding="utf-8")
    (tmp_path / "my-app.py").write_text(APP_MODULE, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not code\n", encoding="utf-8")
    (tmp_path / "plain").mkdir()
    (tmp_path / "requirements.txt").write_text(APP_REQUIREMENTS, encoding="utf-8")
    (tmp_path / "editable.txt").write_text("fastapi\n-e ./lib\n", encoding="utf-8")
    (tmp_path / "hashed.txt").write_text(
        "mangum==0.22.0 \\\n    --hash=sha256:0000\n", encoding="utf-8"
    )
    (tmp_path / "unreadable.txt").write_text("https://example.com/lib.whl\n", encoding="utf-8")
    # Refused before pip runs: nothing is built, nothing is written.
    monkeypatch.setattr(_packaging, "_run", _no_pip)
    monkeypatch.setattr(_packaging, "find_python", _no_python_needed)
    assert _package_error(argv, capsys) == message.format(tmp=tmp_path.resolve())
    assert not (tmp_path / "build").exists()


def _no_pip(argv: Sequence[str], failure: object) -> None:
    raise AssertionError(f"pip ran: {argv}")


def _no_python_needed(version: str) -> None:
    raise AssertionError("looked for an interpreter before checking the inputs")


@pytest.mark.network
def test_requirements_pip_cannot_satisfy_for_the_target_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myapp.py").write_text(APP_MODULE, encoding="utf-8")
    # This project needs httpx>=0.27: no httpx satisfies both.
    (tmp_path / "requirements.txt").write_text("httpx<0.20\n", encoding="utf-8")
    line = _package_error(
        ["--app", "myapp.py", "--requirements", "requirements.txt", "--no-bytecode"],
        capsys,
        _packaging.EXIT_BUILD_FAILED,
    )
    assert line.startswith(
        f"parameters-secrets package: --requirements {tmp_path.resolve()}/requirements.txt:"
        " pip cannot install it for python3.12 on x86_64: "
    )
    assert "httpx" in line
    assert not (tmp_path / "build").exists()


def test_requirements_are_read_for_the_target_python(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text(
        "--index-url https://pypi.org/simple\n"
        "fastapi>=0.110 \\\n"
        "    --config-settings=editable_mode=compat  # an option for pip\n"
        "tomli; python_version < '3.11'\n",
        encoding="utf-8",
    )
    (tmp_path / "constraints.txt").write_text("fastapi<1000\n", encoding="utf-8")  # pip's to read
    (tmp_path / "requirements.txt").write_text(
        "# the app\n-r base.txt\n-c constraints.txt\nmangum[extra]>=0.21\n\n"
        "exceptiongroup ; python_version<'3.11' and platform_machine=='aarch64'\n"
        "pkg @ https://example.com/pkg-1.0-py3-none-any.whl\n",
        encoding="utf-8",
    )

    def roots(python: str, arch: str) -> list[str]:
        environment = _packaging.target_environment(python, arch)
        found = _packaging.requirement_roots(tmp_path / "requirements.txt", environment)
        assert all(requirement.marker is None for requirement in found)
        return [
            f"{r.name}{sorted(r.extras) or ''}{r.specifier}{' @ ' + r.url if r.url else ''}"
            for r in found
        ]

    url = "pkg @ https://example.com/pkg-1.0-py3-none-any.whl"
    assert roots("3.12", "arm64") == ["fastapi>=0.110", "mangum['extra']>=0.21", url]
    assert roots("3.10", "x86_64") == ["fastapi>=0.110", "tomli", "mangum['extra']>=0.21", url]
    assert roots("3.10", "arm64") == [
        "fastapi>=0.110",
        "tomli",
        "mangum['extra']>=0.21",
        "exceptiongroup",
        url,
    ]


def test_app_imports_that_nothing_in_the_zip_provides_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging = tmp_path / "staging"
    (staging / "fastapi").mkdir(parents=True)
    (staging / "fastapi" / "__init__.py").write_text("")
    (staging / "typing_extensions.py").write_text("")
    (staging / "pydantic_core").mkdir()
    (staging / "pydantic_core" / "_pydantic_core.cpython-312-x86_64-linux-gnu.so").write_text("")
    app = tmp_path / "src" / "myapp.py"
    app.parent.mkdir()
    app.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            import json, os.path
            import fastapi.routing
            from typing_extensions import Annotated
            from mangum import Mangum
            try:
                import orjson
            except ImportError:
                orjson = None
            from . import nothing
            """
        ),
        encoding="utf-8",
    )
    _packaging._add_app(_packaging.check_app(app), staging)
    err = capsys.readouterr().err
    assert "myapp.py imports mangum, which is neither in the zip nor in the standard library" in (
        err
    )
    assert "imports orjson" in err
    assert sorted(line.split(" imports ")[1].split(",")[0] for line in err.splitlines()[:-1]) == [
        "mangum",
        "orjson",
    ]
    assert "defines no name 'handler'" in err.splitlines()[-1]
    assert (staging / "myapp.py").read_text(encoding="utf-8") == app.read_text(encoding="utf-8")


def test_an_app_named_like_a_dependency_is_refused(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / "fastapi").mkdir(parents=True)
    app = tmp_path / "src" / "fastapi.py"
    app.parent.mkdir()
    app.write_text("handler = None\n")
    with pytest.raises(_packaging.PackageError, match="already holds a module named 'fastapi'"):
        _packaging._add_app(_packaging.check_app(app), staging)


# -- bytecode --------------------------------------------------------------------------


def test_bytecode_is_unchecked_hash_of_the_target_python_and_the_same_from_any_directory(
    tmp_path: Path,
) -> None:
    interpreter = _interpreters.find_python(TARGET_PYTHON)
    if interpreter is None:
        pytest.skip(f"no Python {TARGET_PYTHON} here to compile with")
    outputs = []
    for build in ("first", "second"):
        staging = tmp_path / build / "staging"
        (staging / "package").mkdir(parents=True)
        (staging / "package" / "__init__.py").write_text("from .module import x\n")
        (staging / "package" / "module.py").write_text("x = 1\n")
        (staging / "broken.py").write_text("def (:\n")  # compiles nowhere: reported, not fatal
        (staging / "data.txt").write_text("not Python\n")
        bytecode = _packaging.compile_bytecode(staging, interpreter)
        assert (bytecode.compiled, bytecode.not_compiled) == (2, ("broken.py",))
        outputs.append(
            _packaging.write_zip(
                staging, tmp_path / build / "lambda.zip", cache_tag=interpreter.cache_tag
            )
        )
    # Compiled from different temporary directories, the same bytes: the path compiled
    # in is /var/task's, and the bytecode holds no time.
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    with zipfile.ZipFile(outputs[0]) as archive:
        assert sorted(archive.namelist()) == [
            "broken.py",
            "data.txt",
            "package/__init__.py",
            f"package/__pycache__/__init__.{interpreter.cache_tag}.pyc",
            f"package/__pycache__/module.{interpreter.cache_tag}.pyc",
            "package/module.py",
        ]
        header = archive.read(f"package/__pycache__/module.{interpreter.cache_tag}.pyc")[:8]
    assert header[:4] == interpreter.magic
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_without_an_interpreter_of_the_target_python_the_build_says_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_packaging, "find_python", lambda version: None)
    assert _packaging.bytecode_interpreter("3.13", bytecode=True) is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "parameters-secrets package: no Python 3.13 here (python3.13 on PATH or pyenv's)"
    )
    assert "the zip has no bytecode" in err[0]
    assert _packaging.NO_BYTECODE_COST in err[0]
    # Asked for none: nothing to say.
    assert _packaging.bytecode_interpreter("3.13", bytecode=False) is None
    assert capsys.readouterr().err == ""


def test_find_python_skips_an_interpreter_of_another_version(tmp_path: Path) -> None:
    interpreter = _interpreters.find_python(TARGET_PYTHON)
    if interpreter is None:
        pytest.skip(f"no Python {TARGET_PYTHON} here")
    described = _interpreters.describe_python(interpreter.path)
    assert described == interpreter
    assert _interpreters.describe_python(str(tmp_path / "python3.12")) is None


# -- the zip itself --------------------------------------------------------------------


def test_zip_entries_are_sorted_and_dated_1980_so_a_rebuild_is_identical(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / "b" / "__pycache__").mkdir(parents=True)
    (staging / "b" / "module.py").write_text("x = 1\n")
    (staging / "b" / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"this machine's")
    (staging / "a.py").write_text("y = 2\n")
    (staging / "bin").mkdir()
    (staging / "bin" / "script").write_text("#!/usr/bin/python3.11\n")
    first = _packaging.write_zip(staging, tmp_path / "first.zip")
    os.utime(staging / "a.py", (0, 0))
    second = _packaging.write_zip(staging, tmp_path / "second.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        # bin/ left out, and bytecode but the target's (none asked for here)
        assert archive.namelist() == ["a.py", "b/module.py"]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    third = _packaging.write_zip(staging, tmp_path / "third.zip", cache_tag="cpython-312")
    with zipfile.ZipFile(third) as archive:
        assert archive.namelist() == ["a.py", "b/module.py"]


def test_a_native_file_for_another_architecture_is_refused(tmp_path: Path) -> None:
    x86_64 = _packaging.ARCHITECTURES["x86_64"].elf_machine
    header = b"\x7fELF\x02\x01\x01" + bytes(11) + x86_64.to_bytes(2, "little")
    (tmp_path / "native.so").write_bytes(header + bytes(100))
    (tmp_path / "pure.py").write_text("x = 1\n")
    assert _packaging.wrong_architecture(tmp_path, "arm64") == ["native.so (x86_64)"]
    assert _packaging.wrong_architecture(tmp_path, "x86_64") == []


def test_package_command_rejects_a_bad_python_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _packaging.main(["--python-version", "312"])
    assert exit_info.value.code == 2
    assert "--python-version must look like 3.12, not '312'" in capsys.readouterr().err


# -- the road of a pip user: the wheel made from an installed copy, the zip tried here ----


@pytest.mark.network
def test_an_installed_copy_builds_the_same_zip_as_the_checkout(
    app_zips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The zip's own staging is an install (pip --target): the wheel is made again from
    # its RECORD, as for a user who installed the package from PyPI, with no clone.
    installed = tmp_path / "site-packages"
    with zipfile.ZipFile(app_zips["module"]) as archive:
        archive.extractall(installed)
    (dist_info,) = installed.glob("asgi_parameters_secrets-*.dist-info")
    monkeypatch.setattr(_packaging, "ROOT", None)
    monkeypatch.setattr(
        _packaging, "installed_distribution", lambda: metadata.PathDistribution(dist_info)
    )
    app, requirements = write_app(tmp_path / "src", "module")
    rebuilt = _packaging.build_lambda_zip(
        tmp_path / "lambda.zip",
        app=app,
        requirements=requirements,
        python_version=TARGET_PYTHON,
        arch="x86_64",
    )
    assert rebuilt.read_bytes() == app_zips["module"].read_bytes()


def test_without_a_clone_the_example_is_refused_and_an_app_is_needed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_packaging, "ROOT", None)
    monkeypatch.setattr(_packaging, "_run", _no_pip)
    line = _package_error(["--no-bytecode"], capsys)
    assert line.startswith("parameters-secrets package: --app is needed: the FastAPI example")


def invoke(archive: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``parameters-secrets invoke`` as a user runs it, on this checkout's code."""
    return subprocess.run(
        [sys.executable, "-m", "parameters_secrets", "invoke", str(archive), *args],
        env=clean_environment({"PYTHONPATH": str(ROOT / "middleware"), **environ}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.network
@pytest.mark.parametrize("event", ["apigw-v2", "apigw-v1", "alb", "function-url", "file"])
def test_invoke_runs_the_example_zip_and_prints_its_200(
    zips: dict[Target, Path], event: str, tmp_path: Path
) -> None:
    target_python()
    if event == "file":
        path = tmp_path / "event.json"
        path.write_text(json.dumps(make_event("http_api_v2", "/")), encoding="utf-8")
        event = str(path)
    result = invoke(
        zips[TARGET_PYTHON, "x86_64"],
        "--event",
        event,
        PARAMETERS_SECRETS_SOURCE=f"file:{VALUES_FILE}",
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)  # the response alone on stdout
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"user": "demo", "beta": True, "origins": 2}


@pytest.mark.network
def test_invoke_finds_the_app_handler_and_runs_it_from_the_zip_alone(
    app_zips: dict[str, Path], tmp_path: Path
) -> None:
    target_python()
    values = tmp_path / "values.json"
    values.write_text(json.dumps(APP_VALUES), encoding="utf-8")
    result = invoke(app_zips["package"], PARAMETERS_SECRETS_SOURCE=f"file:{values}")
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["user"] == "app-user"
    # A handler that raises: exit status 1, its traceback on stderr.
    failed = invoke(app_zips["package"], "--handler", "myapp.no_such_name")
    assert failed.returncode == 1
    assert "AttributeError" in failed.stderr


def test_invoke_refuses_a_bad_input_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "not-a.zip").write_text("text\n", encoding="utf-8")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("one.py", "handler = None\n")
        archive.writestr("two.py", "handler = None\n")
    cases = {
        ("missing.zip",): "missing.zip: no such file",
        ("not-a.zip",): "not-a.zip: not a zip file",
        ("two.zip",): "cannot tell the handler from the zip (top-level modules of its own:"
        " one, two): give it as --handler MODULE.NAME",
        ("two.zip", "--event", "nope.json"): "--event nope.json: not one of apigw-v2,",
    }
    for args, message in cases.items():
        result = invoke(tmp_path / args[0], *args[1:])
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"parameters-secrets invoke: {tmp_path / message}") or (
            line.startswith(f"parameters-secrets invoke: {message}")
        ), line
