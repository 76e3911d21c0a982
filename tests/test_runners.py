"""Where a run goes (this process's threads, a pool of local processes, a cluster), that each
gives a cluster run's outputs with a bad micrograph failing alone in its group, and the group's
records written together (durable before they appear)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import daskmic
from daskmic.cluster.inprocess import InProcess, LocalProcesses
from daskmic.io.atomic import write_all_atomic
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.driver import IN_PROCESS_MAX, LOCAL_PROCESSES_MAX_PX, open_client, where_to_run
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import PARTIAL_NAME, Manifest
from daskmic.run.unit import Source

CONFIG = RunConfig(preprocess=PreprocessParams(crop=2, invert=True), write_stack=False)


def _sources(n: int, shape: tuple[int, int]) -> list[Source]:
    return [Source(f"mic_{i}", f"/data/mic_{i}.mrc", 1.0, shape=shape) for i in range(n)]


@pytest.mark.parametrize(
    ("n", "shape", "cluster", "options", "where"),
    [
        (IN_PROCESS_MAX, (4096, 4096), "local", {"dashboard": True, "quiet": False}, "threads"),
        (IN_PROCESS_MAX + 1, (128, 128), "local", {}, "processes"),  # no cluster start to pay
        (2000, (128, 128), "local", {"dashboard": False}, "processes"),
        (LOCAL_PROCESSES_MAX_PX // 4096**2, (4096, 4096), "local", {}, "processes"),
        (LOCAL_PROCESSES_MAX_PX // 4096**2 + 1, (4096, 4096), "local", {}, "cluster"),  # long
        (2, (128, 128), "local", {"workers": 1}, "cluster"),  # a cluster shape asked for
        (2000, (128, 128), "local", {"memory_limit": "2GiB"}, "cluster"),
        (2, (128, 128), "tcp://127.0.0.1:8786", {}, "cluster"),  # a cluster named
        (2000, (128, 128), "slurm", {}, "cluster"),
    ],
)
def test_a_run_goes_where_its_work_and_the_options_say(n, shape, cluster, options, where):
    assert where_to_run(_sources(n, shape), cluster, options) == where


def test_unreadable_micrographs_count_for_nothing():
    """A source without a shape (its header could not be read) fails at once: no pixels."""
    pending = _sources(IN_PROCESS_MAX + 1, (4096, 4096))
    large = LOCAL_PROCESSES_MAX_PX // 4096**2 + 1
    unreadable = [Source(f"bad_{i}", f"/data/bad_{i}.mrc", 1.0, error="x") for i in range(large)]
    assert where_to_run(pending + unreadable, "local", {}) == "processes"


def _inputs(write_micrographs, n: int, bad: int) -> list[Path]:
    """``n`` small micrographs, number ``bad`` with a NaN pixel (its header reads fine)."""
    import mrcfile

    paths = write_micrographs(n=n, shape=(64, 64), folder="raw")
    with mrcfile.open(paths[bad], "r+") as mrc:
        mrc.data[5, 5] = float("nan")
    return paths


def _outputs(out: Path) -> dict[str, bytes]:
    """The files of an output folder but the zarr store and the publication stamp, with the
    folder's own path (absolute or relative) written as ``OUT``."""
    found = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        name = path.relative_to(out).as_posix()
        stamped = path == OutputLayout(out).published or path.suffix == ".sqlite"
        if name.startswith("micrographs.zarr/") or stamped:
            continue  # times inside: the publication tests compare these
        data = path.read_bytes()
        for form in (str(out.resolve()), os.path.relpath(out)):
            data = data.replace(f"{form}/".encode(), b"OUT/")
        found[name] = data
    return found


