"""``parameters-secrets package``: build a deployable AWS Lambda zip of your app (or of the
FastAPI example), for the runtime, not this machine.

    parameters-secrets package [--app PATH [--requirements FILE]]
        [--python-version 3.12] [--arch x86_64|arm64] [--output ZIP] [--no-bytecode]
        [--follow-external-symlinks]
    (needs the ``package`` extra: pip install 'asgi-parameters-secrets[package]';
    in a clone: nox -s package -- --app myapp.py --requirements requirements.txt)

Imported only by that command (``import parameters_secrets`` and ``serve`` never load it),
as it needs ``packaging`` and pip, which a Lambda function does not.

``--app`` is a module file (``myapp.py``) or a package directory (``myapp/``, with an
``__init__.py``): it goes at the zip's root, so its handler is ``myapp.handler``. The zip
holds this package's wheel plus the distributions the requirements file names, with
their dependencies. This package's wheel is built from the checkout it runs from (a
clone, installed editable), else made again from the installed distribution's files
(its ``RECORD``): what the zip holds is what is installed here. Without ``--app`` (in a
clone only) the zip is the FastAPI example: this project's wheel with its ``fastapi``
extra (FastAPI, Mangum and their dependencies, nothing else: no Flask, no uvicorn) plus
``examples/__init__.py`` and ``examples/fastapi_app.py``, handler
``examples.fastapi_app.handler``.

A bad input (the app, its requirements file or one it includes, a symlink loop or a
symlink out of the app's folder) is refused in one line on stderr with exit status 2,
before pip runs; a build that fails (pip cannot install a requirement) exits with 1.

pip installs the wheels built for the target (``--platform manylinux2014_<arch>
--implementation cp --python-version X.Y --only-binary=:all:``), and the builder
completes them for the target's environment markers (pip evaluates them for the Python
that runs it). It leaves out what Lambda never uses (console scripts in ``bin/``,
bytecode compiled by this machine's Python) and checks that every native library in it
is built for the target architecture.

Lambda's ``/var/task`` is read-only: Python cannot cache the bytecode it compiles there,
so a zip without bytecode for the runtime's exact Python compiles every module it
imports on every cold start. When an interpreter of the target version is installed
(``python3.12`` on ``PATH``, or pyenv's), it compiles every ``.py`` in the zip into
``__pycache__/*.cpython-312.pyc``; otherwise the build says what the zip lacks.
Entries are sorted and time-stamped 1980-01-01 and the bytecode depends on the sources
alone, so the same inputs give the same zip.

The defaults match ``examples/template.yaml`` (``Runtime`` python3.12, ``Architecture``
x86_64); its ``CodeUri`` is ``build/lambda.zip``.
"""

from __future__ import annotations

import argparse
import ast
import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ._interpreters import Interpreter, find_python

PROG = "parameters-secrets package"
PROJECT = "asgi-parameters-secrets"


def find_checkout() -> Path | None:
    """The clone this package runs from (``middleware/parameters_secrets/`` in it, its
    ``pyproject.toml`` naming this project), or None for an installed copy."""
    root = Path(__file__).resolve().parents[2]
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if re.search(rf'^name = "{PROJECT}"$', text, re.MULTILINE) else None


ROOT = find_checkout()
DEFAULT_PYTHON_VERSION = "3.12"
DEFAULT_ARCH = "x86_64"
# Where an app's zip goes by default: relative to the directory the build runs in.
DEFAULT_APP_OUTPUT = Path("build") / "lambda.zip"
# The example's: in the clone, where examples/template.yaml's CodeUri points.
DEFAULT_OUTPUT = ROOT / DEFAULT_APP_OUTPUT if ROOT is not None else DEFAULT_APP_OUTPUT
# The extra that holds exactly what examples/fastapi_app.py imports besides this package.
EXTRA = "fastapi"
EXAMPLE_FILES = ("examples/__init__.py", "examples/fastapi_app.py")
EXAMPLE_HANDLER = "examples.fastapi_app.handler"
# Each pass installs what the target's markers add; a chain longer than this is a bug.
MAX_MARKER_PASSES = 5
# Where Lambda unpacks the zip: the path compiled into the bytecode (tracebacks read the
# real path anyway), so that it does not depend on the temporary directory of the build.
TASK_ROOT = "/var/task"
# What the example's cold import costs without bytecode, measured by
# benchmarks/bench_bytecode.py (Python 3.12.1, x86_64, 2 CPUs: 0.33 s with, 0.79 s
# without, medians of 15 interleaved runs): said when the zip has none.
NO_BYTECODE_COST = (
    "the FastAPI example's import takes 2.4x as long, about 0.45 s more, in"
    " benchmarks/bench_bytecode.py"
)


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
# What is never copied from an app's directory: this machine's bytecode.
_APP_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
# The flags word of a hash-based .pyc whose source is never checked (PEP 552).
UNCHECKED_HASH_FLAGS = 0b01


# The builder's exit statuses (its --help says them too); argparse's own usage errors
# are 2 as well.
EXIT_BUILD_FAILED = 1
EXIT_BAD_INPUT = 2


class PackageError(Exception):
    """The zip could not be built, or would not run on the target."""

    exit_status = EXIT_BUILD_FAILED


class InputError(PackageError):
    """A bad input: the app, its requirements or an option (refused before pip runs)."""

    exit_status = EXIT_BAD_INPUT


@dataclass(frozen=True)
class App:
    """The code to package: a module file or a package directory, by its import name."""

    path: Path
    name: str
    # A package's files to copy: each file (symlinks followed) and its path in the package.
    files: tuple[tuple[Path, str], ...] = ()

    @property
    def is_package(self) -> bool:
        return self.path.is_dir()

    @property
    def label(self) -> str:
        return f"{self.name}/" if self.is_package else f"{self.name}.py"

    def sources(self) -> list[Path]:
        """The app's own ``.py`` files."""
        if not self.is_package:
            return [self.path]
        return [path for path, name in self.files if name.endswith(".py")]


