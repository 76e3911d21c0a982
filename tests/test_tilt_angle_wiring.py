"""Tilt angle through the run, the lazy face, select and the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import daskmic
from daskmic.cli import main
from daskmic.datasets import synthesize_micrograph
from daskmic.io import write_mrc
from daskmic.run.config import RunConfig
from daskmic.tilt.angle import ANGLE_COLUMNS
from daskmic.tilt.defocus_map import load_defocus_map, plane_defocus_A
from daskmic.tilt.params import TiltParams

PIXEL_SIZE_A = 2.0
TILTS_DEG = {"flat": 0.0, "steep": 45.0}


@pytest.fixture(scope="module")
def mics(tmp_path_factory):
    folder = tmp_path_factory.mktemp("angle")
    paths = []
    for seed, (name, tilt) in enumerate(TILTS_DEG.items()):
        image, _ = synthesize_micrograph(
            (1024, 1024),
            pixel_size_A=PIXEL_SIZE_A,
            phase_std=0.3,
            defocus_A=15000.0,
            tilt_angle_deg=tilt,
            tilt_axis_deg=30.0,
            seed=seed,
        )
        write_mrc(folder / f"{name}.mrc", image, PIXEL_SIZE_A)
        paths.append(str(folder / f"{name}.mrc"))
    return paths


@pytest.mark.slow
def test_angle_columns_maps_and_discard_reason(mics, tmp_path, client):
    config = RunConfig(tilt=TiltParams(estimate_angle=True, max_tilt_deg=20.0))
    summary = daskmic.run_batch(mics, tmp_path / "out", config, client=client)
    assert summary.counts().get("failed", 0) == 0
    table = pd.read_csv(tmp_path / "out" / "tilt.csv").set_index("micrograph")
    assert set(ANGLE_COLUMNS) <= set(table.columns)
    assert table.loc["steep", "tilt_angle_deg"] > 20.0
    assert table.loc["steep", "status"] == "discarded"
    assert "angle" in table.loc["steep", "discard_reason"]
    assert table.loc["flat", "tilt_angle_deg"] < 20.0
    assert "angle" not in str(table.loc["flat", "discard_reason"])

    saved = load_defocus_map(tmp_path / "out" / "defocus" / "steep.json")
    assert saved["tilt_angle_deg"] == pytest.approx(table.loc["steep", "tilt_angle_deg"])
    usable = saved["patch_usable"].astype(bool)
    plane = plane_defocus_A(saved, saved["patch_centers_A"][usable])
    assert np.median(np.abs(plane - saved["patch_defocus_A"][usable])) < 1000.0

    counts = daskmic.select(
        tmp_path / "out", mean_threshold=0.0, std_threshold=10.0, max_tilt_deg=89.0
    )
    assert counts.get("accepted", 0) == 2 - counts.get("discarded", 0)
    resplit = pd.read_csv(tmp_path / "out" / "tilt.csv").set_index("micrograph")
    assert "angle" not in str(resplit.loc["steep", "discard_reason"])
    params = json.loads((tmp_path / "out" / ".daskmic" / "parameters.json").read_text())
    assert params["parameters"]["tilt"]["max_tilt_deg"] == 89.0

    lazy = daskmic.tilt_analysis(
        daskmic.open_micrographs(mics), estimate_angle=True, max_tilt_deg=20.0
    ).compute()
    # the driver (many BLAS threads) and the workers (one) compute the same numbers
    for name in ANGLE_COLUMNS:
        if name in ("angle_status", "angle_message"):
            batch = table.loc[["flat", "steep"], name].fillna("")  # CSV reads "" as NaN
            assert list(lazy[name].values) == list(batch)
            continue
        np.testing.assert_array_equal(lazy[name].values, table.loc[["flat", "steep"], name].values)
    assert list(lazy["status"].values) == list(table.loc[["flat", "steep"], "status"])


def test_max_tilt_without_angle_is_a_usage_error(mics, tmp_path):
    code = main(["tilt", *mics, "-o", str(tmp_path / "out"), "--max-tilt-deg", "20"])
    assert code == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"max_tilt_deg must be in \(0, 90\)"):
        TiltParams(estimate_angle=True, max_tilt_deg=95.0)


@pytest.mark.slow
def test_cli_tilt_with_angle_and_report_finishes_cleanly(mics, tmp_path, capsys):
    """Issue 14 item 2: the report drew each local-defocus map and ended in a TypeError."""
    out = tmp_path / "out"
    options = ["--workers", "1", "--threads-per-worker", "1", "--max-tilt-deg", "20"]
    assert main(["tilt", *mics, "-o", str(out), "--angle", *options]) == 0
    assert "Traceback" not in capsys.readouterr().err
    page = (out / "report.html").read_text()
    assert page.count('alt="local-defocus map"') == len(mics)
    table = pd.read_csv(out / "tilt.csv").set_index("micrograph")
    assert table.loc["steep", "status"] == "discarded"