@pytest.mark.parametrize("runner", [InProcess, LocalProcesses])
def test_local_runners_give_a_cluster_runs_outputs_and_a_bad_one_fails_alone(
    runner, client, write_micrographs, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    paths = [str(p) for p in _inputs(write_micrographs, 24, bad=5)]
    reference = daskmic.run_batch(paths, tmp_path / "on_cluster", CONFIG, client=client)
    groups = []
    with runner(2) as local:
        submit = local.submit

        def counting_submit(function, sources, *args, **kwargs):
            groups.append([s.micrograph for s in sources])
            return submit(function, sources, *args, **kwargs)

        monkeypatch.setattr(local, "submit", counting_submit)
        summary = daskmic.run_batch(paths, tmp_path / "on_local", CONFIG, client=local)
    assert any("mic_005" in group and len(group) > 1 for group in groups), groups
    assert summary.counts() == reference.counts() == {"done": 23, "failed": 1}
    assert summary.failed[0]["micrograph"] == "mic_005" and "NaN" in summary.failed[0]["error"]
    assert len(Manifest(tmp_path / "on_local").rows()) == 24, "a record for each, the bad one too"
    local_files, cluster_files = _outputs(tmp_path / "on_local"), _outputs(tmp_path / "on_cluster")
    assert sorted(local_files) == sorted(cluster_files)
    assert len([name for name in local_files if name.startswith("mrc/")]) == 23
    for name, data in cluster_files.items():
        assert local_files[name] == data, name
    assert not [p for p in tmp_path.rglob("*") if PARTIAL_NAME.match(p.name)]



def _same_outputs_but(out: Path, reference: Path, lost: str) -> None:
    """Every file of ``reference`` a micrograph made (not the tables) is in ``out`` byte for
    byte, but those of the micrograph ``lost``."""
    made, expected = _outputs(out), _outputs(reference)
    per_micrograph = [name for name in expected if "/" in name and lost not in name]
    assert len(per_micrograph) > 20
    for name in per_micrograph:
        assert made.get(name) == expected[name], name


def test_a_micrograph_that_kills_its_worker_process_fails_alone(
    write_micrographs, tmp_path, monkeypatch
):
    """The unit's process dies (here by ``os._exit`` in place of the unit, as a segfault or the
    system's out-of-memory kill would end it) each time it holds ``mic_007``: the pool breaks,
    the micrographs of the lost tasks run again one at a time, and ``mic_007`` alone fails,
    with the reason; a second run tries it again."""
    monkeypatch.chdir(tmp_path)
    paths = [str(p) for p in write_micrographs(n=24, shape=(64, 64), folder="raw")]
    with LocalProcesses(2) as local:
        reference = daskmic.run_batch(paths, tmp_path / "reference", CONFIG, client=local)
        submit, pools = local.submit, []

        def crashing_submit(function, sources, *args, **kwargs):
            pools.append(local._executor)
            if any(source.micrograph == "mic_007" for source in sources):
                return submit(os._exit, 70)  # the worker process ends at once
            return submit(function, sources, *args, **kwargs)

        monkeypatch.setattr(local, "submit", crashing_submit)
        summary = daskmic.run_batch(paths, tmp_path / "out", CONFIG, client=local)
    assert reference.counts() == {"done": 24}
    assert summary.counts() == {"done": 23, "failed": 1}
    failed = summary.failed[0]
    assert failed["micrograph"] == "mic_007"
    assert failed["error"].startswith(f"worker: {paths[7]} its worker process died")
    assert "BrokenProcessPool" in failed["error"]
    assert len({id(pool) for pool in pools}) >= 2, "a new pool after each death"
    assert Manifest(tmp_path / "out").read("mic_007")["row"]["status"] == "failed"
    _same_outputs_but(tmp_path / "out", tmp_path / "reference", lost="mic_007")

    again = daskmic.run_batch(paths, tmp_path / "out", CONFIG)  # nothing kills it now
    assert again.counts() == {"done": 24}
    _same_outputs_but(tmp_path / "out", tmp_path / "reference", lost="no micrograph")


def test_workers_killed_mid_run_lose_nothing(write_micrographs, tmp_path, monkeypatch):
    """The system kills every worker process of the pool (SIGKILL) while tasks are in flight:
    the run goes on in a new pool and every output is what an undisturbed run writes."""
    monkeypatch.chdir(tmp_path)
    paths = [str(p) for p in write_micrographs(n=12, shape=(512, 512), folder="raw")]
    with LocalProcesses(2) as local:
        reference = daskmic.run_batch(paths, tmp_path / "reference", CONFIG, client=local)
        submit, calls, killed = local.submit, [], []

        def submit_and_kill(function, sources, *args, **kwargs):
            calls.append(sources)
            if len(calls) == 5:  # one task has completed, three are in flight
                workers = [psutil.Process(pid) for pid in local._executor._processes]
                for worker in workers:
                    worker.kill()
                killed.extend(psutil.wait_procs(workers, timeout=30)[0])
            return submit(function, sources, *args, **kwargs)

        monkeypatch.setattr(local, "submit", submit_and_kill)
        summary = daskmic.run_batch(paths, tmp_path / "out", CONFIG, client=local)
    assert len(killed) == 2, "both workers were killed"
    assert any(len(sources) == 1 for sources in calls[5:]), "lost micrographs ran again alone"
    assert summary.counts() == reference.counts() == {"done": 12}
    _same_outputs_but(tmp_path / "out", tmp_path / "reference", lost="no micrograph")


def test_a_micrograph_that_kills_its_cluster_worker_fails_alone(
    write_micrographs, tmp_path, monkeypatch
):
    """On a local cluster the nanny restarts a worker that died, and the task that killed it,
    waiting for a worker, kills the restarted one as soon as it is up: the scheduler retries it
    ``allowed-failures`` times (1 here to keep the test short), then gives up
    (``KilledWorker``) and daskmic runs it alone, which kills a worker on arrival again. The
    micrograph fails alone, the others are done, and the cluster closes (with distributed
    before 2026.8 its nanny could wait forever for a worker started after one that died on
    arrival, and the close hung)."""
    import dask

    monkeypatch.chdir(tmp_path)
    paths = [str(p) for p in write_micrographs(n=6, shape=(64, 64), folder="raw")]
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        daskmic.connect("local", workers=1, threads_per_worker=2, dashboard=False, quiet=True)
        as client,
    ):
        submit = client.submit

        def crashing_submit(function, sources, *args, **kwargs):
            if any(source.micrograph == "mic_003" for source in sources):
                return submit(os._exit, 70, key=kwargs["key"], pure=False)
            return submit(function, sources, *args, **kwargs)

        monkeypatch.setattr(client, "submit", crashing_submit)
        summary = daskmic.run_batch(paths, tmp_path / "out", CONFIG, client=client)
    assert summary.counts() == {"done": 5, "failed": 1}
    assert summary.failed[0]["micrograph"] == "mic_003"
    assert "KilledWorker" in summary.failed[0]["error"]
    assert Manifest(tmp_path / "out").read("mic_003")["row"]["status"] == "failed"