@dataclass(frozen=True)
class Bytecode:
    """What the bytecode step did: by which interpreter, how many files, which failed."""

    interpreter: Interpreter
    compiled: int
    not_compiled: tuple[str, ...]


@dataclass(frozen=True)
class Build:
    """A built zip and what went into it."""

    output: Path
    handler: str
    bytecode: Bytecode | None


def elf_machine(header: bytes) -> int | None:
    """The ``e_machine`` of an ELF file's first 20 bytes, or None if it is not ELF."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def _python_version(text: str) -> str:
    if not re.fullmatch(r"3\.\d{1,2}", text):
        raise argparse.ArgumentTypeError(f"--python-version must look like 3.12, not {text!r}")
    return text


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _files(directory: Path, cache_tag: str | None = None) -> Iterator[tuple[Path, str]]:
    """Every file under ``directory`` that goes into the zip, with its name in the zip:
    bytecode only in ``__pycache__`` and only for ``cache_tag`` (none without one)."""
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_dir() and _goes_in_zip(relative, cache_tag):
            yield path, relative.as_posix()


def _goes_in_zip(relative: Path, cache_tag: str | None) -> bool:
    """Whether the file at ``relative`` goes into the zip: not in ``bin/`` or
    ``__pycache__/``, nor bytecode, but for the bytecode of ``cache_tag``."""
    if cache_tag is not None and _is_bytecode_for(relative, cache_tag):
        return True
    return not _LEFT_OUT_DIRECTORIES & set(relative.parts) and relative.suffix != ".pyc"


def _is_bytecode_for(relative: Path, cache_tag: str) -> bool:
    return (
        len(relative.parts) >= 2
        and relative.parts[-2] == "__pycache__"
        and relative.name.endswith(f".{cache_tag}.pyc")
        and not _LEFT_OUT_DIRECTORIES & set(relative.parts[:-2])
    )


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


def _run(argv: Sequence[str], failure: Callable[[str | None], str]) -> None:
    """Run pip; if it fails, a one-line ``PackageError``: ``failure`` (given the
    requirement pip found nothing for, if that is why) and pip's error."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackageError(f"{failure(_not_found(result))}: {_pip_error(result)}")


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


# -- inputs ----------------------------------------------------------------------------


def check_app(path: Path, *, follow_external_symlinks: bool = False) -> App:
    """The app at ``path`` with the files it holds, or a one-line ``InputError`` saying
    why it cannot be one (for a package: see :func:`package_files` for its symlinks)."""
    if not path.exists():
        raise InputError(f"--app {path}: no such file or directory")
    if not path.is_dir():
        return App(path.resolve(), _module_name(path))
    name = _package_name(path)
    files = package_files(path, name, follow_external_symlinks=follow_external_symlinks)
    return App(path.resolve(), name, tuple(files))


def _module_name(path: Path) -> str:
    """The import name of the module file ``path``, or a one-line ``InputError``."""
    if path.suffix != ".py":
        raise InputError(
            f"--app {path}: not a Python module (.py) or a package directory (with an __init__.py)"
        )
    return _importable(path, path.stem)


def _package_name(path: Path) -> str:
    """The import name of the package directory ``path``, or a one-line ``InputError``."""
    if not (path / "__init__.py").is_file():
        raise InputError(
            f"--app {path}: a directory must be a Python package (with an __init__.py)"
        )
    return _importable(path, path.resolve().name)


def _importable(path: Path, name: str) -> str:
    """``name``, if ``import`` can find the app at ``path`` by it."""
    if not name.isidentifier():
        raise InputError(f"--app {path}: {name!r} is not an importable name (use a-z, 0-9, _)")
    return name


def package_files(
    path: Path, name: str, *, follow_external_symlinks: bool = False
) -> list[tuple[Path, str]]:
    """Each file of the package directory ``path`` that goes into the zip, with its name
    there (``name/...``), sorted; never this machine's bytecode.

    A symlink is followed (its target is copied) when it stays in the package; one that
    leads out of it is refused unless ``follow_external_symlinks``: it may bring in what
    was never meant to ship (a home directory, a secrets folder). A symlink loop, a
    broken symlink or a special file (a pipe, a socket) is refused in one line.
    """
    root = path.resolve()
    found: list[tuple[Path, str]] = []
    # (directory, its name in the zip, the real paths of it and the directories above it)
    pending: list[tuple[Path, str, tuple[Path, ...]]] = [(path, name, (root,))]
    while pending:
        directory, prefix, above = pending.pop()
        # Closed when a refusal leaves it half read, not left to a finalizer's warning.
        with os.scandir(directory) as entries:
            for entry in entries:
                if _APP_IGNORED(directory, [entry.name]):
                    continue
                entry_path, entry_name = Path(entry.path), f"{prefix}/{entry.name}"

                def refuse(problem: str, shown: str = entry_name) -> InputError:
                    return InputError(f"--app {path}: {shown} {problem}")

                real = _real_path(
                    entry, root, refuse, follow_external_symlinks=follow_external_symlinks
                )
                if real.is_dir():
                    if real in above:
                        raise refuse(f"is a symlink loop: it leads back to {real}, which holds it")
                    pending.append((entry_path, entry_name, (*above, real)))
                elif real.is_file():
                    found.append((entry_path, entry_name))
                else:
                    raise refuse("is not a regular file, a directory or a symlink to one")
    return sorted(found, key=lambda item: item[1])


