"""The tilt estimator's several starting defocus values (step 3 of daskmic.tilt.angle)."""

import numpy as np

from daskmic.datasets import synthesize_micrograph
from daskmic.tilt.angle import _best_start, _Fit, _is_rival, _s_edges
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
