"""``python -m benchmarks [--smoke] [--only NAME] [--results PATH] [--workdir DIR]``."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import cluster_bench, preprocess_bench, scaling_bench, tilt_bench
from benchmarks.machine import describe
from benchmarks.table import Row, markdown

BENCHMARKS: dict[str, Callable[[Path, bool], list[Row]]] = {
    "preprocess": preprocess_bench.run,
    "tilt": tilt_bench.run,
    "throughput": cluster_bench.throughput,
    "memory": cluster_bench.memory,
    "scaling": scaling_bench.run,
}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def report(rows: list[Row], seconds: float, smoke: bool) -> str:
    """The markdown page: machine, table and how it was made."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "smoke run (tiny inputs; timings meaningless)" if smoke else "full run"
    lines = [
        "# daskmic benchmark results",
        "",
        f"One {mode} of `python -m benchmarks`, {when}, {seconds / 60:.1f} min in all.",
        "",
        *[f"- {line}" for line in describe()],
        "",
        "Ratios compare contenders measured in this same run; `case` gives the set "
        "(micrographs x width x height, input dtype) each row used.",
        "",
        markdown(rows),
        "",
    ]
    return "\n".join(lines)


def run(names: list[str], smoke: bool, workdir: Path) -> list[Row]:
    """Run the named benchmarks in ``workdir``; return their rows."""
    rows: list[Row] = []
    for name in names:
        start = time.perf_counter()
        rows += BENCHMARKS[name](workdir / name, smoke)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    """Run, print the table and write it (by default to ``benchmarks/RESULTS.md``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, every path, < 1 min")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="where to write the table (default benchmarks/RESULTS.md for a "
        "full run of every benchmark, nowhere otherwise)",
    )
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    results = args.results
    if results is None and not args.smoke and not args.only:
        results = RESULTS
    scratch = Path(tempfile.mkdtemp(prefix="daskmic-bench-", dir=args.workdir))
    start = time.perf_counter()
    try:
        rows = run(names, args.smoke, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    page = report(rows, time.perf_counter() - start, args.smoke)
    print(page)
    if results is not None:
        results.write_text(page)
    return rows


if __name__ == "__main__":
    main()
