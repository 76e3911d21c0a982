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

4. **Tiles astride the film's edge** (:func:`other_region_fraction`, :func:`mixed_tiles`).
   A tile with a fraction ``c`` of film is only ``c (1 - T)`` darker than the ice (``T``
   the film's transmission: 1.3 % at ``c`` = 25 %, ``T`` = 0.95), inside the labels'
   tolerance, but the film carries ``r`` times the ice's ring power (a stronger phase
   object; ``r`` 2–6), so ``s = c r / (c r + 1 - c)`` of its rings are the film's and it
   reads ``s Δ`` off the ice plane (``Δ`` the film's defocus offset): along an edge that
   is a gradient. ``c`` comes from a finer map: blocks of a quarter tile (the tiles overlap
   by half, so each is 4 × 4 blocks), each given to the ice or the film when its
   log-brightness less ``S`` is within ``|δ|/2`` of ``0`` or ``δ``, weighted by their share
   of the squared Hann taper (a periodogram weighs each pixel's power by ``w²``), and ``c``
   is the other region's share of the blocks at either level. Blocks at neither are darker
   than the film (a contamination particle, which passes 15–60 % of the beam) and hold the
   ice's rings at a fraction of their power: counted for the tile's own region, they let
   an ice tile that a particle darkens to the film's level pass as film, reading the ice's
   plane with the film's offset (three such tiles, held-out seed 1796504130 frame 63,
   pulled the film's offset from about −85 to −27 Å, the plane with it, and read 8.39° as
   9.14° ± 0.20°). A tile is
   left out when ``s > 0.2`` with ``r = 6`` (the upper end: the bound holds for weaker
   films), i.e. ``c > 4 %``; the bias of those kept is below ``0.2 |Δ|``, under one tile's
   reading noise. The film's tiles take ``1/r`` with ``r = 2``, the lower end, for the same
   reason (left out above 33 % ice; ``r = 6`` kept a film tile half of ice, which a film
   with ``r = 2`` reads a third of the way to the ice).

5. **A rival reading** (:func:`labellings`). The consensus of step 1 can be won by a plane
   that runs along the film's edge through the film's corner and the ice beyond it: when
   the step is faint (``T`` = 0.945 is a step of only ``3.7 τ``) and contamination leaves
   the clean ice under half of the tiles, such a band holds more tiles within ``τ`` than
   the ice's own plane (an untilted 2048 × 2883 frame, seed 1796488195 frame 60, and all
   of 20 noise draws of a tile-level simulation of its brightness; 38–41 tiles against
   the ice's 30–33 of 70 on the four counted), and the labels then mix film and ice.
   The rival is the best draw that shares less than half of the winner's tiles and holds
   at least ``80 %`` as many (the brightness nearly ties); steps 1–3 run from it as from
   the winner. The estimator refits the plane with both
   labellings and adds the difference to the ± when the defocus readings cannot tell
   them apart (:mod:`daskmic.tilt.angle`, step 4). When the film's own plane is the best
   distinct draw, its labels are the winner's and nothing changes.

The film's tiles keep their own defocus offset in the plane fit (their Thon rings sit
elsewhere: another height, another amplitude contrast) while sharing the gradient (the
grid is tilted as a whole). The larger region is taken for the specimen (region 0).

Labels: 0 the main region, 1 a second region (film), −1 left out (the estimator marks the
tiles of step 4 −2).
"""

from __future__ import annotations

import numpy as np

from daskmic.tilt.angle_fit import batched_lstsq, robust_fit
from daskmic.tilt.angle_spectra import tile_origins

_STEP_SIGMAS = 6.0
_TOLERANCE = 0.015
_MIN_REGION = 8
_MIN_REGION_FRACTION = 0.1
_MIN_SCALE = 1e-4  # of log-brightness: 0.01 %
_TRIALS = 300
_RIVAL_SHARE = 0.8  # of the winner's agreeing tiles, for a rival reading of the ice
_BLOCKS_PER_TILE = 4
_FILM_POWER_RATIOS = (2.0, 6.0)  # ring power of a support film over that of the ice beside it
_MAX_OTHER_SHARE = 0.2  # of a tile's ring power from the other region


def _design(xy_A: np.ndarray, film: np.ndarray | None, scale: float | None = None) -> np.ndarray:
    xy = np.asarray(xy_A, dtype=np.float64)
    scale = scale or max(float(np.abs(xy).max()), 1.0)
    x, y = xy[:, 0] / scale, xy[:, 1] / scale
    columns = [np.ones(len(x)), x, y, x * x, x * y, y * y]
    if film is not None:
        columns.append(film.astype(np.float64))
    return np.column_stack(columns)


def _scale(residuals: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))


def _consensus_surfaces(design: np.ndarray, logs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tiles agreeing with the best of ``_TRIALS`` fits through ``k`` random tiles, and a rival.

    The rival is the best draw that shares less than half of the winner's tiles (another
    reading of which tiles are the ice) and holds at least ``_RIVAL_SHARE`` as many tiles
    (the brightness nearly ties), or an empty set when there is none (module notes, 5).
    """
    rng = np.random.default_rng(0)
    n, k = design.shape
    picks = np.zeros((_TRIALS, n))
    for trial in range(_TRIALS):
        picks[trial, rng.choice(n, k, replace=False)] = 1.0
    coefs = batched_lstsq(design, logs, picks)  # a degenerate draw agrees with few tiles
    fitted = (design[None, :, :] * coefs[:, None, :]).sum(axis=2)
    agree = np.abs(logs[None, :] - fitted) < _TOLERANCE
    counts = agree.sum(axis=1)
    best = agree[int(np.argmax(counts))]
    distinct = (agree & best).sum(axis=1) < 0.5 * best.sum()
    if not (distinct & (counts >= _RIVAL_SHARE * best.sum())).any():
        return best, np.zeros(n, bool)
    return best, agree[int(np.argmax(np.where(distinct, counts, -1)))]


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
    return _regions(xy_A, mean_counts)[0]