def test_a_run_goes_to_the_client_open_in_this_process(write_micrographs, tmp_path, capsys):
    """As dask's ``compute`` does: after ``with dm.connect(...) as client:`` a run with no
    ``client=`` runs on that client's workers, not on threads of the process that opened it
    (a notebook on a Slurm login node would otherwise do the work itself); a run that asks
    for another place (``workers=``) starts it."""
    from distributed import get_task_stream

    paths = [str(p) for p in write_micrographs(n=3, shape=(64, 64), folder="raw")]
    out = daskmic.preprocess(daskmic.open_micrographs(paths), crop=2, invert=True)
    with daskmic.connect(
        "local", workers=1, threads_per_worker=1, dashboard=False, quiet=True
    ) as client:
        with get_task_stream(client) as stream:
            summary = daskmic.write(out, tmp_path / "out", write_stack=False)
        assert summary.counts() == {"done": 3}
        assert len(stream.data) >= 1  # the micrographs' tasks, on the cluster's worker
        assert "on the open client" in capsys.readouterr().err
        assert open_client("local", {"workers": 2}) is None  # sizing: a place of its own
        assert open_client("slurm", {}) is None
        assert open_client("local", {"quiet": True}) is client
    assert open_client("local", {}) is None  # closed: none open
    assert len(list((tmp_path / "out" / "mrc").iterdir())) == 3


def test_a_set_of_small_micrographs_runs_on_local_processes_by_default(
    write_micrographs, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    paths = write_micrographs(n=IN_PROCESS_MAX + 2, shape=(64, 64))
    summary = daskmic.run_batch(str(paths[0].parent / "*.mrc"), tmp_path / "out", CONFIG)
    assert summary.counts() == {"done": IN_PROCESS_MAX + 2}
    assert "processes of this machine (no cluster" in capsys.readouterr().err


def test_a_killed_run_leaves_no_local_worker_process(write_micrographs, tmp_path):
    paths = write_micrographs(n=300, shape=(128, 128))
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from daskmic.cli import entry; entry()"]
    options = ["--crop", "2", "--no-stack", "--no-report", "--no-dashboard"]
    run = subprocess.Popen(
        [*command, "preprocess", str(paths[0].parent / "*.mrc"), "-o", str(out), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records = Manifest(out).records_dir
    deadline = time.monotonic() + 120
    while not (records.is_dir() and any(records.iterdir())) and run.poll() is None:
        assert time.monotonic() < deadline, "no record appeared"
        time.sleep(0.02)
    descendants = psutil.Process(run.pid).children(recursive=True)
    run.kill()
    run.wait(30)
    _, alive = psutil.wait_procs(descendants, timeout=30)
    for process in alive:
        process.kill()
    assert len(descendants) >= 2, "the run had its worker processes (and their fork server)"
    assert not alive, "a killed run left worker processes running"


def test_files_written_together_appear_whole_and_in_order(tmp_path):
    files = [(tmp_path / "records" / f"r{i}.json", f"{{{i}}}".encode()) for i in range(40)]
    write_all_atomic(files)
    assert [p.read_bytes() for p, _ in files] == [data for _, data in files]
    renamed = [p.stat().st_ctime_ns for p, _ in files]
    assert renamed == sorted(renamed), "renamed into place in the order given"
    assert not [p for p in tmp_path.rglob("*") if PARTIAL_NAME.match(p.name)]


def test_files_written_together_leave_nothing_when_one_fails(tmp_path):
    (tmp_path / "not-a-folder").write_bytes(b"")
    files = [
        (tmp_path / "records" / "a.json", b"a"),
        (tmp_path / "not-a-folder" / "b.json", b"b"),  # cannot be made
        (tmp_path / "records" / "c.json", b"c"),
    ]
    with pytest.raises(OSError):
        write_all_atomic(files)
    assert sorted(os.listdir(tmp_path / "records")) == [], "none appears, no partial file"
