"""``daskmic demo``: synthesize a small dataset and run the whole pipeline on it locally."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from daskmic.datasets import make_dataset
from daskmic.preprocessing.params import TYPICAL_SETTINGS
from daskmic.run.config import RunConfig
from daskmic.run.driver import RunSummary, run_batch
from daskmic.tilt.params import TiltParams

DEMO_TILTS_DEG = (0.0, 60.0, 0.0, 20.0, 0.0, 65.0, 0.0, 40.0)
"""Specimen tilts of the demo set: untilted micrographs mixed with mildly and badly tilted ones."""

class _MicrographOptions(TypedDict):
    """The :func:`daskmic.datasets.make_dataset` options the demo sets."""

    pixel_size_A: float
    phase_std: float
    hot_pixels: int
    dead_pixels: int
    gradient: float


DEMO_MICROGRAPHS = _MicrographOptions(
    pixel_size_A=2.0, phase_std=0.3, hot_pixels=20, dead_pixels=20, gradient=0.1
)
"""How the demo's micrographs are made (:func:`daskmic.datasets.make_dataset` options)."""

DEMO_CONFIG = RunConfig(preprocess=TYPICAL_SETTINGS, tilt=TiltParams())
"""What the demo runs: the protocol's typical preprocessing and the default tilt screen."""

TRUTH_NAME = "truth.csv"


def truth_path(out_dir: str | os.PathLike[str]) -> Path:
    """The demo's truth table (``tilt_angle_deg`` and every other parameter per micrograph)."""
    return Path(out_dir) / "raw" / TRUTH_NAME


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
    illumination gradient; its truth is in ``out_dir/raw/truth.csv``.

    Returns
    -------
    RunSummary
        Every micrograph's row; the outputs are under ``out_dir/results``.

    Examples
    --------
    >>> import daskmic as dm
    >>> summary = dm.demo("daskmic-demo", micrographs=2, shape=(700, 700), workers=1,
    ...                   dashboard=False, quiet=True)
    >>> sorted(summary.counts())[0] in ("accepted", "discarded")
    True
    >>> (summary.out_dir / "micrographs.star").is_file()
    True
    """
    raw = Path(out_dir) / "raw"
    if not truth_path(out_dir).exists():
        tilts = [DEMO_TILTS_DEG[i % len(DEMO_TILTS_DEG)] for i in range(micrographs)]
        make_dataset(
            raw, n=micrographs, shape=shape, tilt_angles_deg=tilts, seed=0, **DEMO_MICROGRAPHS
        )
    return run_batch(
        str(raw / "*.mrc"), Path(out_dir) / "results", DEMO_CONFIG, on_row=on_row, **cluster_options
    )


def truth_note(out_dir: str | os.PathLike[str]) -> str:
    """Where the demo's truth is, so a user can compare it with the screen's decisions."""
    return (
        f"true tilts: {truth_path(out_dir).resolve()} (column tilt_angle_deg); what the screen "
        "can see at this size: README.md, 'What the tilt screen can see'"
    )
