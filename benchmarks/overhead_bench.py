"""Benchmark 7: costs around the compute as a set grows, and the fixed start-up (#16).

Small micrographs (128², ``daskmic preprocess --crop 10 --normalize --no-stack --no-report
--no-dashboard``: the MRC files, the tables and the zarr store's table and thumbnails; as in the
preprocess benchmark, no pixel stack, since the floor writes only MRC files) show what a set
costs beside its compute. For each set size N:

- the whole command against the floor on the same files (end to end, and CPU time of the
  command and its worker processes, which a machine shared with other work does not distort);
- a rerun of the finished set against the first run (nothing to do: nothing submitted, nothing
  rebuilt);
- one full rebuild of the tables, the Scipion sets and the zarr store
  (:func:`daskmic.run.publish.publish` with nothing published to reuse) on the finished folder,
  and the time per publish: the next publish once 16 more micrographs are recorded, against
  that rebuild (wall-clock and CPU time, in the same process);
- the driver's peak resident memory;
- the time per micrograph relative to the smallest N (1 = grows linearly).

The fixed start-up is one 1024² micrograph with the typical settings end to end against the
floor, and when its record is written (the first micrograph is in work before that). The 100k
set takes most of an hour and about 15 GB of disk: it runs only with ``DASKMIC_BENCH_HUGE=1``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.data import label, make_set
from benchmarks.preprocess_bench import TYPICAL, contender_command
from benchmarks.table import Row

SMALL = (128, 128)
SIZES = (1000, 2000, 10_000)
HUGE = 100_000
SMOKE_SIZES = (8, 24)
LATE = 16
"""Micrographs recorded on a finished set before the publish whose time is measured."""
SMALL_OPTIONS = ["--crop", "10", "--normalize", "--no-stack", "--no-report", "--no-dashboard"]
START_OPTIONS = ["--crop", "10", *TYPICAL, "--no-stack", "--no-report", "--no-dashboard"]

DRIVER = (
    "import sys; from daskmic.cli import leave, main; code = main(sys.argv[1:]); "
    "peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]; "
    "print('peak_rss_kib', *peak, file=sys.stderr); "
    "leave(code)"
)
"""The command line as the ``daskmic`` script runs it (:func:`daskmic.cli.entry`: ``main``, then
an exit without the interpreter's teardown), in a process that reports its own (the driver's)
peak memory: the high-water mark of its own pages (``VmHWM``). Not ``ru_maxrss``, which Linux
carries over from the parent at ``exec``: after the 4096² benchmarks the benchmark process's
own peak (~1 GB) showed in every row."""


@dataclass(frozen=True)
class Timed:
    """One command: wall-clock and CPU seconds (its own and its children's), driver peak."""

    wall_s: float
    cpu_s: float
    peak_mib: float = float("nan")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


PR_SET_CHILD_SUBREAPER = 36
"""Linux ``prctl`` option: orphaned descendants are re-parented to this process, not init."""


@functools.cache
def _adopt_orphans() -> None:
    """Become the reaper of this process's orphaned descendants (Linux), so their CPU counts.

    A command's processes that outlive it (multiprocessing's fork server, which exits just after
    the command and has reaped the worker processes it forked) would otherwise leave the tree
    uncounted.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children()}


def _reap_orphans(known: set[int]) -> None:
    """Wait for the descendants of the command just run that outlived it and were adopted
    (see :func:`_adopt_orphans`); ``known`` are this process's children from before, left be."""
    while adopted := _children() - known:
        for pid in adopted:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # not ours after all (reaped meanwhile)
                known.add(pid)


def timed(command: list[str]) -> Timed:
    """Run ``command`` from the repository root; its wall and CPU time and reported peak.

    The CPU time is the command's and all its descendants', those that outlive it included.
    """
    root = Path(__file__).resolve().parent.parent
    _adopt_orphans()
    known = _children()
    cpu, start = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - start
    _reap_orphans(known)
    cpu = _children_cpu_s() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("peak_rss")]
    return Timed(wall, cpu, int(peaks[-1]) / 1024 if peaks else float("nan"))


def daskmic(inputs: str, out: Path, options: list[str]) -> Timed:
    """``daskmic preprocess INPUTS -o OUT OPTIONS`` through :data:`DRIVER`."""
    return timed([sys.executable, "-c", DRIVER, "preprocess", inputs, "-o", str(out), *options])


def floor(inputs: str, out: Path) -> Timed:
    """The floor (:mod:`benchmarks.contenders`) on the same files."""
    return timed(contender_command("floor", [inputs], str(out), 10))


def _publish_s(out: Path, late: list[str]) -> tuple[Timed, Timed]:
    """One full rebuild of ``out``'s tables, Scipion sets and zarr store (the second of two:
    the first warms the process up), then a publish after the micrographs ``late`` (named
    after the others) are recorded, in one process."""
    import daskmic.run.publish
    from daskmic.run.config import RunConfig
    from daskmic.run.driver import prepare
    from daskmic.run.manifest import Manifest
    from daskmic.run.unit import process_micrograph

    config = RunConfig.from_dict(Manifest(out).parameters())
    layout = Manifest(out).layout
    for _ in range(2):  # the first warms this process up (lazy imports, first calls)
        shutil.rmtree(layout.live_sets, ignore_errors=True)  # nothing published to reuse
        (layout.zarr / "zarr.json").unlink()
        daskmic.run.publish._PUBLISHERS.clear()
        full = _in_process(lambda: daskmic.run.publish.publish(out, config))
    sources, digest = prepare(late, out, config)
    for source in sources:
        process_micrograph(source, config, str(out), digest)
    again = _in_process(lambda: daskmic.run.publish.publish(out, config, stream_open=True))
    return full, again