def _real_path(
    entry: os.DirEntry[str],
    root: Path,
    refuse: Callable[[str], InputError],
    *,
    follow_external_symlinks: bool,
) -> Path:
    """Where a directory entry of the app leads: a symlink's target must stay in ``root``
    unless ``follow_external_symlinks``."""
    if not entry.is_symlink():
        return Path(entry.path).resolve()
    real = _symlink_target(Path(entry.path), refuse)
    if not follow_external_symlinks and not _is_within(real, root):
        raise refuse(
            f"links to {real}, outside the app's folder: copy what it needs"
            " into the app, or pass --follow-external-symlinks to copy its target"
        )
    return real


def _symlink_target(link: Path, refuse: Callable[[str], InputError]) -> Path:
    """Where ``link`` leads in the end, or the ``InputError`` ``refuse`` makes."""
    try:
        return link.resolve(strict=True)
    except FileNotFoundError:
        raise refuse(f"is a broken symlink (to {link.readlink()})") from None
    except (OSError, RuntimeError):
        # ELOOP, or before Python 3.13 pathlib's own RuntimeError("Symlink loop ...")
        raise refuse(f"is a symlink loop (it links to {link.readlink()})") from None


def _is_within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_requirements(path: Path) -> Path:
    """``path`` if it is a file, else a one-line ``PackageError``."""
    if not path.exists():
        raise InputError(f"--requirements {path}: no such file")
    if not path.is_file():
        raise InputError(f"--requirements {path}: not a file")
    return path.resolve()


_OPTION_AFTER_REQUIREMENT = re.compile(r"\s+--?[A-Za-z]")
_COMMENT = re.compile(r"(^|\s+)#.*$")


def _read_requirements(path: Path, where: str) -> str:
    """The text of the requirements file ``path``, or a one-line ``InputError``:
    ``where`` names what asked for it (``--requirements FILE`` or ``FILE:LINE: -r NAME``)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{where}: no such file ({path})") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")  # a byte order mark as some editors write it
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"--requirements {path}:{line}: not UTF-8 (byte {data[exc.start]:#04x}): save the"
            " file as UTF-8"
        ) from None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """A requirements file's lines as pip reads them: continuations joined, comments
    dropped, with the number of the line each starts on."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            yield start, line
    if pending.strip():
        yield start, _COMMENT.sub("", pending).strip()


_INCLUDE = re.compile(r"(-r|--requirement|-c|--constraint)(?:\s*=?\s*)(\S+)$")


def requirement_roots(
    path: Path,
    environment: dict[str, str],
    _seen: frozenset[Path] = frozenset(),
    _where: str | None = None,
) -> list[Requirement]:
    """What a requirements file asks for on the target, markers evaluated for it (and
    dropped), following ``-r`` includes; a ``-c`` constraints file must exist, but its
    contents and pip's options are pip's to read."""
    path = path.resolve()
    if path in _seen:
        return []
    roots: list[Requirement] = []
    text = _read_requirements(path, _where or f"--requirements {path}")
    for number, line in _logical_lines(text):
        roots += _line_roots(path, number, line, environment, _seen | {path})
    return roots


def _line_roots(
    path: Path, number: int, line: str, environment: dict[str, str], seen: frozenset[Path]
) -> list[Requirement]:
    """What the logical line ``number`` of the requirements file ``path`` asks for on the
    target: an include's requirements, or its own requirement if its marker applies."""
    include = _INCLUDE.match(line)
    if include:
        option, name = include.groups()
        where = f"--requirements {path}:{number}: {option} {name}"
        return _included_roots(path.parent, include, where, environment, seen)
    requirement = _line_requirement(line, f"--requirements {path}:{number}")
    if requirement is not None and _applies(requirement, environment):
        return [requirement]
    return []


def _included_roots(
    directory: Path,
    include: re.Match[str],
    where: str,
    environment: dict[str, str],
    seen: frozenset[Path],
) -> list[Requirement]:
    """What an ``-r`` include asks for; a ``-c`` include is only checked to exist."""
    option, name = include.groups()
    if "://" in name:
        raise InputError(f"{where}: an include by URL is not followed: save the file and name it")
    included = directory / name
    if option in {"-r", "--requirement"}:
        return requirement_roots(included, environment, seen, where)
    if not included.is_file():
        raise InputError(f"{where}: no such file ({included})")
    return []


def _line_requirement(line: str, where: str) -> Requirement | None:
    """The requirement one logical line names, or None for a pip option pip reads itself;
    what cannot go into a zip is refused."""
    if re.match(r"(?:-e|--editable)\b", line):
        raise InputError(
            f"{where}: an editable install ({line!r}) cannot go into a zip: name the"
            " distribution instead"
        )
    if re.search(r"(^|\s)--(hash|require-hashes)\b", line):
        # pip would then want a hash for this project's wheel too, which is built here.
        raise InputError(
            f"{where}: hash-checking (--hash, --require-hashes) is not supported: this"
            " package's wheel is built here and has no hash to pin; list the requirements"
            " without hashes"
        )
    if line.startswith("-"):
        return None  # --index-url, -c constraints.txt, --find-links...: pip reads them
    text = _OPTION_AFTER_REQUIREMENT.split(line, 1)[0]  # "name --config-settings=..."
    try:
        return Requirement(text)
    except InvalidRequirement:
        raise InputError(
            f"{where}: cannot read {text!r} as a requirement (write a URL or a path as"
            " 'name @ URL')"
        ) from None


def _applies(
    requirement: Requirement, environment: dict[str, str], extras: Iterable[str] = ()
) -> bool:
    """Whether the target needs ``requirement`` (its marker evaluated for the target, with
    no extra or one of ``extras``); its marker is dropped, having been read."""
    marker = requirement.marker
    if marker is None or any(
        marker.evaluate({**environment, "extra": extra}) for extra in {"", *extras}
    ):
        requirement.marker = None
        return True
    return False


# -- dependencies ----------------------------------------------------------------------


