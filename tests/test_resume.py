"""Resume: a run killed at any moment (SIGKILL included) and started again ends identical to an
uninterrupted batch run: same files, bitwise-equal arrays, equal tables, equal provenance but
for ``created``; nothing missing, duplicated or half-written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

import daskmic
from daskmic.datasets import synthesize_micrograph
from daskmic.io import open_images, open_pixels, open_results
from daskmic.io.mrc_write import write_mrc
from daskmic.io.scipion import read_set
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import PARTIAL_NAME, Manifest
from daskmic.run.stream import watch

CONFIG_VALUES = {
    "preprocess": {
        "crop": True,
        "bad_pixels": True,
        "invert": True,
        "downsample": True,
        "lowpass": [0.25, 0.02],
        "normalize": True,
    },
    "tilt": {"window_size": 256, "resolution_A": 3.0},
}
CONFIG = RunConfig.from_dict(CONFIG_VALUES)
TEXT_SUFFIXES = (".csv", ".star", ".xmd", ".txt", ".json")
TIMEOUT_S = 120

PRODUCER = """
import sys, time
from pathlib import Path
staging, folder, gate = (Path(a) for a in sys.argv[1:4])
files = sorted(staging.glob("*.mrc"))
for i, source in enumerate(files):
    if i == len(files) // 2:
        while not gate.exists():
            time.sleep(0.05)
    data = source.read_bytes()
    pieces = 4 if i % 2 else 1
    step = -(-len(data) // pieces)
    with open(folder / source.name, "wb") as handle:
        for k in range(0, len(data), step):
            handle.write(data[k:k + step])
            handle.flush()
            time.sleep(0.1)
    time.sleep(0.1)
"""


def _write_inputs(folder: Path, n: int, shape: tuple[int, int] = (512, 512)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image, _ = synthesize_micrograph(shape, pixel_size_A=1.0, seed=100 + i, hot_pixels=3)
        paths.append(folder / f"mic_{i:02d}.mrc")
        write_mrc(paths[-1], image, 1.0)
    return paths


def _records(out: Path) -> list[str]:
    folder = Manifest(out).records_dir
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def _normalised(text: str, out: Path) -> str:
    for form in (str(out.resolve()), str(out), os.path.relpath(out)):
        text = text.replace(form + os.sep, "OUT/")
    return text


def snapshot(out: Path) -> dict[str, object]:
    """Everything an output folder holds, comparable with another folder's.

    Paths inside tables and records are written relative to the folder; the zarr store is read
    as arrays, its provenance without ``created``.
    """
    files: dict[str, object] = {}
    layout = OutputLayout(out)
    # when the outputs were last rebuilt (like ``created``), and the input headers a batch run
    # keeps to read only new or changed ones next time (a stream reads each file as it comes)
    internal = (layout.published, layout.headers)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        relative = path.relative_to(out).as_posix()
        if path in internal or path.parent == layout.live_sets:  # the sets' live databases
            continue
        if relative.startswith("micrographs.zarr/"):
            files[relative] = "zarr file"  # listed; compared as arrays below
        elif path.suffix in TEXT_SUFFIXES:
            files[relative] = _normalised(path.read_text(), out)
        elif path.suffix == ".sqlite":  # a Scipion set: items and properties, not creation times
            scipion_set = read_set(path)
            text = scipion_set.items.to_csv() + repr(sorted(scipion_set.properties.items()))
            files[relative] = _normalised(text, out)
        else:
            files[relative] = path.read_bytes()
    results = open_results(out / "micrographs.zarr").load()
    files["zarr:attrs"] = {k: v for k, v in results.attrs.items() if k != "created"}
    for name, variable in sorted(results.variables.items()):
        values = variable.values
        if values.dtype == object:
            values = np.array([_normalised(str(v), out) for v in values.ravel()], dtype=object)
        files[f"zarr:{name}"] = (
            variable.dims,
            values.tobytes() if values.dtype != object else tuple(values),
        )
    pixels = open_pixels(out / "micrographs.zarr")
    for name in pixels["micrograph"].values:
        files[f"zarr:pixels/{name}"] = pixels.sel(micrograph=name).values.tobytes()
    for collection in ("micrographs", "psd"):
        for level in range(3):
            images = open_images(out / "micrographs.zarr", collection, level=level)
            for name, image in images.items():
                files[f"zarr:{collection}/{name}/{level}"] = (
                    image.values.tobytes(),
                    image.x.values.tobytes(),
                )
    return files


def assert_same_outputs(out: Path, reference: Path) -> None:
    """``out`` and ``reference`` hold the same files with the same contents (see snapshot)."""
    ours, theirs = snapshot(out), snapshot(reference)
    assert sorted(ours) == sorted(theirs), "the output folders hold different files"
    for key in theirs:
        assert ours[key] == theirs[key], f"{key} differs"
    assert not [p for p in out.rglob("*") if PARTIAL_NAME.match(p.name)], "partial files left"


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _sigkill(process: subprocess.Popen) -> None:
    """SIGKILL a run and check that its cluster's worker processes die with it."""
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait(TIMEOUT_S)
    _, alive = psutil.wait_procs(children, timeout=30)
    for child in alive:
        child.kill()
    assert not alive, "a killed run left worker processes running"


def _daskmic(*args: str) -> list[str]:
    return [sys.executable, "-m", "daskmic.cli", *args, "--no-report"]


EMBEDDED = ("--workers", "1", "--threads-per-worker", "2")
"""A cluster of the run's own: one worker process, killed with the run."""


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG_VALUES))
    return path


