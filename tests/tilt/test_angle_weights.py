"""Tiles weighted by their own precision: the Fisher weight of a peak, the weighted plane, its ±.

References written here: the variance of a correlation peak's position over noise draws
(plain numpy Pearson correlations), and the weighted least-squares covariance
``(Dᵀ W D)⁻¹`` by ``numpy.linalg``.
"""

import math

import numpy as np
import pytest

from daskmic.tilt.angle_error import gradient_covariance, gradient_replicates
from daskmic.tilt.angle_fit import peak_precision, reading_weights, refine_peak, robust_plane


def _pearson(data, models):
    """Plain Pearson correlation of each data row with each model column."""
    x = data - data.mean(axis=1, keepdims=True)
    y = models - models.mean(axis=0, keepdims=True)
    return (x @ y) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=0))


@pytest.mark.parametrize("amplitude", [0.8, 1.5, 3.0])
def test_peak_precision_is_the_inverse_variance_of_the_peak_position(amplitude):
    """Position variance over noise draws = mean of 1 / (N p), p = -r r''/(1 - r²) per step².

    ``N`` independent samples of rings ``sin²(π d s)`` plus unit white noise (peak
    correlations ~0.38, 0.6 and 0.83: the ``1 - r²`` matters); the peak of the correlation
    curve over a grid of ``d`` is read by a parabola, as the tiles' peaks are. (A local,
    Cramér–Rao statement: at lower signal the peak sometimes jumps to a side lobe, an
    outlier that the plane fit's Tukey step removes.)
    """
    rng = np.random.default_rng(0)
    n_samples = 400
    s = np.linspace(0.0, 1.0, n_samples)
    grid = np.arange(38.0, 42.0, 0.05)
    truth = 40.013
    models = np.sin(np.pi * s[:, None] * grid[None, :]) ** 2
    signal = amplitude * np.sin(np.pi * s * truth) ** 2 / np.sin(np.pi * s * truth).std()
    data = signal[None, :] + rng.normal(0.0, 1.0, (1500, n_samples))
    curves = _pearson(data, models)
    index = np.argmax(curves, axis=1)
    positions = refine_peak(curves, index)
    precision = peak_precision(curves, grid, grid[index])
    assert positions.var() == pytest.approx(np.mean(1.0 / (n_samples * precision)), rel=0.1)
    assert np.mean(positions) * 0.05 + 38.0 == pytest.approx(truth, abs=0.01)


def test_peak_precision_is_zero_without_a_positive_concave_peak():
    grid = np.arange(10.0)
    curves = np.stack([-(grid - 4.0) ** 2 / 100.0 + 0.3, -np.ones(10) * 0.2, (grid - 4.0) ** 2])
    p = peak_precision(curves, grid, np.array([4.0, 4.0, 4.0]))
    assert p[0] == pytest.approx(0.3 * 0.02 / (1.0 - 0.09))
    assert p[1] == 0.0 and p[2] == 0.0


def _grid(ny=7, nx=10, step_A=600.0):
    rows, cols = np.mgrid[0:ny, 0:nx]
    return np.column_stack([(cols.ravel() - (nx - 1) / 2), (rows.ravel() - (ny - 1) / 2)]) * step_A


def test_weighted_plane_has_the_weighted_least_squares_covariance_and_beats_equal_weights():
    """Known per-tile noise σ_t: the precision-weighted plane's gradient scatters as
    ``(Dᵀ W D)⁻¹`` (W = 1/σ_t²) says, less than the equal-weight plane's, and its own
    covariance estimate and block bootstrap ± agree with that scatter."""
    xy = _grid()
    rng = np.random.default_rng(1)
    sigma = rng.choice([20.0, 40.0, 120.0], len(xy))  # film, ice, a poor tile
    g = np.array([0.2, -0.1])
    design = np.column_stack([np.ones(len(xy)), xy])
    reference = np.linalg.inv(design.T @ (design / sigma[:, None] ** 2))[1:3, 1:3]
    weighted, equal, reported, bootstrap = [], [], [], []
    for _ in range(300):
        readings = 9000.0 + xy @ g + rng.normal(0.0, sigma)
        plane = robust_plane(xy, readings, precision=1.0 / sigma**2)
        weighted.append(plane.coef[1:3] - g)
        equal.append(robust_plane(xy, readings).coef[1:3] - g)
        reported.append(np.trace(plane.cov[1:3, 1:3]))
        if len(bootstrap) < 40:
            replicates = gradient_replicates(plane, xy, (7, 10))
            bootstrap.append(np.trace(gradient_covariance(replicates)))
    scatter = np.trace(np.cov(np.array(weighted).T))
    assert scatter == pytest.approx(np.trace(reference), rel=0.25)
    assert scatter < 0.6 * np.trace(np.cov(np.array(equal).T))
    assert np.mean(reported) == pytest.approx(np.trace(reference), rel=0.25)
    assert np.mean(bootstrap) == pytest.approx(np.trace(reference), rel=0.35)
    # the bootstrap ± covers: |error| within 2σ per component about 95 % of the time
    errors = np.array(weighted)
    cover = (np.abs(errors) <= 2.0 * np.sqrt(np.diag(reference))).mean()
    assert cover == pytest.approx(0.95, abs=0.04)