def _metadata(dist_info: Path) -> Message:
    """An installed distribution's ``METADATA``."""
    return Parser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))


def installed_distributions(directory: Path) -> dict[str, Path]:
    """Each distribution installed in ``directory``: canonical name -> its ``.dist-info``."""
    found: dict[str, Path] = {}
    for dist_info in directory.glob("*.dist-info"):
        metadata = _metadata(dist_info)
        found[canonicalize_name(metadata["Name"])] = dist_info
    return found


def needed_distributions(
    directory: Path, roots: Requirement | Iterable[Requirement], environment: dict[str, str]
) -> tuple[set[str], dict[str, Requirement]]:
    """Follow ``roots``' ``Requires-Dist`` through the metadata in ``directory``, with the
    target's markers: the installed distributions they need, and what they need that is
    not installed (by name, the specifiers of every requirer combined, without markers)."""
    installed = installed_distributions(directory)
    needed: set[str] = set()
    missing: dict[str, Requirement] = {}
    queue = [roots] if isinstance(roots, Requirement) else list(roots)
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        if name not in installed:
            _combine_missing(missing.setdefault(name, Requirement(name)), requirement)
            continue
        needed.add(name)
        queue += _dependencies(installed[name], requirement.extras, environment)
    return needed, missing


def _combine_missing(known: Requirement, requirement: Requirement) -> None:
    """Adds to what is known to be missing what one more requirer asks of it."""
    known.extras |= requirement.extras
    known.specifier &= requirement.specifier
    known.url = known.url or requirement.url


def _dependencies(
    dist_info: Path, extras: set[str], environment: dict[str, str]
) -> list[Requirement]:
    """The ``Requires-Dist`` of an installed distribution that the target needs with
    ``extras`` (markers evaluated and dropped)."""
    lines = _metadata(dist_info).get_all("Requires-Dist") or []
    dependencies = [Requirement(line) for line in lines]
    return [dependency for dependency in dependencies if _applies(dependency, environment, extras)]


def _remove_distribution(directory: Path, dist_info: Path) -> None:
    """Delete the files a distribution's RECORD lists (within ``directory``), and its
    directories left empty."""
    files = _recorded_files(directory, dist_info)
    for file in files:
        if directory.resolve() in file.resolve().parents and file.is_file():
            file.unlink()
    _remove_empty_directories(directory, {file.parent for file in files})


def _recorded_files(directory: Path, dist_info: Path) -> list[Path]:
    """The files an installed distribution's RECORD lists, as paths under ``directory``."""
    with (dist_info / "RECORD").open(encoding="utf-8", newline="") as record:
        return [directory / row[0] for row in csv.reader(record) if row]


def _remove_empty_directories(directory: Path, parents: set[Path]) -> None:
    """Remove those of ``parents`` (below ``directory``) left empty, deepest first."""
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if parent != directory and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _forget_wheel_path(directory: Path, temporary: Path) -> None:
    """Drop the ``direct_url.json`` (PEP 610) pip wrote for a wheel it installed from
    ``temporary`` (this project's, built here), and its RECORD row: it names a random
    directory, which would make every build's zip differ. Lambda never reads it."""
    prefix = temporary.resolve().as_uri()
    for dist_info in directory.glob("*.dist-info"):
        direct_url = dist_info / "direct_url.json"
        if not direct_url.is_file():
            continue
        if json.loads(direct_url.read_text(encoding="utf-8")).get("url", "").startswith(prefix):
            direct_url.unlink()
            _drop_record_row(dist_info, f"{dist_info.name}/direct_url.json")


def _drop_record_row(dist_info: Path, name: str) -> None:
    """Rewrite an installed distribution's RECORD without the row of the file ``name``."""
    record = dist_info / "RECORD"
    with record.open(encoding="utf-8", newline="") as file:
        rows = [row for row in csv.reader(file) if row and row[0] != name]
    with record.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)


def top_level_names(directory: Path) -> set[str]:
    """The names ``import`` finds at the top of ``directory``: packages (namespace ones
    too), modules and extension modules."""
    names = set()
    for path in directory.iterdir():
        if path.is_dir():
            if _is_package_directory(path):
                names.add(path.name)
        elif path.suffix in {".py", ".so", ".pyd"}:
            names.add(path.name.split(".", 1)[0])
    return names


def _is_package_directory(path: Path) -> bool:
    """Whether a directory at the top of an install is one ``import`` finds: not a
    distribution's metadata or data, nor the scripts or the bytecode cache."""
    return (
        not path.name.endswith((".dist-info", ".data")) and path.name not in _LEFT_OUT_DIRECTORIES
    )


def imported_names(sources: Iterable[Path]) -> dict[str, Path]:
    """The top-level modules ``sources`` import absolutely -> the first file importing each."""
    found: dict[str, Path] = {}
    for source in sources:
        try:
            tree = ast.parse(source.read_bytes(), filename=str(source))
        except SyntaxError:
            continue  # newer syntax than this Python's, maybe: the target's compiler says
        for node in ast.walk(tree):
            for module in _absolute_imports(node):
                found.setdefault(module.split(".", 1)[0], source)
    return found


def _absolute_imports(node: ast.AST) -> list[str]:
    """The modules an ``import`` or ``from ... import`` statement imports absolutely."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def _defines_handler(app: App) -> bool:
    source = app.path / "__init__.py" if app.is_package else app.path
    try:
        tree = ast.parse(source.read_bytes())
    except SyntaxError:
        return True  # nothing to say about a file this Python cannot read
    return "handler" in {name for node in tree.body for name in _bound_names(node)}


def _bound_names(node: ast.stmt) -> list[str]:
    """The module-level names a top-level statement binds: by assignment, ``def`` or
    ``from ... import``."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.name]
    if isinstance(node, ast.ImportFrom):
        return [alias.asname or alias.name for alias in node.names]
    return [target.id for target in _assigned(node) if isinstance(target, ast.Name)]


