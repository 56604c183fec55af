"""MkDocs hooks for the docs site (mkdocs.yml's ``hooks``).

The docstrings cross-reference names the way Sphinx does (``:class:`Parameter```), which
mkdocstrings renders as text: keep the code span, drop the role.
"""

from __future__ import annotations

import re

_SPHINX_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc):(?=<code>)")


def on_page_content(html: str, **kwargs: object) -> str:
    """The page's HTML without Sphinx roles in front of code spans."""
    return _SPHINX_ROLE.sub("", html)
