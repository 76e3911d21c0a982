"""Benchmarks 3 and 4: dataset throughput on the embedded cluster, and worker peak memory.

Throughput: the production unit (:func:`daskmic.run.unit.process_micrograph`, typical preprocessing
plus the tilt screen) over a set, on daskmic's local cluster (2 workers × 1 thread, its
default here, and 1 worker × 2 threads) vs a plain ``concurrent.futures`` pool of 2 processes
mapping the same function; both include opening the set and the final tables (``prepare`` …
``publish``). Cluster and pool start-up are excluded (all are started and warmed first); the
contenders take :data:`TURNS` turns on each set and each keeps its best: a run of 16 × 2048²
lasts about a second, and on a machine shared with other work one contender's single run
could land on a busy second and the next one's on a quiet one.

Memory: the same unit on a 2 × 1-thread local cluster whose workers' memory limit sums to less
than the dataset; each worker's peak resident memory (``VmHWM``) minus its idle resident
memory, per worker thread, against one input micrograph in float32.
"""

from __future__ import annotations

import importlib
import shutil
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from benchmarks.data import label, make_set
from benchmarks.pool import warm_pool
from benchmarks.table import Row
from daskmic.cluster.client import connect
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.driver import execute, prepare
from daskmic.run.publish import publish
from daskmic.run.unit import process_micrograph
from daskmic.tilt.params import TiltParams


def typical_config() -> RunConfig:
    """The protocol's typical preprocessing and the default tilt screen; no zarr pixel stack."""
    params = PreprocessParams(
        crop=10,
        bad_pixels=5.0,
        invert=True,
        downsample=2.0,
        gaussian=1.0,
        highpass=(0.002, 0.001),
        lowpass=(0.25, 0.02),
        normalize=True,
    )
    return RunConfig(preprocess=params, tilt=TiltParams(), write_stack=False)


def on_cluster(client: Any, inputs: list[str], out: Path) -> float:
    """Seconds to process ``inputs`` into ``out`` through daskmic's driver on ``client``."""
    config = typical_config()
    start = time.perf_counter()
    sources, digest = prepare(inputs, out, config)
    summary = execute(sources, out, config, digest, client=client)
    seconds = time.perf_counter() - start
    _check(summary.rows, len(inputs))
    return seconds


def on_pool(pool: Any, inputs: list[str], out: Path) -> float:
    """Seconds to process ``inputs`` into ``out`` with a process pool mapping the same unit."""
    config = typical_config()
    start = time.perf_counter()
    sources, digest = prepare(inputs, out, config)
    n = len(sources)
    rows = list(pool.map(process_micrograph, sources, [config] * n, [str(out)] * n, [digest] * n))
    publish(out, config)
    seconds = time.perf_counter() - start
    _check(rows, len(inputs))
    return seconds


def _check(rows: list[dict[str, Any]], n: int) -> None:
    failed = [row for row in rows if row["status"] == "failed"]
    if len(rows) != n or failed:
        raise RuntimeError(f"{len(rows)} rows for {n} inputs; failed: {failed[:1]}")


CLUSTERS = {
    "local cluster 2 workers x 1 thread": (2, 1),
    "local cluster 1 worker x 2 threads": (1, 2),
}
POOL = "process pool (2 procs)"
TURNS = 3
"""Turns the contenders take on each set (one in a smoke run); each keeps its best time."""


