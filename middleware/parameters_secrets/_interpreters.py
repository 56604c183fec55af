"""The CPython interpreters on this machine, by version: the zip builder compiles the
target's bytecode with one, and ``parameters-secrets invoke`` runs a zip with one. Standard
library only (``invoke`` needs no extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Interpreter", "describe_python", "find_python"]


@dataclass(frozen=True)
class Interpreter:
    """A Python that compiles bytecode for the target: its path, version and bytecode."""

    path: str
    version: str  # e.g. "3.12.1"
    cache_tag: str  # e.g. "cpython-312": the .pyc file names Python looks for
    magic: bytes  # importlib.util.MAGIC_NUMBER: the first 4 bytes of its .pyc files


_DESCRIBE = (
    "import importlib.util, sys; "
    "print(sys.implementation.name, '%d.%d.%d' % sys.version_info[:3], "
    "sys.version_info.releaselevel, sys.implementation.cache_tag, "
    "importlib.util.MAGIC_NUMBER.hex(), sys.executable, sep='\\n')"
)


def describe_python(path: str) -> Interpreter | None:
    """``path`` as an :class:`Interpreter`, or None if it does not run."""
    fields = _described_fields(path)
    if fields is None:
        return None
    implementation, version, releaselevel, cache_tag, magic, executable = fields
    # Only CPython's final releases: a pre-release's magic number may differ from the
    # runtime's, and the runtime is CPython.
    if implementation != "cpython" or releaselevel != "final":
        return None
    # The interpreter itself, not a pyenv shim that picks it by the environment.
    return Interpreter(executable or path, version, cache_tag, bytes.fromhex(magic))


def _described_fields(path: str) -> list[str] | None:
    """The six lines ``_DESCRIBE`` prints when run by the interpreter ``path``; None if it
    does not run, or prints something else."""
    try:
        result = subprocess.run(  # noqa: S603 - an interpreter we found, running our code
            [path, "-I", "-c", _DESCRIBE], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    fields = result.stdout.splitlines()
    if result.returncode != 0 or len(fields) != 6:
        return None
    return fields


def find_python(version: str) -> Interpreter | None:
    """A CPython of ``version`` (``"3.12"``): ``pythonX.Y`` on ``PATH``, else pyenv's
    newest ``X.Y.*``. A pyenv shim on PATH that is not active does not run: it is skipped."""
    candidates: list[str | None] = [shutil.which(f"python{version}")]
    candidates.extend(_pyenv_pythons(version))
    for candidate in candidates:
        if candidate is None:
            continue
        interpreter = describe_python(candidate)
        if interpreter is not None and interpreter.version.rsplit(".", 1)[0] == version:
            return interpreter
    return None


def _pyenv_pythons(version: str) -> list[str]:
    """The interpreters of ``version`` (``"3.12"``) pyenv installed, newest patch first."""
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = [str(p) for p in Path(pyenv_root).glob(f"versions/{version}.*/bin/python{version}")]

    def patch(path: str) -> tuple[int, ...]:
        release = Path(path).parent.parent.name.split(".")
        return tuple(int(part) if part.isdigit() else -1 for part in release)

    return sorted(found, key=patch, reverse=True)
