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

EVERY_OPTION = {
    "preprocess": [
        "--crop", "--log", "--bad-pixels", "--invert", "--downsample", "--denoise",
        "--gaussian", "--highpass", "--lowpass", "--normalize",
    ],
    "tilt": ["--angle", "--max-tilt-deg", "30"],
}  # fmt: skip
"""Per command, every step on (flags alone: the protocol's defaults); the tilt screen with the
angle estimate and a maximum tilt of 30°."""


@pytest.fixture(scope="session")
def every_option() -> dict[str, list[str]]:
    """The options turning on every step of ``preprocess`` and of ``tilt``, by command."""
    return {command: list(options) for command, options in EVERY_OPTION.items()}


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
    _scipion_project(folder)
    return folder


SCIPION_SETS = (
    "Runs/000002_ProtImportMicrographs/micrographs.sqlite",
    "Runs/000042_ProtMotionCorr/outputMicrographs.sqlite",
)
"""The sets the README's Scipion lines name, relative to the project folder."""


def _scipion_project(folder: Path) -> None:
    """Make ``folder`` a Scipion project too: closed sets of ``raw/`` in the README's places."""
    import pandas as pd

    from daskmic.io.scipion_write import write_set

    names = sorted(p.name for p in (folder / "raw").glob("*.mrc"))
    items = pd.DataFrame(
        {
            "id": range(1, len(names) + 1),
            "_filename": [f"raw/{name}" for name in names],
            "_samplingRate": 1.5,
            "_micName": names,
        }
    )
    for relative in SCIPION_SETS:
        write_set(folder / relative, items, stream_open=False, dims=(768, 768))


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
def daskmic_command() -> tuple[list[str], dict[str, str]]:
    """The ``daskmic`` console script of this environment on this checkout, and its
    environment."""
    script = Path(sys.executable).with_name("daskmic")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "daskmic.cli"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return command, env


@pytest.fixture(scope="session")
def daskmic(daskmic_command) -> Callable[..., subprocess.CompletedProcess]:
    """Run the ``daskmic`` console script of this environment on this checkout, as a user."""
    command, env = daskmic_command

    def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            command + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )

    return run
