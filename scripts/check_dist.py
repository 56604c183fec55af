"""Check the built sdist and wheel: what they hold besides the code, and their metadata.

    python scripts/check_dist.py DIST_DIR      (nox -s dist runs it after python -m build)

The version must be the one written in ``parameters_secrets/__init__.py`` (the only
place it is written); the sdist must hold the license, the changelog, the README and the
docs; the wheel's metadata must carry the license expression, the license file and the
project's URLs. Standard library only.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDIST_FILES = ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "docs/")
URLS = {"Homepage", "Repository", "Documentation", "Changelog"}


def written_version() -> str:
    """The version written in the package's ``__init__.py``."""
    init = (ROOT / "middleware" / "parameters_secrets" / "__init__.py").read_text("utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    if found is None:
        raise SystemExit("check_dist: no __version__ in parameters_secrets/__init__.py")
    return found.group(1)


def problems(dist: Path) -> list[str]:
    """What is wrong with the sdist and the wheel in ``dist``, one line each."""
    version = written_version()
    sdists = sorted(dist.glob("*.tar.gz"))
    wheels = sorted(dist.glob("*.whl"))
    found = _names_problems(version, sdists, wheels)
    for sdist in sdists:
        found += _sdist_problems(sdist)
    for wheel in wheels:
        found += _wheel_problems(wheel, version)
    return found


def _names_problems(version: str, sdists: list[Path], wheels: list[Path]) -> list[str]:
    found = []
    if [p.name for p in sdists] != [f"asgi_parameters_secrets-{version}.tar.gz"]:
        found.append(f"expected one sdist of version {version}, found {[p.name for p in sdists]}")
    if [p.name for p in wheels] != [f"asgi_parameters_secrets-{version}-py3-none-any.whl"]:
        found.append(f"expected one wheel of version {version}, found {[p.name for p in wheels]}")
    return found


def _sdist_problems(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    return [
        f"{sdist.name} lacks {wanted}"
        for wanted in SDIST_FILES
        if not any(name == wanted or name.startswith(wanted) for name in names)
    ]


def _wheel_problems(wheel: Path, version: str) -> list[str]:
    dist_info = f"asgi_parameters_secrets-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        names = set(archive.namelist())
    urls = {entry.split(",", 1)[0] for entry in metadata.get_all("Project-URL") or []}
    checks = [
        (metadata["Version"] == version, f"Version {metadata['Version']}, not {version}"),
        (
            metadata["License-Expression"] == "Apache-2.0",
            f"License-Expression {metadata['License-Expression']}",
        ),
        (f"{dist_info}/licenses/LICENSE" in names, f"lacks {dist_info}/licenses/LICENSE"),
        (urls == URLS, f"Project-URL names {sorted(urls)}, not {sorted(URLS)}"),
    ]
    return [f"{wheel.name}: {problem}" for ok, problem in checks if not ok]


def main(argv: list[str]) -> int:
    """Report the problems; 1 if there are any."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems(Path(argv[0]))
    for problem in found:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not found:
        print(f"check_dist: sdist and wheel of {written_version()} hold what they should")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
