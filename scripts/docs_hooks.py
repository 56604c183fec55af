"""Hooks for the docs site: MkDocs hooks (mkdocs.yml's ``hooks``) and a griffe extension
(mkdocstrings' ``extensions``).

The docstrings cross-reference names the way Sphinx does (``:class:`Parameter```), which
mkdocstrings renders as text: keep the code span, drop the role.

CHANGELOG.md and CONTRIBUTING.md live at the repository's root, where GitHub shows them;
a page under docs/ that is one line ``--8<-- "CHANGELOG.md"`` becomes that file, its links
to ``docs/page.md`` rewritten to ``page.md`` (any other relative link still fails the
strict build, as a broken link on a page would).

The API reference shows public names only: a public class built on a base that lives in
a private module and is exported nowhere (the middlewares' ``StoreMiddleware``) is shown
without that base, and with the base's members (``__init__``, hence the signature, and
``stats``) as its own, which is what a user of the class sees; public bases
(``ParametersSecretsError``) and outside ones (``Mapping``, ``Protocol``) stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe

_SPHINX_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc):(?=<code>)")
_INCLUDE = re.compile(r'--8<-- "(?P<name>[A-Z]+\.md)"\s*')
_DOCS_LINK = re.compile(r"\]\(docs/")
ROOT = Path(__file__).resolve().parent.parent


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    """A page that includes a root file, as that file with its links made relative to
    docs/; any other page as it is."""
    include = _INCLUDE.fullmatch(markdown)
    if include is None:
        return markdown
    text = (ROOT / include.group("name")).read_text(encoding="utf-8")
    return _DOCS_LINK.sub("](", text)


def on_page_content(html: str, **kwargs: object) -> str:
    """The page's HTML without Sphinx roles in front of code spans."""
    return _SPHINX_ROLE.sub("", html)


class PublicBases(griffe.Extension):
    """Drops the bases of a package's classes that are neither public names of the
    package nor from outside it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Drop the hidden bases of ``pkg``'s classes."""
        exported = set(_exported_names(pkg))
        for cls in _classes(pkg):
            hidden = [base for base in cls.bases if _is_private(base, pkg.name, exported)]
            for base in hidden:
                _adopt_members(cls, pkg[_path(base).removeprefix(f"{pkg.name}.")])
            cls.bases = [base for base in cls.bases if base not in hidden]


def _path(base: str | griffe.Expr) -> str:
    return base if isinstance(base, str) else base.canonical_path


def _is_private(base: str | griffe.Expr, package: str, exported: set[str]) -> bool:
    path = _path(base)
    # Outside the package: the standard library's or another package's, shown.
    return path.startswith(f"{package}.") and path.rsplit(".", 1)[-1] not in exported


def _adopt_members(cls: griffe.Class, base: griffe.Class) -> None:
    """What ``cls`` inherits from ``base``, as its own members: griffe finds inherited
    members (the signature's ``__init__`` among them) through the bases only."""
    for name, member in base.members.items():
        if name not in cls.members:
            cls.set_member(name, griffe.Alias(name, member, parent=cls))


def _public_modules(module: griffe.Module) -> Iterator[griffe.Module]:
    yield module
    for name, member in module.members.items():
        if not name.startswith("_") and not member.is_alias and member.is_module:
            yield from _public_modules(member)  # type: ignore[arg-type]


def _exported_names(pkg: griffe.Module) -> Iterator[str]:
    for module in _public_modules(pkg):
        for export in module.exports or ():
            yield export if isinstance(export, str) else export.name


def _classes(module: griffe.Module) -> Iterator[griffe.Class]:
    for member in module.members.values():
        if member.is_alias:
            continue
        if member.is_module:
            yield from _classes(member)  # type: ignore[arg-type]
        elif member.is_class:
            yield member  # type: ignore[misc]
