"""What every benchmark shares: a result table, printing it, and robust statistics.

Each ``bench_*.py`` module has ``run(quick: bool = False) -> Table`` and, as a script,
prints its table. ``run_all.py`` runs them all and writes ``RESULTS.md`` and a chart.
Machines are noisy: report medians and ratios measured side by side in one run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """A benchmark's result: a titled table, plus the headline numbers for the chart."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # name -> value, e.g. {"middleware / bare": 1.04}: what run_all charts and summarises.
    headline: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        widths = [
            max(len(str(cell)) for cell in [column, *(row[i] for row in self.rows)])
            for i, column in enumerate(self.columns)
        ]
        out = [self.title, "=" * len(self.title)]
        out.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)))
        out.append("  ".join("-" * w for w in widths))
        out += [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            for row in self.rows
        ]
        out += [f"* {note}" for note in self.notes]
        return "\n".join(out)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0-1) percentile, nearest rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def micros(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def millis(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


# What "before" means for the benchmarks that compare this checkout with another's code
# (bench_warm_path, bench_beyond): main as it was before the work on the limits, the
# features beyond the peers and the craft (issues 19-21), so that "after" keeps meaning
# something once that work is on main. ``--before REF`` picks another.
BEFORE_REF = "838657a"
