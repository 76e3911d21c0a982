"""The tilt magnitude without noise bias, and the test for "consistent with no tilt"."""

import math

import numpy as np
import pytest
from scipy import stats

from daskmic.tilt.angle_error import debiased_magnitude, reported_magnitude, untilted_p_value

_COV = np.array([[4.0e-4, 1.0e-4], [1.0e-4, 1.0e-4]])  # anisotropic, correlated


def _noisy(gradient, n, seed):
    rng = np.random.default_rng(seed)
    return np.asarray(gradient) + rng.multivariate_normal([0.0, 0.0], _COV, size=n)


def test_debiased_square_is_unbiased_where_the_plain_length_is_not():
    """E|ĝ|² = |g|² + tr Σ: the de-biased square averages to |g|² (no floor for |g| ≫ σ)."""
    g = np.array([0.08, -0.05])
    draws = _noisy(g, 20000, 1)
    debiased = np.array([debiased_magnitude(d, _COV) for d in draws])
    plain = np.hypot(draws[:, 0], draws[:, 1])
    standard_error = (debiased**2).std() / math.sqrt(len(draws))
    assert (debiased**2).mean() == pytest.approx(g @ g, abs=4 * standard_error)
    assert (plain**2).mean() - g @ g == pytest.approx(np.trace(_COV), rel=0.1)
    # its root is biased only at second order: -u·Σu / (2|g|)
    u = g / np.linalg.norm(g)
    expected = np.linalg.norm(g) - u @ _COV @ u / (2 * np.linalg.norm(g))
    assert debiased.mean() == pytest.approx(expected, abs=4 * debiased.std() / 141.0)


def test_a_flat_specimen_reads_zero_mostly_and_small_otherwise():
    """For g = 0 and Σ = σ²I: P(0) = 1 - 1/e; otherwise σ√(2E - 2), E exponential."""
    sigma = 0.01
    cov = sigma**2 * np.eye(2)
    draws = np.random.default_rng(2).normal(0.0, sigma, size=(20000, 2))
    magnitudes = np.array([debiased_magnitude(d, cov) for d in draws])
    assert (magnitudes == 0).mean() == pytest.approx(1 - math.exp(-1), abs=0.015)
    assert (magnitudes > 3 * sigma).mean() == pytest.approx(math.exp(-5.5), abs=0.002)


def test_p_value_is_uniform_under_no_tilt_and_small_for_a_tilt():
    draws = _noisy([0.0, 0.0], 5000, 3)
    p = np.array([untilted_p_value(d, _COV) for d in draws])
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert (p < 0.01).mean() == pytest.approx(0.01, abs=0.005)
    # the reference: T = ĝᵀ Σ⁻¹ ĝ against scipy's χ² with 2 degrees of freedom
    d = draws[0]
    statistic = d @ np.linalg.solve(_COV, d)
    assert untilted_p_value(d, _COV) == pytest.approx(stats.chi2.sf(statistic, 2), rel=1e-9)
    tilted = _noisy([0.2, 0.0], 200, 4)  # 10 σ along x
    assert max(untilted_p_value(d, _COV) for d in tilted) < 0.01
    assert untilted_p_value(np.array([0.1, 0.0]), np.zeros((2, 2))) == 1.0  # no covariance


def _tile_grid(ny=14, nx=21, step_A=400.0):
    rows, cols = np.mgrid[0:ny, 0:nx]
    return np.column_stack([(cols.ravel() - (nx - 1) / 2), (rows.ravel() - (ny - 1) / 2)]) * step_A


def test_readings_of_noise_in_the_window_bound_the_plane_by_the_window():
    """Readings spread uniformly over ± W about a wrong start: the plane is only the start.

    Their rms off the refitted plane is about W/√3 (flagged), that of readings with 100 Å
    of noise is not; the window's ± W/(h√3) covers a start off by up to W/h.
    """
    from daskmic.tilt.angle import _WINDOW_A, _window_bound, _window_noise
    from daskmic.tilt.angle_fit import robust_plane

    xy = _tile_grid()
    h = float(np.abs(xy).max(axis=0).min())
    rng = np.random.default_rng(6)
    true_g = np.array([0.3, -0.1])
    errors = []
    for _ in range(50):
        start_g = true_g + rng.uniform(-0.9, 0.9, 2) * _WINDOW_A / np.abs(xy).max(axis=0)
        readings = 12000.0 + xy @ start_g + rng.uniform(-_WINDOW_A, _WINDOW_A, len(xy))
        plane = robust_plane(xy, readings)
        residual = float(np.sqrt(np.mean(plane.residuals[plane.inliers] ** 2)))
        assert residual == pytest.approx(_WINDOW_A / math.sqrt(3), rel=0.1)
        assert _window_bound(residual)
        sigma = _window_noise(residual, xy[plane.inliers])
        assert sigma == pytest.approx(_WINDOW_A / (h * math.sqrt(3)))
        errors.append(np.abs(plane.coef[1:3] - true_g) / sigma)
    assert np.max(errors) <= 3.0
    good = 12000.0 + xy @ true_g + rng.normal(0.0, 100.0, len(xy))
    plane = robust_plane(xy, good)
    residual = float(np.sqrt(np.mean(plane.residuals[plane.inliers] ** 2)))
    assert not _window_bound(residual) and _window_noise(residual, xy) == 0.0


