"""The docs site as a reader opens it: built by mkdocs (strict) into a folder, then read
from disk, where links must lead to files (not folder listings) and search must need no
server and no network.

Needs the ``docs`` extra (MkDocs, Material, mkdocstrings): ``nox -s docs`` runs this file
after building the site; elsewhere it is skipped when MkDocs is not installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed (nox -s docs runs this)")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")

ROOT = Path(__file__).resolve().parent.parent
LOCAL_SRC = re.compile(r'<script[^>]*\bsrc="(?P<src>[^"]+)"')
API_PAGES = {"api.html", "api/index.html"}  # from disk, or as a server's folder
HREF = re.compile(r'\bhref="(?P<href>[^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(folder)],
        cwd=ROOT,
        check=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return folder


def pages(site: Path) -> list[Path]:
    # 404.html is for a web server, which serves it at any depth: its links are absolute.
    return [page for page in sorted(site.glob("**/*.html")) if page.name != "404.html"]


def test_every_link_between_pages_leads_to_a_file(site: Path) -> None:
    broken = []
    for page in pages(site):
        for href in HREF.findall(page.read_text(encoding="utf-8")):
            if "://" in href or href.startswith(("#", "mailto:")):
                continue
            if not (page.parent / href.split("#", 1)[0]).is_file():
                broken.append(f"{page.relative_to(site)}: {href}")
    assert not broken, broken


def test_search_works_from_disk_without_a_network(site: Path) -> None:
    """The index is a script (fetch() fails on file://), and the worker shim that loads it
    in an iframe is a file of the site, not a CDN's."""
    index = (site / "search" / "search_index.js").read_text(encoding="utf-8")
    assert index.startswith("var __index = {")
    scripts = LOCAL_SRC.findall((site / "index.html").read_text(encoding="utf-8"))
    assert "assets/iframe-worker-shim.js" in scripts
    assert all("://" not in src for src in scripts), scripts
    assert (site / "assets" / "iframe-worker-shim.js").is_file()


def test_the_api_reference_shows_public_names_once(site: Path) -> None:
    [page] = [p for p in pages(site) if p.relative_to(site).as_posix() in API_PAGES]
    html = page.read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", " ", html)
    assert "StoreMiddleware" not in text  # the middlewares' private base
    objects = re.findall(r'<h2 id="parameters_secrets\.([\w.]+)"', html)
    assert len(objects) == len(set(objects))
    sections = re.findall(r'<h2 id="([a-z][\w-]*)"', html)  # the page's own headings
    assert not {section.lower() for section in sections} & {o.lower() for o in objects}
    # What the private base gives the middlewares is theirs on the page.
    assert 'id="parameters_secrets.ParametersSecretsMiddleware.stats"' in html


def test_the_changelog_and_contributing_are_pages_in_the_navigation(site: Path) -> None:
    navigation = (site / "index.html").read_text(encoding="utf-8")
    for page, source in {
        "changelog.html": "CHANGELOG.md",
        "contributing.html": "CONTRIBUTING.md",
    }.items():
        assert f'href="{page}"' in navigation
        title = (ROOT / source).read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        assert re.search(rf"<h1[^>]*>{title}\b", (site / page).read_text(encoding="utf-8"))
