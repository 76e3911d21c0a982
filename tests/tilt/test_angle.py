"""The tilt angle/axis estimator on synthetic micrographs with known truth (issue 9)."""

import math

import numpy as np
import pytest

from daskmic.datasets import synthesize_micrograph
from daskmic.tilt.angle import TiltAngleResult, estimate_tilt

# micrographs drawn once (seed 2026) from the issue-9 ranges
TILTED_2048 = [
    dict(pixel_size_A=1.0, defocus_A=18878.5, astigmatism_A=700.9, astigmatism_angle_deg=66.7,
         tilt_angle_deg=24.2, tilt_axis_deg=142.3, dose_e_per_A2=37.6),
    dict(pixel_size_A=1.0, defocus_A=19097.3, astigmatism_A=447.5, astigmatism_angle_deg=174.1,
         tilt_angle_deg=46.8, tilt_axis_deg=114.5, dose_e_per_A2=33.8),
    dict(pixel_size_A=1.2, defocus_A=22040.2, astigmatism_A=672.6, astigmatism_angle_deg=61.0,
         tilt_angle_deg=21.1, tilt_axis_deg=40.7, dose_e_per_A2=28.1),
    dict(pixel_size_A=1.2, defocus_A=19274.1, astigmatism_A=19.3, astigmatism_angle_deg=80.6,
         tilt_angle_deg=24.6, tilt_axis_deg=35.2, dose_e_per_A2=29.9),
    dict(pixel_size_A=1.2, defocus_A=13099.9, astigmatism_A=314.1, astigmatism_angle_deg=157.4,
         tilt_angle_deg=41.9, tilt_axis_deg=109.2, dose_e_per_A2=23.6),
]  # fmt: skip
UNTILTED_2048 = [
    dict(pixel_size_A=1.5, defocus_A=17577.4, astigmatism_A=649.1, astigmatism_angle_deg=162.1,
         dose_e_per_A2=32.4),
    dict(pixel_size_A=1.1, defocus_A=12446.4, astigmatism_A=1051.3, astigmatism_angle_deg=41.0,
         dose_e_per_A2=29.5),
    dict(pixel_size_A=1.0, defocus_A=20431.1, astigmatism_A=822.7, astigmatism_angle_deg=111.9,
         dose_e_per_A2=25.5),
]  # fmt: skip


def _axis_error(a_deg, b_deg):
    return abs((a_deg - b_deg + 90.0) % 180.0 - 90.0)


def _angle_error(a_deg, b_deg, period=360.0):
    return abs((a_deg - b_deg + period / 2) % period - period / 2)


@pytest.fixture(scope="module")
def tilted():
    """One tilted, astigmatic micrograph, its truth and its estimate."""
    params = TILTED_2048[4]
    image, truth = synthesize_micrograph((2048, 2048), seed=104, **params)
    return image, truth, estimate_tilt(image, params["pixel_size_A"])


def test_one_tilted_micrograph_gives_its_truth(tilted):
    _, truth, result = tilted
    _check_status(result)  # 49 tiles at 1.2 Å/px: the axis ± is about 2°, "uncertain"
    assert result.tilt_angle_deg == pytest.approx(truth["tilt_angle_deg"], abs=2.0)
    assert _axis_error(result.tilt_axis_deg, truth["tilt_axis_deg"]) <= 8.0
    assert _angle_error(result.tilt_direction_deg, truth["tilt_direction_deg"]) <= 8.0
    assert result.defocus_mean_A == pytest.approx(truth["defocus_A"], abs=100.0)
    assert result.astigmatism_A == pytest.approx(truth["astigmatism_A"], abs=150.0)
    angle_error = _axis_error(result.astigmatism_angle_deg, truth["astigmatism_angle_deg"])
    assert angle_error <= 15.0  # 314 Å of astigmatism: its angle is loosely defined
    assert 0 < result.tilt_angle_err_deg < 3.0
    assert result.total_patches == 49
    assert result.usable_patches >= 0.8 * 49


