"""Fixtures shared across the suite: a real distributed cluster and small micrograph files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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


class Chromium:
    """Headless Chromium, offline (host names resolve nowhere), with its network log."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def render(self, url: str, *flags: str) -> tuple[str, dict]:
        """Run Chromium on ``url``; return its stdout and its network log."""
        with tempfile.TemporaryDirectory() as profile:
            netlog = Path(profile) / "net.json"
            command = [
                self.executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}/data",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--log-net-log={netlog}",
                *flags,
                url,
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
            return done.stdout, json.loads(netlog.read_text())

    @staticmethod
    def page_requests(netlog: dict) -> list[str]:
        """URLs the *page* asked the network for (Chromium's own update/time pings excluded)."""
        names = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
        urls = []
        for event in netlog["events"]:
            params = event.get("params", {})
            if names[event["type"]] == "URL_REQUEST_START_JOB" and "url" in params:
                if params.get("initiator") != "not an origin":
                    urls.append(params["url"])
        return urls


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """The machine's headless Chromium; skips without one (fails under ``CI=true``)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Chromium(found)
    reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def side_venv():
    """Make (or reuse) a side environment: ``side_venv(name, installs, key="") -> python``."""
    return _side_venv


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _side_venv(name: str, installs: list[list[str]], key: str = "") -> Path:
    """A virtual environment of its own for tools that cannot share daskmic's (their pins).

    Made once under ``.venv-side/<name>`` in the repository (kept between runs, ignored by
    git) by one ``pip install`` per entry of ``installs``; made anew when ``installs`` or
    ``key`` change. When it cannot be made the test fails, unless PyPI is out of reach outside
    CI (``CI=true``), where it is skipped.

    Returns
    -------
    pathlib.Path
        The environment's ``python``.
    """
    folder = Path(__file__).resolve().parents[1] / ".venv-side" / name
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    wanted = json.dumps([installs, key])
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", "--clear", str(folder)]]
    steps += [[str(python), "-m", "pip", "install", "--quiet", *args] for args in installs]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message = f"cannot make the {name} environment: {' '.join(step)}\n{done.stderr[-3000:]}"
            reachable = _pip(Path(sys.executable), "index", "versions", "pip").returncode == 0
            if os.environ.get("CI") == "true" or reachable:
                pytest.fail(message)
            pytest.skip(f"PyPI unreachable: {message}")
    stamp.write_text(wanted)
    return python
