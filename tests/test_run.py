"""The production face end to end: the output folder contract, resume, refusal, select."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

import daskmic
from daskmic.cli import main
from daskmic.errors import UsageError
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.tilt.params import TiltParams

PREPROCESS = PreprocessParams.from_options(crop=True, invert=True, downsample=True, normalize=True)
TILT = TiltParams(resolution_A=3.0)


@pytest.fixture
def mics(write_micrographs):
    return write_micrographs(n=3, shape=(680, 660))


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(out / name) for name in ("micrographs.csv", "tilt.csv")}


def test_batch_run_writes_the_output_contract(mics, tmp_path, client, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    config = RunConfig(preprocess=PREPROCESS, tilt=TILT)
    summary = daskmic.run_batch([str(p) for p in mics], out, config, client=client)
    assert summary.counts().get("failed", 0) == 0
    assert len(summary.rows) == 3

    for path in mics:
        with mrcfile.open(out / "mrc" / f"{path.stem}.mrc") as mrc:
            assert mrc.data.dtype == np.float32
            assert mrc.data.shape == ((680 - 20) // 2, (660 - 20) // 2)
            assert mrc.voxel_size.x == pytest.approx(2.0, rel=1e-6)
            assert abs(float(mrc.data.mean())) < 1e-4 and mrc.data.std() == pytest.approx(1, 1e-4)
        assert (out / "psd" / f"{path.stem}.mrc").exists()
        assert (out / "psd" / f"{path.stem}.png").exists()

    star = starfile.read(out / "micrographs.star")
    optics, micrographs = star["optics"], star["micrographs"]
    assert optics["rlnMicrographPixelSize"].tolist() == pytest.approx([2.0])
    assert optics["rlnMicrographOriginalPixelSize"].tolist() == pytest.approx([1.0])
    assert micrographs["rlnMicrographName"].tolist() == [f"out/mrc/{p.stem}.mrc" for p in mics]

    table = pd.read_csv(out / "micrographs.csv")
    for column in (
        "micrograph",
        "status",
        "error",
        "output_path",
        "output_pixel_size_A",
        "crop_px",
    ):
        assert column in table.columns
    assert (table["crop_px"] == 10).all()
    tilt = pd.read_csv(out / "tilt.csv")
    for column in (
        "micrograph",
        "status",
        "tilt_mean_corr",
        "tilt_std_corr",
        "tilt_min_corr",
        "tilt_max_corr",
        "accepted",
        "error",
        "window_size_px",
        "band_limit_A",
    ):
        assert column in tilt.columns
    assert set(tilt["status"]) <= {"accepted", "discarded"}
    accepted = (out / "accepted.txt").read_text().split()
    rejected = (out / "rejected.txt").read_text().split()
    assert sorted(accepted + rejected) == sorted(str(p) for p in mics)

    results = daskmic.io.open_results(out / "micrographs.zarr")
    assert list(results["micrograph"].values) == [p.stem for p in mics]
    assert {"created", "parameters", "daskmic_version"} <= set(results.attrs)


def test_rerun_resumes_without_recomputing_and_gives_identical_outputs(mics, tmp_path, client):
    out = tmp_path / "out"
    config = RunConfig(preprocess=PREPROCESS)
    daskmic.run_batch([str(p) for p in mics[:2]], out, config, client=client)
    first = (out / "mrc" / "mic_000.mrc").stat().st_mtime_ns
    daskmic.run_batch([str(p) for p in mics], out, config, client=client)
    assert (out / "mrc" / "mic_000.mrc").stat().st_mtime_ns == first, "done work is not redone"

    fresh = tmp_path / "fresh"
    daskmic.run_batch([str(p) for p in mics], fresh, config, client=client)
    for path in mics:
        a = (out / "mrc" / f"{path.stem}.mrc").read_bytes()
        b = (fresh / "mrc" / f"{path.stem}.mrc").read_bytes()
        assert a == b
    resumed = pd.read_csv(out / "micrographs.csv").drop(columns=["output_path"])
    batch = pd.read_csv(fresh / "micrographs.csv").drop(columns=["output_path"])
    pd.testing.assert_frame_equal(resumed, batch)


def test_other_parameters_are_refused_unless_overwrite(mics, tmp_path, client):
    out = tmp_path / "out"
    daskmic.run_batch([str(mics[0])], out, RunConfig(preprocess=PREPROCESS), client=client)
    other = RunConfig(preprocess=PreprocessParams.from_options(invert=True))
    with pytest.raises(ValueError, match="other parameters"):
        daskmic.run_batch([str(mics[0])], out, other, client=client)
    summary = daskmic.run_batch([str(mics[0])], out, other, client=client, overwrite=True)
    assert summary.counts() == {"done": 1}


def test_select_resplits_without_recomputing(mics, tmp_path, client):
    out = tmp_path / "out"
    daskmic.run_batch([str(p) for p in mics], out, RunConfig(tilt=TILT), client=client)
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "psd").iterdir()}
    stats = pd.read_csv(out / "tilt.csv").set_index("micrograph")
    for mean_threshold, std_threshold in ((0.0, 10.0), (0.9, 0.01), (1.0, 10.0)):
        counts = daskmic.select(out, mean_threshold=mean_threshold, std_threshold=std_threshold)
        expected = (stats["tilt_mean_corr"] > mean_threshold) & (
            stats["tilt_std_corr"] < std_threshold
        )
        assert counts == {
            k: v
            for k, v in (("accepted", int(expected.sum())), ("discarded", int((~expected).sum())))
            if v
        }
        table = pd.read_csv(out / "tilt.csv").set_index("micrograph")
        assert (table["accepted"] == expected).all()
        assert (out / "accepted.star").exists() == bool(expected.any())
        assert (out / "discarded.star").exists() == bool((~expected).any())
    assert counts == {"discarded": 3}, "mean > 1 is impossible: the comparison is strict"
    assert {p.name: p.stat().st_mtime_ns for p in (out / "psd").iterdir()} == stamp


def test_cli_exit_codes(mics, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "raw" / "broken.mrc"
    bad.write_bytes(b"not an mrc file at all")
    inputs = [str(p) for p in mics[:2]] + [str(bad)]
    assert main(["preprocess", *inputs, "-o", "out", "--invert", "--workers", "1"]) == 1
    table = pd.read_csv(tmp_path / "out" / "micrographs.csv")
    assert table.set_index("micrograph").loc["broken", "status"] == "failed"
    assert "not an MRC" in table.set_index("micrograph").loc["broken", "error"]
    assert main(["preprocess", *inputs[:2], "-o", "ok", "--invert", "--workers", "1"]) == 0
    assert main(["preprocess", *inputs[:2], "-o", "usage", "--downsample", "0.5"]) == 2
    assert not os.path.exists(tmp_path / "usage"), "a usage error starts nothing"


TEARDOWN = """
import atexit, sys
atexit.register(print, "torn down")  # runs in the interpreter's teardown, if there is one
from daskmic.cli import entry
entry()
"""


@pytest.mark.parametrize(("options", "code"), [([], 0), (["--downsample", "0.5"], 2)])
def test_console_script_exits_with_main_exit_code_and_skips_the_teardown(
    mics, tmp_path, options, code
):
    args = ["preprocess", str(mics[0]), "-o", "out", "--crop", "--no-stack", "--no-dashboard"]
    done = subprocess.run(
        [sys.executable, "-c", TEARDOWN, *args, *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stderr[-2000:]  # 2: a usage error (factor < 1)
    printed = done.stdout + done.stderr
    assert ("1 done" in printed) if code == 0 else ("downsample" in printed), printed[-2000:]
    assert "torn down" not in done.stdout, "the outputs are closed: no teardown is waited for"
    assert (tmp_path / "out" / "micrographs.csv").is_file() is (code == 0)


def test_write_from_the_lazy_face_equals_run_batch(mics, tmp_path, client):
    paths = [str(p) for p in mics]
    opened = daskmic.open_micrographs(paths)
    out = daskmic.preprocess(opened, crop=True, invert=True, downsample=True, normalize=True)
    qc = daskmic.tilt_analysis(opened)
    lazy = daskmic.write(out, tmp_path / "lazy", tilt=qc, client=client)
    batch = daskmic.run_batch(
        paths, tmp_path / "batch", RunConfig(preprocess=PREPROCESS, tilt=TILT), client=client
    )
    assert lazy.counts() == batch.counts()
    computed = out.compute()
    for i, path in enumerate(mics):
        written = (tmp_path / "lazy" / "mrc" / f"{path.stem}.mrc").read_bytes()
        assert written == (tmp_path / "batch" / "mrc" / f"{path.stem}.mrc").read_bytes()
        with mrcfile.open(tmp_path / "lazy" / "mrc" / f"{path.stem}.mrc") as mrc:
            reference = mrc.data
        tolerance = 1e-5 * float(reference.std())
        assert np.abs(computed.values[i] - reference).max() <= tolerance, "lazy == production"
    columns = ["micrograph", "status", "tilt_mean_corr", "tilt_std_corr", "accepted"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "lazy" / "tilt.csv")[columns],
        pd.read_csv(tmp_path / "batch" / "tilt.csv")[columns],
    )
    screened = qc.compute()
    np.testing.assert_allclose(
        screened["tilt_mean_corr"].values,
        pd.read_csv(tmp_path / "batch" / "tilt.csv")["tilt_mean_corr"],
        rtol=0,
        atol=1e-9,
    )


def test_micrographs_of_different_sizes_are_each_processed(write_micrographs, tmp_path, client):
    paths = write_micrographs(n=1, shape=(512, 512), folder="falcon")
    paths += write_micrographs(n=1, shape=(384, 448), folder="k3", seed=5)
    paths[1] = paths[1].rename(paths[1].with_name("other.mrc"))
    summary = daskmic.run_batch(
        [str(p) for p in paths], tmp_path / "out", RunConfig(preprocess=PREPROCESS), client=client
    )
    assert summary.counts() == {"done": 2}
    table = pd.read_csv(tmp_path / "out" / "micrographs.csv").set_index("micrograph")
    assert table.loc["mic_000", "output_ny"] == (512 - 20) // 2
    assert table.loc["other", "output_nx"] == (448 - 20) // 2


def test_awkward_file_names_round_trip_through_the_tables_or_are_refused(
    write_micrographs, tmp_path, client, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    names = sorted(["#hash;semi", "_lead", "data_x", "$x ;y", "ünï cødé"])
    raw = tmp_path / "raw"
    for path, name in zip(write_micrographs(n=len(names), shape=(256, 256)), names, strict=True):
        path.rename(raw / f"{name}.mrc")
    out = tmp_path / "out"
    summary = daskmic.run_batch(raw, out, RunConfig(preprocess=PREPROCESS), client=client)
    assert summary.counts() == {"done": len(names)}

    star = starfile.read(out / "micrographs.star")["micrographs"]
    assert star["rlnMicrographName"].tolist() == [f"out/mrc/{n}.mrc" for n in names]
    for table in ("micrographs.star", "micrographs.xmd"):
        mics = daskmic.open_micrographs(out / table)
        assert mics.micrograph.values.tolist() == names
        for name, pixels in zip(names, mics.values, strict=True):
            with mrcfile.open(out / "mrc" / f"{name}.mrc") as mrc:
                np.testing.assert_array_equal(pixels, mrc.data)
    inputs = daskmic.open_micrographs(out / "micrographs.csv")
    assert inputs.path.values.tolist() == [str(raw / f"{n}.mrc") for n in names]

    (raw / "_lead.mrc").rename(raw / "q'uote\".mrc")
    refused = r"""micrograph file 'raw/q\\'uote"\.mrc' cannot be written .*: it holds a quote"""
    with pytest.raises(UsageError, match=refused):
        daskmic.run_batch(raw, tmp_path / "refused", RunConfig(preprocess=PREPROCESS))
    assert not (tmp_path / "refused").exists()