def test_local_defocus_map_follows_the_truth_plane(tilted):
    _, truth, result = tilted
    gradient = np.array([truth["defocus_plane_gx"], truth["defocus_plane_gy"]])
    expected = truth["defocus_plane_c0_A"] + result.patch_centers_A @ gradient
    residual = result.patch_defocus_A[result.patch_usable] - expected[result.patch_usable]
    assert np.sqrt(np.mean(residual**2)) < 2.0 * result.plane_residual_A + 50.0
    assert np.corrcoef(result.patch_defocus_A, expected)[0, 1] > 0.85
    np.testing.assert_allclose(result.defocus_gradient, gradient, atol=0.1)


def test_rotating_the_image_rotates_direction_and_astigmatism(tilted):
    """np.rot90 maps (x, y) to (y, -x): directions turn by -90°, about the same tiles."""
    image, _, result = tilted
    rotated = estimate_tilt(np.rot90(image), 1.2)
    assert rotated.tilt_angle_deg == pytest.approx(result.tilt_angle_deg, abs=0.5)
    expected = (result.tilt_direction_deg - 90.0) % 360.0
    assert _angle_error(rotated.tilt_direction_deg, expected) < 3.0
    assert _axis_error(rotated.astigmatism_angle_deg, result.astigmatism_angle_deg - 90.0) < 3.0
    flipped = estimate_tilt(image[::-1], 1.2)  # y -> -y mirrors the direction
    assert _angle_error(flipped.tilt_direction_deg, -result.tilt_direction_deg) < 3.0
    assert flipped.tilt_angle_deg == pytest.approx(result.tilt_angle_deg, abs=0.5)


def _check_status(result):
    """A ± above 1° (angle) or 1.5° (the axis of a tilted frame) is flagged, with its
    numbers."""
    if result.status == "ok":
        assert result.tilt_angle_err_deg <= 1.0
        assert result.tilt_axis_err_deg <= 1.5 or "untilted" in result.message
    else:
        assert result.status == "uncertain" and result.message
        assert not math.isnan(result.tilt_angle_deg)
    if result.tilt_angle_err_deg > 1.0:
        assert result.status == "uncertain"


def test_accuracy_over_tilted_micrographs_at_2048():
    """Issue-9 bar at 2048²: mean |angle error| <= 2°, mean axis error <= 5° for θ >= 10°."""
    angle_errors, axis_errors = [], []
    for i, params in enumerate(TILTED_2048[:4]):
        image, truth = synthesize_micrograph((2048, 2048), seed=100 + i, **params)
        result = estimate_tilt(image, params["pixel_size_A"])
        _check_status(result)
        angle_errors.append(abs(result.tilt_angle_deg - truth["tilt_angle_deg"]))
        axis_errors.append(_axis_error(result.tilt_axis_deg, truth["tilt_axis_deg"]))
        # the reported uncertainty covers the error (3 sigma, plus the synthesis' own)
        assert angle_errors[-1] <= 3 * result.tilt_angle_err_deg + 0.5
    assert np.mean(angle_errors) <= 2.0
    assert np.mean(axis_errors) <= 5.0


def test_untilted_micrographs_report_angles_within_their_uncertainty():
    """A flat specimen's reported angle is of the order of its uncertainty (de-biased |g|).

    At 2048² that uncertainty is 1–4° for small pixels and high defocus (the tiles' ring
    information sets it); the "mean < 1°" bar is checked at 4096² in the slow test.
    """
    ratios = []
    for i, params in enumerate(UNTILTED_2048):
        image, truth = synthesize_micrograph((2048, 2048), seed=105 + i, **params)
        result = estimate_tilt(image, params["pixel_size_A"])
        _check_status(result)
        assert result.astigmatism_A == pytest.approx(truth["astigmatism_A"], abs=200.0)
        assert result.defocus_mean_A == pytest.approx(truth["defocus_A"], abs=100.0)
        assert result.tilt_angle_deg <= 3 * result.tilt_angle_err_deg + 0.5
        ratios.append(result.tilt_angle_deg / result.tilt_angle_err_deg)
    assert np.mean(ratios) < 1.5


@pytest.mark.parametrize("kwargs", [{"phase_std": 0.0}, {"dose_e_per_A2": 3.0}])
def test_too_little_signal_is_reported_not_guessed(kwargs):
    image, _ = synthesize_micrograph((1024, 1024), tilt_angle_deg=30.0, seed=7, **kwargs)
    result = estimate_tilt(image, 1.0)
    assert result.status == "low_signal"
    assert math.isnan(result.tilt_angle_deg) and math.isnan(result.tilt_axis_deg)
    assert "Thon rings" in result.message
    assert result.as_row()["angle_status"] == "low_signal"


