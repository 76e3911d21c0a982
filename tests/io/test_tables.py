"""Tables: STAR (read back by starfile and open_micrographs), Xmipp xmd (read by xmippLib),
CSV, and RELION optics groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from daskmic.io import (
    MicrographError,
    open_micrographs,
    optics_table,
    read_table,
    write_csv,
    write_star,
    write_xmd,
)
from daskmic.io.tables import OPTICS_COLUMNS


@pytest.fixture
def project(make_mrc, tmp_path, monkeypatch):
    """A RELION-like project: three micrographs in two optics groups, cwd = project root."""
    monkeypatch.chdir(tmp_path)
    for i in range(3):
        make_mrc(f"MotionCorr/job002/mic_{i}.mrc", np.full((16, 24), i, np.float32))
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1, 2],
            "rlnOpticsGroupName": ["opticsGroup1", "opticsGroup2"],
            "rlnMicrographOriginalPixelSize": [0.5, 0.6],
            "rlnMicrographPixelSize": [1.0, 1.2],
            "rlnVoltage": [300.0, 200.0],
            "rlnSphericalAberration": [2.7, 2.0],
            "rlnAmplitudeContrast": [0.1, 0.07],
            "rlnMtfFileName": ["mtf_k3.star", "mtf_k2.star"],
        }
    )
    micrographs = pd.DataFrame(
        {
            "rlnMicrographName": [f"MotionCorr/job002/mic_{i}.mrc" for i in range(3)],
            "rlnOpticsGroup": [1, 2, 1],
            "rlnCtfMaxResolution": [3.5, np.nan, 4.25],
            "rlnMicrographMetadata": ["a.star", "b c.star", ""],
        }
    )
    return tmp_path, micrographs, optics


def test_star_round_trip_through_starfile(project):
    root, micrographs, optics = project
    write_star(
        root / "out/micrographs.star",
        micrographs.assign(tilt_mean_corr=np.array([0.1, 0.2, 0.3], dtype=np.float32)),
        optics,
    )
    text = (root / "out/micrographs.star").read_text()
    # starfile separates values by tabs (RELION reads a tab as a blank); text is quoted
    assert "\t3.5\t" in text and "\t0.1\n" in text  # float32 kept short
    assert '"MotionCorr/job002/mic_0.mrc"\t1\t' in text
    assert text.index("data_optics") < text.index("data_micrographs")
    assert "# version 30001" in text
    blocks = starfile.read(root / "out/micrographs.star", always_dict=True)
    pd.testing.assert_frame_equal(blocks["optics"], optics, check_dtype=False)
    back = blocks["micrographs"]
    assert back.columns.tolist() == [*micrographs.columns, "tilt_mean_corr"]
    assert back["tilt_mean_corr"].tolist() == [0.1, 0.2, 0.3]
    assert back["rlnMicrographName"].tolist() == micrographs["rlnMicrographName"].tolist()
    assert back["rlnOpticsGroup"].tolist() == [1, 2, 1]
    np.testing.assert_array_equal(back["rlnCtfMaxResolution"], [3.5, np.nan, 4.25])
    assert back["rlnMicrographMetadata"].fillna("").tolist() == ["a.star", "b c.star", ""]


def test_star_read_by_open_micrographs_keeps_columns_and_optics(project):
    root, micrographs, optics = project
    write_star(root / "in.star", micrographs, optics)
    mics = open_micrographs("in.star")
    assert mics.micrograph.values.tolist() == ["mic_0", "mic_1", "mic_2"]
    assert mics.path.values[1] == str(root / "MotionCorr/job002/mic_1.mrc")
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.0, 1.2, 1.0])
    np.testing.assert_array_equal(mics.rlnOpticsGroup.values, [1, 2, 1])
    np.testing.assert_array_equal(mics.rlnCtfMaxResolution.values, [3.5, np.nan, 4.25])
    assert mics.rlnMicrographName.values.tolist() == micrographs["rlnMicrographName"].tolist()
    assert mics.rlnMicrographMetadata.values.tolist() == ["a.star", "b c.star", ""]
    assert mics.attrs["optics"] == optics.to_dict("records")
    assert mics.x.attrs["units"] == "px"  # two pixel sizes in the set
    np.testing.assert_array_equal(mics.values[:, 0, 0], [0, 1, 2])


def test_star_failed_rows_and_pixel_size_override(project):
    root, micrographs, optics = project
    micrographs.loc[1, "rlnMicrographName"] = "MotionCorr/job002/gone.mrc"
    write_star(root / "in.star", micrographs, optics)
    mics = open_micrographs(root / "in.star", pixel_size_A=0.9)
    assert mics.micrograph.values.tolist() == ["mic_0", "mic_2"]
    np.testing.assert_array_equal(mics.rlnCtfMaxResolution.values, [3.5, 4.25])
    np.testing.assert_array_equal(mics.pixel_size_A.values, [0.9, 0.9])
    assert mics.attrs["failed"] == [
        {
            "micrograph": "gone",
            "path": str(root / "MotionCorr/job002/gone.mrc"),
            "error": "no such file",
        }
    ]


def test_relion30_star_without_optics(project):
    root, micrographs, _ = project
    starfile.write(micrographs.assign(rlnMicrographPixelSize=1.5), root / "old.star")
    table, optics = read_table(root / "old.star")
    assert optics is None and len(table) == 3
    mics = open_micrographs(root / "old.star")
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.5] * 3)
    assert mics.attrs["optics"] == []


def test_write_star_refuses_incomplete_tables(project):
    root, micrographs, optics = project
    with pytest.raises(ValueError, match="rlnVoltage"):
        write_star(root / "x.star", micrographs, optics.drop(columns="rlnVoltage"))
    with pytest.raises(ValueError, match="rlnOpticsGroup"):
        write_star(root / "x.star", micrographs.drop(columns="rlnOpticsGroup"), optics)
    with pytest.raises(ValueError, match=r"optics groups \[7\]"):
        write_star(root / "x.star", micrographs.assign(rlnOpticsGroup=7), optics)
    assert not (root / "x.star").exists()


def test_optics_table_groups_by_pixel_size():
    optics, groups = optics_table([2.0, 1.0, 2.0, 1.0, np.nan])
    assert optics.columns.tolist() == list(OPTICS_COLUMNS)
    np.testing.assert_array_equal(groups, [3, 2, 3, 2, 1])  # unknown first, then 1.0, 2.0
    row = optics.set_index("rlnOpticsGroup").loc[3]
    assert row["rlnMicrographPixelSize"] == 2.0
    assert row["rlnMicrographOriginalPixelSize"] == 2.0
    assert row["rlnOpticsGroupName"] == "opticsGroup3"
    assert (row["rlnVoltage"], row["rlnSphericalAberration"], row["rlnAmplitudeContrast"]) == (
        300.0,
        2.7,
        0.1,
    )
    downsampled, _ = optics_table(
        [2.0, 2.0], original_pixel_size_A=[1.0, 1.0], voltage_kV=200, amplitude_contrast=0.07
    )
    assert downsampled.loc[0, "rlnMicrographOriginalPixelSize"] == 1.0
    assert (downsampled.loc[0, "rlnVoltage"], downsampled.loc[0, "rlnAmplitudeContrast"]) == (
        200.0,
        0.07,
    )


def test_optics_table_keeps_carried_groups(project):
    _, micrographs, optics = project
    out, groups = optics_table(
        [2.0, 2.4, 2.0],
        original_pixel_size_A=[1.0, 1.2, 1.0],
        optics_group=micrographs["rlnOpticsGroup"],
        carried_optics=optics.to_dict("records"),
        spherical_aberration_mm=2.6,
    )
    np.testing.assert_array_equal(groups, [1, 2, 1])
    assert out["rlnOpticsGroupName"].tolist() == ["opticsGroup1", "opticsGroup2"]
    assert out["rlnMicrographPixelSize"].tolist() == [2.0, 2.4]
    assert out["rlnMicrographOriginalPixelSize"].tolist() == [0.5, 0.6]  # the movies'
    assert out["rlnVoltage"].tolist() == [300.0, 200.0]
    assert out["rlnSphericalAberration"].tolist() == [2.6, 2.6]
    assert out["rlnMtfFileName"].tolist() == ["mtf_k3.star", "mtf_k2.star"]
    split, split_groups = optics_table(
        [2.0, 2.4, 3.0],
        optics_group=micrographs["rlnOpticsGroup"],
        carried_optics=optics,
    )
    np.testing.assert_array_equal(split_groups, [3, 2, 4])  # group 1 split in two
    assert split["rlnOpticsGroup"].tolist() == [2, 3, 4]
    assert split["rlnVoltage"].tolist() == [200.0, 300.0, 300.0]


def test_optics_table_then_write_star_then_open(project):
    root, micrographs, _ = project
    optics, groups = optics_table([1.0, 1.0, 1.0])
    write_star(root / "o.star", micrographs.assign(rlnOpticsGroup=groups), optics)
    mics = open_micrographs(root / "o.star")
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.0] * 3)
    np.testing.assert_allclose(mics.x.values, np.arange(24) * 1.0)
    assert mics.x.attrs["units"] == "Å"


def _xmd_frame(root):
    return pd.DataFrame(
        {
            "micrograph": ["mic_0", "mic_1", "mic_2"],
            "path": [str(root / f"MotionCorr/job002/mic_{i}.mrc") for i in range(3)],
            "status": ["done", "failed", "done"],
            "error": ["", "log of a non-positive value", ""],
            "pixel_size_A": [1.0, 1.0, 1.0],
            "mean": [0.5, np.nan, -1.25],
            "std": [1.0, np.nan, 2.0],
            "crop_px": [10, 10, 10],
        }
    )


def test_xmd_read_by_xmipplib(project):
    xmippLib = pytest.importorskip("xmippLib")
    root, _, _ = project
    write_xmd(root / "m.xmd", _xmd_frame(root))
    md = xmippLib.MetaData(f"micrographs@{root / 'm.xmd'}")
    assert md.size() == 3
    rows = [
        (
            md.getValue(xmippLib.MDL_MICROGRAPH, o),
            md.getValue(xmippLib.MDL_ENABLED, o),
            md.getValue(xmippLib.MDL_SAMPLINGRATE, o),
            md.getValue(xmippLib.MDL_AVG, o),
            md.getValue(xmippLib.MDL_STDDEV, o),
        )
        for o in md
    ]
    assert rows[0] == (str(root / "MotionCorr/job002/mic_0.mrc"), 1, 1.0, 0.5, 1.0)
    assert rows[1][1] == -1
    assert rows[2][1:] == (1, 1.0, -1.25, 2.0)


def test_xmd_written_by_xmipplib_is_read(project):
    xmippLib = pytest.importorskip("xmippLib")
    root, _, _ = project
    md = xmippLib.MetaData()
    for i, enabled in enumerate([1, -1, 1]):
        row = md.addObject()
        md.setValue(xmippLib.MDL_MICROGRAPH, f"MotionCorr/job002/mic_{i}.mrc", row)
        md.setValue(xmippLib.MDL_ENABLED, enabled, row)
        md.setValue(xmippLib.MDL_SAMPLINGRATE, 1.75, row)
        md.setValue(xmippLib.MDL_COMMENT, "two words", row)
    md.write(f"micrographs@{root / 'x.xmd'}")
    table, optics = read_table(root / "x.xmd")
    assert optics is None
    assert table["enabled"].tolist() == [1, -1, 1]
    assert table["comment"].tolist() == ["two words"] * 3
    mics = open_micrographs("micrographs@x.xmd")
    assert mics.micrograph.values.tolist() == ["mic_0", "mic_1", "mic_2"]
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.75] * 3)
    np.testing.assert_array_equal(mics.enabled.values, [1, -1, 1])
    assert mics.input_micrograph.values[0] == "MotionCorr/job002/mic_0.mrc"


def test_xmd_round_trip_and_single_row_blocks(project):
    root, _, _ = project
    frame = _xmd_frame(root)
    write_xmd(root / "m.xmd", frame)
    table, _ = read_table(root / "m.xmd")
    assert table.columns.tolist() == [
        "micrograph",
        "enabled",
        "micrographName",
        "status",
        "error",
        "samplingRate",
        "avg",
        "stddev",
        "crop_px",
    ]
    assert table["micrograph"].tolist() == frame["path"].tolist()
    assert table["error"].tolist() == frame["error"].tolist()
    np.testing.assert_array_equal(table["avg"], frame["mean"])
    assert table["crop_px"].dtype.kind == "i"
    (root / "single.xmd").write_text(
        "# XMIPP_STAR_1 *\ndata_summary\n _samplingRate 1.5\n _comment 'a b'\n"
        "data_micrographs\nloop_\n _image\nMotionCorr/job002/mic_2.mrc\n"
    )
    summary, _ = read_table(f"summary@{root / 'single.xmd'}")
    assert summary.to_dict("records") == [{"samplingRate": 1.5, "comment": "a b"}]
    mics = open_micrographs(root / "single.xmd")
    assert mics.micrograph.values.tolist() == ["mic_2"]


def test_csv_round_trip_and_open(project):
    root, micrographs, _ = project
    frame = pd.DataFrame(
        {
            "path": micrographs["rlnMicrographName"],
            "pixel_size_A": [1.1, 1.1, 1.1],
            "defocus_A": [12000.5, 15000.0, np.nan],
            "site": ["a", "b, c", "d"],
        }
    )
    write_csv(root / "m.csv", frame)
    table, optics = read_table(root / "m.csv")
    assert optics is None
    pd.testing.assert_frame_equal(table, frame, check_dtype=False)
    mics = open_micrographs(root / "m.csv")
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.1] * 3)
    np.testing.assert_array_equal(mics.defocus_A.values, [12000.5, 15000.0, np.nan])
    assert mics.site.values.tolist() == ["a", "b, c", "d"]
    assert mics.input_path.values.tolist() == frame["path"].tolist()
    assert mics.input_pixel_size_A.values.tolist() == [1.1] * 3


def test_csv_paths_relative_to_the_table_folder(project, monkeypatch):
    root, _, _ = project
    (root / "MotionCorr/list.csv").write_text("micrograph_path\njob002/mic_1.mrc\n")
    monkeypatch.chdir(root.parent)
    mics = open_micrographs(root / "MotionCorr/list.csv")
    assert mics.path.values.tolist() == [str(root / "MotionCorr/job002/mic_1.mrc")]


def test_bad_tables(project):
    root, _, _ = project
    with pytest.raises(MicrographError, match="no such table file"):
        read_table(root / "absent.star")
    (root / "nopath.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MicrographError, match="no micrograph path column"):
        open_micrographs(root / "nopath.csv")
    (root / "ragged.xmd").write_text("data_micrographs\nloop_\n _micrograph\n _enabled\na.mrc\n")
    with pytest.raises(MicrographError, match=r"ragged\.xmd: cannot read \.xmd table"):
        read_table(root / "ragged.xmd")
    with pytest.raises(ValueError, match="must end in"):
        read_table(root / "table.txt")
    with pytest.raises(ValueError, match="a table must be the only source"):
        open_micrographs([root / "nopath.csv", root / "MotionCorr"])