def throughput(workdir: Path, smoke: bool) -> list[Row]:
    """Micrographs per second for each set and contender; total time vs set size."""
    sets = (
        [(1, (640, 640)), (2, (640, 640))]
        if smoke
        else [(16, (4096, 4096)), (16, (2048, 2048)), (64, (2048, 2048))]
    )
    inputs = {
        (n, shape): make_set(workdir / "inputs" / f"tp_{n}_{shape[1]}", n, shape)
        for n, shape in sets
    }
    seconds: dict[tuple[str, int, tuple[int, int]], float] = {}
    with ExitStack() as stack:
        runners = {}
        for name, (workers, threads) in CLUSTERS.items():
            client = stack.enter_context(
                connect("local", workers=workers, threads_per_worker=threads, quiet=True)
            )
            client.run(importlib.import_module, "daskmic.run.unit")
            runners[name] = partial(on_cluster, client)
        runners[POOL] = partial(on_pool, stack.enter_context(warm_pool(2, ("daskmic.run.unit",))))
        for key, paths in inputs.items():  # contenders take turns, so load drift hits all alike
            for turn in range(1 if smoke else TURNS):
                for i, (name, runner) in enumerate(runners.items()):
                    out = workdir / "out" / f"tp{i}_{key[0]}_{key[1][1]}_{turn}"
                    taken = runner(paths, out)
                    seconds[(name, *key)] = min(seconds.get((name, *key), taken), taken)
                    shutil.rmtree(out)
    return _throughput_rows(seconds, sets)


def _throughput_rows(seconds: dict, sets: list) -> list[Row]:
    rows = []
    default = next(iter(CLUSTERS))
    for n, shape in sets:
        case = f"{n} x {label(shape)}, preprocess + tilt"
        pool = seconds[(POOL, n, shape)]
        for name in CLUSTERS:
            rate = n / seconds[(name, n, shape)]
            target = ">= 0.9" if name == default else ""
            rows.append(
                Row(
                    "throughput",
                    case,
                    name,
                    rate,
                    "mic/s",
                    rate / (n / pool),
                    "cluster/pool",
                    target,
                )
            )
        rows.append(Row("throughput", case, POOL, n / pool, "mic/s"))
    (n_small, shape), (n_large, _) = sets[-2], sets[-1]
    growth = seconds[(default, n_large, shape)] / seconds[(default, n_small, shape)]
    rows.append(
        Row(
            "scaling",
            f"total time {n_small} -> {n_large} x {label(shape)}",
            default,
            seconds[(default, n_large, shape)],
            "s",
            growth / (n_large / n_small),
            "time ratio / count ratio",
            "",
        )
    )
    return rows


def reset_peak() -> int:
    """Reset this process's peak resident memory (Linux ``clear_refs``); return its RSS now."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return psutil.Process().memory_info().rss


def peak_rss() -> int:
    """This process's peak resident memory since the last :func:`reset_peak` (``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def memory(workdir: Path, smoke: bool) -> list[Row]:
    """Peak resident memory above idle, per worker thread, on a set larger than the workers.

    Idle is each worker's resident memory after a warm-up run on two small micrographs (its
    imports done), when its peak is reset; the peak is its ``VmHWM`` after the set (Linux:
    ``ru_maxrss`` would include the pages the worker shared with its parent before ``exec``).
    """
    n, shape = (4, (640, 640)) if smoke else (32, (4096, 4096))
    paths = make_set(workdir / "inputs" / f"tp_{n}_{shape[1]}", n, shape)
    micrograph = shape[0] * shape[1] * 4
    limit = max(int(0.98 * n * micrograph / 2), 400 * 2**20)
    with connect(
        "local", workers=2, threads_per_worker=1, memory_limit=limit, quiet=True
    ) as client:
        warm = make_set(workdir / "inputs" / "warm", 2, (640, 640))
        on_cluster(client, warm, workdir / "out" / "warm")  # first-call imports are not peaks
        idle = client.run(reset_peak)
        on_cluster(client, paths, workdir / "out" / "memory")
        peak = client.run(peak_rss)
    restarted = sorted(set(idle) ^ set(peak))
    if restarted:
        raise RuntimeError(f"workers restarted during the memory run: {restarted}")
    above = max(peak[w] - idle[w] for w in idle)
    case = (
        f"{n} x {label(shape)} ({n * micrograph / 2**20:.0f} MiB) on 2 workers x 1 thread, "
        f"memory_limit {limit / 2**20:.0f} MiB each"
    )
    return [
        Row(
            "memory",
            case,
            "daskmic worker (max over workers)",
            above / 2**20,
            "MiB",
            above / micrograph,
            "peak above idle / f32 micrograph",
            "<= 4",
        )
    ]
