"""Fixtures for the I/O tests: small MRC files and a counter of pixel reads."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from daskmic.io import readers


@pytest.fixture
def make_mrc(tmp_path: Path):
    """Write ``data`` as an MRC file under ``tmp_path``; returns its path."""

    def make(name: str, data: np.ndarray, voxel_size: float | None = None) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(np.asarray(data))
            if voxel_size is not None:
                mrc.voxel_size = voxel_size
        return path

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every pixel read (path, region) made through ``read_micrograph``."""
    calls: list = []
    original = readers.read_micrograph

    def counting(path, region=None, storage_options=None):
        calls.append((str(path), region))
        return original(path, region, storage_options)

    monkeypatch.setattr(readers, "read_micrograph", counting)
    return calls