def _assigned(node: ast.stmt) -> list[ast.expr]:
    """What an assignment statement (annotated or not) assigns to; nothing for another."""
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, ast.AnnAssign):
        return [node.target]
    return []


# -- bytecode --------------------------------------------------------------------------


def bytecode_interpreter(python_version: str, *, bytecode: bool = True) -> Interpreter | None:
    """The interpreter to compile with, if ``bytecode`` is wanted; when there is none, say
    once what the zip lacks and what that costs."""
    if not bytecode:
        return None
    interpreter = find_python(python_version)
    if interpreter is None:
        _say(
            f"no Python {python_version} here (python{python_version} on PATH or pyenv's):"
            f" the zip has no bytecode, so Lambda compiles every module it imports on every"
            f" cold start ({NO_BYTECODE_COST}); install Python {python_version} and build"
            " again to include it"
        )
    return interpreter


def compile_bytecode(directory: Path, interpreter: Interpreter) -> Bytecode:
    """Compile every ``.py`` under ``directory`` with ``interpreter``, into the
    ``__pycache__/NAME.<cache_tag>.pyc`` files it reads, and check their magic number.

    Unchecked-hash bytecode (PEP 552), because Python on Lambda then loads it without
    looking at the source:

    - Timestamp-based bytecode records the source's modification time and size, and
      Python compiles again when the file it finds has another time. Lambda's copy has
      the zip entry's time (1980-01-01 here, read in whatever time zone the unpacker
      assumes), not the one this build saw: every module would be compiled again on
      every cold start, and not saved (/var/task is read-only), which is the very cost
      this step removes. tests/test_package.py sees it: built timestamp-based, the
      unpacked zip compiled each of its ~300 imported modules from source.
    - Checked-hash bytecode would be used, but only after reading and hashing every
      source on every import.
    - A deployed zip never changes, and this build compiles the very bytes it zips: there
      is nothing to check. The bytecode also depends on the sources alone (no times, and
      the path compiled in is /var/task's), so the same inputs still give the same zip.
    """
    command = [
        interpreter.path,
        "-I",  # no PYTHONPYCACHEPREFIX or other variables of this machine
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",  # not timestamp, nor checked-hash: see the docstring
        # The name compiled in: where Lambda unpacks the zip, not this temporary directory.
        "-s",
        str(directory),
        "-p",
        TASK_ROOT,
        str(directory),
    ]
    # A file that does not compile for the target (a template, code for another Python)
    # makes compileall exit 1; it is reported below, as it would fail on Lambda too if
    # imported, but it is no reason to refuse the zip.
    subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    compiled = 0
    not_compiled = []
    for path, name in _files(directory):
        if path.suffix != ".py":
            continue
        pyc = path.parent / "__pycache__" / f"{path.stem}.{interpreter.cache_tag}.pyc"
        if not pyc.is_file():
            not_compiled.append(name)
            continue
        _check_bytecode(pyc, directory, interpreter)
        compiled += 1
    return Bytecode(interpreter, compiled, tuple(not_compiled))


def _check_bytecode(pyc: Path, directory: Path, interpreter: Interpreter) -> None:
    """Refuse a ``.pyc`` (under ``directory``) that ``interpreter`` would not load without
    its source: another magic number, or not unchecked-hash."""
    with pyc.open("rb") as file:
        header = file.read(8)
    if header[:4] != interpreter.magic:
        raise PackageError(
            f"{pyc.relative_to(directory)}: magic number {header[:4].hex()}, not"
            f" {interpreter.magic.hex()} of Python {interpreter.version}"
        )
    if int.from_bytes(header[4:8], "little") != UNCHECKED_HASH_FLAGS:
        raise PackageError(f"{pyc.relative_to(directory)}: not unchecked-hash bytecode")


# -- the build -------------------------------------------------------------------------


def _pip_error(result: subprocess.CompletedProcess[str]) -> str:
    """Pip's first ``ERROR:`` line that says what failed, on one line."""
    lines = (result.stderr + result.stdout).splitlines()
    for line in lines:
        if _is_cause(line):
            return line.removeprefix("ERROR:").strip()
    return next((line.strip() for line in reversed(lines) if line.strip()), "pip failed")


def _is_cause(line: str) -> bool:
    """Whether a line of pip's output is an ``ERROR:`` line that says what failed."""
    # "Ignored the following yanked versions" comes first, and says nothing of the cause.
    return line.startswith("ERROR:") and not line.startswith("ERROR: Ignored the following")


def _not_found(result: subprocess.CompletedProcess[str]) -> str | None:
    """The requirement pip found no distribution for, if that is why it failed."""
    missing = r"^ERROR: No matching distribution found for (\S+)"
    found = re.search(missing, result.stderr, re.MULTILINE)
    return found.group(1) if found else None


def _cannot_install(default: str, for_target: str) -> Callable[[str | None], str]:
    """What to say when pip fails to install ``default``: the requirement pip found
    nothing for, if that is why, else ``default``."""
    return lambda name: f"pip cannot install {name or default} {for_target}"


def _unknown_extras(directory: Path, roots: Iterable[Requirement]) -> list[str]:
    """``roots``' extras that the distribution installed in ``directory`` does not
    provide, as ``"name version has no extra 'x'"``: pip only warns about them."""
    installed = installed_distributions(directory)
    unknown = []
    for root in roots:
        dist_info = installed.get(canonicalize_name(root.name))
        if dist_info is not None and root.extras:
            unknown += _extras_not_provided(dist_info, root.extras)
    return unknown


