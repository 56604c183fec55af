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
    found: list[str] = []
    sdists = sorted(dist.glob("*.tar.gz"))
    wheels = sorted(dist.glob("*.whl"))
    if [p.name for p in sdists] != [f"asgi_parameters_secrets-{version}.tar.gz"]:
        found.append(f"expected one sdist of version {version}, found {[p.name for p in sdists]}")
    if [p.name for p in wheels] != [f"asgi_parameters_secrets-{version}-py3-none-any.whl"]:
        found.append(f"expected one wheel of version {version}, found {[p.name for p in wheels]}")
    for sdist in sdists:
        with tarfile.open(sdist) as archive:
            names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        found += [
            f"{sdist.name} lacks {wanted}"
            for wanted in SDIST_FILES
            if not any(name == wanted or name.startswith(wanted) for name in names)
        ]
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            dist_info = f"asgi_parameters_secrets-{version}.dist-info"
            metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
            names = set(archive.namelist())
        if metadata["Version"] != version:
            found.append(f"{wheel.name}: Version {metadata['Version']}, not {version}")
        if metadata["License-Expression"] != "Apache-2.0":
            found.append(f"{wheel.name}: License-Expression {metadata['License-Expression']}")
        if f"{dist_info}/licenses/LICENSE" not in names:
            found.append(f"{wheel.name} lacks {dist_info}/licenses/LICENSE")
        urls = {entry.split(",", 1)[0] for entry in metadata.get_all("Project-URL") or []}
        if urls != URLS:
            found.append(f"{wheel.name}: Project-URL names {sorted(urls)}, not {sorted(URLS)}")
    return found


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