def test_status_says_why_a_frame_is_uncertain():
    from daskmic.tilt.angle import _status

    assert _status(0.3, 0.8, 1e-6, 50.0, (0, 0.0)) == ("ok", "")
    status, message = _status(0.3, 20.0, 0.5, 50.0, (0, 0.0))  # flat: the axis means nothing
    assert status == "ok" and "untilted" in message
    status, message = _status(0.3, 2.0, 1e-6, 50.0, (0, 0.0))  # tilted, axis ± 2°
    assert status == "uncertain" and "axis" in message
    status, message = _status(2.0, 0.8, 1e-6, 400.0, (1, 1.8))
    assert status == "uncertain"
    assert "± 2.00°" in message and "noise" in message
    assert "1 other start(s) fit almost as well" in message


def test_halves_of_a_plane_agree_within_noise_and_of_a_bent_surface_do_not():
    """z of the halves' slope difference is about N(0, 1) on planes; a bend is measured."""
    from daskmic.tilt.angle_error import half_plane_excess
    from daskmic.tilt.angle_fit import robust_plane

    xy, shape = _tile_grid(), (14, 21)
    g = np.array([0.6, 0.3])
    rng = np.random.default_rng(8)
    z = []
    for _ in range(40):
        plane = robust_plane(xy, 8000.0 + xy @ g + rng.normal(0.0, 60.0, len(xy)))
        z.append(half_plane_excess(plane, xy, shape)[0])
    assert np.mean(np.abs(z) > 1.96) <= 0.15  # 5 % expected
    assert 0.6 < np.std(z) < 1.5
    u = g / np.linalg.norm(g)
    along = xy @ u
    bent = 8000.0 + xy @ g + 4e-5 * along**2 + rng.normal(0.0, 60.0, len(xy))
    plane = robust_plane(xy, bent)
    z_bent, excess = half_plane_excess(plane, xy, shape)
    high = along >= np.median(along[plane.inliers])
    design = np.column_stack([np.ones(len(xy)), xy])
    slopes = [np.linalg.lstsq(design[m], bent[m], rcond=None)[0][1:] @ u for m in (high, ~high)]
    assert z_bent > 5.0
    assert excess == pytest.approx(abs(slopes[0] - slopes[1]) / 2, rel=0.1)


def test_a_flat_specimen_reads_zero_unless_the_test_rejects_it():
    """The flat model is kept at p ≥ α: a flat frame reads above 0 in about α of draws."""
    sigma = 0.3 / 57.2958  # 0.3° in gradient units
    cov = sigma**2 * np.eye(2)
    draws = np.random.default_rng(5).normal(0.0, sigma, size=(20000, 2))
    reported = np.array([reported_magnitude(d, cov, 0.01) for d in draws])
    bare = np.array([debiased_magnitude(d, cov) for d in draws])
    half_degree = 0.5 / 57.2958
    # the bare de-biased length: above t with probability exp(-1 - t²/2σ²)
    assert (bare > half_degree).mean() == pytest.approx(
        math.exp(-1 - half_degree**2 / (2 * sigma**2)), abs=0.01
    )
    assert (reported[:, 0] > half_degree).mean() == pytest.approx(0.01, abs=0.003)
    # the answer set aside is the de-biased length, and it is one or the other
    assert np.array_equal(reported.max(axis=1), bare)
    assert np.all(reported.min(axis=1) == 0.0)


@pytest.mark.parametrize("tilt_sigmas", [1.0, 2.0, 3.0, 4.0, 8.0])
def test_a_small_real_tilt_is_covered_by_the_widened_error(tilt_sigmas):
    """Reported ± the set-aside answer (quadrature) covers the truth as a 3σ bound should.

    The ± a caller reports is ``hypot(σ, set_aside)``; for tilts near the test's threshold
    (3σ) the reading is often 0, and the ± must still reach the truth.
    """
    sigma = 0.01
    cov = sigma**2 * np.eye(2)
    truth = tilt_sigmas * sigma
    draws = _noisy_isotropic(truth, sigma, 20000, 6)
    reported = np.array([reported_magnitude(d, cov, 0.01) for d in draws])
    err = np.hypot(sigma, reported[:, 1])
    covered = np.abs(reported[:, 0] - truth) <= 3 * err
    assert covered.mean() >= 0.99
    if tilt_sigmas >= 8:  # far above the threshold: the tilted model always, as before
        assert np.all(reported[:, 1] == 0.0)
        assert reported[:, 0].mean() == pytest.approx(truth, rel=0.01)


def _noisy_isotropic(length, sigma, n, seed):
    rng = np.random.default_rng(seed)
    return np.array([length, 0.0]) + rng.normal(0.0, sigma, size=(n, 2))