def _extras_not_provided(dist_info: Path, extras: set[str]) -> list[str]:
    """Those of ``extras`` the installed distribution does not provide, each said."""
    metadata = _metadata(dist_info)
    provided = {canonicalize_name(extra) for extra in metadata.get_all("Provides-Extra") or []}
    return [
        f"{metadata['Name']} {metadata['Version']} has no extra {extra!r}"
        for extra in sorted(extras)
        if canonicalize_name(extra) not in provided
    ]


@dataclass(frozen=True)
class _Plan:
    """What to build, its inputs checked: the app (None: the example), what the zip
    must hold (``roots``, with the target's markers), its handler and where it goes."""

    app: App | None
    requirements: Path | None
    roots: list[Requirement]
    handler: str
    output: Path
    python_version: str
    arch: str

    @property
    def environment(self) -> dict[str, str]:
        return target_environment(self.python_version, self.arch)

    @property
    def for_target(self) -> str:
        return f"for python{self.python_version} on {self.arch}"

    @property
    def what(self) -> str:
        """What a failed install or an unknown extra is blamed on."""
        return f"--requirements {self.requirements}" if self.requirements else PROJECT


def build(
    output: Path | None = None,
    *,
    app: Path | None = None,
    requirements: Path | None = None,
    python_version: str = DEFAULT_PYTHON_VERSION,
    arch: str = DEFAULT_ARCH,
    bytecode: bool = True,
    follow_external_symlinks: bool = False,
) -> Build:
    """Build the zip and return what went into it.

    pip picks wheels for the target (``--platform``, ``--python-version``) but evaluates
    environment markers (``exceptiongroup; python_version < "3.11"``) for the Python that
    runs it. So after pip, the requirements are followed again with the target's markers:
    what the target needs and pip left out is installed (``--no-deps``, until nothing is
    missing), and what it installed for this machine only is removed.

    Args:
        output: Where to write the zip (its directory is created); default
            ``build/lambda.zip``, in the clone for the example, in the current
            directory for an app.
        app: A module file or a package directory to put at the zip's root; default the
            FastAPI example (in a clone only).
        requirements: A pip requirements file of what ``app`` needs besides this
            package (only with ``app``).
        python_version: The Lambda runtime's Python, e.g. ``"3.12"`` for ``python3.12``.
        arch: ``"x86_64"`` or ``"arm64"``, as in the template's ``Architectures``.
        bytecode: Compile bytecode when an interpreter of ``python_version`` is installed
            (the build says so when it is not).
        follow_external_symlinks: Copy the target of a symlink in ``app``'s folder that
            leads out of it, instead of refusing it.

    Raises:
        InputError: a bad input (one line), found before pip runs but for an extra that
            the installed distribution does not provide.
        PackageError: pip failed (one line), or a native file is built for another
            architecture.
    """
    plan = _plan(
        output,
        app,
        requirements,
        python_version=python_version,
        arch=arch,
        follow_external_symlinks=follow_external_symlinks,
    )
    interpreter = bytecode_interpreter(python_version, bytecode=bytecode)
    with tempfile.TemporaryDirectory(prefix="lambda-package-") as temporary:
        staging = Path(temporary, "staging")
        wheel = project_wheel(Path(temporary, "wheels"))
        install = _install_command(staging, plan)
        _install_first(install, wheel, plan)
        needed = _install_for_markers(install, staging, plan)
        _check_extras(staging, plan)
        _prune(staging, needed, Path(temporary))
        _add_code(plan, staging)
        _check_architecture(staging, arch)
        compiled = _compile(staging, interpreter)
        cache_tag = compiled.interpreter.cache_tag if compiled is not None else None
        return Build(write_zip(staging, plan.output, cache_tag=cache_tag), plan.handler, compiled)


def _plan(
    output: Path | None,
    app: Path | None,
    requirements: Path | None,
    *,
    python_version: str,
    arch: str,
    follow_external_symlinks: bool,
) -> _Plan:
    """The inputs checked (one-line ``InputError``s, before pip runs), as a :class:`_Plan`."""
    if arch not in ARCHITECTURES:
        raise InputError(f"arch must be one of {sorted(ARCHITECTURES)}, not {arch!r}")
    if requirements is not None and app is None:
        raise InputError(
            "--requirements goes with --app (the example's requirements are this project's"
            f" {EXTRA} extra)"
        )
    if app is None:
        return _example_plan(output, python_version=python_version, arch=arch)
    return _app_plan(
        output,
        app,
        requirements,
        python_version=python_version,
        arch=arch,
        follow_external_symlinks=follow_external_symlinks,
    )


def _app_plan(
    output: Path | None,
    app: Path,
    requirements: Path | None,
    *,
    python_version: str,
    arch: str,
    follow_external_symlinks: bool,
) -> _Plan:
    """The plan for ``app`` and its requirements file, both checked."""
    the_app = check_app(app, follow_external_symlinks=follow_external_symlinks)
    checked = check_requirements(requirements) if requirements is not None else None
    roots = [Requirement(PROJECT)]
    if checked is not None:
        roots += requirement_roots(checked, target_environment(python_version, arch))
    return _Plan(
        the_app,
        checked,
        roots,
        f"{the_app.name}.handler",
        output or DEFAULT_APP_OUTPUT,
        python_version,
        arch,
    )


def _example_plan(output: Path | None, *, python_version: str, arch: str) -> _Plan:
    """The plan for the FastAPI example, which only a clone has."""
    if ROOT is None:
        raise InputError(
            "--app is needed: the FastAPI example is built only in a clone of"
            f" {PROJECT} (give your app as --app myapp.py or --app myapp/)"
        )
    roots = [Requirement(f"{PROJECT}[{EXTRA}]")]
    return _Plan(None, None, roots, EXAMPLE_HANDLER, output or DEFAULT_OUTPUT, python_version, arch)


_PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet")


