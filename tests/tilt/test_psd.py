"""PSD pieces against plain numpy, analytic values and a hand-made histogram example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daskmic.tilt.psd import (
    centred_from_half,
    edge_taper,
    half_plane_limits,
    normalize_window,
    outlier_limits,
    taper_profile,
    to_decibels,
    window_psd,
)


def test_normalize_window_population_moments():
    rng = np.random.default_rng(0)
    window = rng.normal(5.0, 3.0, size=(40, 30)).astype(np.float32)
    out = normalize_window(window)
    assert out.dtype == np.float64
    reference = (window.astype(np.float64) - window.mean(dtype=np.float64)) / window.std(
        dtype=np.float64
    )
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-12)
    assert out.std() == pytest.approx(1.0, abs=1e-12)


def test_normalize_window_refuses_constant_and_non_finite():
    with pytest.raises(ValueError, match="constant"):
        normalize_window(np.full((8, 8), 3.0))
    bad = np.ones((8, 8))
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        normalize_window(bad)


def test_taper_profile_analytic_values():
    profile = taper_profile(400, 400)
    k = np.arange(400) - 200
    f = np.abs(k) * 2 / 400
    assert np.all(profile[f <= 0.975] == 1.0)
    assert profile[0] == pytest.approx(0.0, abs=1e-15)  # f = 1: cos(2π)... 1/2(1 + cos π) = 0
    edge = f > 0.975
    expected = 0.5 * (1 + np.cos(np.pi * ((f[edge] - 1) / 0.025 + 1)))
    np.testing.assert_allclose(profile[edge], expected, rtol=0, atol=1e-12)
    assert np.all(np.diff(profile[:200]) >= 0)  # rises monotonically towards the centre


def test_edge_taper_uses_the_row_count_for_columns_only_in_compat():
    default = edge_taper((100, 120), xmipp_compat=False)
    compat = edge_taper((100, 120), xmipp_compat=True)
    np.testing.assert_array_equal(
        default, np.outer(taper_profile(100, 100), taper_profile(120, 120))
    )
    np.testing.assert_array_equal(
        compat, np.outer(taper_profile(100, 100), taper_profile(120, 100))
    )
    assert not np.array_equal(default, compat)


def _full_from_half(half: np.ndarray, nx: int) -> np.ndarray:
    ny = half.shape[0]
    return centred_from_half(half, nx, np.arange(ny), np.arange(nx))


@pytest.mark.parametrize("shape", [(32, 32), (33, 32), (32, 33), (31, 35)])
def test_half_plane_gives_the_centred_abs_fft2_with_exact_symmetry(shape):
    rng = np.random.default_rng(1)
    patch = rng.normal(size=shape)
    half = np.abs(np.fft.rfft2(patch))
    full = _full_from_half(half, shape[1])
    expected = np.fft.fftshift(np.abs(np.fft.fft2(patch)))
    np.testing.assert_allclose(full, expected, rtol=1e-12, atol=1e-12)
    # the mirrored columns are exact copies: A[k, l] == A[-k, -l] bit for bit
    unshifted = np.fft.ifftshift(full)
    ny, nx = shape
    for col in range(nx // 2 + 1, nx):
        np.testing.assert_array_equal(unshifted[:, col], unshifted[(-np.arange(ny)) % ny, nx - col])
    rows, cols = np.array([3, 0, 7]), np.array([5, nx - 1, 1])
    np.testing.assert_array_equal(centred_from_half(half, nx, rows, cols), full[np.ix_(rows, cols)])


@pytest.mark.parametrize("shape", [(64, 64), (64, 65), (65, 64)])
def test_half_plane_limits_equal_the_full_arrays(shape):
    rng = np.random.default_rng(4)
    half = 10 * np.log10(np.abs(np.fft.rfft2(rng.normal(size=shape))))
    assert half_plane_limits(half, shape[1]) == outlier_limits(_full_from_half(half, shape[1]))


def test_to_decibels_fills_non_positive_with_the_smallest_positive():
    psd = np.array([[100.0, 0.0], [10.0, 1e-3]])
    np.testing.assert_allclose(to_decibels(psd), [[20.0, -30.0], [10.0, -30.0]])


def test_outlier_limits_hand_example():
    # 10 values over [0, 10] in 4 bins of 2.5: counts [3, 3, 2, 2] (10 falls in the last bin)
    values = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0, 10.0])
    # 10 % -> 1 sample: the first bin reaches it -> its left edge, 0
    # 90 % -> 9 samples: cumulative 3, 6, 8, 10 -> bin 3 -> its left edge, 7.5
    assert outlier_limits(values, bins=4, percent_out=20.0) == (0.0, 7.5)
    # 30 % and 70 %: 3 and 7 samples; 3 is reached exactly by bin 0 -> its right edge, 2.5
    assert outlier_limits(values, bins=4, percent_out=60.0) == (2.5, 5.0)


def test_outlier_limits_same_bin_clips_to_that_bins_edges():
    values = np.concatenate([[0.0], np.full(998, 5.0), [10.0]])
    # both percentiles land in the bin of the 998 fives: [5, 5.025) with 400 bins of 0.025
    low, high = outlier_limits(values)
    assert (low, high) == (5.0, pytest.approx(5.025))


def test_outlier_limits_default_rule_on_a_ramp():
    values = np.arange(4000.0)  # 10 per bin; 0.125 % of 4000 = 5 -> bin 0, 99.875 % -> bin 399
    assert outlier_limits(values) == (0.0, pytest.approx(3999.0 * 399 / 400))


def _plain_numpy_psd(window: np.ndarray) -> np.ndarray:
    """The whole default-mode chain written out with numpy, as spec B.3 #4-6 describes it."""
    x = (window - window.mean()) / window.std()
    ny, nx = x.shape

    def profile(n):
        f = np.abs(np.arange(n) - n // 2) * 2 / n
        p = np.ones(n)
        p[f > 0.975] = 0.5 * (1 + np.cos(math.pi * ((f[f > 0.975] - 1) / 0.025 + 1)))
        return p

    amplitude = np.fft.fftshift(np.abs(np.fft.fft2(x * np.outer(profile(ny), profile(nx)))))
    db = 10 * np.log10(np.where(amplitude > 0, amplitude, amplitude[amplitude > 0].min()))
    low, high = outlier_limits(db)
    return np.clip(db, low, high)


def test_window_psd_matches_plain_numpy():
    rng = np.random.default_rng(2)
    window = rng.gamma(2.0, size=(64, 64))
    psd = window_psd(window).full()
    reference = _plain_numpy_psd(window)
    assert np.max(np.abs(psd - reference)) <= 1e-5 * np.std(reference)
    assert psd.shape == (64, 64)
