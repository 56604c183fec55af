"""Run every ``benchmarks/bench_*.py``; print each table; write RESULTS.md and results.png
(and its copy in docs/, for the docs site).

    python -m benchmarks.run_all            # the full run (a few minutes on 2 cores)
    python -m benchmarks.run_all --quick    # fewer repetitions, well under a minute each
    python -m benchmarks.run_all --only bench_warm_path bench_sync_refresh
                                            # these alone: their tables replace (or join)
                                            # theirs in RESULTS.md, marked with their run

A benchmark that fails is reported (traceback on stderr, a line in RESULTS.md) and the
others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import math
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmarks._common import Table

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_PNG = HERE / "results.png"
# The docs site shows the same chart; mkdocs only publishes what is under docs/.
DOCS_PNG = HERE.parent / "docs" / "results.png"


def discover() -> list[str]:
    """Module names of every ``bench_*.py`` beside this file, sorted."""
    return [f"benchmarks.{path.stem}" for path in sorted(HERE.glob("bench_*.py"))]


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *args],  # noqa: S607 - git from PATH, read-only queries
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return completed.stdout.strip()


def _commit() -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain"):
        commit += " (with uncommitted changes)"
    return commit


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs"


def intro(quick: bool, elapsed: float, commit: str) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick run (`--quick`)" if quick else "full run"
    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `python -m benchmarks.run_all` (`nox -s bench`). Medians, ratios "
            "side by side in one run: machines are noisy, so every number is a median, and "
            "every ratio compares variants measured interleaved in the same run, never "
            "numbers from different runs or machines.",
            "",
            f"- machine: {_machine()}",
            f"- python: {platform.python_implementation()} {platform.python_version()}",
            f"- date: {now}",
            f"- commit: {commit}",
            f"- {mode}, {elapsed:.0f} s in all",
            "",
        ]
    )


def write_markdown(
    tables: Sequence[Table], failures: Sequence[str], quick: bool, elapsed: float, commit: str
) -> None:
    parts = [intro(quick, elapsed, commit)]
    if RESULTS_PNG.exists():
        parts.append(f"![headline numbers]({RESULTS_PNG.name})\n")
    parts += [table.markdown() for table in tables]
    if failures:
        parts.append("### Failed\n\n" + "\n".join(f"- `{name}`" for name in failures) + "\n")
    RESULTS_MD.write_text("\n".join(parts), encoding="utf-8")


def update_markdown(tables: Sequence[Table], quick: bool, elapsed: float, commit: str) -> None:
    """Put ``tables`` into RESULTS.md in place of the sections of the same title (or after
    the others), each marked with its own run: the rest keeps the run it came from."""
    text = RESULTS_MD.read_text(encoding="utf-8")
    head, *sections = text.split("\n### ")
    by_title = {section.split("\n", 1)[0]: "### " + section for section in sections}
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick run" if quick else "full run"
    for table in tables:
        run = f"- This table alone: `--only`, {mode}, {now}, commit {commit}, {elapsed:.0f} s."
        by_title[table.title] = table.markdown() + run + "\n"
    RESULTS_MD.write_text(
        "\n".join([head.rstrip("\n") + "\n", *(s.rstrip("\n") + "\n" for s in by_title.values())]),
        encoding="utf-8",
    )


def write_chart(tables: Sequence[Table]) -> bool:
    """One horizontal bar subplot per table with headline numbers; False without matplotlib."""
    charted = [table for table in tables if table.headline]
    if not charted:
        return False
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return False
    heights = [0.9 + 0.45 * len(table.headline) for table in charted]
    figure, axes = plt.subplots(
        len(charted),
        1,
        figsize=(10, sum(heights) + 0.4),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for axis, table in zip(axes[:, 0], charted, strict=True):
        names = list(table.headline)[::-1]
        values = [table.headline[name] for name in names]
        bars = axis.barh(names, values, color="#4c72b0")
        axis.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=8)
        axis.set_title(textwrap.fill(table.title, 95), fontsize=10, loc="left")
        axis.tick_params(axis="y", labelsize=8)
        axis.tick_params(axis="x", labelsize=8)
        finite = [v for v in values if not math.isnan(v) and v > 0] or [1.0]
        if max(finite) / min(finite) > 50:
            axis.set_xscale("log")
            axis.set_xlim(left=min(0.5, min(finite) / 2), right=max(finite) * 3)
        else:
            axis.set_xlim(left=0, right=max(finite) * 1.15)
        if min(finite) < 2 and max(finite) > 0.5:  # ratios around 1: mark parity
            axis.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    figure.tight_layout()
    figure.savefig(RESULTS_PNG, dpi=110)
    plt.close(figure)
    shutil.copyfile(RESULTS_PNG, DOCS_PNG)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run these benchmarks alone (bench_warm_path ...): their tables replace theirs "
        "in RESULTS.md, the others and the chart stay",
    )
    args = parser.parse_args(argv)
    # Before the run: once the chart is written, the tree has changes of our own making.
    commit = _commit()
    started = time.perf_counter()
    tables: list[Table] = []
    failures: list[str] = []
    names = discover()
    if args.only:
        wanted = {f"benchmarks.{name.removesuffix('.py')}" for name in args.only}
        if unknown := wanted - set(names):
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        names = [name for name in names if name in wanted]
    for name in names:
        print(f"--- {name}{' (quick)' if args.quick else ''}", flush=True)
        module_started = time.perf_counter()
        try:
            module = importlib.import_module(name)
            table = module.run(quick=args.quick)
        except Exception:  # noqa: BLE001 - one failing benchmark must not stop the others
            traceback.print_exc()
            failures.append(name)
            continue
        tables.append(table)
        print(table.text(), flush=True)
        print(f"({name}: {time.perf_counter() - module_started:.0f} s)\n", flush=True)
    elapsed = time.perf_counter() - started
    if args.only:
        update_markdown(tables, args.quick, elapsed, commit)
        print(f"updated {RESULTS_MD.relative_to(HERE.parent)} ({elapsed:.0f} s)")
        return 1 if failures else 0
    if write_chart(tables):
        print(f"wrote {RESULTS_PNG.relative_to(HERE.parent)}")
    write_markdown(tables, failures, args.quick, elapsed, commit)
    print(f"wrote {RESULTS_MD.relative_to(HERE.parent)} ({elapsed:.0f} s in all)")
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