def test_result_row_has_the_table_columns(tilted):
    row = tilted[2].as_row()
    for name in (
        "tilt_angle_deg", "tilt_axis_deg", "tilt_direction_deg", "tilt_angle_err_deg",
        "defocus_mean_A", "astigmatism_A", "astigmatism_angle_deg", "usable_patches",
        "total_patches", "plane_residual_A", "angle_status", "angle_message",
    ):  # fmt: skip
        assert name in row
    assert all(isinstance(v, int | float | str) for v in row.values())
    assert 0 <= row["tilt_axis_deg"] < 180 and 0 <= row["tilt_direction_deg"] < 360
    assert isinstance(tilted[2], TiltAngleResult)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"pixel_size_A": 0.0}, "pixel_size_A"),
        ({"search_max_tilt_deg": 90.0}, "search_max_tilt_deg"),
        ({"resolution_A": -1.0}, "resolution_A"),
        ({"defocus_range_A": (20000.0, 10000.0)}, "defocus_range"),
        ({"tile_px": 63}, "tile_px"),
        ({"tile_px": 512}, "too small"),
        ({"amplitude_contrast": 1.5}, "amplitude_contrast"),
    ],
)
def test_invalid_parameters_are_refused(kwargs, name):
    image = np.zeros((600, 600), dtype=np.float32)
    args = {"pixel_size_A": 1.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        estimate_tilt(image, **args)


def test_a_stack_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        estimate_tilt(np.zeros((2, 600, 600)), 1.0)


@pytest.mark.slow
def test_accuracy_at_4096():
    """Issue-9 bar at 4096²: mean |angle error| <= 1° (θ >= 10°), axis <= 5°, untilted < 1°."""
    rng = np.random.default_rng(4096)
    angle_errors, axis_errors, flat_angles = [], [], []
    for i, tilt in enumerate([15.0, 30.0, 45.0, 0.0, 0.0]):
        params = dict(
            pixel_size_A=float(rng.uniform(0.9, 1.5)),
            defocus_A=float(rng.uniform(8000, 25000)),
            astigmatism_A=float(rng.uniform(0, 1500)),
            astigmatism_angle_deg=float(rng.uniform(0, 180)),
            tilt_angle_deg=tilt,
            tilt_axis_deg=float(rng.uniform(0, 180)),
            dose_e_per_A2=float(rng.uniform(15, 40)),
        )
        image, truth = synthesize_micrograph((4096, 4096), seed=400 + i, **params)
        result = estimate_tilt(image, params["pixel_size_A"], workers=2)
        _check_status(result)  # the 15° frame's axis ± is 3.5°: "uncertain", its numbers kept
        if tilt > 0:
            angle_errors.append(abs(result.tilt_angle_deg - tilt))
            axis_errors.append(_axis_error(result.tilt_axis_deg, truth["tilt_axis_deg"]))
        else:
            flat_angles.append(result.tilt_angle_deg)
    assert np.mean(angle_errors) <= 1.0
    assert np.mean(axis_errors) <= 5.0
    assert np.mean(flat_angles) < 1.0


@pytest.mark.parametrize(
    ("err_deg", "axis_err_deg", "p_flat", "status"),
    [
        (0.4, 0.9, 0.001, "ok"),  # tilted, precise
        (0.9, 40.0, 0.6, "ok"),  # consistent with no tilt, within the 1° it can support
        (1.19, 18.6, 0.09, "uncertain"),  # held-out round 8: read 1.87° for an untilted K3 frame
        (0.4, 2.0, 0.001, "uncertain"),  # tilted, the axis ± above 1.5°
    ],
)
def test_the_status_says_whether_the_frame_supports_a_confident_answer(
    err_deg, axis_err_deg, p_flat, status
):
    from daskmic.tilt.angle import _status

    found, message = _status(err_deg, axis_err_deg, p_flat, 50.0, (0, 0.0))
    assert found == status
    assert (status == "uncertain") == ("exceeds" in message)
