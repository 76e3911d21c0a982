"""Realistic synthetic micrographs (issue 19): each feature against its physical model."""

import math

import numpy as np
import pytest

from daskmic.datasets_realistic import (
    FEATURES,
    _drift_blur,
    draw_realistic,
    synthesize_realistic,
)

SHAPE = (512, 720)
DOSE = 400.0  # counts per Å² high enough that a pixel's Poisson noise does not hide 1 %


def _mask_outside(truth, shape, margin_px=0.0):
    cy, cx = truth["hole_center_yx_px"]
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    distance = np.hypot(rows - cy, cols - cx) - truth["hole_radius_px"]
    return distance > margin_px, distance < -margin_px


def test_carbon_covers_its_fraction_and_passes_its_transmission():
    image, truth = synthesize_realistic(
        SHAPE, pixel_size_A=2.0, dose_e_per_A2=DOSE, phase_std=0.02, carbon_fraction=0.3,
        carbon_transmission=0.85, carbon_phase_std=0.04, hole_radius_A=3000.0, seed=4,
    )  # fmt: skip
    film, ice = _mask_outside(truth, SHAPE, margin_px=30.0)
    assert truth["carbon_area_fraction"] == pytest.approx(0.3, abs=0.03)
    assert film.mean() > 0.15 and ice.mean() > 0.5
    assert image[film].mean() / image[ice].mean() == pytest.approx(0.85, abs=0.01)


def test_contamination_passes_its_transmission_at_the_centre():
    image, truth = synthesize_realistic(
        SHAPE, pixel_size_A=2.0, dose_e_per_A2=DOSE, phase_std=0.02, contamination=3, seed=8
    )
    dose_px = DOSE * 4.0
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    anywhere = np.zeros(SHAPE, bool)
    for (cy, cx, r), t in zip(
        truth["contamination_yx_r_px"], truth["contamination_transmission"], strict=True
    ):
        anywhere |= np.hypot(rows - cy, cols - cx) < 1.2 * r
        core = np.hypot(rows - cy, cols - cx) < 0.3 * r
        others = [
            np.hypot(rows - oy, cols - ox) < 1.2 * orad
            for oy, ox, orad in truth["contamination_yx_r_px"]
            if (oy, ox) != (cy, cx)
        ]
        core &= ~np.any(others, axis=0) if others else True
        if core.sum() > 100:
            assert image[core].mean() / dose_px == pytest.approx(t, abs=0.02)
    assert image[~anywhere].mean() / dose_px == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 115.0])
def test_drift_blur_is_a_line_of_its_length_and_direction(angle_deg):
    """A point becomes a uniform line: variance L²/12 along the drift, none across it."""
    image = np.zeros((128, 128), np.float32)
    image[64, 64] = 1.0
    length_px = 20.0
    blurred = _drift_blur(image, length_px, angle_deg)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-5)
    rows, cols = np.mgrid[:128, :128]
    a = math.radians(angle_deg)
    along = (cols - 64) * math.cos(a) + (rows - 64) * math.sin(a)
    across = -(cols - 64) * math.sin(a) + (rows - 64) * math.cos(a)
    # the sinc's ringing makes small negative lobes: moments of the kernel, not of |kernel|
    assert (blurred * along**2).sum() == pytest.approx(length_px**2 / 12, rel=0.1)
    assert (blurred * across**2).sum() < 0.5


def test_gain_stripes_vary_columns_not_rows():
    image, truth = synthesize_realistic(
        SHAPE, pixel_size_A=2.0, dose_e_per_A2=DOSE, phase_std=0.02, gain_stripes=0.02, seed=2
    )
    columns = image.mean(axis=0) / image.mean()
    rows = image.mean(axis=1) / image.mean()
    # per column: a normal deviate and a square wave, each of std 2 %
    assert np.std(columns) == pytest.approx(0.02 * math.sqrt(2), rel=0.25)
    assert np.std(rows) < 0.003
    assert truth["gain_stripe_axis"] == "x"


def test_draw_gives_each_feature_its_parameters():
    rng = np.random.default_rng(0)
    everything = draw_realistic(rng, FEATURES, tilted=True)
    assert 0.15 <= everything["carbon_fraction"] <= 0.4
    assert 1 <= everything["contamination"] <= 5
    assert 5.0 <= everything["drift_A"] <= 20.0
    assert 5000.0 <= everything["defocus_A"] <= 9000.0
    assert 5.0 <= everything["tilt_angle_deg"] <= 45.0
    assert draw_realistic(rng, (), tilted=False)["tilt_angle_deg"] == 0.0
    with pytest.raises(ValueError, match="unknown features"):
        draw_realistic(rng, ("ice_crystals",), tilted=True)
