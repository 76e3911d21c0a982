"""Benchmark inputs: synthetic micrographs from :mod:`daskmic.datasets`, written as MRC files.

Synthesis of a 4096² scene takes seconds, so a set of ``n`` files holds at most
``DISTINCT`` distinct micrographs, each written under several names (the pipeline's cost does
not depend on the scene).
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

import mrcfile
import numpy as np

from daskmic.datasets import synthesize_micrograph

DISTINCT = 2
PIXEL_SIZE_A = 1.0


@cache
def scene(shape: tuple[int, int], seed: int) -> np.ndarray:
    """One synthetic float32 micrograph with hot and dead pixels (cached per shape and seed)."""
    defects = max(shape[0] * shape[1] // 100_000, 1)
    image, _ = synthesize_micrograph(
        shape,
        pixel_size_A=PIXEL_SIZE_A,
        defocus_A=15000.0,
        astigmatism_A=500.0,
        hot_pixels=defects,
        dead_pixels=defects,
        seed=seed,
    )
    return image.astype(np.float32)


def make_set(
    folder: str | os.PathLike[str], n: int, shape: tuple[int, int], dtype: str = "float32"
) -> list[str]:
    """Write ``n`` micrographs ``mic_000.mrc``... of ``shape`` and ``dtype``; return the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"mic_{i:03d}.mrc" for i in range(n)]
    for i, path in enumerate(paths):
        if i >= DISTINCT:  # the same file again: a copy is faster than writing it anew
            shutil.copyfile(paths[i % DISTINCT], path)
            continue
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(scene(tuple(shape), i).astype(dtype))
            mrc.voxel_size = PIXEL_SIZE_A
    return [str(path) for path in paths]


def megapixels(shape: tuple[int, int]) -> float:
    """Pixels of one micrograph, in millions."""
    return shape[0] * shape[1] / 1e6


def label(shape: tuple[int, int], dtype: str = "float32") -> str:
    """``4096x4096 f32`` style label (x first, as detectors are named)."""
    return f"{shape[1]}x{shape[0]} {dtype.replace('float', 'f')}"
