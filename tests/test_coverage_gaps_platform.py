"""What the package does where Linux's /proc is missing or says something unexpected
(found by branch coverage): the process's age is unknown, not an error."""

from __future__ import annotations

import io
from typing import Any

import pytest

from parameters_secrets import _time_bounds


@pytest.mark.parametrize(
    ("stat", "why"),
    [
        (None, "no /proc (macOS, Windows)"),
        (b"1 (python) S", "a stat line too short"),
        (b"1 (python) S " + b"x " * 25, "a start time that is not a number"),
    ],
)
def test_a_process_age_proc_cannot_give_is_unknown(
    stat: bytes | None, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def proc_open(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if stat is None:
            raise FileNotFoundError(path)
        return io.BytesIO(stat if path == "/proc/self/stat" else b"1000.5 2000.0\n")

    # The module's own name `open` first, before the builtin: only its reads are faked.
    monkeypatch.setattr(_time_bounds, "open", proc_open, raising=False)
    assert _time_bounds.process_age() is None, why
