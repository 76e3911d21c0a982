"""Benchmark 1: preprocessing a set end to end — daskmic's CLI vs the floor and the Xmipp chain.

Each contender is a fresh command-line process timed by wall clock (interpreter start, imports
and, for daskmic, the embedded cluster included), on the same input files, using both cores:
daskmic's default local cluster, the floor and the chain two processes each.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.data import label, make_set
from benchmarks.table import Row

TYPICAL = [
    "--bad-pixels",
    "--invert",
    "--downsample",
    "2",
    "--gaussian",
    "1",
    "--highpass",
    "0.002",
    "0.001",
    "--lowpass",
    "0.25",
    "0.02",
    "--normalize",
]


def daskmic_command(inputs: list[str], out: str, crop_px: int) -> list[str]:
    """The ``daskmic preprocess`` command with the protocol's typical settings."""
    crop = ["--crop", str(crop_px)] if crop_px else []
    script = Path(sys.executable).with_name("daskmic")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "daskmic.cli"]
    outputs = ["--no-stack", "--no-report", "--no-dashboard"]  # the floor writes only MRC files
    return [*head, "preprocess", *inputs, "-o", out, *crop, *TYPICAL, *outputs]


def contender_command(name: str, inputs: list[str], out: str, crop_px: int) -> list[str]:
    """The command running a plain numpy/scipy contender (:mod:`benchmarks.contenders`)."""
    return [
        sys.executable,
        "-m",
        "benchmarks.contenders",
        name,
        *inputs,
        "-o",
        out,
        "--crop",
        str(crop_px),
    ]


def timed(command: list[str]) -> float:
    """Run ``command`` (from the repository root); return its wall-clock seconds."""
    root = Path(__file__).resolve().parent.parent
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def _contenders(inputs: list[str], out: Path, crop_px: int, chain_n: int) -> dict[str, float]:
    """Wall-clock seconds of each contender on ``inputs`` (the chain on the first ``chain_n``)."""
    seconds = {
        "daskmic": timed(daskmic_command(inputs, str(out / "daskmic"), crop_px)),
        "floor": timed(contender_command("floor", inputs, str(out / "floor"), crop_px)),
    }
    if chain_n:
        chained = inputs[:chain_n]
        seconds["chain"] = timed(contender_command("chain", chained, str(out / "chain"), crop_px))
    return seconds


def run_case(
    workdir: Path,
    shape: tuple[int, int],
    dtype: str,
    crop_px: int,
    n: int,
    chain_n: int,
    marginal: bool = False,
    small_n: int = 0,
) -> list[Row]:
    """Time daskmic, the floor and the chain; per micrograph, end to end and (optionally) marginal.

    The marginal cost ``(T(n) - T(1)) / (n - 1)`` leaves out each command's fixed start-up
    (interpreter, imports, daskmic's cluster). With ``small_n``, the first ``small_n``
    micrographs are also timed end to end, to show the fixed start-up's weight in a small set.
    """
    tag = f"{shape[1]}x{shape[0]}_{dtype}_{n}"
    inputs = make_set(workdir / "inputs" / tag, n, shape, dtype)
    out = workdir / "out" / f"{tag}_crop{crop_px}"
    seconds = _contenders(inputs, out, crop_px, chain_n)
    chain_note = f" (chain on {chain_n})" if chain_n and chain_n != n else ""
    case = f"{n} x {label(shape, dtype)}, crop {crop_px}{chain_note}, end to end"
    per_mic = {"daskmic": seconds["daskmic"] / n, "floor": seconds["floor"] / n}
    if chain_n:
        per_mic["chain"] = seconds["chain"] / chain_n
    rows = _rows(case, per_mic)
    if small_n:
        few = _contenders(inputs[:small_n], out / "small", crop_px, 0)
        case = f"{small_n} x {label(shape, dtype)}, crop {crop_px}, end to end (small set)"
        rows += _rows(case, {k: v / small_n for k, v in few.items()})
    if marginal:
        one = _contenders(inputs[:1], out / "single", crop_px, 0)
        steady = {k: (seconds[k] - one[k]) / (n - 1) for k in one}
        case = f"{n} x {label(shape, dtype)}, crop {crop_px}, marginal (T(n)-T(1))/(n-1)"
        if chain_n:
            case += f" (chain: end to end on {chain_n})"
            steady["chain"] = per_mic["chain"]
        rows += _rows(case, steady)
        fixed = {k: one[k] - steady[k] for k in one}
        rows.append(
            Row(
                "preprocess",
                f"1 x {label(shape, dtype)}, crop {crop_px}, fixed start-up T(1) - marginal",
                "daskmic CLI",
                fixed["daskmic"],
                "s",
                fixed["daskmic"] / fixed["floor"],
                "daskmic/floor",
            )
        )
        rows.append(
            Row(
                "preprocess",
                f"{label(shape, dtype)}, crop {crop_px}, smallest set within {BOUND}x of the "
                "floor end to end (from the fixed and marginal costs above)",
                "daskmic CLI",
                smallest_set_within(BOUND, fixed, steady),
                "mic",
            )
        )
    return rows


