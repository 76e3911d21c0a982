"""Benchmark 5: how the cost of one micrograph grows with its size, against N log N.

The production unit with the typical preprocessing only (no tilt screen, whose window size
changes with the micrograph) over two warmed-up processes; seconds per micrograph at each size,
and that time relative to the smallest size divided by N log N relative to it (1 = grows as
N log N). Total time against the number of micrographs is in :mod:`benchmarks.cluster_bench`.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.cluster_bench import _check, typical_config
from benchmarks.data import label, make_set
from benchmarks.pool import warm_pool
from benchmarks.table import Row
from daskmic.run.driver import prepare
from daskmic.run.unit import process_micrograph


def _n_log_n(shape: tuple[int, int]) -> float:
    n = shape[0] * shape[1]
    return n * math.log2(n)


def run(workdir: Path, smoke: bool) -> list[Row]:
    """Seconds per micrograph at each size; growth relative to N log N."""
    shapes = (
        [(256, 256), (512, 512)]
        if smoke
        else [(1024, 1024), (2048, 2048), (4096, 4096), (4092, 5760)]
    )
    n = 2 if smoke else 4
    config = replace(typical_config(), tilt=None)
    per_mic = {}
    with warm_pool(2, ("daskmic.run.unit",)) as pool:
        for shape in shapes:
            paths = make_set(workdir / "inputs" / f"scale_{n}_{shape[1]}x{shape[0]}", n, shape)
            out = workdir / "out" / f"scale_{shape[1]}x{shape[0]}"
            sources, digest = prepare(paths, out, config)
            start = time.perf_counter()
            rows = list(
                pool.map(process_micrograph, sources, [config] * n, [str(out)] * n, [digest] * n)
            )
            per_mic[shape] = (time.perf_counter() - start) / n
            _check(rows, n)
    first = shapes[0]
    return [
        Row(
            "scaling",
            f"{n} x {label(shape)}, preprocess, 2 procs",
            "daskmic unit",
            per_mic[shape],
            "s/mic",
            (per_mic[shape] / per_mic[first]) / (_n_log_n(shape) / _n_log_n(first)),
            f"time / N log N, vs {label(first)}",
        )
        for shape in shapes
    ]
