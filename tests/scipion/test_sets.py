"""Contract: daskmic reads the sets pwem writes, and pwem reads the sets daskmic writes.

Sets are made and read back by pwem itself, in its own environment (see ``conftest.py``), in
a folder laid out like a Scipion project (``Runs/<run>/...``, paths relative to the project).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from daskmic.cli import main
from daskmic.io import catalogue_micrographs, open_micrographs
from daskmic.io.scipion import read_set
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.publish_sets import angle_attribute

pytestmark = pytest.mark.scipion

IMPORT_RUN = Path("Runs/000002_ProtImportMicrographs")


def _project(root: Path, raw: list[Path]) -> list[str]:
    """Copy ``raw`` into an import run of a project at ``root``; their project paths."""
    extra = root / IMPORT_RUN / "extra"
    extra.mkdir(parents=True)
    for path in raw:
        shutil.copy(path, extra)
    return [str(IMPORT_RUN / "extra" / p.name) for p in raw]


@pytest.fixture
def small_project(tmp_path: Path, write_micrographs, acquisition) -> tuple[Path, list[str]]:
    """A project with four 512² micrographs in its import run."""
    raw = write_micrographs(n=4, shape=(512, 512), pixel_size_A=acquisition["sampling"])
    root = tmp_path / "project"
    return root, _project(root, raw)


def test_daskmic_reads_pwem_set(pwem, small_project, acquisition, tmp_path, monkeypatch):
    """Disabled rows skipped, paths against the project, sampling and acquisition as optics."""
    root, files = small_project
    set_file = root / IMPORT_RUN / "micrographs.sqlite"
    pwem.make_set(set_file, root, files=files, disabled=[2], open=True, **acquisition)
    monkeypatch.chdir(tmp_path)  # not the project: paths must resolve against it anyway

    assert read_set(set_file).stream_open
    entries, optics = catalogue_micrographs(set_file)
    assert [e.micrograph for e in entries] == ["mic_000", "mic_001", "mic_003"]
    assert [Path(e.path) for e in entries] == [root / files[i] for i in (0, 1, 3)]
    assert all(e.pixel_size_A == acquisition["sampling"] and not e.error for e in entries)
    assert [e.columns["scipion_id"] for e in entries] == [1, 2, 4]
    (group,) = optics
    assert group["rlnMicrographPixelSize"] == acquisition["sampling"]
    assert group["rlnVoltage"] == acquisition["voltage"]
    assert group["rlnSphericalAberration"] == acquisition["cs"]
    assert group["rlnAmplitudeContrast"] == acquisition["q0"]
    mics = open_micrographs(set_file)
    assert mics.sizes["micrograph"] == 3
    with mrcfile.open(root / files[3]) as reference:
        np.testing.assert_array_equal(mics.sel(micrograph="mic_003").values, reference.data)

    pwem.make_set(set_file, root, files=[], append=True, open=False)
    assert not read_set(set_file).stream_open


def test_an_input_set_is_never_an_output(pwem, small_project, acquisition, client):
    """Writing into the input set's own folder would replace it: refused before any work."""
    root, files = small_project
    set_file = root / IMPORT_RUN / "micrographs.sqlite"
    pwem.make_set(set_file, root, files=files, **acquisition)
    before = set_file.read_bytes()
    address = client.scheduler.address
    for command in ("preprocess", "watch"):
        code = _cli(command, str(set_file), "-o", str(set_file.parent), "--invert",
                    "--cluster", address)
        assert code == 2 and set_file.read_bytes() == before


def _cli(*args: str) -> int:
    return main([*args, "--no-dashboard", "--no-report"])


