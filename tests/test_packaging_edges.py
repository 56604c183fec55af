"""The zip builder's edges that need no download (found by branch coverage): inputs it
refuses in one line before pip runs (``parameters-secrets package`` as its ``main``),
what it says after a build, how it treats an installed copy of this package, and the
check of the bytecode it compiled.

pip never runs here: ``_packaging._run`` fails the test if it is reached.
"""

from __future__ import annotations

import os
import py_compile
import sys
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

from parameters_secrets import _interpreters, _packaging

APP = "def handler(event, context):\n    return {'statusCode': 200}\n"


def _no_pip(argv: Sequence[str], failure: object) -> None:
    raise AssertionError(f"pip ran: {argv}")


@pytest.fixture
def in_app_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory: a folder holding ``myapp.py``; pip may not run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    monkeypatch.setattr(_packaging, "_run", _no_pip)
    return tmp_path


def refusal(
    argv: list[str], capsys: pytest.CaptureFixture[str], status: int = _packaging.EXIT_BAD_INPUT
) -> str:
    """The one line ``main(argv)`` says on stderr, having exited with ``status``."""
    assert _packaging.main([*argv, "--no-bytecode"]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"{_packaging.PROG}: "), line
    return line.removeprefix(f"{_packaging.PROG}: ")


# -- requirements files ----------------------------------------------------------------


