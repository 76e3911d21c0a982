"""Tiles off the specimen plane (issue 19): brightness regions, offsets, block bootstrap."""

import math

import numpy as np
import pytest

from daskmic.tilt.angle_error import axis_spread_deg, gradient_covariance, gradient_replicates
from daskmic.tilt.angle_fit import robust_plane
from daskmic.tilt.angle_regions import brightness_regions


def _grid(ny=9, nx=13, step_A=256.0):
    ys, xs = (np.arange(n) - (n - 1) / 2 for n in (ny, nx))
    return np.array([(x * step_A, y * step_A) for y in ys for x in xs]), (ny, nx)


def test_a_film_and_contamination_are_told_apart_from_the_ice():
    xy, shape = _grid()
    rng = np.random.default_rng(3)
    x, y = xy[:, 0] / 1600.0, xy[:, 1] / 1100.0
    illumination = 1.0 + 0.1 * x - 0.05 * y - 0.04 * (x * x + y * y)  # gradient and vignetting
    film = xy[:, 0] + 0.5 * xy[:, 1] > 900.0  # a straight edge, ~ a quarter of the tiles
    dark = np.zeros(len(xy), bool)
    dark[[3, 40, 41, 77]] = True  # contamination particles over ice
    transmission = np.where(film, 0.87, 1.0) * np.where(dark, 0.5, 1.0)
    means = 12.0 * illumination * transmission * (1 + 0.001 * rng.standard_normal(len(xy)))
    labels, _ = brightness_regions(xy, means)
    assert 0.15 < film.mean() < 0.35
    np.testing.assert_array_equal(labels[film & ~dark], 1)
    np.testing.assert_array_equal(labels[~film & ~dark], 0)
    assert np.all(labels[dark] == -1)


def test_uniform_brightness_is_one_region():
    xy, _ = _grid()
    noise = 0.002 * np.random.default_rng(1).standard_normal(len(xy))
    means = 20.0 * (1 + 0.2 * xy[:, 0] / 1600.0) * (1 + noise)
    labels, _ = brightness_regions(xy, means)
    assert np.all(labels == 0)


def test_a_film_offset_is_modelled_not_averaged_into_the_gradient():
    xy, _ = _grid()
    rng = np.random.default_rng(5)
    film = xy[:, 0] > 700.0
    gx, gy = 0.3, -0.2
    defocus = 15000.0 + gx * xy[:, 0] + gy * xy[:, 1] + np.where(film, 250.0, 0.0)
    defocus += 20.0 * rng.standard_normal(len(xy))
    one_plane = robust_plane(xy, defocus)
    modelled = robust_plane(xy, defocus, film.astype(np.int64))
    assert abs(one_plane.coef[1] - gx) > 0.05  # a single plane tilts towards the film
    assert modelled.coef[1:3] == pytest.approx([gx, gy], abs=0.01)
    assert modelled.coef[3] == pytest.approx(250.0, abs=15.0)


def test_block_bootstrap_matches_least_squares_for_independent_noise():
    """With independent errors the bootstrap spread equals the least-squares covariance."""
    xy, shape = _grid(12, 16)
    rng = np.random.default_rng(11)
    sigma_A = 40.0
    defocus = 12000.0 + 0.2 * xy[:, 0] + 0.1 * xy[:, 1] + sigma_A * rng.standard_normal(len(xy))
    plane = robust_plane(xy, defocus)
    replicates = gradient_replicates(plane, xy, shape)
    boot = gradient_covariance(replicates)
    design = np.column_stack([np.ones(len(xy)), xy])
    reference = sigma_A**2 * np.linalg.inv(design.T @ design)[1:, 1:]
    np.testing.assert_allclose(np.sqrt(np.diag(boot)), np.sqrt(np.diag(reference)), rtol=0.3)
    axis = axis_spread_deg(replicates)
    g = plane.coef[1:3]
    expected_axis = math.degrees(math.sqrt(reference[0, 0]) / math.hypot(*g))  # isotropic σ
    assert axis == pytest.approx(expected_axis, rel=0.35)


@pytest.mark.slow
def test_a_carbon_edge_over_a_third_of_a_k3_view_does_not_flatten_the_tilt():
    """Issue 19's case: carbon over a third of the frame, 25° about 165°, read on the ice."""
    from daskmic.datasets_realistic import synthesize_realistic
    from daskmic.tilt.angle import estimate_tilt

    image, truth = synthesize_realistic(
        (2048, 2883), pixel_size_A=2.0, defocus_A=15000.0, astigmatism_A=300.0,
        tilt_angle_deg=25.0, tilt_axis_deg=165.2, dose_e_per_A2=15.0, phase_std=0.1,
        carbon_fraction=0.33, carbon_amplitude_contrast=0.2, carbon_phase_std=0.2,
        carbon_offset_A=100.0, carbon_transmission=0.88, seed=19,
    )  # fmt: skip
    result = estimate_tilt(image, 2.0)
    error = result.tilt_angle_deg - truth["tilt_angle_deg"]
    axis_error = abs((result.tilt_axis_deg - truth["tilt_axis_deg"] + 90.0) % 180.0 - 90.0)
    assert result.status == "ok"
    assert "second region (film)" in result.patch_notes
    assert abs(error) <= 0.5 and abs(error) <= 3 * result.tilt_angle_err_deg
    assert axis_error <= 3.0 and axis_error <= 3 * result.tilt_axis_err_deg