BOUND = 1.5
"""The end-to-end target: daskmic within this factor of the floor."""


def smallest_set_within(bound: float, fixed: dict[str, float], steady: dict[str, float]) -> float:
    """Smallest set size ``n`` with ``(F + n m) / (F0 + n m0) <= bound``; inf if none.

    ``F``, ``m`` are daskmic's fixed start-up and marginal cost per micrograph, ``F0``, ``m0``
    the floor's. The ratio falls with ``n`` towards ``m / m0`` when daskmic's fixed cost is the
    larger, so a set of at least ``n`` micrographs meets the bound, and none does when the
    marginal ratio itself exceeds it.
    """
    gain = bound * steady["floor"] - steady["daskmic"]
    if gain <= 0:
        return math.inf
    return float(max(1, math.ceil((fixed["daskmic"] - bound * fixed["floor"]) / gain)))


def _rows(case: str, per_mic: dict[str, float]) -> list[Row]:
    ours, floor = per_mic["daskmic"], per_mic["floor"]
    rows = [
        Row(
            "preprocess",
            case,
            "daskmic CLI",
            ours,
            "s/mic",
            ours / floor,
            "daskmic/floor",
            f"<= {BOUND}",
        ),
        Row("preprocess", case, "floor (rfft2+irfft2, 2 procs)", floor, "s/mic"),
    ]
    if "chain" in per_mic:
        chain = per_mic["chain"]
        rows.append(
            Row(
                "preprocess",
                case,
                "Xmipp-style chain (2 procs)",
                chain,
                "s/mic",
                chain / ours,
                "chain/daskmic",
                ">= 3",
            )
        )
    return rows


def run(workdir: Path, smoke: bool) -> list[Row]:
    """All preprocessing cases: detector sizes, float32/float16, crop 10 and crop 0."""
    if smoke:
        cases = [((512, 512), "float16", 10, 3, 2, True, 2)]
    else:
        cases = [
            ((4096, 4096), "float32", 10, 12, 2, False, 0),  # #16's bar: 12 micrographs
            ((4096, 4096), "float32", 10, 32, 2, True, 8),
            ((4096, 4096), "float32", 0, 16, 2, False, 0),
            ((4096, 4096), "float16", 10, 16, 0, False, 0),
            ((4092, 5760), "float32", 10, 16, 2, False, 0),
            ((4092, 5760), "float16", 0, 16, 0, False, 0),
        ]
    rows: list[Row] = []
    for shape, dtype, crop_px, n, chain_n, marginal, small_n in cases:
        rows += run_case(workdir, shape, dtype, crop_px, n, chain_n, marginal, small_n)
    return rows