def with_requirements(folder: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return ["--app", "myapp.py", "--requirements", "requirements.txt"]


def test_a_last_line_continued_with_a_backslash_is_still_read(
    in_app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The file ends inside a continuation: pip reads what is there, and so does the
    # builder (here, an editable install it refuses, named by the line it starts on).
    argv = with_requirements(in_app_folder, {"requirements.txt": "six\n-e ./lib \\"})
    line = refusal(argv, capsys)
    assert line.startswith(f"--requirements {in_app_folder.resolve()}/requirements.txt:2:")
    assert "an editable install ('-e ./lib') cannot go into a zip" in line


def test_requirements_files_that_include_each_other_are_read_once_each(
    in_app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a -> b -> a: followed once, then the rest of a is read (and its refusal found).
    argv = with_requirements(
        in_app_folder,
        {"requirements.txt": "-r other.txt\n-e ./lib\n", "other.txt": "-r requirements.txt\n"},
    )
    line = refusal(argv, capsys)
    assert line.startswith(f"--requirements {in_app_folder.resolve()}/requirements.txt:2:")
    assert "an editable install" in line


def test_an_include_by_url_is_refused(
    in_app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = with_requirements(
        in_app_folder, {"requirements.txt": "six\n-r https://example.com/requirements.txt\n"}
    )
    assert refusal(argv, capsys) == (
        f"--requirements {in_app_folder.resolve()}/requirements.txt:2:"
        " -r https://example.com/requirements.txt: an include by URL is not followed:"
        " save the file and name it"
    )


def test_a_missing_constraints_file_is_named(
    in_app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = with_requirements(in_app_folder, {"requirements.txt": "six\n-c constraints.txt\n"})
    assert refusal(argv, capsys) == (
        f"--requirements {in_app_folder.resolve()}/requirements.txt:2: -c constraints.txt:"
        f" no such file ({in_app_folder.resolve()}/constraints.txt)"
    )


def test_an_included_requirements_file_that_cannot_be_read_is_named(
    in_app_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_app_folder / "more").mkdir()  # a directory where a file is named
    argv = with_requirements(in_app_folder, {"requirements.txt": "-r more\n"})
    line = refusal(argv, capsys)
    assert line.startswith(f"--requirements {in_app_folder.resolve()}/requirements.txt:1: -r more:")
    assert line.endswith(f"cannot read {in_app_folder.resolve()}/more: Is a directory")


# -- the app's folder ------------------------------------------------------------------


@pytest.fixture
def app_package(in_app_folder: Path) -> Path:
    package = in_app_folder / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(APP, encoding="utf-8")
    return package


def test_a_broken_symlink_in_the_app_folder_is_named(
    app_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app_package / "settings.py").symlink_to("gone.py")
    assert refusal(["--app", "pkg"], capsys) == (
        "--app pkg: pkg/settings.py is a broken symlink (to gone.py)"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_in_the_app_folder_is_refused(
    app_package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(app_package / "events")
    assert refusal(["--app", "pkg"], capsys) == (
        "--app pkg: pkg/events is not a regular file, a directory or a symlink to one"
    )


def test_an_unknown_architecture_is_refused_by_the_python_api(tmp_path: Path) -> None:
    # The command line offers the two choices only; a caller of the function may pass any.
    with pytest.raises(_packaging.InputError) as caught:
        _packaging.build_lambda_zip(tmp_path / "lambda.zip", arch="sparc")
    assert str(caught.value) == "arch must be one of ['arm64', 'x86_64'], not 'sparc'"
    assert caught.value.exit_status == _packaging.EXIT_BAD_INPUT
    assert not (tmp_path / "lambda.zip").exists()


# -- what it says after a build --------------------------------------------------------


def _built(output: Path, bytecode: _packaging.Bytecode | None) -> _packaging.Build:
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w") as archive:
        archive.writestr("myapp.py", APP)
        archive.writestr("__pycache__/myapp.cpython-312.pyc", b"")
    return _packaging.Build(output, "myapp.handler", bytecode)


def test_the_report_names_the_bytecode_and_how_to_deploy_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interpreter = _interpreters.Interpreter(
        "/usr/bin/python3.12", "3.12.4", "cpython-312", b"\xcb\r\r\n"
    )
    output = tmp_path / "build" / "lambda.zip"

    def build(output_: Path | None, **options: object) -> _packaging.Build:
        assert options["app"] is None  # the example
        return _built(output, _packaging.Bytecode(interpreter, 1, ()))

    monkeypatch.setattr(_packaging, "build", build)
    assert _packaging.main(["--arch", "arm64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{output}: ")
    assert lines[0].endswith(", 2 files, for python3.12 on arm64")
    assert lines[1] == (
        "bytecode: 1 modules compiled by Python 3.12.4 (cpython-312, unchecked-hash) with"
        " /usr/bin/python3.12"
    )
    assert lines[2] == f"try it: parameters-secrets invoke {output} --handler myapp.handler"
    assert lines[3] == (
        "deploy: sam deploy --guided --template-file examples/template.yaml"
        " --parameter-overrides Runtime=python3.12 Architecture=arm64"
    )


def test_a_file_that_cannot_be_written_fails_the_build_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def build(output: Path | None, **options: object) -> _packaging.Build:
        raise PermissionError(13, "Permission denied", "build/lambda.zip")

    monkeypatch.setattr(_packaging, "build", build)
    assert refusal([], capsys, _packaging.EXIT_BUILD_FAILED) == (
        "the build failed: [Errno 13] Permission denied: 'build/lambda.zip'"
    )


# -- an installed copy of this package -------------------------------------------------


def test_an_installed_copy_is_not_taken_for_a_clone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "site-packages" / "parameters_secrets" / "_packaging.py"
    monkeypatch.setattr(_packaging, "__file__", str(installed))
    assert _packaging.find_checkout() is None  # no pyproject.toml above it
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n', encoding="utf-8")
    assert _packaging.find_checkout() is None  # another project's


def test_the_installed_distribution_is_this_project(tmp_path: Path) -> None:
    assert _packaging.installed_distribution().metadata["Name"] == _packaging.PROJECT


def test_an_install_that_lists_no_python_files_cannot_be_made_a_wheel(tmp_path: Path) -> None:
    # What an editable install outside a clone records: a .pth file and its .dist-info.
    dist_info = tmp_path / "asgi_parameters_secrets-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: asgi-parameters-secrets\nVersion: 0.1.0\n",
        encoding="utf-8",
    )
    (tmp_path / "__editable__.asgi_parameters_secrets-0.1.0.pth").write_text(
        "/somewhere/middleware\n", encoding="utf-8"
    )
    (dist_info / "RECORD").write_text(
        "__editable__.asgi_parameters_secrets-0.1.0.pth,,\n"
        f"{dist_info.name}/METADATA,,\n"
        f"{dist_info.name}/RECORD,,\n",
        encoding="utf-8",
    )
    with pytest.raises(_packaging.PackageError) as caught:
        _packaging.installed_wheel(tmp_path / "wheels", metadata.PathDistribution(dist_info))
    assert str(caught.value).startswith(
        "the installed asgi-parameters-secrets lists no files to make its wheel of"
    )
    assert "pip install 'asgi-parameters-secrets[package]'" in str(caught.value)
    assert not (tmp_path / "wheels").exists()


@pytest.mark.parametrize(
    ("implementation", "releaselevel", "used"),
    [("pypy", "final", False), ("cpython", "candidate", False), ("cpython", "final", True)],
)
def test_only_a_cpython_final_release_is_used_to_compile(
    tmp_path: Path, implementation: str, releaselevel: str, *, used: bool
) -> None:
    # Another's bytecode would not be the runtime's: PyPy's, or a pre-release's magic number.
    fake = tmp_path / "python3.12"
    fields = [implementation, "3.12.0", releaselevel, "cpython-312", "cb0d0d0a", str(fake)]
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' {' '.join(fields)}\n", encoding="utf-8")
    fake.chmod(0o755)
    described = _interpreters.describe_python(str(fake))
    if used:
        assert described == _interpreters.Interpreter(
            str(fake), "3.12.0", "cpython-312", bytes.fromhex("cb0d0d0a")
        )
    else:
        assert described is None


def test_no_interpreter_of_a_version_nobody_has_is_found() -> None:
    assert _interpreters.find_python("3.99") is None


# -- the bytecode check ----------------------------------------------------------------


@pytest.fixture
def this_python() -> _interpreters.Interpreter:
    interpreter = _interpreters.describe_python(sys.executable)
    if interpreter is None:  # a pre-release: the builder never compiles with one
        pytest.skip("this Python is not a CPython final release")
    return interpreter


def test_bytecode_left_timestamp_based_is_refused(
    tmp_path: Path, this_python: _interpreters.Interpreter
) -> None:
    # compileall keeps a .pyc whose timestamp matches its source: one already there (as
    # pip writes them) would be checked against the source's time on Lambda, and
    # compiled again on every cold start.
    source = tmp_path / "module.py"
    source.write_text("x = 1\n", encoding="utf-8")
    pyc = tmp_path / "__pycache__" / f"module.{this_python.cache_tag}.pyc"
    py_compile.compile(
        str(source),
        cfile=str(pyc),
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    with pytest.raises(_packaging.PackageError) as caught:
        _packaging.compile_bytecode(tmp_path, this_python)
    assert str(caught.value) == (
        f"__pycache__/module.{this_python.cache_tag}.pyc: not unchecked-hash bytecode"
    )


def test_bytecode_of_another_python_than_the_target_is_refused(
    tmp_path: Path, this_python: _interpreters.Interpreter
) -> None:
    # An interpreter that says it is the target but writes another magic number.
    (tmp_path / "module.py").write_text("x = 1\n", encoding="utf-8")
    claimed = _interpreters.Interpreter(
        this_python.path, this_python.version, this_python.cache_tag, b"\x00\x00\r\n"
    )
    with pytest.raises(_packaging.PackageError) as caught:
        _packaging.compile_bytecode(tmp_path, claimed)
    assert str(caught.value) == (
        f"__pycache__/module.{this_python.cache_tag}.pyc: magic number"
        f" {this_python.magic.hex()}, not 00000d0a of Python {this_python.version}"
    )


# -- builds (they download the target's wheels: nox -s package runs them) -------------------


@pytest.mark.network
def test_a_requirement_only_this_machines_python_wants_is_left_out_of_the_zip(
    tmp_path: Path,
) -> None:
    # pip evaluates the markers for the Python that runs it: on 3.11+ it installs six,
    # which the 3.10 target does not want; the builder removes it again.
    if sys.version_info < (3, 11):
        pytest.skip("the marker holds for the target here too")
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    (tmp_path / "requirements.txt").write_text("six; python_version >= '3.11'\n", encoding="utf-8")
    output = _packaging.build_lambda_zip(
        tmp_path / "lambda.zip",
        app=tmp_path / "myapp.py",
        requirements=tmp_path / "requirements.txt",
        python_version="3.10",
        bytecode=False,
    )
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
    assert "myapp.py" in names
    assert not [name for name in names if name.startswith(("six.py", "six-"))]


@pytest.mark.network
def test_files_that_do_not_compile_for_the_target_are_named_and_left_without_bytecode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _interpreters.find_python("3.12")
    if target is None:
        pytest.skip("no Python 3.12 here to compile with")
    app = tmp_path / "myapp"
    (app / "templates").mkdir(parents=True)
    # The handler bound by an annotated assignment: found, no warning about it.
    (app / "__init__.py").write_text(
        "handler: object = lambda event, context: {'statusCode': 200}\n", encoding="utf-8"
    )
    # Not Python (a template that happens to end in .py): no compiler reads it.
    (app / "templates" / "page.py").write_text("<p>{{ name }}</p>\n", encoding="utf-8")
    result = _packaging.build(tmp_path / "lambda.zip", app=app, python_version="3.12")
    assert result.bytecode is not None
    assert result.bytecode.not_compiled == ("myapp/templates/page.py",)
    said = capsys.readouterr().err
    assert (
        f"1 file(s) do not compile with Python {target.version} and have no bytecode:"
        " myapp/templates/page.py"
    ) in said
    assert "defines no name 'handler'" not in said
    with zipfile.ZipFile(result.output) as archive:
        names = archive.namelist()
    assert "myapp/templates/page.py" in names
    assert f"myapp/__pycache__/__init__.{target.cache_tag}.pyc" in names
