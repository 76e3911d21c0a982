"""Numerical pieces of the tilt estimator against plain numpy written here."""

import math

import numpy as np
import pytest

from daskmic.tilt.angle import _s_edges
from daskmic.tilt.angle_fit import (
    defocus_groups,
    flatten,
    interp_matrix,
    phase_matched_s,
    refine_peak,
    ring_model,
    robust_plane,
    weighted_correlation,
)
from daskmic.tilt.angle_spectra import SectorProfiles
from daskmic.tilt.angle_steps import band_weights, local_defocus, tile_curves
from daskmic.tilt.ctf import Optics


def _chi(s, defocus, optics):
    lam = optics.wavelength_A
    cs = optics.spherical_aberration_mm * 1e7
    return math.pi * lam * defocus * s - 0.5 * math.pi * cs * lam**3 * s * s


def test_phase_matched_s_equalises_the_ctf_phase():
    optics = Optics()
    s = np.linspace(1e-4, 0.1, 200)
    s_src = phase_matched_s(s, 15000.0, 16500.0, optics)
    np.testing.assert_allclose(_chi(s_src, 16500.0, optics), _chi(s, 15000.0, optics), atol=1e-9)
    # without spherical aberration the map is a pure scaling
    no_cs = Optics(spherical_aberration_mm=0.0)
    np.testing.assert_allclose(phase_matched_s(s, 15000.0, 16500.0, no_cs), s * 15000 / 16500)


def test_interp_matrix_sums_rows_read_by_linear_interpolation():
    rng = np.random.default_rng(0)
    s = np.linspace(0.0, 1.0, 51)
    rows = rng.normal(size=(3, 51))
    s_src = np.stack([s * 0.9, s * 1.05, s * 1.0 + 0.013])
    got = interp_matrix(s, s_src) @ rows.ravel()
    expected = sum(np.interp(s_src[r], s, rows[r], right=0.0) for r in range(3))
    inside = s_src.max(axis=0) < s[-1]
    np.testing.assert_allclose(got[inside], expected[inside], atol=1e-12)


def test_flatten_removes_a_smooth_background():
    s = np.arange(400.0)
    ring = 1 + 0.3 * np.cos(2 * np.pi * s / 20)
    background = 50 * np.exp(-s / 300)
    flat = flatten(background * ring, 20)
    np.testing.assert_allclose(flat[40:-40], 0.3 * np.cos(2 * np.pi * s[40:-40] / 20), atol=0.02)


def test_weighted_correlation_matches_a_direct_weighted_pearson():
    optics = Optics()
    rng = np.random.default_rng(1)
    s = np.linspace(0.002, 0.05, 300)
    data = rng.normal(size=(4, 300))
    weights = rng.uniform(0.0, 1.0, 300)
    weights[:20] = 0.0
    grid = np.array([9000.0, 12000.0, 15000.0])
    got = weighted_correlation(data, s, grid, optics, weights)
    w = weights / weights.sum()
    for i in range(4):
        for j, defocus in enumerate(grid):
            x = data[i]
            y = np.sin(_chi(s, defocus, optics) + optics.constant_phase_rad) ** 2
            xc, yc = x - w @ x, y - w @ y
            expected = (w * xc * yc).sum() / math.sqrt((w * xc * xc).sum() * (w * yc * yc).sum())
            assert got[i, j] == pytest.approx(expected, abs=1e-5)


def test_correlation_peaks_at_the_true_defocus():
    optics = Optics()
    s = np.linspace(1e-4, 0.06, 800)
    truth = 14230.0
    profile = ring_model(s, np.array([truth]), optics)[:, 0] * np.exp(-30 * s)
    weights = band_weights(s, truth, 512, 1.0, optics)
    grid = np.arange(12000.0, 16000.0, 10.0)
    curve = weighted_correlation(profile[None, :], s, grid, optics, weights)
    peak = refine_peak(curve, np.argmax(curve, axis=1))
    assert np.interp(peak[0], np.arange(len(grid)), grid) == pytest.approx(truth, abs=5.0)


def test_band_weights_are_a_soft_band_inside_the_resolved_range():
    optics = Optics()
    s = np.linspace(0.0, 0.1, 2000)
    w = band_weights(s, 15000.0, 512, 1.0, optics)
    lam = optics.wavelength_A
    assert np.all((w >= 0) & (w <= 1))
    assert np.all(w[s < 0.5 / (lam * 15000.0)] == 0)
    k_resolved = 512 / (6 * lam * 15000.0)
    assert np.all(w[s > k_resolved**2] == 0)
    assert w.max() == pytest.approx(1.0)
    assert np.abs(np.diff(w)).max() < 0.05  # no hard edge


def test_refine_peak_finds_the_vertex_of_a_parabola():
    x = np.arange(20.0)
    curves = np.stack([-((x - 7.3) ** 2), -((x - 12.75) ** 2)])
    np.testing.assert_allclose(refine_peak(curves, np.argmax(curves, axis=1)), [7.3, 12.75])


