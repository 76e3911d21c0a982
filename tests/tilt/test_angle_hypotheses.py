"""The tilt estimator's several starting defocus values (step 3 of daskmic.tilt.angle)."""

import dataclasses

import numpy as np
import pytest

from daskmic.datasets import synthesize_micrograph
from daskmic.tilt.angle import (
    _best_start,
    _Fit,
    _is_rival,
    _s_edges,
    _untilted_start,
    estimate_tilt,
)
from daskmic.tilt.angle_fit import robust_plane
from daskmic.tilt.angle_spectra import sector_profiles
from daskmic.tilt.angle_steps import defocus_candidates
from daskmic.tilt.ctf import Optics


def test_defocus_candidates_put_the_true_mean_first_one_per_band():
    image, truth = synthesize_micrograph(
        (1024, 1024), seed=5, pixel_size_A=1.2, defocus_A=15000.0, astigmatism_A=200.0,
        astigmatism_angle_deg=30.0, tilt_angle_deg=0.0, tilt_axis_deg=0.0, dose_e_per_A2=30.0,
    )  # fmt: skip
    optics = Optics()
    edges = _s_edges(1.2, 3.5, 40000.0, optics)
    prof = sector_profiles(image, 1.2, tile_px=256, s_edges=edges, n_sectors=24)
    candidates = defocus_candidates(prof, optics, (3000.0, 40000.0))
    defocus = np.array([d for d, _ in candidates])
    scores = np.array([score for _, score in candidates])
    assert abs(defocus[0] - truth["defocus_A"]) < 0.03 * truth["defocus_A"]
    assert np.all(np.diff(scores) <= 0)  # best first
    assert 3 <= len(candidates) <= 7  # at most one per band of x1.5 over (3000, 40000) Å
    gaps = np.abs(defocus[:, None] - defocus[None, :]) / defocus[None, :]
    assert np.all(gaps[~np.eye(len(defocus), dtype=bool)] > 0.02)


def _fit(support):
    nothing = np.empty(0)
    return _Fit(None, nothing, nothing, (0.0, 0.0), np.asarray(support, dtype=np.float64))


def test_a_start_is_a_rival_unless_the_tiles_clearly_prefer_the_winner():
    rng = np.random.default_rng(0)
    n = 200
    best = _fit(3.0 + rng.normal(0.0, 0.5, n))
    # the tiles' mean difference 0.1 against a standard error 0.5·sqrt(4/200) = 0.07: a rival
    assert _is_rival(best, _fit(best.support - 0.1 + rng.normal(0.0, 0.5, n)))
    # a start that half of the tiles reject (support 0 there) is clearly worse
    worse = best.support * (np.arange(n) % 2)
    assert not _is_rival(best, _fit(worse))
    assert best.score == best.support.mean()


def test_a_plane_of_noise_readings_loses_to_a_plane_that_holds_its_tiles():
    """Step 3: readings spread over the ± 800 Å window lose even with the higher score."""
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[-3:4, -4:5] * 800.0
    xy = np.column_stack([xs.ravel(), ys.ravel()])
    labels = np.zeros(len(xy), np.int64)
    flat = 20000.0 + rng.normal(0.0, 30.0, len(xy))  # a plane read with 30 Å of noise
    noise = 7000.0 + rng.uniform(-800.0, 800.0, len(xy))  # rms 800/√3 = 462 Å
    held = _Fit(robust_plane(xy, flat, labels), flat, flat, (0.0, 0.0), np.full(len(xy), 2.0))
    loose = _Fit(robust_plane(xy, noise, labels), noise, noise, (0.0, 0.0), np.full(len(xy), 2.2))
    assert loose.noise_like and not held.noise_like
    assert _best_start([loose, held]) is held
    assert _best_start([held, loose]) is held
    other = _Fit(held.plane, flat, flat, (0.0, 0.0), np.full(len(xy), 2.1))
    assert _best_start([held, other]) is other  # both hold their tiles: the higher score


def test_the_untilted_start_is_the_plane_without_its_gradient_within_the_window():
    """Step 7's untilted start keeps the mean and the film's offset; none for a steep plane."""
    ys, xs = np.mgrid[-3:4, -5:5] * 600.0
    xy = np.column_stack([xs.ravel(), ys.ravel()])
    regions = np.where(xy[:, 0] > 2000, 1, 0)
    regions[5] = -1
    for gradient, expected in ((0.2, True), (0.3, False)):  # 0.2 × 3000 Å < 800 Å < 0.3 × 3000
        defocus = 9000.0 + gradient * xy[:, 0] - 0.05 * xy[:, 1] + np.where(regions == 1, -80, 0)
        plane = robust_plane(xy, defocus, regions)
        fit = _Fit(plane, defocus, np.full(len(xy), 3.0), (0.0, 0.0), np.ones(len(xy)))
        untilted = _untilted_start(fit, xy, regions)
        assert (untilted is not None) == expected
        if untilted is not None:
            np.testing.assert_allclose(untilted.coef[1:3], 0.0)
            np.testing.assert_allclose(untilted.coef[[0, 3]], [9000.0, -80.0], atol=1e-6)
    assert _untilted_start(dataclasses.replace(fit, plane=None), xy, regions) is None


@pytest.mark.slow
def test_a_plane_that_follows_its_start_is_not_a_confident_tilt():
    """Spent held-out frame (seed 1796505245, frame 72): its tiles read noise, untilted.

    From its own first plane it read 4.42° ± 1.31° (3.4σ); from the untilted start the same
    tiles give 0°, and that rival widens the ±.
    """
    from daskmic.datasets_realistic import synthesize_realistic

    params = dict(
        pixel_size_A=2.332537264917797, dose_e_per_A2=10.359613338772691,
        defocus_A=6927.724532853439, astigmatism_A=1192.0158563218201,
        astigmatism_angle_deg=19.43151358412902, tilt_angle_deg=0.0,
        tilt_axis_deg=106.69457023077872, phase_std=0.10135387416651111,
        drift_A=17.232626500252564, drift_angle_deg=11.821216065162286,
    )  # fmt: skip
    image, _ = synthesize_realistic((2048, 2883), seed=367642669, **params)
    result = estimate_tilt(image, params["pixel_size_A"])
    assert result.status == "uncertain"
    assert result.tilt_angle_deg <= 3 * result.tilt_angle_err_deg
    assert "other start(s) fit almost as well" in result.message
