"""One micrograph's screen in the default mode: decisions on synthetic truth, failures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from daskmic.datasets import synthesize_micrograph
from daskmic.tilt.params import TiltParams
from daskmic.tilt.screen import corner_regions, screen_micrograph, screen_windows

PIXEL_SIZE_A = 2.0
SHAPE = (1024, 1024)


def _micrograph(**options) -> np.ndarray:
    image, _ = synthesize_micrograph(
        SHAPE, pixel_size_A=PIXEL_SIZE_A, phase_std=0.3, seed=options.pop("seed", 0), **options
    )
    return image


@pytest.fixture(scope="module")
def untilted_image():
    return _micrograph()


@pytest.fixture(scope="module")
def untilted(untilted_image):
    return screen_micrograph(untilted_image, PIXEL_SIZE_A, TiltParams())


@pytest.mark.parametrize(
    ("astigmatism_A", "angle_deg"), [(0.0, 0.0), (1000.0, 0.0), (1000.0, 45.0)]
)
def test_untilted_micrographs_are_accepted(astigmatism_A, angle_deg):
    image = _micrograph(astigmatism_A=astigmatism_A, astigmatism_angle_deg=angle_deg, seed=1)
    result = screen_micrograph(image, PIXEL_SIZE_A, TiltParams())
    assert result.accepted, (result.mean, result.std)
    assert result.status == "accepted"
    assert result.mean > 0.5 and result.std < 0.1


def test_a_strongly_tilted_micrograph_scores_worse_and_is_discarded(untilted):
    tilted = screen_micrograph(_micrograph(tilt_angle_deg=60.0), PIXEL_SIZE_A, TiltParams())
    assert tilted.mean < untilted.mean
    assert tilted.std > untilted.std
    assert not tilted.accepted and tilted.status == "discarded"


def test_result_fields(untilted):
    assert untilted.correlations.shape == (10,)
    assert untilted.correlations.dtype == np.float64
    assert untilted.mean == pytest.approx(np.mean(untilted.correlations))
    assert untilted.std == pytest.approx(np.std(untilted.correlations))
    assert untilted.min == untilted.correlations.min()
    assert untilted.max == untilted.correlations.max()
    assert untilted.window_size_px == 256  # auto for 1024²
    assert untilted.sub_window_px == int(256 * PIXEL_SIZE_A / 3.0) == 170
    assert untilted.band_limit_A == pytest.approx(2 * 256 * PIXEL_SIZE_A / 170)
    assert untilted.psd_summary.shape == (339, 339)
    assert untilted.psd_summary.dtype == np.float32
    row = untilted.to_row()
    assert row["tilt_status"] == "accepted" and row["accepted"] is True
    assert row["tilt_mean_corr"] == untilted.mean
    assert {"tilt_std_corr", "tilt_min_corr", "tilt_max_corr", "band_limit_A"} <= set(row)


def test_thresholds_are_strict(untilted, untilted_image):
    image = untilted_image
    at_mean = dataclasses.replace(TiltParams(), mean_threshold=untilted.mean)
    assert not screen_micrograph(image, PIXEL_SIZE_A, at_mean).accepted
    at_std = dataclasses.replace(TiltParams(), std_threshold=untilted.std)
    assert not screen_micrograph(image, PIXEL_SIZE_A, at_std).accepted


def test_screen_micrograph_reads_the_corner_regions(untilted_image):
    image = untilted_image
    for compat in (False, True):
        params = TiltParams(xmipp_compat=compat)
        windows = [image[region] for region in corner_regions(image.shape, params)]
        direct = screen_windows(windows, PIXEL_SIZE_A, params)
        whole = screen_micrograph(image, PIXEL_SIZE_A, params)
        np.testing.assert_array_equal(direct.correlations, whole.correlations)
        np.testing.assert_array_equal(direct.psd_summary, whole.psd_summary)


def test_failures_raise_with_a_reason():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(700, 700)).astype(np.float32)
    params = TiltParams()
    nan = image.copy()
    nan[-3, 5] = np.nan  # in the near-x/far-y corner, 02
    with pytest.raises(ValueError, match="corner window 02: the window holds NaN or Inf"):
        screen_micrograph(nan, 1.0, params)
    with pytest.raises(ValueError, match="corner window 00: the window is constant"):
        screen_micrograph(np.full((700, 700), 3.0, dtype=np.float32), 1.0, params)
    with pytest.raises(ValueError, match="too small for tilt analysis"):
        screen_micrograph(image[:600, :600], 1.0, params)
    with pytest.raises(ValueError, match="must be 2-D"):
        screen_micrograph(image[None], 1.0, params)
    with pytest.raises(ValueError, match="too coarse"):
        screen_micrograph(image, 0.2, params)  # sub-window int(256 * 0.2 / 3) = 17 px
    with pytest.raises(ValueError, match="do not match"):
        screen_windows([image[:256, :256]] * 3 + [image[:257, :256]], 1.0, params)