# --- interrupted states, made deterministically ---------------------------------------------


def _interrupt(out: Path) -> None:
    """Make ``out`` look like a run killed at several moments at once."""
    records = Manifest(out).records_dir
    (records / "mic_01.json").unlink()  # outputs renamed into place, record not yet written
    (records / "mic_02.json").unlink()  # ... and its outputs only partly renamed
    (out / "psd" / "mic_02.mrc").unlink()
    shutil.rmtree(out / "micrographs.zarr" / "micrographs" / "mic_02")
    (out / "mrc" / ".mic_03.mrc.tmp-0123abcd").write_bytes(b"half an MRC")
    (records / ".mic_03.json.tmp-89abcdef").write_bytes(b'{"hash": ')
    (out / "micrographs.zarr" / "micrographs" / ".mic_03.tmp-01234567").mkdir()
    (out / "micrographs.zarr" / ".table.tmp-76543210").mkdir()
    (out / "micrographs.csv").unlink()  # killed before the tables were rebuilt
    (out / "tilt.csv").write_text("half a table")


def test_remove_partial_removes_only_unfinished_writes(tmp_path):
    out = tmp_path / "out"
    (out / "mrc").mkdir(parents=True)
    partial = [out / "mrc" / ".a.mrc.tmp-0123abcd", out / ".micrographs.csv.tmp-deadbeef"]
    kept = [out / "mrc" / "a.mrc", out / "mrc" / ".a.mrc.tmp-xyz", out / "notes.tmp-01234567"]
    for path in partial + kept:
        path.write_bytes(b"x")
    (out / "mrc" / ".b.tmp-00000000").mkdir()
    (out / "mrc" / ".b.tmp-00000000" / "c").write_bytes(b"x")
    removed = Manifest(out).remove_partial()
    assert sorted(removed) == sorted([*partial, out / "mrc" / ".b.tmp-00000000"])
    assert all(p.exists() for p in kept) and not any(p.exists() for p in removed)


@pytest.mark.parametrize("rerun", ["batch", "watch"])
def test_a_rerun_after_an_interruption_equals_an_uninterrupted_run(
    tmp_path, client, monkeypatch, rerun
):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    _write_inputs(raw, 5)
    reference, out = tmp_path / "reference", tmp_path / "out"
    daskmic.run_batch(str(raw / "*.mrc"), reference, CONFIG, client=client)
    daskmic.run_batch(str(raw / "*.mrc"), out, CONFIG, client=client)
    _interrupt(out)
    untouched = (out / "mrc" / "mic_00.mrc").stat().st_mtime_ns
    if rerun == "batch":
        summary = daskmic.run_batch(str(raw / "*.mrc"), out, CONFIG, client=client)
    else:
        (raw / "CLOSED").write_bytes(b"")
        summary = watch(raw, out, CONFIG, settle_seconds=0.0, poll_seconds=0.05, client=client)
    assert [r["micrograph"] for r in summary.rows] == [f"mic_{i:02d}" for i in range(5)]
    assert_same_outputs(out, reference)
    assert (out / "mrc" / "mic_00.mrc").stat().st_mtime_ns == untouched, "done is not redone"


