"""Which tiles lie on the specimen plane: regions of a micrograph told apart by their brightness.

A tile's mean count is the beam's intensity there times the fraction the specimen passes.
Over vitreous ice the beam varies smoothly (gradient, vignetting); a support film (carbon),
a contamination particle, an empty hole or a saturated area passes another fraction, so its
tiles stand off a smooth surface by a step. Model, on ``l_i = log m_i``:

``l_i = S(x_i, y_i) + δ·[i ∈ film] + e_i``, ``S`` a quadratic surface (illumination), ``δ`` the
film's log-transmission step, ``e_i`` small (Poisson noise and specimen contrast average out
over a tile). A film covering a third of the frame, in one corner, pulls least-squares and
even L1 fits of ``S``; a consensus fit does not:

1. **Ice** (RANSAC): a plane through 3 tiles drawn at random, 300 times (fixed seed); the
   draw that the most tiles agree with (``|l - plane| < τ``, ``τ = 1.5 %``) wins (a plane,
   not the quadratic: a quadratic through 6 tiles can bend into a film's corner); ``S`` is
   fitted robustly (Tukey, ``daskmic.tilt.angle_fit.robust_fit``) on them, and the
   ice grows to every tile within ``τ`` of ``S`` (up to three rounds; vignetting bends the
   ice's brightness by more than ``τ`` at the corners).
2. **Film**: among the other tiles, the level ``δ`` that the most agree with (within
   ``τ``) — if at least ``max(8, 10 %)`` tiles do, they form a second region and ``S`` and
   ``δ`` are refitted together (robustly).
3. Every tile is then labelled by the nearer level, and left out when it is more than
   ``max(6 σ, τ)`` from it (``σ`` the robust scale of the residuals): a contamination
   particle, a tile astride the film's edge, an empty or saturated area.

The film's tiles keep their own defocus offset in the plane fit (their Thon rings sit
elsewhere: another height, another amplitude contrast) while sharing the gradient (the
grid is tilted as a whole). The larger region is taken for the specimen (region 0).

Labels: 0 the main region, 1 a second region (film), −1 left out.
"""

from __future__ import annotations

import numpy as np

from daskmic.tilt.angle_fit import batched_lstsq, robust_fit

_STEP_SIGMAS = 6.0
_TOLERANCE = 0.015
_MIN_REGION = 8
_MIN_REGION_FRACTION = 0.1
_MIN_SCALE = 1e-4  # of log-brightness: 0.01 %
_TRIALS = 300


def _design(xy_A: np.ndarray, film: np.ndarray | None) -> np.ndarray:
    xy = np.asarray(xy_A, dtype=np.float64)
    scale = max(float(np.abs(xy).max()), 1.0)
    x, y = xy[:, 0] / scale, xy[:, 1] / scale
    columns = [np.ones(len(x)), x, y, x * x, x * y, y * y]
    if film is not None:
        columns.append(film.astype(np.float64))
    return np.column_stack(columns)


def _scale(residuals: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))


def _consensus_surface(design: np.ndarray, logs: np.ndarray) -> np.ndarray:
    """Tiles agreeing with the best of ``_TRIALS`` fits through ``k`` random tiles."""
    rng = np.random.default_rng(0)
    n, k = design.shape
    picks = np.zeros((_TRIALS, n))
    for trial in range(_TRIALS):
        picks[trial, rng.choice(n, k, replace=False)] = 1.0
    coefs = batched_lstsq(design, logs, picks)  # a degenerate draw agrees with few tiles
    fitted = (design[None, :, :] * coefs[:, None, :]).sum(axis=2)
    agree = np.abs(logs[None, :] - fitted) < _TOLERANCE
    return agree[int(np.argmax(agree.sum(axis=1)))]


def _consensus_level(residual: np.ndarray) -> np.ndarray:
    """The largest set of values within ``_TOLERANCE`` of one of them."""
    agree = np.abs(residual[:, None] - residual[None, :]) < _TOLERANCE
    return agree[int(np.argmax(agree.sum(axis=1)))]


def brightness_regions(xy_A: np.ndarray, mean_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label tiles by their brightness level over a smooth illumination (module notes).

    Parameters
    ----------
    xy_A : numpy.ndarray
        ``(n, 2)`` tile centres.
    mean_counts : numpy.ndarray
        ``(n,)`` mean pixel value per tile (> 0 for a counting detector).

    Returns
    -------
    labels : numpy.ndarray
        ``(n,)`` int: 0 the main region, 1 a second region (film), −1 left out.
    residual : numpy.ndarray
        ``(n,)`` each tile's log-brightness off its region's level.
    """
    means = np.asarray(mean_counts, dtype=np.float64)
    n = len(means)
    if n < 12 or not np.all(means > 0):
        return np.zeros(n, np.int64), np.zeros(n)
    logs = np.log(means)
    design = _design(xy_A, None)
    ice = _consensus_surface(design[:, :3], logs)
    for _ in range(3):  # the quadratic through the plane's tiles reaches the ice's corners
        coef, _, _ = robust_fit(design, logs, ice, min_scale=_MIN_SCALE)
        grown = np.abs(logs - (design * coef).sum(axis=1)) < _TOLERANCE
        if grown.sum() < ice.sum() or np.array_equal(grown, ice):
            break
        ice = grown
    residual = logs - (design * coef).sum(axis=1)
    film = np.zeros(n, bool)
    others = np.flatnonzero(~ice)
    min_region = max(_MIN_REGION, _MIN_REGION_FRACTION * n)
    if len(others) >= min_region:
        level = _consensus_level(residual[others])
        if level.sum() >= min_region:
            film[others[level]] = True
    if film.any():
        design = _design(xy_A, film)
        coef, _, _ = robust_fit(design, logs, ice | film, min_scale=_MIN_SCALE)
        surface = (design[:, :6] * coef[:6]).sum(axis=1)
        film = np.abs(logs - surface - coef[6]) < np.abs(logs - surface)
        residual = logs - surface - np.where(film, coef[6], 0.0)
    else:
        residual = logs - (design * coef).sum(axis=1)
    sigma = max(_scale(residual[ice | film]), _MIN_SCALE)
    labels = np.where(film, 1, 0)
    labels[np.abs(residual) > max(_STEP_SIGMAS * sigma, _TOLERANCE)] = -1
    if (labels == 1).sum() < min_region:
        labels[labels == 1] = -1
    if (labels == 1).sum() > (labels == 0).sum():
        labels[labels >= 0] = 1 - labels[labels >= 0]
    return labels, residual