def _in_process(call: Callable[[], object]) -> Timed:
    """Wall-clock and CPU seconds of ``call`` in this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return Timed(time.perf_counter() - wall, time.process_time() - cpu)


def _late(folder: Path, like: str) -> list[str]:
    """:data:`LATE` copies of the micrograph ``like``, named after a set's others (new ones
    of an acquisition)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"mic_late_{i:02d}.mrc" for i in range(LATE)]
    for path in paths:
        shutil.copyfile(like, path)
    return [str(path) for path in paths]


def _set_rows(workdir: Path, n: int, shape: tuple[int, int]) -> tuple[list[Row], float]:
    """Rows of one set size; also its seconds per micrograph end to end."""
    folder = workdir / "inputs" / f"small_{n}"
    paths = make_set(folder, n, shape)
    inputs, out = str(folder / "*.mrc"), workdir / "out" / f"small_{n}"
    base = floor(inputs, out / "floor")
    first = daskmic(inputs, out / "daskmic", SMALL_OPTIONS)
    again = daskmic(inputs, out / "daskmic", SMALL_OPTIONS)
    full, late = _publish_s(out / "daskmic", _late(workdir / "inputs" / "late", paths[0]))
    shutil.rmtree(out, ignore_errors=True)  # as soon as measured: the 100k set is large
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(workdir / "inputs" / "late", ignore_errors=True)
    case = f"{n} x {label(shape)}, crop 10, normalize"
    per_publish = f"publish after {LATE} new micrographs"
    rows = [
        _row(case, "daskmic CLI, end to end", first.wall_s, base.wall_s, "daskmic/floor"),
        _row(case, FLOOR, base.wall_s),
        _row(case, "daskmic CLI, CPU time", first.cpu_s, base.cpu_s, "daskmic/floor CPU"),
        _row(case, "rerun of the finished set", again.wall_s, first.wall_s, "rerun/first run"),
        _row(case, "one full rebuild (publish)", full.wall_s, base.wall_s, "publish/floor"),
        _row(case, per_publish, late.wall_s, full.wall_s, "publish/full rebuild"),
        _row(case, f"{per_publish}, CPU time", late.cpu_s, full.cpu_s, "publish/full CPU"),
        Row("overhead", case, "driver peak memory", first.peak_mib, "MiB"),
    ]
    return rows, first.wall_s / n


FLOOR = "floor (rfft2+irfft2, 2 procs)"
TARGETS = {
    ("2000 x", "daskmic/floor"): "<= 4",
    ("", "rerun/first run"): "<= 0.15",
    ("1 x 1024", "daskmic/floor"): "<= 3",
}
"""The bars of #16: (start of the case, ratio) -> target."""


def _row(
    case: str, contender: str, seconds: float, reference: float = float("nan"), of: str = ""
) -> Row:
    """A row in seconds, with its ratio to ``reference`` and the bar it has, if any."""
    bars = [t for (start, ratio), t in TARGETS.items() if case.startswith(start) and ratio == of]
    target = bars[0] if bars else ""
    return Row("overhead", case, contender, seconds, "s", seconds / reference, of, target)


def _start_rows(workdir: Path, shape: tuple[int, int]) -> list[Row]:
    """One micrograph end to end with the typical settings, and when its record appeared."""
    folder = workdir / "inputs" / f"start_{shape[0]}"
    (path,) = make_set(folder, 1, shape)
    out = workdir / "out" / f"start_{shape[0]}"
    base = floor(path, out / "floor")
    started = time.time()
    one = daskmic(path, out / "daskmic", START_OPTIONS)
    (record,) = (out / "daskmic" / ".daskmic" / "records").glob("*.json")
    recorded_s = record.stat().st_mtime - started
    case = f"1 x {label(shape)}, typical settings, fixed start-up"
    return [
        _row(case, "daskmic CLI, end to end", one.wall_s, base.wall_s, "daskmic/floor"),
        _row(case, FLOOR, base.wall_s),
        _row(case, "daskmic CLI, its record written after", recorded_s, base.wall_s, "/floor"),
    ]


def run(workdir: Path, smoke: bool) -> list[Row]:
    """Every set size's rows, the linear-growth rows and the fixed start-up's."""
    shape = (32, 32) if smoke else SMALL
    sizes = SMOKE_SIZES if smoke else SIZES
    if os.environ.get("DASKMIC_BENCH_HUGE") and not smoke:
        sizes += (HUGE,)
    rows: list[Row] = []
    per_mic: dict[int, float] = {}
    for n in sizes:
        measured, per_mic[n] = _set_rows(workdir, n, shape)
        rows += measured
    first = sizes[0]
    rows += [
        Row(
            "overhead",
            f"{n} x {label(shape)}, crop 10, normalize",
            "per micrograph, end to end",
            per_mic[n],
            "s/mic",
            per_mic[n] / per_mic[first],
            f"vs {first} (1 = linear)",
        )
        for n in sizes
    ]
    return rows + _start_rows(workdir, (256, 256) if smoke else (1024, 1024))
