"""JSON parsed so that a hostile document can only be a ``ValueError``."""

from __future__ import annotations

import json
from typing import Any

# Python 3.11+ refuses to turn longer digit strings into an int (sys.int_info's default
# str_digits_check_threshold): converting them takes time quadratic in their length.
# Python 3.10 has no such limit; this one holds there too.
MAX_INT_DIGITS = 4300


class InvalidJSON(ValueError):
    """A document that is not JSON, or JSON too hostile to parse; the message says which
    kind of failure, never the document's text."""


def loads(data: str | bytes) -> Any:
    """JSON, parsed so that only :class:`InvalidJSON` (a ``ValueError``) can come out of
    a hostile document: nesting too deep for the recursion limit, an integer of more than
    :data:`MAX_INT_DIGITS` digits (on every Python), bytes that are not UTF-8.

    The error's message never quotes the document.
    """
    try:
        return json.loads(data, parse_int=_bounded_int)
    except RecursionError:
        raise InvalidJSON("nested too deeply") from None
    except InvalidJSON:
        raise
    except ValueError as exc:
        # Only the kind of failure: UnicodeDecodeError's message quotes the bytes, and a
        # JSONDecodeError holds the whole document.
        raise InvalidJSON(type(exc).__name__) from None


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS + 1:  # a sign and the digits
        raise InvalidJSON(f"an integer of more than {MAX_INT_DIGITS} digits")
    return int(digits)
