"""What the journeys share: a user's small dataset, the ``daskmic`` command, one dask cluster.

The journeys run daskmic as a user does: the README's examples and command lines as written,
the commands with every option, again to resume, in a working folder that holds the inputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TILTS_DEG = (0.0, 40.0, 0.0)
"""The dataset's specimen tilts: two untilted micrographs and a tilted one."""


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: ``raw/mic_00N.mrc`` (768², 1.5 Å/px) and ``micrographs.star`` beside it.

    The STAR file names the micrographs relative to the folder (RELION's project convention).
    ``session/`` is a microscope session that has ended, as ``watch`` sees one: the same files
    in ``GridSquare_1/Data/`` and the ``CLOSED`` marker.
    """
    from daskmic.datasets import make_dataset

    folder = tmp_path_factory.mktemp("dataset")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        make_dataset(
            "raw",
            n=len(TILTS_DEG),
            shape=(768, 768),
            pixel_size_A=1.5,
            tilt_angles_deg=TILTS_DEG,
            phase_std=0.3,
            hot_pixels=5,
            dead_pixels=5,
            seed=14,
            make_star=True,
        )
    (folder / "raw" / "micrographs.star").rename(folder / "micrographs.star")
    data = folder / "session" / "GridSquare_1" / "Data"
    data.mkdir(parents=True)
    for path in sorted((folder / "raw").glob("*.mrc")):
        shutil.copy(path, data / path.name)
    (folder / "session" / "CLOSED").touch()
    return folder


@pytest.fixture
def workdir(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the dataset, made the working directory."""
    work = tmp_path / "work"
    shutil.copytree(dataset, work)
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="session")
def cluster_options(client) -> list[str]:
    """Options sending a command to the session's cluster (one start-up for all commands)."""
    return ["--cluster", client.scheduler_info()["address"], "--no-dashboard"]


@pytest.fixture(scope="session")
def daskmic() -> Callable[..., subprocess.CompletedProcess]:
    """Run the ``daskmic`` console script of this environment on this checkout, as a user."""
    script = Path(sys.executable).with_name("daskmic")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "daskmic.cli"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            command + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )

    return run
