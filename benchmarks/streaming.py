"""Sustained streaming throughput on 4096² micrographs, and the driver's peak memory.

A producer process copies float32 micrographs into a watched folder faster than they can be
processed (so the queue never runs dry), then writes the ``CLOSED`` marker. This process runs
:func:`daskmic.watch` on an embedded local cluster with the protocol's typical preprocessing
(crop 10, bad pixels 5, invert, downsample 2, gaussian 1, highpass 0.002/0.001, lowpass
0.25/0.02, normalize) and the tilt-analysis screen (automatic window, 3 Å).

Printed: the sustained throughput (micrographs completed per second between the first and the
last completion, i.e. excluding the settle time of the first file), the end-to-end rate, the CPU
seconds per micrograph in the workers and in the driver (with the throughput they allow on
dedicated cores: on a shared machine the wall-clock rate depends on the other processes, so the
load average is printed too), and the driver's peak resident memory (``ru_maxrss``) against its
memory before the stream started. Pixels are synthesized in a child process (4 distinct
micrographs, 4 orientations each), so the driver never holds an image.

Run from the repository root::

    .venv/bin/python benchmarks/streaming.py [--micrographs 16] [--size 4096] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from daskmic.cluster.client import connect
from daskmic.preprocessing.params import TYPICAL_SETTINGS
from daskmic.run.config import RunConfig
from daskmic.run.stream import watch
from daskmic.tilt.params import TiltParams

TYPICAL = TYPICAL_SETTINGS

SYNTHESIZE = """
import sys
from pathlib import Path
import numpy as np
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
folder, n, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
folder.mkdir(parents=True, exist_ok=True)
for seed in range(min(n, 4)):
    image, _ = synthesize_micrograph((size, size), pixel_size_A=1.0, seed=seed,
                                     tilt_angle_deg=30.0 if seed % 2 else 0.0, hot_pixels=20)
    for k in range(seed, n, 4):
        view = np.rot90(image, k // 4 % 4)
        write_mrc(folder / f"mic_{k:03d}.mrc", view[:, ::-1] if k // 16 % 2 else view, 1.0)
"""

PRODUCE = """
import shutil, sys, time
from pathlib import Path
staging, folder, interval = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
for source in sorted(staging.glob("*.mrc")):
    shutil.copyfile(source, folder / ("." + source.name + ".part"))
    (folder / ("." + source.name + ".part")).rename(folder / source.name)
    time.sleep(interval)
(folder / "CLOSED").write_bytes(b"")
"""


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrographs", type=int, default=16)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument(
        "--interval",
        type=float,
        default=0.2,
        help="seconds between two arriving files (default 0.2)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: temporary)")
    args = parser.parse_args()
    if args.workdir is not None:
        measure(args, args.workdir)
        return
    workdir = Path(tempfile.mkdtemp(prefix="daskmic-streaming-"))
    try:
        measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # gigabytes of micrographs


def measure(args: argparse.Namespace, workdir: Path) -> None:
    """Stream ``args.micrographs`` files through ``watch`` in ``workdir``; print the figures."""
    staging, folder = workdir / f"staging-{args.size}", workdir / "session"
    if len(list(staging.glob("*.mrc"))) < args.micrographs:
        print(f"synthesizing {args.micrographs} {args.size}² micrographs in {staging} ...")
        subprocess.run(
            [sys.executable, "-c", SYNTHESIZE, str(staging), str(args.micrographs), str(args.size)],
            check=True,
        )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.mrc"), folder / "CLOSED"]:
        stale.unlink(missing_ok=True)

    config = RunConfig(preprocess=TYPICAL, tilt=TiltParams())
    completed: list[float] = []
    with connect(quiet=True) as client:
        workers_cpu_s = sum(client.run(_cpu_seconds).values())
        driver_cpu_s, load_before = _cpu_seconds(), os.getloadavg()[0]
        before_mb = psutil.Process().memory_info().rss / 2**20
        producer = subprocess.Popen(
            [sys.executable, "-c", PRODUCE, str(staging), str(folder), str(args.interval)]
        )
        start = time.monotonic()
        summary = watch(
            folder,
            workdir / f"out-{time.time_ns()}",
            config,
            settle_seconds=0.5,
            poll_seconds=0.2,
            client=client,
            on_row=lambda row: completed.append(time.monotonic()),
        )
        total_s = time.monotonic() - start
        workers_cpu_s = sum(client.run(_cpu_seconds).values()) - workers_cpu_s
        driver_cpu_s = _cpu_seconds() - driver_cpu_s
        threads = sum(client.nthreads().values())
    producer.wait()
    n = len(summary.rows)
    span_s = completed[-1] - completed[0]
    print(
        f"{n} micrographs {args.size}² float32 ({summary.counts()}); {threads} worker threads "
        f"on {psutil.cpu_count()} cores; load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f} (other processes share the cores)"
    )
    print(
        f"sustained throughput: {(n - 1) / span_s:.2f} micrographs/s "
        f"(first to last completion, {span_s:.1f} s)"
    )
    print(f"end to end: {n / total_s:.2f} micrographs/s ({total_s:.1f} s, from the first file)")
    print(
        f"CPU per micrograph: workers {workers_cpu_s / n:.2f} s, driver {driver_cpu_s / n:.2f} s"
        f" -> at most {threads * n / workers_cpu_s:.2f} micrographs/s on {threads} dedicated "
        "cores"
    )
    print(
        f"driver memory: {before_mb:.0f} MiB before the stream, peak {_peak_rss_mb():.0f} MiB "
        f"(one micrograph is {args.size**2 * 4 / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