def test_write_writes_the_selection_the_user_holds(mics, tmp_path, client):
    opened = daskmic.open_micrographs([str(p) for p in mics])
    out = daskmic.preprocess(opened, crop=True, invert=True, downsample=True, normalize=True)
    qc = daskmic.tilt_analysis(opened)
    names = out.micrograph.values.tolist()
    selections = {
        "isel": (out.isel(micrograph=[0, 2]), qc.isel(micrograph=[0, 2])),
        "sel": (out.sel(micrograph=[names[1]]), None),
        "slice": (out.isel(micrograph=slice(1, None)), qc.isel(micrograph=slice(1, None))),
    }
    for label, (held, screen) in selections.items():
        summary = daskmic.write(held, tmp_path / label, tilt=screen, client=client)
        kept = held.micrograph.values.tolist()
        assert [row["micrograph"] for row in summary.rows] == kept
        assert sorted(p.stem for p in (tmp_path / label / "mrc").iterdir()) == kept
        assert pd.read_csv(tmp_path / label / "micrographs.csv")["micrograph"].tolist() == kept
        computed = held.compute()
        for name in kept:
            with mrcfile.open(tmp_path / label / "mrc" / f"{name}.mrc") as mrc:
                pixels = mrc.data
            tolerance = 1e-5 * float(pixels.std())  # lazy == production, as for the whole set
            assert np.abs(computed.sel(micrograph=name).values - pixels).max() <= tolerance
        if screen is not None:
            tilt = pd.read_csv(tmp_path / label / "tilt.csv")
            assert tilt["micrograph"].tolist() == kept
            np.testing.assert_allclose(
                tilt["tilt_mean_corr"], screen["tilt_mean_corr"].values, rtol=0, atol=1e-9
            )