@pytest.mark.slow
def test_pwem_reads_daskmic_sets(pwem, raw_1024, acquisition, tmp_path, client, monkeypatch):
    """The bar: a pwem set through `daskmic preprocess` and `daskmic tilt`, read back by pwem."""
    root = tmp_path / "project"
    files = _project(root, raw_1024)
    set_file = IMPORT_RUN / "micrographs.sqlite"
    pwem.make_set(root / set_file, root, files=files, **acquisition)
    monkeypatch.chdir(root)
    address = client.scheduler.address
    pre, tilt = Path("Runs/000003_Pre/extra"), Path("Runs/000004_Tilt/extra")
    assert _cli("preprocess", str(set_file), "-o", str(pre), "--downsample", "--invert",
                "--cluster", address) == 0
    assert _cli("tilt", str(set_file), "-o", str(tilt), "--angle", "--cluster", address) == 0
    means = sorted(pd.read_csv(tilt / "tilt.csv")["tilt_mean_corr"])
    threshold = str((means[0] + means[1]) / 2)  # re-split between two micrographs
    assert main(["select", str(tilt), "--mean-threshold", threshold, "--std-threshold", "1"]) == 0

    sets = [pre / "micrographs.sqlite", tilt / "accepted.sqlite", tilt / "discarded.sqlite"]
    out, *parts = pwem.dump_sets(*sets, cwd=root)
    assert (out["size"], out["stream_state"]) == (3, 2)
    assert out["sampling"] == pytest.approx(2 * acquisition["sampling"])
    assert out["dims"] == [512, 512, 1]
    for key in ("voltage", "cs", "q0", "magnification"):
        assert out[key] == acquisition[key]
        assert {item[key] for item in out["items"]} == {acquisition[key]}
    assert [item["id"] for item in out["items"]] == [1, 2, 3]
    assert [item["filename"] for item in out["items"]] == [
        str(pre / "mrc" / Path(f).name) for f in files
    ]
    assert [item["micName"] for item in out["items"]] == [Path(f).name for f in files]

    table = pd.read_csv(tilt / "tilt.csv").set_index("micrograph")
    seen = []
    for status, part in zip(("accepted", "discarded"), parts, strict=True):
        assert part["stream_state"] == 2
        assert part["size"] == (table["status"] == status).sum()
        for item in part["items"]:
            name = Path(item["filename"]).stem
            row = table.loc[name]
            assert row["status"] == status
            assert item["filename"] == files[item["id"] - 1]
            assert item["sampling"] == acquisition["sampling"]
            assert item["voltage"] == acquisition["voltage"]
            for column in ("tilt_mean_corr", "tilt_std_corr", "tilt_min_corr", "tilt_max_corr"):
                assert item["tilt"][f"_{column}"] == pytest.approx(row[column], rel=1e-12)
            for column in ("tilt_angle_deg", "tilt_axis_deg", "defocus_mean_A"):
                value = item["tilt"][angle_attribute(column)]
                if np.isnan(row[column]):  # e.g. no axis on a frame consistent with no tilt:
                    assert value is None  # sqlite keeps no NaN, pwem reads an unset Float
                else:
                    assert value == pytest.approx(row[column], rel=1e-12)
            assert item["psd"] == str(tilt / "psd" / f"{name}.mrc")
            seen.append(name)
    assert sorted(seen) == sorted(table.index) and len(table) == 3
    assert set(table["status"]) == {"accepted", "discarded"}  # the thresholds split the set


def _watch_in_thread(set_file: Path, out: Path, client) -> tuple[threading.Thread, list]:
    from daskmic import watch

    config = RunConfig(preprocess=PreprocessParams.from_options(downsample=2.0, invert=True))
    result: list = []

    def target() -> None:
        result.append(watch(set_file, out, config, client=client, poll_seconds=0.2))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _wait_for_rows(path: Path, count: int, timeout: float = 60.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if path.exists() and len(read_set(path).items) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not reach {count} rows in {timeout} s")


def test_watch_follows_open_set(pwem, small_project, acquisition, client, monkeypatch):
    """New rows of an open set are new micrographs; closing it ends the stream; = batch."""
    root, files = small_project
    monkeypatch.chdir(root)
    set_file = IMPORT_RUN / "micrographs.sqlite"
    pwem.make_set(set_file, root, files=files[:2], open=True, **acquisition)
    streamed, batch = Path("Runs/000005_Watch/extra"), Path("Runs/000006_Batch/extra")
    thread, result = _watch_in_thread(set_file, streamed, client)

    _wait_for_rows(streamed / "micrographs.sqlite", 2)
    assert read_set(streamed / "micrographs.sqlite").stream_open  # open while the input is
    pwem.make_set(set_file, root, files=files[2:], disabled=[0], append=True, open=False)
    thread.join(timeout=120)
    assert not thread.is_alive() and result[0].counts() == {"done": 3}

    assert _cli("preprocess", str(set_file), "-o", str(batch), "--downsample", "--invert",
                "--cluster", client.scheduler.address) == 0
    out, closed = pwem.dump_sets(streamed / "micrographs.sqlite", batch / "micrographs.sqlite",
                                 cwd=root)
    assert (out["size"], out["stream_state"]) == (3, 2)
    names = [item["micName"] for item in out["items"]]
    assert names == ["mic_000.mrc", "mic_001.mrc", "mic_003.mrc"]
    assert [item["id"] for item in out["items"]] == [1, 2, 4]

    assert [(i["id"], i["micName"], i["sampling"]) for i in closed["items"]] == [
        (i["id"], i["micName"], i["sampling"]) for i in out["items"]
    ]
    for item in out["items"]:
        name = Path(item["filename"]).name
        with mrcfile.open(streamed / "mrc" / name) as a, mrcfile.open(batch / "mrc" / name) as b:
            np.testing.assert_array_equal(a.data, b.data)