def test_a_precise_but_wrong_tile_is_still_an_outlier():
    """Tukey's step acts on the standardized residuals: weight does not protect a bad tile."""
    xy = _grid()
    rng = np.random.default_rng(2)
    readings = 12000.0 + xy @ np.array([0.1, 0.05]) + rng.normal(0.0, 40.0, len(xy))
    precision = np.ones(len(xy))
    readings[5] += 1500.0  # a side-lobe jump
    precision[5] = 9.0  # on a tile that claims to be three times as precise
    plane = robust_plane(xy, readings, precision=precision)
    assert not plane.inliers[5]
    np.testing.assert_allclose(plane.coef[1:3], [0.1, 0.05], atol=4 * math.sqrt(2) * 40 / 7e3)


def _weights_chosen(fisher, sigma, seed):
    """The weights for readings of noise ``sigma`` and measured precision ``fisher``."""
    xy = _grid(14, 21, 300.0)
    rng = np.random.default_rng(seed)
    readings = 9000.0 + xy @ np.array([0.1, 0.2]) + rng.normal(0.0, sigma)
    plane = robust_plane(xy, readings)
    return reading_weights(fisher, plane.residuals, plane.inliers)


def _floor_of(weights, fisher):
    """The floor ``c`` whose weights ``p / (1 + c p)`` (``p`` relative to its median) these are."""
    p = fisher / np.median(fisher)
    for floor in (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0):
        if np.allclose(weights, p / (1.0 + floor * p)):
            return floor
    assert np.all(weights == 1.0), "neither a floor of the grid nor equal weights"
    return math.inf


def test_reading_weights_follow_a_precision_that_is_right_and_ignore_one_that_is_noise():
    """The floor c is fitted by likelihood: a precision that is the readings' true inverse
    variance keeps (nearly) its weights, one unrelated to the noise gets (nearly) equal
    weights, and one with a constant extra variance c = 0.5 gets about that floor back."""
    rng = np.random.default_rng(3)
    n = 14 * 21
    fisher = rng.choice([0.5, 1.0, 4.0], n)  # weak, ice and film tiles: variance 1/p
    floors = [_floor_of(_weights_chosen(fisher, 30.0 / np.sqrt(fisher), k), fisher)
              for k in range(5)]  # fmt: skip
    assert max(floors) <= 0.125
    noise = rng.uniform(0.3, 3.0, n)  # a measured "precision" that says nothing
    assert min(_floor_of(_weights_chosen(noise, np.full(n, 30.0), k), noise) for k in range(5)) >= 2
    extra = 30.0 * np.sqrt(1.0 / fisher + 0.5)
    floors = [_floor_of(_weights_chosen(fisher, extra, k), fisher) for k in range(5)]
    assert 0.25 <= np.median(floors) <= 1.0


def test_reading_weights_fall_back_to_equal_weights_without_precision():
    residuals = np.arange(10.0)
    use = np.ones(10, bool)
    np.testing.assert_array_equal(reading_weights(np.zeros(10), residuals, use), np.ones(10))
    fisher = np.r_[np.zeros(5), np.ones(5)]
    np.testing.assert_array_equal(reading_weights(fisher, residuals, use), np.ones(10))  # 5 < 6

