"""The one place the package imports its HTTP client: ``httpx2`` when it is installed,
else ``httpx``. Every other module takes it from here (``from ._http import httpx``).

Starlette 1.2+ prefers ``httpx2`` (httpx's maintained fork: the same API under its own
import name) for its test client, and apps are moving to it: with this, a zip that holds
``httpx2`` needs no second client. ``httpx`` stays the declared dependency, as pip cannot
express "either". Imported where a source first needs HTTP, never by
``import parameters_secrets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the types are httpx's: httpx2 keeps its API
    import httpx
else:
    try:
        import httpx2 as httpx
    except ImportError:
        import httpx

__all__ = ["httpx"]
