"""The zip builder's failures as a user meets them: ``parameters-secrets package`` (as
``python -m parameters_secrets package``) run in a subprocess on inputs in a temporary
directory. Each one ends with a single line on stderr naming the problem and the file
(or the requirement), no traceback, and the exit status ``--help`` documents: 2 for a
bad input, 1 for a build that failed.

Every bad input here is refused before pip runs, so nothing is downloaded. The
requirement that exists nowhere is looked for in an empty ``--find-links`` directory
only (``--no-index`` in the requirements file), never on the index. The builds that get
past the first pip install (a requirement only the target's markers want, an unknown
extra, an external symlink accepted) need the target's wheels, as every build in
tests/test_package.py does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
# The command as installed, on this checkout's code.
BUILDER = (sys.executable, "-m", "parameters_secrets", "package")
ENVIRONMENT = {"PYTHONPATH": str(ROOT / "middleware")}
BAD_INPUT = 2
BUILD_FAILED = 1
# An app that imports nothing the builder would warn about.
APP = "def handler(event, context):\n    return {'statusCode': 200}\n"
# A distribution no index or directory holds.
NOWHERE = "no-such-distribution-for-lambda-package-tests"


def run_builder(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The builder run as a user runs it, from ``directory``, without bytecode."""
    return subprocess.run(
        [*BUILDER, *args, "--no-bytecode", "--output", "build/app.zip"],
        cwd=directory,
        env=clean_environment(ENVIRONMENT),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The one line the builder said on stderr, after checking there is nothing else:
    no traceback, nothing on stdout, and ``status``."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("parameters-secrets package: "), lines
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    return lines[0]


def write_app_package(directory: Path) -> Path:
    app = directory / "myapp"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text(APP, encoding="utf-8")
    return app


# -- requirements files ----------------------------------------------------------------


def test_a_missing_included_requirements_file_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    (tmp_path / "requirements.txt").write_text("six\n-r missing.txt\n", encoding="utf-8")
    line = refusal(
        run_builder(tmp_path, "--app", "myapp.py", "--requirements", "requirements.txt"),
        BAD_INPUT,
    )
    assert f"{tmp_path.resolve()}/requirements.txt:2: -r missing.txt: no such file" in line
    assert not (tmp_path / "build").exists()


def test_a_requirements_file_that_is_not_utf8_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    (tmp_path / "base.txt").write_bytes("six\n# café\n".encode("latin-1"))
    (tmp_path / "requirements.txt").write_text("-r base.txt\n", encoding="utf-8")
    line = refusal(
        run_builder(tmp_path, "--app", "myapp.py", "--requirements", "requirements.txt"),
        BAD_INPUT,
    )
    assert f"{tmp_path.resolve()}/base.txt:2: not UTF-8" in line
    assert not (tmp_path / "build").exists()


# -- symlinks in the app's folder ------------------------------------------------------


@pytest.mark.parametrize("kind", ["to the folder that holds it", "two links to each other"])
def test_a_symlink_loop_in_the_app_folder_is_named_in_one_line(tmp_path: Path, kind: str) -> None:
    app = write_app_package(tmp_path)
    if kind == "to the folder that holds it":
        (app / "data").mkdir()
        (app / "data" / "loop").symlink_to("..")
    else:
        (app / "data").mkdir()
        (app / "data" / "loop").symlink_to("other")
        (app / "data" / "other").symlink_to("loop")
    line = refusal(run_builder(tmp_path, "--app", "myapp"), BAD_INPUT)
    assert line.startswith("parameters-secrets package: --app myapp: myapp/data/")
    assert "symlink loop" in line
    assert not (tmp_path / "build").exists()


def _link_out_of_the_app(tmp_path: Path, kind: str) -> Path:
    """``myapp/shared`` links to a directory or a file beside the app, not in it."""
    app = write_app_package(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "settings.py").write_text("NAME = 'outside'\n", encoding="utf-8")
    if kind == "directory":
        (app / "shared").symlink_to(os.path.join("..", "outside"))
    else:
        (app / "shared.py").symlink_to(os.path.join("..", "outside", "settings.py"))
    return outside


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_symlink_out_of_the_app_folder_is_refused_naming_it(tmp_path: Path, kind: str) -> None:
    outside = _link_out_of_the_app(tmp_path, kind)
    link = "myapp/shared" if kind == "directory" else "myapp/shared.py"
    target = outside if kind == "directory" else outside / "settings.py"
    line = refusal(run_builder(tmp_path, "--app", "myapp"), BAD_INPUT)
    assert line.startswith(
        f"parameters-secrets package: --app myapp: {link} links to {target.resolve()},"
    )
    assert "outside the app's folder" in line
    assert "--follow-external-symlinks" in line
    assert not (tmp_path / "build").exists()


@pytest.mark.network
@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_symlink_out_of_the_app_folder_is_copied_with_the_flag(tmp_path: Path, kind: str) -> None:
    _link_out_of_the_app(tmp_path, kind)
    result = run_builder(tmp_path, "--app", "myapp", "--follow-external-symlinks")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    copied = "myapp/shared/settings.py" if kind == "directory" else "myapp/shared.py"
    with zipfile.ZipFile(tmp_path / "build" / "app.zip") as archive:
        assert archive.read(copied) == b"NAME = 'outside'\n"
        assert not [name for name in archive.namelist() if name.startswith("outside/")]


# -- requirements pip cannot install ---------------------------------------------------


@pytest.mark.network
def test_a_requirement_that_exists_nowhere_fails_the_build_naming_it(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    (tmp_path / "empty").mkdir()
    # Only the empty directory is searched: the test needs no index to see it missing.
    (tmp_path / "requirements.txt").write_text(
        f"--no-index\n--find-links empty\n{NOWHERE}>=1.0\n", encoding="utf-8"
    )
    line = refusal(
        run_builder(tmp_path, "--app", "myapp.py", "--requirements", "requirements.txt"),
        BUILD_FAILED,
    )
    assert f"requirements.txt: pip cannot install {NOWHERE}" in line
    assert not (tmp_path / "build").exists()


@pytest.mark.network
def test_a_requirement_only_the_target_python_needs_fails_the_build_naming_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    # Wanted on Python 3.10 only: when the builder runs on 3.11+, pip leaves it out and
    # the builder installs it for the target's markers afterwards.
    (tmp_path / "requirements.txt").write_text(
        f"{NOWHERE}; python_version < '3.11'\n", encoding="utf-8"
    )
    line = refusal(
        run_builder(
            tmp_path,
            "--app",
            "myapp.py",
            "--requirements",
            "requirements.txt",
            "--python-version",
            "3.10",
        ),
        BUILD_FAILED,
    )
    assert f"pip cannot install {NOWHERE}" in line
    assert "for python3.10 on x86_64" in line
    assert not (tmp_path / "build").exists()


@pytest.mark.network
def test_an_extra_the_distribution_does_not_provide_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP, encoding="utf-8")
    # pip only warns (and not at all with --quiet), and the zip would lack what the app
    # expected the extra to bring.
    (tmp_path / "requirements.txt").write_text("httpx[no-such-extra]\n", encoding="utf-8")
    line = refusal(
        run_builder(tmp_path, "--app", "myapp.py", "--requirements", "requirements.txt"),
        BAD_INPUT,
    )
    assert f"--requirements {tmp_path.resolve()}/requirements.txt: httpx" in line
    assert "has no extra 'no-such-extra'" in line
    assert not (tmp_path / "build").exists()


def test_help_documents_the_exit_statuses() -> None:
    result = subprocess.run(
        [*BUILDER, "--help"],
        env=clean_environment(ENVIRONMENT),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = " ".join(result.stdout.split())
    assert "exit status: 0 built, 1 the build failed (" in text
    assert "), 2 a bad input (" in text
    assert "--follow-external-symlinks" in text