def labellings(xy_A: np.ndarray, mean_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The labels of :func:`brightness_regions` and a rival reading of them (module notes, 5).

    The rival comes from the best consensus draw that shares less than half of the winner's
    tiles (``None`` when no draw does).
    """
    (labels, _), rival = _regions(xy_A, mean_counts)
    return labels, rival


def _regions(
    xy_A: np.ndarray, mean_counts: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray | None]:
    means = np.asarray(mean_counts, dtype=np.float64)
    n = len(means)
    if n < 12 or not np.all(means > 0):
        return (np.zeros(n, np.int64), np.zeros(n)), None
    logs = np.log(means)
    design = _design(xy_A, None)
    ice, rival = _consensus_surfaces(design[:, :3], logs)
    found = _label(xy_A, design, logs, ice)
    return found, (_label(xy_A, design, logs, rival)[0] if rival.any() else None)


def _label(
    xy_A: np.ndarray, design: np.ndarray, logs: np.ndarray, ice: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1–3 of the module notes from the consensus ``ice``."""
    n = len(logs)
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


def _block_hann2(tile_px: int, block_px: int) -> np.ndarray:
    """Each block's share of a tile's squared Hann taper along one axis (sums to 1)."""
    hann = np.hanning(tile_px + 1)[:-1] ** 2
    sums = hann.reshape(-1, block_px).sum(axis=1)
    return sums / sums.sum()


def other_region_fraction(
    image: np.ndarray,
    pixel_size_A: float,
    xy_A: np.ndarray,
    mean_counts: np.ndarray,
    labels: np.ndarray,
    grid_shape: tuple[int, int],
    tile_px: int,
) -> np.ndarray:
    """Each tile's taper-weighted area of the other region, from a finer map (module notes).

    Parameters
    ----------
    image : numpy.ndarray
        The micrograph the half-overlapping tiles were cut from.
    pixel_size_A : float
        Its pixel size.
    xy_A, mean_counts : numpy.ndarray
        Tile centres and mean counts, as for :func:`brightness_regions`.
    labels : numpy.ndarray
        Its labels (0, 1, −1).
    grid_shape : tuple of int
        Tiles along y and x.
    tile_px : int
        Tile size (a multiple of 4).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` fraction in [0, 1] of the tile's squared-Hann weight at either region's
        level that is at the other region's; 0 for left-out tiles and when there is one
        region.
    """
    fraction = np.zeros(len(labels))
    if not ((labels == 0).any() and (labels == 1).any()):
        return fraction
    block = tile_px // _BLOCKS_PER_TILE
    (ny, nx), (rows, cols) = image.shape, grid_shape
    oy, ox = tile_origins(ny, tile_px)[0], tile_origins(nx, tile_px)[0]
    by, bx = 2 * rows + 2, 2 * cols + 2  # the half-overlapping tiles' extent in blocks
    pixels = np.asarray(image[oy : oy + by * block, ox : ox + bx * block], dtype=np.float64)
    blocks = pixels.reshape(by, block, bx, block).mean(axis=(1, 3))
    if not np.all(blocks > 0):
        return fraction
    xy = np.asarray(xy_A, dtype=np.float64)
    scale = max(float(np.abs(xy).max()), 1.0)
    coef, _, _ = robust_fit(
        _design(xy, labels == 1, scale), np.log(mean_counts), labels >= 0, min_scale=_MIN_SCALE
    )
    centre_y = oy + (np.arange(by) + 0.5) * block - 0.5 - (ny - 1) / 2
    centre_x = ox + (np.arange(bx) + 0.5) * block - 0.5 - (nx - 1) / 2
    gy, gx = np.meshgrid(centre_y, centre_x, indexing="ij")
    block_xy = np.column_stack([gx.ravel(), gy.ravel()]) * pixel_size_A
    surface = (_design(block_xy, None, scale) * coef[:6]).sum(axis=1).reshape(by, bx)
    step = np.log(blocks) - surface
    half = 0.5 * abs(float(coef[6]))
    level = [np.abs(step) < half, np.abs(step - coef[6]) < half]  # ice, second region
    weights = _block_hann2(tile_px, block)
    for i in np.flatnonzero(labels >= 0):
        r, c = divmod(int(i), cols)
        window = (slice(2 * r, 2 * r + _BLOCKS_PER_TILE), slice(2 * c, 2 * c + _BLOCKS_PER_TILE))
        own, other = (
            float(weights @ level[k][window].astype(np.float64) @ weights)
            for k in (int(labels[i]), 1 - int(labels[i]))
        )
        fraction[i] = other / (own + other) if other > 0 else 0.0
    return fraction


def mixed_tiles(fraction: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Tiles whose rings owe more than ``_MAX_OTHER_SHARE`` to the other region (notes).

    ``fraction`` from :func:`other_region_fraction`; region 1 is taken to carry ``r`` times
    the ring power of region 0 per unit area, ``r`` at the end of ``_FILM_POWER_RATIOS``
    that gives the other region the larger share: the upper for the ice's tiles, the lower
    for the film's.
    """
    weakest, strongest = _FILM_POWER_RATIOS
    power_other = np.where(labels == 0, strongest, 1.0 / weakest)
    share = power_other * fraction / (power_other * fraction + 1.0 - fraction)
    return (labels >= 0) & (share > _MAX_OTHER_SHARE)