def project_wheel(directory: Path) -> Path:
    """The wheel of this package, in ``directory``: built from the clone this code runs from,
    else made again from the installed distribution's files."""
    if ROOT is None:
        return installed_wheel(directory)
    _run(
        [sys.executable, *_PIP, "wheel", "--no-deps", "--wheel-dir", str(directory), str(ROOT)],
        lambda _: f"pip cannot build {PROJECT}'s wheel from {ROOT}",
    )
    (wheel,) = directory.glob("*.whl")
    return wheel


# What an installer adds to a .dist-info: not part of the wheel it installed.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def installed_wheel(directory: Path, distribution: metadata.Distribution | None = None) -> Path:
    """A wheel of the installed ``distribution`` (default: this package's) in
    ``directory``: the files its ``RECORD`` lists, but the console scripts (outside the
    install directory), this machine's bytecode and what the installer wrote."""
    dist = distribution if distribution is not None else installed_distribution()
    files = sorted(
        (file for file in dist.files or () if _in_wheel(file)), key=lambda file: file.as_posix()
    )
    dist_info = _wheel_dist_info(files)
    wheel = directory / f"{dist_info.removesuffix('.dist-info')}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            data = Path(str(dist.locate_file(file))).read_bytes()
            archive.writestr(file.as_posix(), data)
            rows.append(_record_row(file.as_posix(), data))
        rows.append([f"{dist_info}/RECORD", "", ""])
        record = io.StringIO()
        csv.writer(record, lineterminator="\n").writerows(rows)
        archive.writestr(f"{dist_info}/RECORD", record.getvalue())
    return wheel


def _record_row(name: str, data: bytes) -> list[str]:
    """A wheel's RECORD row for the file ``name`` holding ``data``: its sha256 and size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return [name, f"sha256={digest.decode()}", str(len(data))]


def _wheel_dist_info(files: Sequence[metadata.PackagePath]) -> str:
    """The ``.dist-info`` directory among an installed distribution's ``files``, which
    must hold some Python too."""
    dist_info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if dist_info is None or not any(f.suffix == ".py" for f in files):
        raise PackageError(
            f"the installed {PROJECT} lists no files to make its wheel of (an editable"
            " install outside a clone?): install it with pip install"
            f" '{PROJECT}[package]'"
        )
    return dist_info


def installed_distribution() -> metadata.Distribution:
    """The distribution of this package as installed here (its ``.dist-info``)."""
    return metadata.distribution(PROJECT)


def _in_wheel(file: metadata.PackagePath) -> bool:
    if ".." in file.parts or "__pycache__" in file.parts or file.suffix == ".pyc":
        return False
    return not (file.parts[0].endswith(".dist-info") and file.name in _INSTALLER_FILES)


def _install_command(staging: Path, plan: _Plan) -> list[str]:
    """``pip install`` into ``staging`` of the wheels built for the target."""
    return [
        sys.executable,
        *_PIP,
        "install",
        "--target",
        str(staging),
        "--platform",
        ARCHITECTURES[plan.arch].platform,
        "--implementation",
        "cp",
        "--python-version",
        plan.python_version,
        "--only-binary=:all:",
        # pip would compile bytecode with this machine's Python, not the runtime's.
        "--no-compile",
    ]


def _install_first(install: list[str], wheel: Path, plan: _Plan) -> None:
    """Installs this package's wheel (with the example's extra) and the app's requirements."""
    if plan.app is None:
        _run(
            [*install, f"{wheel}[{EXTRA}]"],
            _cannot_install(f"{PROJECT}[{EXTRA}]", plan.for_target),
        )
        return
    first = [*install, str(wheel)]
    if plan.requirements is not None:
        first += ["--requirement", str(plan.requirements)]
    result = subprocess.run(first, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PackageError(
            f"{plan.what}: pip cannot install {_not_found(result) or 'it'} {plan.for_target}:"
            f" {_pip_error(result)}"
        )


def _install_for_markers(install: list[str], staging: Path, plan: _Plan) -> set[str]:
    """Install what the target's markers add (``--no-deps``, until nothing is missing);
    the distributions the roots need on the target."""
    for _ in range(MAX_MARKER_PASSES):
        needed, missing = needed_distributions(staging, plan.roots, plan.environment)
        if not missing:
            return needed
        names = ", ".join(sorted(str(r) for r in missing.values()))
        _run(
            [*install, "--no-deps", *(str(r) for r in missing.values())],
            _cannot_install(names, f"{plan.for_target} (for its markers)"),
        )
    raise PackageError(f"still missing after {MAX_MARKER_PASSES} passes: {missing}")


def _check_extras(staging: Path, plan: _Plan) -> None:
    unknown = _unknown_extras(staging, plan.roots)
    if unknown:
        raise InputError(f"{plan.what}: {'; '.join(unknown)}")


def _prune(staging: Path, needed: set[str], temporary: Path) -> None:
    """Remove what pip installed for this machine's markers only, the console scripts,
    and the record of where this package's wheel was built."""
    for name, dist_info in installed_distributions(staging).items():
        if name not in needed:
            _remove_distribution(staging, dist_info)
    shutil.rmtree(staging / "bin", ignore_errors=True)  # console scripts: never zipped
    _forget_wheel_path(staging, temporary)


def _add_code(plan: _Plan, staging: Path) -> None:
    """The app, or the example's files from the clone."""
    if plan.app is not None:
        _add_app(plan.app, staging)
        return
    assert ROOT is not None  # noqa: S101 - _plan refuses the example outside a clone
    for name in EXAMPLE_FILES:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target)


def _check_architecture(staging: Path, arch: str) -> None:
    wrong = wrong_architecture(staging, arch)
    if wrong:
        raise PackageError(f"native files not built for {arch}: {', '.join(wrong)}")


