"""``daskmic demo``: synthesize a small dataset and run the whole pipeline on it locally."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daskmic.datasets import make_dataset
from daskmic.preprocessing.params import TYPICAL_SETTINGS
from daskmic.run.config import RunConfig
from daskmic.run.driver import RunSummary, run_batch
from daskmic.tilt.params import TiltParams

DEMO_TILTS_DEG = (0.0, 60.0, 0.0, 20.0, 0.0, 65.0, 0.0, 40.0)
"""Specimen tilts of the demo set: untilted micrographs mixed with mildly and badly tilted ones."""


def demo(
    out_dir: str | os.PathLike[str] = "daskmic-demo",
    *,
    micrographs: int = 8,
    shape: tuple[int, int] = (1024, 1024),
    on_row: Callable[[dict[str, Any]], None] | None = None,
    **cluster_options: Any,
) -> RunSummary:
    """Write a synthetic dataset to ``out_dir/raw`` and process it into ``out_dir/results``.

    Preprocessing with the protocol's typical settings and the tilt-analysis screen run on
    an embedded local dask cluster (or the one ``cluster_options`` name). The dataset mixes
    untilted and tilted micrographs (2 Å/px) with hot and dead pixels and an
    illumination gradient; its truth is in
    ``out_dir/raw/truth.csv``.

    Returns
    -------
    RunSummary
        Every micrograph's row; the outputs are under ``out_dir/results``.
    """
    raw = Path(out_dir) / "raw"
    if not (raw / "truth.csv").exists():
        tilts = [DEMO_TILTS_DEG[i % len(DEMO_TILTS_DEG)] for i in range(micrographs)]
        make_dataset(
            raw,
            n=micrographs,
            shape=shape,
            pixel_size_A=2.0,
            tilt_angles_deg=tilts,
            phase_std=0.3,
            hot_pixels=20,
            dead_pixels=20,
            gradient=0.1,
            seed=0,
        )
    config = RunConfig(preprocess=TYPICAL_SETTINGS, tilt=TiltParams())
    return run_batch(
        str(raw / "*.mrc"), Path(out_dir) / "results", config, on_row=on_row, **cluster_options
    )
