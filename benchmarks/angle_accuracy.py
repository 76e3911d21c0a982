"""Accuracy and cost of the tilt angle/axis estimator on synthetic micrographs with known truth.

Draws micrographs over the issue-9 ranges (tilt 0 or 10–50°, random axis, defocus 0.8–2.5 µm,
astigmatism up to 1500 Å, dose 15–40 e/Å², 0.9–1.5 Å/px), estimates each, and prints a
markdown table: mean absolute angle error per tilt band, axis error, mean reported angle over
untilted micrographs, statuses; then the cost per micrograph (wall and CPU, one process with
1 and 2 FFT threads, and the throughput of two processes on two cores).

Run: ``python benchmarks/angle_accuracy.py --size 4096 --tilted 16 --untilted 8``
(``--csv out.csv`` keeps one row per micrograph).

``--hard`` instead draws the frames of issue 19 (:mod:`daskmic.datasets_realistic`): per
feature kind (one or two of carbon film, contamination, drift, gain stripes, illumination,
low defocus with strong astigmatism, and clean frames), ``--per-kind`` frames of each
``--shapes`` (default the K3's 4092×5760 at 0.8–1.2 Å/px and its 2048×2883 binned view at
1.6–2.4 Å/px), a quarter of them untilted. It prints, per feature and size, the mean and
largest angle error over tilts ≥ 8°, the axis error, the reported angle of untilted frames,
how many true errors fall within 1σ and 3σ of the reported ± (angle and axis), the
statuses and the CPU seconds per frame; then the seconds per frame in the sweep (median
and max, wall and CPU), all frames and those that took the several-starts fallback
(counted by :func:`counted_starts`); then, with the cost section, each size alone with 1
and 2 threads (``workers``: the tile batches and the further starts share them): a typical
frame three times and each of the sweep's fallback frames once (median and max per frame,
wall and CPU; the CPU seconds are those of all the process's threads). Use seeds that no
test uses and that no one tuned on (held-out data): draw them, e.g. from the clock
(``--seed $(date +%s)``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

import daskmic.tilt.angle as angle_module
from daskmic.datasets import synthesize_micrograph
from daskmic.datasets_realistic import draw_realistic, synthesize_realistic
from daskmic.tilt.angle import estimate_tilt

KINDS = (
    (),
    ("carbon",),
    ("contamination",),
    ("drift",),
    ("stripes",),
    ("illumination",),
    ("low_defocus",),
    ("carbon", "contamination"),
    ("carbon", "illumination"),
    ("drift", "low_defocus"),
)
"""Feature kinds of the hard sweep (one or two features per frame, and clean frames)."""

SHAPES = {(2048, 2883): (1.6, 2.4), (4092, 5760): (0.8, 1.2)}
"""Frame shapes of the hard sweep and their pixel sizes (the same field of view)."""


def draw(rng: np.random.Generator, tilted: bool) -> dict[str, float]:
    """One micrograph's parameters, uniform over the issue-9 ranges."""
    return {
        "pixel_size_A": float(rng.uniform(0.9, 1.5)),
        "defocus_A": float(rng.uniform(8000.0, 25000.0)),
        "astigmatism_A": float(rng.uniform(0.0, 1500.0)),
        "astigmatism_angle_deg": float(rng.uniform(0.0, 180.0)),
        "tilt_angle_deg": float(rng.uniform(10.0, 50.0)) if tilted else 0.0,
        "tilt_axis_deg": float(rng.uniform(0.0, 180.0)),
        "dose_e_per_A2": float(rng.uniform(15.0, 40.0)),
    }