# --- real SIGKILLs --------------------------------------------------------------------------


@pytest.mark.slow
def test_stream_killed_and_restarted_equals_a_batch_run(tmp_path, client, config_file, monkeypatch):
    """Producer writes over time (some files in pieces); the watcher is SIGKILLed mid-stream,
    restarted, closed by the marker; the result equals a batch run on the same files."""
    monkeypatch.chdir(tmp_path)
    staging, folder, out = tmp_path / "staging", tmp_path / "session", tmp_path / "session" / "out"
    _write_inputs(staging, 8)
    folder.mkdir()
    gate = tmp_path / "go-on"
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(staging), str(folder), str(gate)]
    )
    command = _daskmic(
        "watch",
        str(folder),
        "-o",
        str(out),
        "--config",
        str(config_file),
        "--settle",
        "0.5",
        "--poll",
        "0.1",
        "--batch-size",
        "2",
        "--cluster",  # the session's cluster: no start-up cost; workers outlive the kill
        client.scheduler.address,
    )
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = first
    try:
        _wait(lambda: len(_records(out)) >= 2, "the first records")
        _sigkill(first)
        done_at_kill = len(_records(out))
        gate.write_bytes(b"")
        second = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # restarted
        producer.wait(TIMEOUT_S)
        (folder / "CLOSED").write_bytes(b"")
        printed, _ = second.communicate(timeout=TIMEOUT_S)
    finally:
        for process in (producer, first, second):
            if process.poll() is None:
                process.kill()
    assert 2 <= done_at_kill <= 4, "the kill came in the middle (half the files were gated)"
    assert second.returncode == 0, printed
    assert "watch: 8 seen, 8 done, 0 failed" in printed
    summary = daskmic.run_batch(str(folder / "*.mrc"), tmp_path / "batch", CONFIG, client=client)
    assert len(summary.rows) == 8 and not summary.failed
    assert_same_outputs(out, tmp_path / "batch")


