"""Build a deployable AWS Lambda zip of the FastAPI example, for the runtime, not this machine.

    python scripts/lambda_package.py [--python-version 3.12] [--arch x86_64|arm64] [--output PATH]
    (or: nox -s package -- --arch arm64)

The zip holds this project's wheel with its ``fastapi`` extra (FastAPI, Mangum and their
dependencies, nothing else: no Flask, no uvicorn), installed by pip for the target
(``--platform manylinux2014_<arch> --implementation cp --python-version X.Y
--only-binary=:all:``) and completed for the target's environment markers (pip evaluates
them for the Python that runs it), plus ``examples/__init__.py`` and
``examples/fastapi_app.py``: handler ``examples.fastapi_app.handler``. It leaves out what
Lambda never uses (console scripts in ``bin/``, bytecode compiled by this machine's
Python) and checks that every native library in it is built for the target architecture.
Entries are sorted and time-stamped 1980-01-01, so the same inputs give the same zip.

The defaults match ``examples/template.yaml`` (``Runtime`` python3.12, ``Architecture``
x86_64); its ``CodeUri`` is ``build/lambda.zip``.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON_VERSION = "3.12"
DEFAULT_ARCH = "x86_64"
DEFAULT_OUTPUT = ROOT / "build" / "lambda.zip"
# The extra that holds exactly what examples/fastapi_app.py imports besides this package.
EXTRA = "fastapi"
EXAMPLE_FILES = ("examples/__init__.py", "examples/fastapi_app.py")
PROJECT = "asgi-parameters-secrets"
# Each pass installs what the target's markers add; a chain longer than this is a bug.
MAX_MARKER_PASSES = 5


@dataclass(frozen=True)
class Architecture:
    """A Lambda architecture: pip's platform tag and the ELF machine of its native code."""

    platform: str
    elf_machine: int
    elf_name: str


# Lambda's names (as in the template's Architectures) -> manylinux2014 (glibc 2.17), which
# every Python runtime's Amazon Linux satisfies.
ARCHITECTURES = {
    "x86_64": Architecture("manylinux2014_x86_64", 62, "x86_64"),
    "arm64": Architecture("manylinux2014_aarch64", 183, "aarch64"),
}
ELF_MACHINES = {arch.elf_machine: arch.elf_name for arch in ARCHITECTURES.values()}

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_LEFT_OUT_DIRECTORIES = {"bin", "__pycache__"}


class PackageError(Exception):
    """The zip could not be built, or would not run on the target."""


