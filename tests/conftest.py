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


@pytest.fixture(scope="session")
def side_venv():
    """Make (or reuse) a side environment: ``side_venv(name, requirements) -> python``."""
    return _side_venv


def _side_venv(name: str, requirements: list[str]) -> Path:
    """A virtual environment of its own for tools that cannot share daskmic's (their pins).

    Made once under ``.venv-side/<name>`` in the repository (kept between runs) with the
    machine's base Python and pip from the package registry. Without a registry the test is
    skipped, except under ``CI=true``, where it fails.

    Returns
    -------
    pathlib.Path
        The environment's ``python``.
    """
    import os
    import subprocess
    import sys

    folder = Path(__file__).resolve().parents[1] / ".venv-side" / name
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    wanted = "\n".join(requirements)
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    try:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *requirements],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        output = getattr(error, "stderr", "") or ""
        message = f"could not make the {name} environment: {error}\n{output[-2000:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    stamp.write_text(wanted)
    return python
