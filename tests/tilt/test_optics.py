"""One optics definition: given, else carried from the input table, else the defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

import daskmic
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
from daskmic.run.config import RunConfig
from daskmic.run.optics_groups import optics_table
from daskmic.tilt.angle import estimate_tilt
from daskmic.tilt.ctf import Optics
from daskmic.tilt.optics import check_given, optics_for, resolve_optics
from daskmic.tilt.params import TiltParams

CARRIED = {"rlnOpticsGroup": 2, "rlnVoltage": 200.0, "rlnAmplitudeContrast": 0.07}


def test_each_value_is_given_else_carried_else_the_default():
    assert resolve_optics(None) == Optics()
    assert resolve_optics({}, CARRIED) == Optics(voltage_kV=200.0, amplitude_contrast=0.07)
    given = {"voltage_kV": None, "amplitude_contrast": 0.2}
    assert resolve_optics(given, CARRIED) == Optics(voltage_kV=200.0, amplitude_contrast=0.2)
    assert optics_for(given, 2, [CARRIED])["amplitude_contrast"] == 0.2
    assert optics_for({}, 1, [CARRIED]) == {
        "voltage_kV": Optics.voltage_kV,
        "spherical_aberration_mm": Optics.spherical_aberration_mm,
        "amplitude_contrast": Optics.amplitude_contrast,
    }


def test_the_star_tables_and_the_angle_fit_share_the_defaults():
    optics, _ = optics_table([1.0])
    row = optics.iloc[0]
    default = Optics()
    assert row["rlnVoltage"] == default.voltage_kV
    assert row["rlnSphericalAberration"] == default.spherical_aberration_mm
    assert row["rlnAmplitudeContrast"] == default.amplitude_contrast
    assert optics_for(None, None, []) == {
        "voltage_kV": row["rlnVoltage"],
        "spherical_aberration_mm": row["rlnSphericalAberration"],
        "amplitude_contrast": row["rlnAmplitudeContrast"],
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [({"voltage": 200.0}, "unknown optics"), ({"amplitude_contrast": 1.5}, "amplitude_contrast")],
)
def test_invalid_given_optics_are_refused_before_work(given, message):
    with pytest.raises(ValueError, match=message):
        check_given(given)
    with pytest.raises(ValueError, match=message):
        RunConfig(tilt=TiltParams(), optics=given)


@pytest.mark.slow
def test_a_run_fits_the_angle_with_the_optics_its_star_records(tmp_path, client):
    """#14 item 7: the STAR said amplitude contrast 0.1 while the angle fit used 0.07."""
    image, _ = synthesize_micrograph(
        (1024, 1024), pixel_size_A=2.0, phase_std=0.3, tilt_angle_deg=30.0, seed=3
    )
    path = tmp_path / "tilted.mrc"
    write_mrc(path, image, 2.0)
    config = RunConfig(tilt=TiltParams(estimate_angle=True, mean_threshold=0.0, std_threshold=10))
    daskmic.run_batch([str(path)], tmp_path / "out", config, client=client)
    star = starfile.read(tmp_path / "out" / "accepted.star")
    recorded = star["optics"].iloc[0]
    row = pd.read_csv(tmp_path / "out" / "tilt.csv").iloc[0]
    expected = estimate_tilt(
        image,
        2.0,
        voltage_kV=recorded["rlnVoltage"],
        spherical_aberration_mm=recorded["rlnSphericalAberration"],
        amplitude_contrast=recorded["rlnAmplitudeContrast"],
    )
    assert row["angle_status"] == "ok"
    np.testing.assert_allclose(
        [row["defocus_mean_A"], row["tilt_angle_deg"]],
        [expected.defocus_mean_A, expected.tilt_angle_deg],
        rtol=0,
        atol=1e-9,
    )
