"""A real single-node Slurm: dask through dask-jobqueue, and the CLI with ``--cluster slurm``.

The session fixture starts Slurm with deploy/slurm/start-single-node.sh (root and the Debian
packages from deploy/slurm/install-debian.sh are needed). Where they are missing the tests skip
and say why, except under ``CI=true``, where a missing Slurm is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from daskmic.cluster.client import connect

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_SCRIPTS = REPO / "deploy" / "slurm"
DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _why_slurm_cannot_start() -> str | None:
    if os.geteuid() != 0:
        return "starting a single-node Slurm needs root"
    missing = [name for name in DAEMONS if shutil.which(name, path=SEARCH_PATH) is None]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} not found); "
            "run deploy/slurm/install-debian.sh"
        )
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and Slurm is required, but: {reason}")
    pytest.skip(reason)


def _alive(pid_file: str) -> bool:
    try:
        os.kill(int(Path(pid_file).read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    """A running single-node Slurm; stopped at the end if this session started it."""
    reason = _why_slurm_cannot_start()
    if reason is not None:
        _unavailable(reason)
    was_running = _alive("/run/slurmctld.pid") and _alive("/run/slurmd.pid")
    started = subprocess.run(
        ["bash", str(SLURM_SCRIPTS / "start-single-node.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": SEARCH_PATH},
    )
    if started.returncode != 0:
        _unavailable(f"start-single-node.sh failed:\n{started.stdout}\n{started.stderr}")
    yield
    if not was_running:
        subprocess.run(
            ["bash", str(SLURM_SCRIPTS / "stop-single-node.sh")],
            capture_output=True,
            timeout=120,
            check=False,
        )


def _queued_jobs(job_ids: set[str]) -> set[str]:
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout.split()
    return job_ids & set(listed)


def test_dask_computation_runs_in_slurm_jobs(slurm: None, tmp_path: Path) -> None:
    values = np.random.default_rng(1).standard_normal((300, 200))
    with connect(
        "slurm",
        workers=1,
        log_directory=str(tmp_path / "logs"),
        dashboard=False,  # the scheduler's HTTP routes on a free port, as --no-dashboard does
        quiet=True,
    ) as client:
        client.wait_for_workers(1, timeout=180)
        health = client.dashboard_link.replace("/status", "/health")
        assert urllib.request.urlopen(health).read() == b"ok"
        job_ids = set(client.run(os.getenv, "SLURM_JOB_ID").values())
        executables = set(client.run(getattr, sys, "executable").values())
        total = da.from_array(values, chunks=(100, 100)).sum().compute()
        assert _queued_jobs(job_ids) == job_ids  # the workers are Slurm jobs
    assert len(job_ids) == 1 and None not in job_ids
    assert executables == {sys.executable}  # workers run this same Python
    assert total == pytest.approx(float(np.sum(values, dtype=np.float64)), rel=1e-12)
    for _ in range(60):  # closing the cluster cancels its jobs
        if not _queued_jobs(job_ids):
            break
        time.sleep(1)
    assert not _queued_jobs(job_ids)


# --- the command line, SLURM against local -------------------------------------------------

_TIMESTAMP = re.compile(rb"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_TIMING_COLUMN = re.compile(r"time|seconds|elapsed|duration|created|started|finished|host|worker")


def _daskmic(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "daskmic.cli", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"


def _assert_same_mrc(first: Path, second: Path) -> None:
    """Bitwise equal, except the timestamp mrcfile writes into the header's first label."""
    a, b = first.read_bytes(), second.read_bytes()
    assert len(a) == len(b), first.name
    assert a[:224] == b[:224], f"{first.name}: header fields differ"
    assert _TIMESTAMP.sub(b"", a[224:1024]) == _TIMESTAMP.sub(b"", b[224:1024]), first.name
    assert a[1024:] == b[1024:], f"{first.name}: extended header or pixels differ"


