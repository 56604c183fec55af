"""Every measured number the README and the docs quote comes from one results file,
benchmarks/RESULTS.md, which ``nox -s bench`` writes: no page may keep a figure from an
older run (88× on one page, 84× on another).

A figure is a ratio (``84×``, ``2.4 times as long``) or a time (``336 ms``, ``0.4 µs``,
``0.05 s``). It is taken from RESULTS.md when a number there, in the same dimension and
rounded to the quoted figure's decimals, equals it. A bound (``< 1.10×``, ``≥ 3×``) is a
target, not a measurement, and is not checked; a figure that is a fact from elsewhere (a
setting, a constant of the package, a test's measurement) is listed in ``ELSEWHERE`` with
where it comes from.
"""

# The docs write a ratio with the multiplication sign: this file must name it.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

# How many microseconds one unit is; a ratio is its own dimension.
_SCALE = {"µs": Decimal(1), "ms": Decimal(1000), "s": Decimal(1_000_000)}
_RATIO = "ratio"

# In the docs: "84×", "2.4 times as long", "+7 ms", "0.4 µs", and seconds with decimals
# ("0.05 s"; a whole "300 s" is a setting, as TTLs and time limits are).
DOC_FIGURE = re.compile(
    r"(?P<bound>[<>≤≥]\s*)?\+?(?P<number>\d+(?:\.\d+)?)\s*"
    r"(?:(?P<ratio>×|times (?:faster|slower|as long))|(?P<unit>ms|µs)\b)"
    r"|(?<![\d.])(?P<seconds>\d+\.\d+) s\b"
)
# In RESULTS.md: "84.0x", "1.04x", "225.4 ms", "0.4 µs", "10.8 s".
# A ratio's "x" follows its number ("40 x 29" is a product, not a ratio).
RESULT_FIGURE = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?:(?P<ratio>x)\b|\s*(?P<unit>ms|µs|s)\b)")

# Figures the docs quote that are not benchmark results: (page, figure) -> where it is from.
ELSEWHERE = {
    ("docs/limits.md", "8.5 s"): "the INIT budget, a constant of the package "
    "(_time_bounds.py), tested by tests/test_lambda_init.py",
    ("docs/limits.md", "1.2 s"): "the longest wait for a starting extension measured by "
    "tests/test_time_bounds.py",
    ("docs/sources.md", "0.1 s"): "RetryPolicy's default base_delay",
    ("docs/store.md", "1 µs"): "the switch interval tests/test_concurrency.py sets",
    ("docs/reliability.md", "1 µs"): "the switch interval tests/test_concurrency.py sets",
    # benchmarks/bench_http_client.py needs httpx2 beside the package (a directory on
    # PYTHONPATH), which nox -s bench does not install: run by hand, its table is in the docs.
    ("docs/deploy-your-own-app.md", "441.5 ms"): "benchmarks/bench_http_client.py, one run",
    ("docs/deploy-your-own-app.md", "470.9 ms"): "benchmarks/bench_http_client.py, one run",
}


@dataclass(frozen=True)
class Figure:
    page: str  # relative to the repository's root
    line: int
    text: str  # as written: "84×", "336 ms"
    written: Decimal  # the number as written
    dimension: str  # "ratio" or "time"
    scale: Decimal  # microseconds in the written unit; 1 for a ratio

    @property
    def decimals(self) -> int:
        exponent = self.written.as_tuple().exponent
        assert isinstance(exponent, int)  # a number parsed from digits is finite
        return -exponent

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"

    def is_rounded(self, result: Decimal) -> bool:
        """Whether ``result`` (a ratio, or a time in microseconds) is this figure once
        rounded as written, half up as people round."""
        step = Decimal(1).scaleb(-self.decimals)
        return (result / self.scale).quantize(step, rounding=ROUND_HALF_UP) == self.written


def _figure(page: str, line: int, match: re.Match[str]) -> Figure | None:
    text = match.group(0).strip()
    if match.group("seconds"):
        return Figure(page, line, text, Decimal(match.group("seconds")), "time", _SCALE["s"])
    if match.group("bound"):
        return None  # a target, not a measurement
    written = Decimal(match.group("number"))
    if match.group("ratio"):
        return Figure(page, line, text, written, _RATIO, Decimal(1))
    return Figure(page, line, text, written, "time", _SCALE[match.group("unit")])


def quoted_figures(text: str, page: str) -> list[Figure]:
    figures = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in DOC_FIGURE.finditer(line):
            figure = _figure(page, number, match)
            if figure is not None:
                figures.append(figure)
    return figures


def result_figures(text: str) -> dict[str, set[Decimal]]:
    """RESULTS.md's numbers by dimension: ratios, and times in microseconds."""
    found: dict[str, set[Decimal]] = {_RATIO: set(), "time": set()}
    for match in RESULT_FIGURE.finditer(text):
        number = Decimal(match.group("number"))
        if match.group("ratio"):
            found[_RATIO].add(number)
        else:
            found["time"].add(number * _SCALE[match.group("unit")])
    return found


def comes_from(figure: Figure, results: dict[str, set[Decimal]]) -> bool:
    return any(figure.is_rounded(result) for result in results[figure.dimension])


FIGURES = [
    figure
    for path in DOCUMENTS
    for figure in quoted_figures(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
]
MEASURED = [f for f in FIGURES if (f.page, f.text) not in ELSEWHERE]


@pytest.mark.parametrize("figure", MEASURED, ids=[f.where for f in MEASURED])
def test_every_figure_the_docs_quote_is_in_the_results_file(figure: Figure) -> None:
    results = result_figures(RESULTS.read_text(encoding="utf-8"))
    assert comes_from(figure, results), (
        f"{figure.where} is not in benchmarks/RESULTS.md: copy the figure from there "
        "(rerun nox -s bench for new ones), or list it in ELSEWHERE with its source"
    )


def test_every_listed_fact_from_elsewhere_is_still_quoted() -> None:
    quoted = {(f.page, f.text) for f in FIGURES}
    assert set(ELSEWHERE) <= quoted, set(ELSEWHERE) - quoted


def test_the_headline_ratio_is_found_on_the_pages_that_quote_it() -> None:
    """The figures this test exists for: the README's and Performance's ratio of calling
    the extension on every request, which once read 84× on one page and 88 times on
    Migrating's."""
    pages = {f.page for f in MEASURED if f.dimension == _RATIO}
    assert {"README.md", "docs/performance.md", "docs/migrating.md"} <= pages


@pytest.mark.parametrize(
    ("quoted", "results", "found"),
    [
        ("is 84× slower", "(84.0x with httpx)", True),
        ("about 88 times faster", "(84.0x with httpx)", False),
        ("53× (urllib)", "52.6x with urllib", True),
        ("took 336 ms", "| 336.1 ms |", True),
        ("took 0.33 s", "| 225.4 ms |", False),
        ("0.05 s / 0.6 s", "46.0 ms / 629.7 ms", True),
        ("62 ms", "61.5 ms", True),  # half up, not to even
        ("+7 ms", "+7.2 ms", True),
        ("0.4 µs", "0.4 ms", False),  # the unit counts
        ("target < 1.10×", "", True),  # a bound is not checked
    ],
)
def test_a_figure_matches_a_result_rounded_as_written(
    quoted: str, results: str, found: bool
) -> None:
    known = result_figures(results)
    assert all(comes_from(f, known) for f in quoted_figures(quoted, "page")) is found
