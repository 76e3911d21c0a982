"""Scipion's own packages in their own environment, made by the tests and reused.

scipion-em pins versions daskmic cannot share (mrcfile<=1.4.3, scipy<=1.10), so the set-up
makes a side environment (the ``side_venv`` fixture: ``.venv-side/scipion``) with
scipion-pyworkflow, scipion-em and the plugin of ``deploy/scipion`` (editable), once, made
anew when the plugin's ``pyproject.toml`` changes. The scripts in ``pwem/`` run with that
environment's python. When it cannot be made the tests fail, unless PyPI is out of reach
outside CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "deploy" / "scipion"
SCRIPTS = Path(__file__).resolve().parent / "pwem"
PACKAGES = ("scipion-pyworkflow", "scipion-em")
HOSTS = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = localhost
MANDATORY = False
QUEUE_SYSTEM = False
"""


def _key() -> str:
    return hashlib.sha256((PLUGIN / "pyproject.toml").read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Pwem:
    """Runs scripts with the Scipion environment's python, configured for headless tests."""

    python: Path
    home: Path

    def env(self) -> dict[str, str]:
        """Scipion's settings for a headless run in a temporary user folder."""
        hosts = self.home / "hosts.conf"
        if not hosts.exists():
            hosts.write_text(HOSTS)
        paths = [str(SCRIPTS), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {
            **os.environ,
            "SCIPION_DOMAIN": "pwem",
            "SCIPION_USER_DATA": str(self.home / "ScipionUserData"),
            "SCIPION_HOSTS": str(hosts),
            "SCIPION_PYTHON": str(self.python),
            "SCIPION_LOG_LEVEL": "WARNING",
            "DASKMIC_BIN": str(Path(sys.executable).parent / "daskmic"),
            "PYTHONPATH": os.pathsep.join(paths),
        }

    def run(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``python ARGS`` in ``cwd``; fail the test with its output if it fails."""
        done = subprocess.run(
            [str(self.python), *args],
            cwd=cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"pwem script {args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return done

    def make_set(self, path: Path, cwd: Path, **spec) -> None:
        """Write a SetOfMicrographs with pwem (see ``pwem/sets.py make``)."""
        spec_file = cwd / f".{path.name}.spec.json"
        spec_file.write_text(json.dumps(spec))
        self.run(str(SCRIPTS / "sets.py"), "make", str(path), str(spec_file), cwd=cwd)

    def dump_sets(self, *paths: Path, cwd: Path) -> list[dict]:
        """Sets as pwem reads them (see ``pwem/sets.py dump``), one pwem start for all."""
        done = self.run(str(SCRIPTS / "sets.py"), "dump", *map(str, paths), cwd=cwd)
        return list(json.loads(done.stdout.strip().splitlines()[-1]).values())


@pytest.fixture(scope="session")
def pwem(tmp_path_factory: pytest.TempPathFactory, side_venv) -> Pwem:
    """The Scipion environment (made on first use) and a temporary Scipion home."""
    installs = [list(PACKAGES), ["--no-deps", "-e", str(PLUGIN)]]
    python = side_venv("scipion", installs, key=_key())
    return Pwem(python=python, home=tmp_path_factory.mktemp("scipion-home"))


ACQUISITION = {"sampling": 1.2, "voltage": 200.0, "cs": 2.0, "q0": 0.07, "magnification": 50000}


@pytest.fixture(scope="session")
def acquisition() -> dict[str, float]:
    """The acquisition of the test sets (not daskmic's defaults, so carrying them is checked)."""
    return dict(ACQUISITION)


@pytest.fixture(scope="session")
def raw_1024(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three synthetic 1024² micrographs (flat, tilted 40°, flat), made once."""
    from daskmic.datasets import make_dataset

    folder = tmp_path_factory.mktemp("raw1024")
    make_dataset(
        folder,
        n=3,
        shape=(1024, 1024),
        pixel_size_A=ACQUISITION["sampling"],
        tilt_angles_deg=[0.0, 40.0, 0.0],
        seed=3,
    )
    return sorted(folder.glob("*.mrc"))