def test_write_refuses_arrays_it_cannot_reproduce_from_the_files(mics, tmp_path):
    opened = daskmic.open_micrographs([str(p) for p in mics])
    out = daskmic.preprocess(opened, crop=True, invert=True, downsample=True, normalize=True)
    qc = daskmic.tilt_analysis(opened)
    edited_qc = qc.assign(tilt_mean_corr=qc["tilt_mean_corr"] + 0.1)
    changed = {
        "times two": out * 2,
        "plus one, attributes kept": (out + 1).assign_attrs(out.attrs),
        "computed": out.compute(),
        "flipped in place of the data": out.copy(data=out.data[:, :, ::-1]),
        "selected twice": out.isel(micrograph=[0, 1]).isel(micrograph=[1]),
        "cropped": out.isel(x=slice(0, 100)),
        "made from changed pixels": daskmic.preprocess(opened * 2, invert=True),
    }
    for label, held in changed.items():
        with pytest.raises(UsageError, match="not daskmic.preprocess's lazy result.*to_zarr"):
            daskmic.write(held, tmp_path / "refused")
        assert not (tmp_path / "refused").exists(), label
    for held in (qc.compute(), edited_qc, daskmic.tilt_analysis(out)):
        with pytest.raises(UsageError, match="tilt screen are not daskmic.tilt_analysis's"):
            daskmic.write(None, tmp_path / "refused", tilt=held)
    with pytest.raises(UsageError, match="hold different micrographs"):
        daskmic.write(out.isel(micrograph=[0]), tmp_path / "refused", tilt=qc)
    assert not (tmp_path / "refused").exists()
