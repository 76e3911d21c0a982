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
from daskmic.run.driver import IN_PROCESS_MAX, LOCAL_PROCESSES_MAX_PX, where_to_run
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
