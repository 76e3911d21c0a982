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

from benchmarks import (
    cluster_bench,
    live_bench,
    overhead_bench,
    preprocess_bench,
    scaling_bench,
    tilt_bench,
)
from benchmarks.machine import describe
from benchmarks.table import Row, markdown

BENCHMARKS: dict[str, Callable[[Path, bool], list[Row]]] = {
    "preprocess": preprocess_bench.run,
    "tilt": tilt_bench.run,
    "throughput": cluster_bench.throughput,
    "memory": cluster_bench.memory,
    "scaling": scaling_bench.run,
    "live": live_bench.run,
    "overhead": overhead_bench.run,
}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NOTES = [
    "Contenders:",
    "",
    "- preprocess: `daskmic preprocess` (crop, bad pixels 5, invert, downsample 2, Gaussian 1, "
    "high-pass 0.002/0.001, low-pass 0.25/0.02, normalize; "
    "`--no-stack --no-report --no-dashboard`: MRC files and tables, as the floor writes MRC "
    "files; default local cluster) timed as a fresh command, start-up "
    "included ('end to end'); 'small set' times the first 8 of the set the same way; 'marginal' "
    "removes each command's fixed cost as (T(n) - T(1)) / (n - 1). The floor reads, does one "
    "float32 rfft2 of the cropped frame and one irfft2 at the output size, and writes, over two "
    "processes; the Xmipp-style chain runs each step as its own float64 pass with a "
    "single-threaded numpy FFT and a float32 MRC file between steps (benchmarks/contenders.py).",
    "- tilt: per micrograph over two warmed-up processes; the xmippLib path is the tilt tests' "
    "oracle (tests/tilt/test_xmipp_oracle.py) on the pixels xmippLib reads.",
    "- throughput: `daskmic.run.unit.process_micrograph` (typical preprocessing + tilt screen) "
    "through daskmic's driver on an embedded local cluster vs a `concurrent.futures` process "
    "pool; both time opening the set to the final tables, not the cluster/pool start; the "
    "contenders take three turns on each set and each keeps its best.",
    "- memory: worker peak resident memory (VmHWM, reset after a warm-up) above idle, with "
    "memory limits summing to less than the set.",
    "- live: one update of the live QC page (`daskmic.report.live`) of a tilt-screen output "
    "folder of N micrographs (10 % discarded, 2 % failed), best of three, against the table "
    "rebuild it follows (benchmarks/live_bench.py).",
    "- overhead: 128² micrographs through `daskmic preprocess --crop 10 --normalize --no-stack "
    "--no-report --no-dashboard` (MRC files, tables, zarr table and thumbnails) at several set "
    "sizes against "
    "the floor on the same files: end to end, CPU time of the command and its workers, a rerun "
    "of the finished set, one full rebuild of the tables, Scipion sets and zarr store, the "
    "next publish once 16 more micrographs are recorded (time per publish, against that "
    "rebuild), the driver's peak memory, and the time per "
    "micrograph relative to the smallest set (1 = linear growth); the fixed start-up is one "
    "1024² micrograph with the typical settings (benchmarks/overhead_bench.py; the 100k set "
    "only with DASKMIC_BENCH_HUGE=1).",
    "",
]


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
        *NOTES,
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