def test_robust_plane_ignores_outliers():
    rng = np.random.default_rng(2)
    xy = rng.uniform(-2000, 2000, size=(80, 2))
    truth = np.array([15000.0, 0.3, -0.2])
    d = truth[0] + xy @ truth[1:] + rng.normal(0, 30, 80)
    d[:12] += rng.choice([-1500.0, 1500.0], 12)  # side-lobe jumps
    fit = robust_plane(xy, d)
    assert not fit.inliers[:12].any()
    assert fit.inliers[12:].mean() > 0.9
    # equals least squares on the clean points
    design = np.column_stack([np.ones(68), xy[12:]])
    reference = np.linalg.lstsq(design, d[12:], rcond=None)[0]
    np.testing.assert_allclose(fit.coef, reference, rtol=1e-3, atol=2.0)
    assert math.sqrt(fit.cov[1, 1]) == pytest.approx(
        30 / (xy[12:, 0].std() * math.sqrt(68)), rel=0.3
    )


def test_defocus_groups_partition_by_relative_width():
    d = np.array([10000.0, 10020.0, 10100.0, 20000.0, 20050.0])
    groups = defocus_groups(d, relative_step=0.005)
    assert sorted(np.concatenate(groups).tolist()) == list(range(5))
    for group in groups:
        assert d[group].max() / d[group].min() < 1.0051


def test_a_model_with_the_rings_envelope_peaks_at_the_true_defocus_under_fade_lobes():
    """Drift's sinc² fade has lobes a ring period wide at 0.6 µm: only a template with them
    peaks at the truth; a bare ring model weighted by the envelope drifts off it."""
    optics = Optics()
    s = np.linspace(1e-4, 0.06, 1500)
    truth = 6000.0
    envelope = np.sinc(18.0 * np.sqrt(s)) ** 2 * np.exp(-20 * s)
    profile = envelope * (ring_model(s, np.array([truth]), optics)[:, 0] - 0.5)
    band = band_weights(s, truth, 512, 1.0, optics)
    grid = np.arange(5000.0, 7000.0, 10.0)

    def peak(curve):
        index = refine_peak(curve, np.argmax(curve, axis=1))
        return float(np.interp(index[0], np.arange(len(grid)), grid))

    with_envelope = weighted_correlation(profile[None, :], s, grid, optics, band, envelope)
    weighted = weighted_correlation(profile[None, :], s, grid, optics, band * envelope)
    assert peak(with_envelope) == pytest.approx(truth, abs=5.0)
    assert abs(peak(weighted) - truth) > 20.0


def test_corrected_profiles_keep_a_flat_spectrum_flat_where_sectors_run_off():
    """Strong astigmatism at low defocus: sectors with sparser rings leave the s grid first;
    the astigmatism-corrected mean must not step down there (it did, as a plain sum)."""
    from daskmic.tilt.angle_spectra import SectorProfiles
    from daskmic.tilt.angle_steps import corrected_profiles

    optics = Optics()
    n_sectors, n_bins = 24, 400
    s = (np.arange(n_bins) + 0.5) * 0.06 / n_bins
    prof = SectorProfiles(
        power=np.ones((2, n_sectors, n_bins), np.float32), s_invA2=s,
        sector_angle_rad=(np.arange(n_sectors) + 0.5) * np.pi / n_sectors,
        centers_A=np.zeros((2, 2)), mean_counts=np.ones(2), grid_shape=(1, 2), tile_px=512,
        pixel_size_A=1.0,
    )  # fmt: skip
    out = corrected_profiles(prof, np.array([5000.0, 5200.0]), (800.0, 0.0), optics)
    assert np.allclose(out[:, 1:], 1.0, atol=1e-5)


def test_readings_across_a_doubling_of_defocus_follow_it_one_for_one():
    """Tiles from 0.37 to 0.74 µm (35° at 0.56 µm, 2048 × 2883): no compression of the readings.

    Each profile is flattened by a box one of *its* ring periods (its predicted defocus):
    with the mean defocus's period the rings of the tiles far from it leaked into their
    background and the readings came out compressed towards the middle (−1.3 % of the
    defocus difference here, −1.1 to −1.5 % on simulated frames: a 35° tilt read 0.3° low).
    """
    optics = Optics()
    pixel_size_A, n = 2.1, 200
    edges = _s_edges(pixel_size_A, 3.5, 40000.0, optics)
    s = 0.5 * (edges[1:] + edges[:-1])
    truth_A = np.linspace(3700.0, 7400.0, n)
    background = 1.0 / (1.0 + s / 0.004) + 0.3  # falling, as a specimen's power does
    envelope = 0.6 * np.exp(-20.0 * s)
    rings = ring_model(s, truth_A, optics).T - 0.5
    power = (background * (1.0 + envelope * rings)).astype(np.float32)
    prof = SectorProfiles(
        power=power[:, None, :], s_invA2=s, sector_angle_rad=np.array([0.5]),
        centers_A=np.zeros((n, 2)), mean_counts=np.ones(n), grid_shape=(1, n), tile_px=512,
        pixel_size_A=pixel_size_A,
    )  # fmt: skip
    d_ref = n / float(np.sum(1.0 / truth_A))
    grid = np.arange(2500.0, 9000.0, 10.0)
    slopes = []
    for tiles_A in (truth_A, None):
        curves = tile_curves(power, d_ref, grid, prof, optics, envelope, tile_defocus_A=tiles_A)
        readings = local_defocus(curves, grid, truth_A, 800.0)[0]
        slopes.append(np.polyfit(truth_A, readings - truth_A, 1)[0])
    assert abs(slopes[0]) < 0.005
    assert slopes[1] < -0.01  # the mean defocus's box for every tile
