"""Benchmark 2: tilt analysis per micrograph — daskmic (default, compat) vs the xmippLib path.

The xmippLib path is the tilt tests' oracle (``tests/tilt/test_xmipp_oracle.py``: the
protocol's own xmippLib calls — window2D, computePSD, convertPSD, applyWarpAffine, the
low-pass through files, correlation), called on the pixels xmippLib reads from the file.
Every contender screens the same files over two warmed-up processes; the figure is wall-clock
seconds per micrograph.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from functools import cache, partial
from pathlib import Path
from types import ModuleType

from benchmarks.data import PIXEL_SIZE_A, label, make_set
from benchmarks.pool import warm_pool
from benchmarks.table import Row

ORACLE = Path(__file__).resolve().parent.parent / "tests" / "tilt" / "test_xmipp_oracle.py"
RESOLUTION_A = 3.0


@cache
def _oracle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("daskmic_tilt_xmipp_oracle", ORACLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def daskmic_screen(path: str, xmipp_compat: bool) -> float:
    """daskmic's production path: read the four corner windows, screen them."""
    from daskmic.io import read_header, read_micrograph
    from daskmic.tilt.params import TiltParams
    from daskmic.tilt.screen import corner_regions, screen_windows

    params = TiltParams(resolution_A=RESOLUTION_A, xmipp_compat=xmipp_compat)
    shape = read_header(path).shape
    windows = [read_micrograph(path, region) for region in corner_regions(shape, params)]
    return screen_windows(windows, PIXEL_SIZE_A, params).mean


def xmipp_screen(path: str) -> float:
    """The xmippLib path: read with xmippLib, then the protocol's calls (the tests' oracle)."""
    import numpy as np
    import xmippLib

    from daskmic.tilt.params import TiltParams

    image = xmippLib.Image(path).getData()
    window = TiltParams(xmipp_compat=True).window_size_px(image.shape)
    with tempfile.TemporaryDirectory() as scratch:
        pairs, _ = _oracle().xmipp_tilt_oracle(
            image, PIXEL_SIZE_A, window, RESOLUTION_A, Path(scratch)
        )
    return float(np.mean(pairs))


CONTENDERS = {
    "daskmic default": partial(daskmic_screen, xmipp_compat=False),
    "daskmic --xmipp-compat": partial(daskmic_screen, xmipp_compat=True),
    "xmippLib path (pyxmipp3)": xmipp_screen,
}
MODULES = (
    "numpy",
    "scipy.fft",
    "xmippLib",
    "daskmic.tilt.screen",
    "daskmic.io",
    "benchmarks.tilt_bench",
)


def run(workdir: Path, smoke: bool) -> list[Row]:
    """Screen the same set with every contender; ratios against the xmippLib path."""
    shapes = [(640, 640)] if smoke else [(4096, 4096), (4092, 5760)]
    n = 2 if smoke else 6
    rows: list[Row] = []
    with warm_pool(2, MODULES) as pool:
        for shape in shapes:
            inputs = make_set(workdir / "inputs" / f"tilt_{shape[1]}x{shape[0]}", n, shape)
            seconds = {}
            for name, screen in CONTENDERS.items():
                start = time.perf_counter()
                list(pool.map(screen, inputs))
                seconds[name] = (time.perf_counter() - start) / n
            case = f"{n} x {label(shape)}, 2 procs"
            reference = seconds["xmippLib path (pyxmipp3)"]
            for name, value in seconds.items():
                row = Row("tilt", case, name, value, "s/mic")
                if not name.startswith("xmippLib"):
                    target = ">= 2" if name == "daskmic default" else ""
                    row = Row(
                        "tilt",
                        case,
                        name,
                        value,
                        "s/mic",
                        reference / value,
                        "xmippLib/daskmic",
                        target,
                    )
                rows.append(row)
    return rows