@pytest.mark.slow
def test_batch_run_killed_and_rerun_equals_an_uninterrupted_run(
    tmp_path, client, config_file, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    _write_inputs(raw, 8)
    out = tmp_path / "out"
    command = _daskmic("run", str(config_file), str(raw / "*.mrc"), "-o", str(out))
    first = subprocess.Popen(
        [*command, *EMBEDDED], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait(lambda: len(_records(out)) >= 2, "the first records")
        _sigkill(first)
    finally:
        if first.poll() is None:
            first.kill()
    done_at_kill = len(_records(out))
    rerun = subprocess.run(  # on the session's cluster: the rerun's cluster does not matter
        [*command, "--cluster", client.scheduler.address],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    daskmic.run_batch(str(raw / "*.mrc"), tmp_path / "reference", CONFIG, client=client)
    assert done_at_kill < 8, "the kill came before the end"
    assert_same_outputs(out, tmp_path / "reference")


# --- resume from the manifest: nothing submitted or rebuilt for a finished set (#16) ---------

SMALL = RunConfig.from_dict({"preprocess": {"crop": True, "invert": True}, "write_stack": False})


def _stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}


def test_a_finished_set_is_recognised_from_the_manifest_without_a_cluster(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_inputs(tmp_path / "raw", 3, shape=(128, 128))
    inputs, out = str(tmp_path / "raw" / "*.mrc"), tmp_path / "out"
    first = daskmic.run_batch(inputs, out, SMALL, quiet=True)  # 3 micrographs: in-process
    published = _stamps(out)
    # no scheduler listens there: the rerun would fail if it tried to start or reach one
    again = daskmic.run_batch(inputs, out, SMALL, cluster="tcp://127.0.0.1:9", quiet=True)
    assert again.rows == first.rows and again.counts() == {"done": 3}
    assert _stamps(out) == published, "nothing is rebuilt when nothing changed"



def _finished_set(tmp_path: Path, **run) -> tuple[str, Path, Path]:
    """Three 128² micrographs run to the end: the inputs' glob, the output folder and its CSV
    table."""
    _write_inputs(tmp_path / "raw", 3, shape=(128, 128))
    inputs, out = str(tmp_path / "raw" / "*.mrc"), tmp_path / "out"
    daskmic.run_batch(inputs, out, SMALL, **run)
    return inputs, out, out / "micrographs.csv"

def test_a_table_emptied_with_its_time_kept_is_published_again(tmp_path, monkeypatch):
    """What a machine crash can leave of a table renamed into place without an fsync."""
    monkeypatch.chdir(tmp_path)
    inputs, out, table = _finished_set(tmp_path, quiet=True)
    csv, stat = table.read_text(), table.stat()
    table.write_bytes(b"")
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # a new command: this process's publisher remembers what it wrote
    command = [*_daskmic("preprocess", inputs, "-o", str(out), "--crop", "--invert"), "--no-stack"]
    done = subprocess.run([*command, "--cluster", "tcp://127.0.0.1:9"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert table.read_text() == csv


def _count_header_reads(monkeypatch) -> list[str]:
    """The input files whose header a run reads from now on."""
    import daskmic.io.open as opened

    reads, read = [], opened.read_header

    def counted(path, *args, **kwargs):
        reads.append(Path(str(path)).name)
        return read(path, *args, **kwargs)

    monkeypatch.setattr(opened, "read_header", counted)
    return reads


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_a_rerun_of_a_finished_set_reads_no_header_and_each_record_once(tmp_path, monkeypatch):
    import daskmic.run.manifest as module

    monkeypatch.chdir(tmp_path)
    _write_inputs(tmp_path / "raw", 3, shape=(128, 128))
    inputs, out = str(tmp_path / "raw" / "*.mrc"), tmp_path / "out"
    first = daskmic.run_batch(inputs, out, SMALL, quiet=True)
    written = _mtimes(out) | _mtimes(out / ".daskmic")
    monkeypatch.setattr(module, "_READ", {})  # as a new command: nothing read yet
    reads, records, load = _count_header_reads(monkeypatch), [], module._load_record
    monkeypatch.setattr(module, "_load_record", lambda p, *a: records.append(p.stem) or load(p, *a))
    again = daskmic.run_batch(inputs, out, SMALL, cluster="tcp://127.0.0.1:9", quiet=True)
    assert again.rows == first.rows and again.counts() == {"done": 3}
    assert reads == [], "the headers of unchanged files are known"
    assert sorted(records) == ["mic_00", "mic_01", "mic_02"], "each record read once"
    assert _mtimes(out) | _mtimes(out / ".daskmic") == written, "nothing written"


HEAVY = ("pandas", "scipy", "dask", "distributed", "xarray", "zarr", "starfile", "rich")
"""What processing micrographs and rebuilding tables import, and asking the manifest needs not."""


def test_a_rerun_of_a_finished_set_imports_no_processing_or_table_library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_inputs(tmp_path / "raw", 2, shape=(128, 128))
    run = "import sys; from daskmic.cli import main; main(sys.argv[2:]); "
    run += "print(sorted(m for m in sys.argv[1].split(',') if m in sys.modules))"
    command = [sys.executable, "-c", run, ",".join(HEAVY), "preprocess", "raw/*.mrc", "-o", "out"]
    command += ["--crop", "--invert", "--no-stack", "--no-report", "--no-dashboard"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "pandas" in first.stdout.splitlines()[-1], "a run that processes imports them"
    again = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 done" in again.stdout and again.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("change", ["touched", "rewritten"])
def test_a_changed_input_is_redone(tmp_path, monkeypatch, change):
    monkeypatch.chdir(tmp_path)
    paths = _write_inputs(tmp_path / "raw", 3, shape=(128, 128))
    inputs, out = str(tmp_path / "raw" / "*.mrc"), tmp_path / "out"
    daskmic.run_batch(inputs, out, SMALL, quiet=True)
    outputs = _mtimes(out / "mrc")
    before = (out / "mrc" / "mic_01.mrc").read_bytes()
    stat = paths[1].stat()
    if change == "rewritten":  # another image of the same size
        image, _ = synthesize_micrograph((128, 128), pixel_size_A=1.0, seed=7, hot_pixels=3)
        write_mrc(paths[1], image, 1.0)
        assert paths[1].stat().st_size == stat.st_size
    else:  # the same bytes, a later time
        os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    reads = _count_header_reads(monkeypatch)
    summary = daskmic.run_batch(inputs, out, SMALL, quiet=True)
    assert summary.counts() == {"done": 3}
    assert reads == ["mic_01.mrc"], "only the changed file's header is read again"
    now = _mtimes(out / "mrc")
    assert {k for k in now if now[k] != outputs[k]} == {"mic_01.mrc"}, "only it is redone"
    daskmic.run_batch(str(paths[1]), tmp_path / "fresh", SMALL, quiet=True)
    redone = (out / "mrc" / "mic_01.mrc").read_bytes()
    assert redone == (tmp_path / "fresh" / "mrc" / "mic_01.mrc").read_bytes()
    assert (redone == before) is (change == "touched")


def test_records_made_before_input_stamps_still_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_inputs(tmp_path / "raw", 3, shape=(128, 128))
    inputs, out = str(tmp_path / "raw" / "*.mrc"), tmp_path / "out"
    first = daskmic.run_batch(inputs, out, SMALL, quiet=True)
    manifest = Manifest(out)
    for record in manifest.records().values():  # as an earlier version wrote them
        manifest.write(record["row"], record["hash"])
    manifest.layout.headers.unlink()
    outputs = _mtimes(out / "mrc")
    reads = _count_header_reads(monkeypatch)
    again = daskmic.run_batch(inputs, out, SMALL, cluster="tcp://127.0.0.1:9", quiet=True)
    assert again.rows == first.rows and _mtimes(out / "mrc") == outputs, "nothing redone"
    assert sorted(reads) == ["mic_00.mrc", "mic_01.mrc", "mic_02.mrc"], "headers read as before"
    reads.clear()
    daskmic.run_batch(inputs, out, SMALL, cluster="tcp://127.0.0.1:9", quiet=True)
    assert reads == [], "and kept for the next run"


def test_a_changed_record_or_table_is_published_again(tmp_path, monkeypatch, client):
    monkeypatch.chdir(tmp_path)
    inputs, out, table = _finished_set(tmp_path, client=client)
    csv, stat = table.read_text(), table.stat()
    table.write_text("damaged")  # by hand, later (a file's time moves in steps of milliseconds)
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # a new command (this process's publisher remembers what it wrote) with no cluster to reach
    command = [*_daskmic("preprocess", inputs, "-o", str(out), "--crop", "--invert"), "--no-stack"]
    done = subprocess.run([*command, "--cluster", "tcp://127.0.0.1:9"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert table.read_text() == csv
    (Manifest(out).records_dir / "mic_01.json").unlink()
    submitted, submit = [], client.submit

    def counting_submit(function, sources, *args, **kwargs):
        submitted.append([s.micrograph for s in sources])
        return submit(function, sources, *args, **kwargs)

    monkeypatch.setattr(client, "submit", counting_submit)
    summary = daskmic.run_batch(inputs, out, SMALL, client=client)
    assert submitted == [["mic_01"]], "only the micrograph without a record is sent"
    assert summary.counts() == {"done": 3} and (out / "micrographs.csv").read_text() == csv


def test_a_small_set_in_process_equals_a_cluster_run(tmp_path, monkeypatch, client):
    """The same unit, feeder and tables on this process's threads as on a cluster."""
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    _write_inputs(raw, 3)
    reference, out = tmp_path / "reference", tmp_path / "out"
    daskmic.run_batch(str(raw / "*.mrc"), reference, CONFIG, client=client)
    daskmic.run_batch(str(raw / "*.mrc"), out, CONFIG, quiet=True)  # no cluster options
    assert_same_outputs(out, reference)