def _table(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "micrographs.csv")
    table = table.drop(columns=[c for c in table.columns if _TIMING_COLUMN.search(c)])
    for column in table.columns:  # paths inside OUT, relative to it
        if not pd.api.types.is_numeric_dtype(table[column]):
            text = table[column].astype(str)
            table[column] = text.str.replace(str(out.resolve()), "OUT", regex=False)
    return table


def _assert_same_outputs(first: Path, second: Path) -> None:
    names = sorted(p.name for p in (first / "mrc").glob("*.mrc"))
    assert names and names == sorted(p.name for p in (second / "mrc").glob("*.mrc"))
    for name in names:
        _assert_same_mrc(first / "mrc" / name, second / "mrc" / name)
    pd.testing.assert_frame_equal(_table(first), _table(second))


@pytest.mark.slow
def test_cli_on_slurm_equals_local_run(slurm: None, write_micrographs, tmp_path: Path) -> None:
    paths = [str(p) for p in write_micrographs(n=4, shape=(256, 256))]
    steps = ["--crop", "--invert", "--downsample"]
    _daskmic(["preprocess", *paths, "-o", "out_slurm", *steps, "--cluster", "slurm",
              "--workers", "1"], cwd=tmp_path)  # fmt: skip
    _daskmic(["preprocess", *paths, "-o", "out_local", *steps, "--cluster", "local",
              "--workers", "1"], cwd=tmp_path)  # fmt: skip
    table = pd.read_csv(tmp_path / "out_slurm" / "micrographs.csv")
    assert list(table["status"]) == ["done"] * 4
    _assert_same_outputs(tmp_path / "out_slurm", tmp_path / "out_local")
    assert list(tmp_path.glob("slurm-*.out"))  # the work ran in Slurm jobs


# --- a job's walltime end: its worker retires, a new job replaces it, nothing is lost --------


async def _retire_as_at_lifetime_end(dask_worker) -> None:
    """What a worker's ``--lifetime`` timer does: leave gracefully, ending its job."""
    await dask_worker.close_gracefully(reason="worker-lifetime-reached")


@pytest.mark.slow
def test_retiring_job_is_replaced_and_the_run_loses_nothing(
    slurm: None,
    write_micrographs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    import cloudpickle

    from daskmic.preprocessing.params import PreprocessParams
    from daskmic.run.config import RunConfig
    from daskmic.run.driver import run_batch

    # the workers cannot import this test module: send the retiring function by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    request.addfinalizer(lambda: cloudpickle.unregister_pickle_by_value(sys.modules[__name__]))
    monkeypatch.chdir(tmp_path)
    paths = [str(p) for p in write_micrographs(n=6, shape=(256, 256))]
    steps = PreprocessParams.from_options(crop=True, invert=True, downsample=True, denoise=10)
    config = RunConfig(preprocess=steps)
    logs = tmp_path / "logs"
    retired: list[str] = []
    with connect(
        "slurm",
        workers=1,
        log_directory=str(logs),
        scheduler_options={"dashboard_address": None},
        quiet=True,
    ) as client:
        client.wait_for_workers(1, timeout=180)
        first_jobs = set(client.run(os.getenv, "SLURM_JOB_ID").values())

        def retire_after_first_row(row: dict) -> None:
            if not retired:
                retired.extend(client.scheduler_info()["workers"])
                client.run(_retire_as_at_lifetime_end, workers=retired, wait=False)

        summary = run_batch(
            paths, "out_slurm", config, client=client, on_row=retire_after_first_row
        )
        later_jobs = set(client.run(os.getenv, "SLURM_JOB_ID").values())
    # the reference on the session's local cluster: a LocalCluster started in this process
    # right after a job retired this way has been seen to wait for ever for its worker
    run_batch(paths, "out_local", config, client=request.getfixturevalue("client"))

    assert retired and [row["status"] for row in summary.rows] == ["done"] * 6
    assert later_jobs and not later_jobs & first_jobs  # a new job took over
    assert len(list(logs.glob("*.out"))) >= 2
    _assert_same_outputs(tmp_path / "out_slurm", tmp_path / "out_local")