def elf_machine(header: bytes) -> int | None:
    """The ``e_machine`` of an ELF file's first 20 bytes, or None if it is not ELF."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def _python_version(text: str) -> str:
    if not re.fullmatch(r"3\.\d{1,2}", text):
        raise argparse.ArgumentTypeError(f"--python-version must look like 3.12, not {text!r}")
    return text


def _files(directory: Path) -> Iterator[tuple[Path, str]]:
    """Every file under ``directory`` that goes into the zip, with its name in the zip."""
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_dir() or _LEFT_OUT_DIRECTORIES & set(relative.parts):
            continue
        if path.suffix == ".pyc":
            continue
        yield path, relative.as_posix()


def wrong_architecture(directory: Path, arch: str) -> list[str]:
    """The native files under ``directory`` that are not built for ``arch``."""
    wanted = ARCHITECTURES[arch].elf_machine
    wrong = []
    for path, name in _files(directory):
        with path.open("rb") as file:
            machine = elf_machine(file.read(20))
        if machine is not None and machine != wanted:
            wrong.append(f"{name} ({ELF_MACHINES.get(machine, f'ELF machine {machine}')})")
    return wrong


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackageError(f"{' '.join(argv[:5])} ... failed:\n{result.stdout}{result.stderr}")


def target_environment(python_version: str, arch: str) -> dict[str, str]:
    """The environment markers of a Lambda runtime (``Marker.evaluate`` fills in the rest)."""
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "platform_machine": ARCHITECTURES[arch].elf_name,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def installed_distributions(directory: Path) -> dict[str, Path]:
    """Each distribution installed in ``directory``: canonical name -> its ``.dist-info``."""
    found: dict[str, Path] = {}
    for dist_info in directory.glob("*.dist-info"):
        metadata = Parser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
        found[canonicalize_name(metadata["Name"])] = dist_info
    return found


def needed_distributions(
    directory: Path, root: Requirement, environment: dict[str, str]
) -> tuple[set[str], dict[str, Requirement]]:
    """Follow ``root``'s ``Requires-Dist`` through the metadata in ``directory``, with the
    target's markers: the installed distributions it needs, and what it needs that is not
    installed (by name, the specifiers of every requirer combined, without markers)."""
    installed = installed_distributions(directory)
    needed: set[str] = set()
    missing: dict[str, Requirement] = {}
    queue = [root]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        if name not in installed:
            known = missing.setdefault(name, Requirement(name))
            known.extras |= requirement.extras
            known.specifier &= requirement.specifier
            continue
        needed.add(name)
        metadata = Parser().parsestr((installed[name] / "METADATA").read_text(encoding="utf-8"))
        for line in metadata.get_all("Requires-Dist") or []:
            dependency = Requirement(line)
            extras = {"", *requirement.extras}
            marker = dependency.marker
            if marker is None or any(
                marker.evaluate({**environment, "extra": extra}) for extra in extras
            ):
                dependency.marker = None
                queue.append(dependency)
    return needed, missing


def _remove_distribution(directory: Path, dist_info: Path) -> None:
    """Delete the files a distribution's RECORD lists (within ``directory``), and its
    directories left empty."""
    with (dist_info / "RECORD").open(encoding="utf-8", newline="") as record:
        files = [directory / row[0] for row in csv.reader(record) if row]
    for file in files:
        if directory.resolve() in file.resolve().parents and file.is_file():
            file.unlink()
    for parent in sorted({f.parent for f in files}, key=lambda p: len(p.parts), reverse=True):
        if parent != directory and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def build_lambda_zip(
    output: Path = DEFAULT_OUTPUT,
    *,
    python_version: str = DEFAULT_PYTHON_VERSION,
    arch: str = DEFAULT_ARCH,
) -> Path:
    """Build the zip at ``output`` and return it.

    pip picks wheels for the target (``--platform``, ``--python-version``) but evaluates
    environment markers (``exceptiongroup; python_version < "3.11"``) for the Python that
    runs it. So after pip, the requirements are followed again with the target's markers:
    what the target needs and pip left out is installed (``--no-deps``, until nothing is
    missing), and what it installed for this machine only is removed.

    Args:
        output: Where to write the zip (its directory is created).
        python_version: The Lambda runtime's Python, e.g. ``"3.12"`` for ``python3.12``.
        arch: ``"x86_64"`` or ``"arm64"``, as in the template's ``Architectures``.

    Raises:
        PackageError: pip failed, or a native file is built for another architecture.
    """
    if arch not in ARCHITECTURES:
        raise PackageError(f"arch must be one of {sorted(ARCHITECTURES)}, not {arch!r}")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    environment = target_environment(python_version, arch)
    with tempfile.TemporaryDirectory(prefix="lambda-package-") as temporary:
        wheels, staging = Path(temporary, "wheels"), Path(temporary, "staging")
        _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)])
        (wheel,) = wheels.glob("*.whl")
        install = [
            *pip,
            "install",
            "--target",
            str(staging),
            "--platform",
            ARCHITECTURES[arch].platform,
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            # pip would compile bytecode with this machine's Python, not the runtime's.
            "--no-compile",
        ]
        _run([*install, f"{wheel}[{EXTRA}]"])
        root = Requirement(f"{PROJECT}[{EXTRA}]")
        for _ in range(MAX_MARKER_PASSES):
            needed, missing = needed_distributions(staging, root, environment)
            if not missing:
                break
            _run([*install, "--no-deps", *(str(r) for r in missing.values())])
        else:
            raise PackageError(f"still missing after {MAX_MARKER_PASSES} passes: {missing}")
        for name, dist_info in installed_distributions(staging).items():
            if name not in needed:
                _remove_distribution(staging, dist_info)
        for name in EXAMPLE_FILES:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / name, target)
        wrong = wrong_architecture(staging, arch)
        if wrong:
            raise PackageError(f"native files not built for {arch}: {', '.join(wrong)}")
        return write_zip(staging, output)


def write_zip(directory: Path, output: Path) -> Path:
    """Zip ``directory``'s files (not ``bin/``, ``__pycache__`` or ``.pyc``) into ``output``:
    sorted, dated 1980-01-01 and readable by all, so the same files give the same bytes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, name in _files(directory):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o100644 << 16  # a regular file, readable by the runtime
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(output)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--python-version",
        type=_python_version,
        default=DEFAULT_PYTHON_VERSION,
        help=f"the Lambda runtime's Python (default {DEFAULT_PYTHON_VERSION})",
    )
    parser.add_argument(
        "--arch",
        choices=sorted(ARCHITECTURES),
        default=DEFAULT_ARCH,
        help=f"the function's architecture (default {DEFAULT_ARCH})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the zip (default build/lambda.zip)",
    )
    args = parser.parse_args(argv)
    try:
        output = build_lambda_zip(args.output, python_version=args.python_version, arch=args.arch)
    except PackageError as exc:
        print(f"lambda_package: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(output) as archive:
        count = len(archive.namelist())
    size = output.stat().st_size
    runtime = f"python{args.python_version}"
    print(f"{output}: {size / 1e6:.1f} MB, {count} files, for {runtime} on {args.arch}")
    print(
        "deploy: sam deploy --guided --template-file examples/template.yaml"
        f" --parameter-overrides Runtime={runtime} Architecture={args.arch}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