def run_one(args: tuple[int, dict[str, float], int]) -> dict[str, float | str]:
    """Synthesize one micrograph and estimate its tilt; errors against the truth."""
    size, params, seed = args
    image, truth = synthesize_micrograph((size, size), seed=seed, **params)
    wall, cpu = time.perf_counter(), time.process_time()
    result = estimate_tilt(image, params["pixel_size_A"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    axis_error = abs((result.tilt_axis_deg - truth["tilt_axis_deg"] + 90.0) % 180.0 - 90.0)
    return {
        **params,
        **{f"est_{k}": v for k, v in result.as_row().items()},
        "angle_error_deg": result.tilt_angle_deg - params["tilt_angle_deg"],
        "axis_error_deg": axis_error,
        "defocus_error_A": result.defocus_mean_A - params["defocus_A"],
        "astigmatism_error_A": result.astigmatism_A - params["astigmatism_A"],
        "wall_s": wall,
        "cpu_s": cpu,
    }


def accuracy_table(frame: pd.DataFrame) -> str:
    """Markdown table of the accuracy figures."""
    lines = [
        "| tilts | n | mean abs angle error (°) | max abs (°) | mean axis error (°) "
        "| mean reported err (°) | low_signal |",
        "|---|---|---|---|---|---|---|",
    ]
    tilted = frame[frame["tilt_angle_deg"] > 0]
    bands = [(10, 20), (20, 30), (30, 40), (40, 50), (10, 50)]
    for lo, hi in bands:
        part = tilted[(tilted["tilt_angle_deg"] >= lo) & (tilted["tilt_angle_deg"] < hi + 1e-9)]
        if part.empty:
            continue
        ok = part[part["est_angle_status"] == "ok"]
        lines.append(
            f"| {lo}–{hi}° | {len(part)} | {ok['angle_error_deg'].abs().mean():.2f} "
            f"| {ok['angle_error_deg'].abs().max():.2f} | {ok['axis_error_deg'].mean():.2f} "
            f"| {ok['est_tilt_angle_err_deg'].mean():.2f} | {len(part) - len(ok)} |"
        )
    flat = frame[frame["tilt_angle_deg"] == 0]
    if not flat.empty:
        ok = flat[flat["est_angle_status"] == "ok"]
        lines.append(
            f"| untilted: mean reported angle {ok['est_tilt_angle_deg'].mean():.2f}° "
            f"(max {ok['est_tilt_angle_deg'].max():.2f}°) | {len(flat)} | | | "
            f"| {ok['est_tilt_angle_err_deg'].mean():.2f} | {len(flat) - len(ok)} |"
        )
    lines.append(
        f"\nmean |defocus error| {frame['defocus_error_A'].abs().mean():.0f} Å, "
        f"mean |astigmatism error| {frame['astigmatism_error_A'].abs().mean():.0f} Å"
    )
    return "\n".join(lines)


def _timed_estimates(
    image: np.ndarray, pixel_size_A: float, workers: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeats`` tilt-angle estimates of ``image``."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        estimate_tilt(image, pixel_size_A, workers=workers)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def cost(size: int, repeats: int = 3) -> str:
    """Wall and CPU time per micrograph: 1 and 2 FFT threads, and two processes at once."""
    params = draw(np.random.default_rng(1), tilted=True)
    image, _ = synthesize_micrograph((size, size), seed=1, **params)
    lines = []
    for workers in (1, 2):
        estimate_tilt(image, params["pixel_size_A"], workers=workers)
        walls, cpus = _timed_estimates(image, params["pixel_size_A"], workers, repeats)
        lines.append(
            f"one process, {workers} FFT thread(s): median wall {np.median(walls):.2f} s, "
            f"CPU {np.median(cpus):.2f} s per {size}² micrograph"
        )
    return "\n".join(lines)


def _axis_error(estimate_deg: float, truth_deg: float) -> float:
    return abs((estimate_deg - truth_deg + 90.0) % 180.0 - 90.0)


@contextmanager
def counted_starts() -> Iterator[list[int]]:
    """Count the estimator's fits from a starting defocus while the context is open.

    More than one is the several-starts fallback (step 3 of :mod:`daskmic.tilt.angle`); the
    count is read off the estimator's per-start fit, which is wrapped for the time being.
    """
    calls = [0]
    fit_from = angle_module._fit_from

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return fit_from(*args, **kwargs)

    angle_module._fit_from = counted
    try:
        yield calls
    finally:
        angle_module._fit_from = fit_from


def run_hard(args: tuple[tuple[int, int], tuple[str, ...], dict, int]) -> dict:
    """Synthesize one hard frame, estimate its tilt (one thread); errors, cost, starts fitted."""
    shape, features, params, seed = args
    image, truth = synthesize_realistic(shape, seed=seed, **params)
    with counted_starts() as starts:
        wall, cpu = time.perf_counter(), time.process_time()
        result = estimate_tilt(image, params["pixel_size_A"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "shape": f"{shape[0]}x{shape[1]}",
        "kind": "+".join(features) or "clean",
        **{k: v for k, v in params.items() if isinstance(v, float | int)},
        "carbon_area_fraction": truth["carbon_area_fraction"],
        **{f"est_{k}": v for k, v in result.as_row().items()},
        "angle_error_deg": result.tilt_angle_deg - truth["tilt_angle_deg"],
        "axis_error_deg": _axis_error(result.tilt_axis_deg, truth["tilt_axis_deg"]),
        "wall_s": wall,
        "cpu_s": cpu,
        "starts": starts[0],
    }


def _cost_line(label: str, walls: list[float], cpus: list[float]) -> str:
    return (
        f"{label}: wall median {np.median(walls):.2f} s, max {max(walls):.2f} s; "
        f"CPU median {np.median(cpus):.2f} s, max {max(cpus):.2f} s per frame"
    )


def cost_hard(shape: tuple[int, int], fallback: list[tuple], repeats: int = 3) -> str:
    """Seconds per frame of ``shape`` alone on the machine, with 1 and 2 threads.

    A typical frame (carbon, seed 1) ``repeats`` times, then each of the sweep's ``fallback``
    jobs (frames that took several starts) once per thread count.
    """
    params = draw_realistic(np.random.default_rng(1), ("carbon",), tilted=True)
    params["pixel_size_A"] = float(np.mean(SHAPES.get(shape, (0.8, 1.2))))
    image, _ = synthesize_realistic(shape, seed=1, **params)
    typical = {w: _timed_estimates(image, params["pixel_size_A"], w, repeats) for w in (1, 2)}
    several: dict[int, tuple[list[float], list[float]]] = {1: ([], []), 2: ([], [])}
    for _, _, job, seed in fallback:  # one frame in memory at a time
        frame, _ = synthesize_realistic(shape, seed=seed, **job)
        for workers, (walls, cpus) in several.items():
            wall, cpu = _timed_estimates(frame, job["pixel_size_A"], workers, 1)
            walls += wall
            cpus += cpu
    lines = []
    for workers in (1, 2):
        label = f"{shape[0]}×{shape[1]}, one process, {workers} thread(s)"
        lines.append(_cost_line(f"{label}, a typical frame {repeats} times", *typical[workers]))
        if fallback:
            label = f"  the sweep's {len(fallback)} frame(s) that took several starts"
            lines.append(_cost_line(label, *several[workers]))
    if not fallback:
        lines.append(f"  no {shape[0]}×{shape[1]} frame of the sweep took several starts")
    return "\n".join(lines)


def sweep_cost(frame: pd.DataFrame) -> str:
    """The sweep's own seconds per frame (one thread each, beside its other processes)."""
    lines = []
    for shape, part in frame.groupby("shape", sort=False):
        lines.append(_cost_line(f"{shape}, all {len(part)} frames of the sweep",
                                part["wall_s"].tolist(), part["cpu_s"].tolist()))  # fmt: skip
        several = part[part["starts"] > 1]
        if len(several):
            label = f"{shape}, the {len(several)} that took several starts"
            lines.append(_cost_line(label, several["wall_s"].tolist(), several["cpu_s"].tolist()))
    return "\n".join(lines)


def _fraction(mask: pd.Series) -> str:
    return f"{int(mask.sum())}/{len(mask)}" if len(mask) else "–"


def hard_table(frame: pd.DataFrame) -> str:
    """Markdown table by shape and feature: errors, coverage of the ±, statuses, cost."""
    lines = [
        "| frame | feature | n | mean abs angle err, tilt ≥ 8° (°) | max (°) | mean axis err "
        "(°) | max axis err (°) | untilted: mean reported (°) | within 1σ | within 3σ "
        "| axis within 3σ | ok / uncertain / low_signal | CPU s per frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (shape, kind), part in frame.groupby(["shape", "kind"], sort=False):
        lines.append(_hard_row(shape, kind, part))
    for shape, part in frame.groupby("shape", sort=False):
        lines.append(_hard_row(shape, "**all**", part))
    return "\n".join(lines)


def _hard_row(shape: str, kind: str, part: pd.DataFrame) -> str:
    answered = part[part["est_angle_status"] != "low_signal"]
    steep = answered[answered["tilt_angle_deg"] >= 8.0]
    flat = answered[answered["tilt_angle_deg"] == 0.0]
    z = answered["angle_error_deg"].abs() / answered["est_tilt_angle_err_deg"]
    z_axis = steep["axis_error_deg"] / steep["est_tilt_axis_err_deg"]
    statuses = part["est_angle_status"].value_counts()
    counts = " / ".join(str(statuses.get(s, 0)) for s in ("ok", "uncertain", "low_signal"))
    return (
        f"| {shape} | {kind} | {len(part)} | {steep['angle_error_deg'].abs().mean():.2f} "
        f"| {steep['angle_error_deg'].abs().max():.2f} | {steep['axis_error_deg'].mean():.2f} "
        f"| {steep['axis_error_deg'].max():.2f} | {flat['est_tilt_angle_deg'].mean():.2f} "
        f"| {_fraction(z <= 1)} | {_fraction(z <= 3)} | {_fraction(z_axis <= 3)} | {counts} "
        f"| {part['cpu_s'].median():.2f} |"
    )


def bar_table(frame: pd.DataFrame) -> str:
    """The issue-19 bar per shape, over the frames reported ``ok`` (flagged ones counted)."""
    lines = [
        "| frame | flagged (uncertain / low_signal) | ok, tilt ≥ 8°: mean abs err (°) "
        "| worst kind's mean (°) | axis > 3° | untilted ok > 0.5° | all answered: within 1σ "
        "| within 3σ | axis within 3σ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for shape, part in frame.groupby("shape", sort=False):
        status = part["est_angle_status"]
        ok = part[status == "ok"]
        steep = ok[ok["tilt_angle_deg"] >= 8.0]
        kinds = steep.groupby("kind")["angle_error_deg"].apply(lambda e: e.abs().mean())
        flat = ok[ok["tilt_angle_deg"] == 0.0]
        answered = part[status != "low_signal"]
        z = answered["angle_error_deg"].abs() / answered["est_tilt_angle_err_deg"]
        tilted = answered[answered["tilt_angle_deg"] >= 8.0]
        z_axis = tilted["axis_error_deg"] / tilted["est_tilt_axis_err_deg"]
        lines.append(
            f"| {shape} | {int((status == 'uncertain').sum())} / "
            f"{int((status == 'low_signal').sum())} of {len(part)} "
            f"| {steep['angle_error_deg'].abs().mean():.2f} "
            f"| {kinds.idxmax() if len(kinds) else '–'} {kinds.max():.2f} "
            f"| {_fraction(steep['axis_error_deg'] > 3.0)} "
            f"| {_fraction(flat['est_tilt_angle_deg'] > 0.5)} "
            f"| {_fraction(z <= 1)} | {_fraction(z <= 3)} | {_fraction(z_axis <= 3)} |"
        )
    return "\n".join(lines)


def hard_sweep(args: argparse.Namespace) -> None:
    """The issue-19 sweep: every kind at every shape, printed as one table."""
    rng = np.random.default_rng(args.seed)
    shapes = [tuple(int(v) for v in text.split("x")) for text in args.shapes.split(",")]
    jobs = []
    for shape in shapes:
        pixel_range = SHAPES.get(shape, (0.8, 1.2))
        for features in KINDS:
            for i in range(args.per_kind):
                params = draw_realistic(
                    rng, features, tilted=i % 4 != 0, pixel_size_range_A=pixel_range
                )
                jobs.append((shape, features, params, int(rng.integers(2**31))))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        frame = pd.DataFrame(list(pool.map(run_hard, jobs)))
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(f"## Tilt estimator on realistic frames (seed {args.seed}), {len(frame)} frames\n")
    print(hard_table(frame))
    print("\n" + bar_table(frame))
    print(f"\nwhole sweep incl. synthesis {time.perf_counter() - start:.0f} s")
    print("\n" + sweep_cost(frame))
    if not args.no_cost:
        several = [job for job, starts in zip(jobs, frame["starts"], strict=True) if starts > 1]
        costs = [cost_hard(shape, [job for job in several if job[0] == shape]) for shape in shapes]
        print("\n" + "\n".join(costs))


def main() -> None:
    """Parse arguments, run the sweep and the cost measurement, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tilted", type=int, default=16)
    parser.add_argument("--untilted", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="processes for the sweep")
    parser.add_argument("--csv", default=None)
    parser.add_argument("--no-cost", action="store_true")
    parser.add_argument("--hard", action="store_true", help="the issue-19 sweep instead")
    parser.add_argument("--per-kind", type=int, default=4, help="--hard: frames per kind")
    parser.add_argument("--shapes", default="2048x2883,4092x5760", help="--hard: ny x nx list")
    args = parser.parse_args()
    if args.hard:
        hard_sweep(args)
        return
    rng = np.random.default_rng(args.seed)
    jobs = [
        (args.size, draw(rng, tilted), int(rng.integers(2**31)))
        for tilted in [True] * args.tilted + [False] * args.untilted
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    elapsed = time.perf_counter() - start
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(f"## Tilt estimator accuracy, {args.size}², {len(frame)} micrographs\n")
    print(accuracy_table(frame))
    print(
        f"\nsweep with {args.jobs} processes: estimate wall median "
        f"{frame['wall_s'].median():.2f} s, CPU median {frame['cpu_s'].median():.2f} s "
        "per micrograph "
        f"(whole sweep incl. synthesis {elapsed:.0f} s)"
    )
    if not args.no_cost:
        print("\n" + cost(args.size))
    if math.isnan(frame["angle_error_deg"].abs().mean()):
        print("\nno micrograph gave an angle")


if __name__ == "__main__":
    main()
