"""Fixtures shared across the suite: a real distributed cluster and small micrograph files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def client() -> Iterator:
    """A real scheduler and two real worker processes on loopback, shared by the session.

    It is not made dask's default: tests pass it explicitly, and a plain ``.compute()`` of a
    graph holding test-module functions (which workers cannot import) stays local.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit="4GiB",
    ) as cluster:
        with Client(cluster, set_as_default=False) as connected:
            yield connected


@pytest.fixture
def write_micrographs(tmp_path: Path):
    """Write small synthetic micrographs as MRC files; returns their paths."""
    from daskmic.datasets import synthesize_micrograph
    from daskmic.io.mrc_write import write_mrc

    def write(
        n: int = 3,
        shape: tuple[int, int] = (512, 512),
        pixel_size_A: float = 1.0,
        folder: str = "raw",
        seed: int = 0,
        **options,
    ) -> list[Path]:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            image, _ = synthesize_micrograph(
                shape, pixel_size_A=pixel_size_A, seed=seed + i, **options
            )
            path = root / f"mic_{i:03d}.mrc"
            write_mrc(path, image, pixel_size_A)
            paths.append(path)
        return paths

    return write