def _compile(staging: Path, interpreter: Interpreter | None) -> Bytecode | None:
    """The target's bytecode, if there is an interpreter for it; say what did not compile."""
    if interpreter is None:
        return None
    compiled = compile_bytecode(staging, interpreter)
    if compiled.not_compiled:
        shown = ", ".join(compiled.not_compiled[:5])
        more = len(compiled.not_compiled) - 5
        _say(
            f"{len(compiled.not_compiled)} file(s) do not compile with Python"
            f" {compiled.interpreter.version} and have no bytecode: {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    return compiled


def _add_app(app: App, staging: Path) -> None:
    """Copy ``app`` to the root of ``staging``, unless a dependency holds its name; warn
    about what it imports that is neither in the zip nor in the standard library."""
    taken = top_level_names(staging)
    if app.name in taken:
        raise InputError(
            f"--app {app.path}: the zip already holds a module named {app.name!r} (from a"
            " dependency): rename your app"
        )
    _copy_app(app, staging)
    _warn_absent_imports(app, taken | {app.name} | set(sys.stdlib_module_names))
    if not _defines_handler(app):
        _say(f"warning: {app.label} defines no name 'handler': point Handler at yours")


def _copy_app(app: App, staging: Path) -> None:
    """The app's files at the root of ``staging``: its package, or its module."""
    if app.is_package:
        for source, name in app.files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
    else:
        shutil.copyfile(app.path, staging / f"{app.name}.py")


def _warn_absent_imports(app: App, available: set[str]) -> None:
    """Warn about each module the app imports that is not ``available``."""
    absent = {
        module: source
        for module, source in imported_names(app.sources()).items()
        if module not in available
    }
    for module, source in sorted(absent.items()):
        _say(
            f"warning: {source.name} imports {module}, which is neither in the zip nor in"
            " the standard library: add the distribution that provides it to --requirements"
        )


def build_lambda_zip(
    output: Path = DEFAULT_OUTPUT,
    *,
    python_version: str = DEFAULT_PYTHON_VERSION,
    arch: str = DEFAULT_ARCH,
    app: Path | None = None,
    requirements: Path | None = None,
    bytecode: bool = True,
    follow_external_symlinks: bool = False,
) -> Path:
    """Build the zip at ``output`` and return its path: :func:`build`, for callers that
    want the file only."""
    return build(
        output,
        app=app,
        requirements=requirements,
        python_version=python_version,
        arch=arch,
        bytecode=bytecode,
        follow_external_symlinks=follow_external_symlinks,
    ).output


def write_zip(directory: Path, output: Path, *, cache_tag: str | None = None) -> Path:
    """Zip ``directory``'s files (not ``bin/``, nor bytecode but ``__pycache__/*.<cache_tag>
    .pyc``) into ``output``: sorted, dated 1980-01-01 and readable by all, so the same
    files give the same bytes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, name in _files(directory, cache_tag):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o100644 << 16  # a regular file, readable by the runtime
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(output)
    return output


def main(argv: Sequence[str] | None = None) -> int:
    """``parameters-secrets package``: build, then say what was built and how to deploy it."""
    args = _parser().parse_args(argv)
    try:
        result = build(
            args.output,
            app=args.app,
            requirements=args.requirements,
            python_version=args.python_version,
            arch=args.arch,
            bytecode=not args.no_bytecode,
            follow_external_symlinks=args.follow_external_symlinks,
        )
    except PackageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:  # a file that cannot be read or written: no traceback for that
        print(f"{PROG}: the build failed: {exc}", file=sys.stderr)
        return EXIT_BUILD_FAILED
    _report(result, args)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0].split(": ", 1)[1] if __doc__ else None,
        epilog=f"exit status: 0 built, {EXIT_BUILD_FAILED} the build failed (pip could not"
        " install a requirement, a native file for another architecture, a file that"
        f" could not be read or written), {EXIT_BAD_INPUT} a bad input (an option, the"
        " app, its requirements file, a symlink in the app's folder); the reason is one"
        " line on stderr",
    )
    parser.add_argument(
        "--app",
        type=Path,
        help="your app: a module file (myapp.py) or a package directory (myapp/), put at"
        " the zip's root (default, in a clone only: the FastAPI example)",
    )
    parser.add_argument(
        "--requirements",
        type=Path,
        help="a pip requirements file of what --app needs besides this package",
    )
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
        help="where to write the zip (default build/lambda.zip: in the clone for the"
        " example, in the current directory for --app)",
    )
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="leave bytecode out even when an interpreter of the target version is here",
    )
    parser.add_argument(
        "--follow-external-symlinks",
        action="store_true",
        help="copy what a symlink in the app's folder that leads out of it points to"
        " (default: refuse it)",
    )
    return parser


def _report(result: Build, args: argparse.Namespace) -> None:
    """What was built, its bytecode, and how to deploy it and try it first."""
    output = result.output
    with zipfile.ZipFile(output) as archive:
        count = len(archive.namelist())
    size = output.stat().st_size
    runtime = f"python{args.python_version}"
    print(f"{output}: {size / 1e6:.1f} MB, {count} files, for {runtime} on {args.arch}")
    if result.bytecode is not None:
        bytecode = result.bytecode
        print(
            f"bytecode: {bytecode.compiled} modules compiled by Python"
            f" {bytecode.interpreter.version} ({bytecode.interpreter.cache_tag},"
            f" unchecked-hash) with {bytecode.interpreter.path}"
        )
    else:
        print("bytecode: none (Lambda compiles every module on every cold start)")
    print(f"try it: parameters-secrets invoke {output} --handler {result.handler}")
    if args.app is None:
        print(
            "deploy: sam deploy --guided --template-file examples/template.yaml"
            f" --parameter-overrides Runtime={runtime} Architecture={args.arch}"
        )
    else:
        print(
            f"deploy: CodeUri {output}, Handler {result.handler}, Runtime {runtime},"
            f" Architectures [{args.arch}]"
        )
