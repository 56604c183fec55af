"""One HTTP client: ``parameters_secrets._http`` imports ``httpx2`` when it is installed
(Starlette 1.2+'s choice for its test client), else ``httpx``; every other module of the
package takes it from there. Checked in fresh interpreters, with ``httpx2`` made
unimportable (a ``None`` entry in ``sys.modules``) or, where it is installed, not."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "middleware" / "parameters_secrets"


def client_picked(block_httpx2: bool) -> str:
    code = (
        "import sys; sys.modules['httpx2'] = None\n" if block_httpx2 else ""
    ) + "from parameters_secrets._http import httpx\nprint(httpx.__name__)"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        # This checkout first, then what the caller adds (httpx2 in a --target directory).
        env=clean_environment(
            {
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "middleware"), os.environ.get("PYTHONPATH", "")]
                )
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout.strip()


def test_without_httpx2_the_package_uses_httpx() -> None:
    assert client_picked(block_httpx2=True) == "httpx"


def test_with_httpx2_installed_the_package_uses_it() -> None:
    if importlib.util.find_spec("httpx2") is None:
        pytest.skip("httpx2 is not installed here (nox -s tests_httpx2 installs it)")
    assert client_picked(block_httpx2=False) == "httpx2"


def test_only_the_http_module_imports_a_client() -> None:
    importing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^\s*(import httpx|from httpx)", path.read_text(encoding="utf-8"), re.M)
    )
    assert importing == ["_http.py"]
