"""The steps of the tilt estimator, in order (the maths is in :mod:`daskmic.tilt.angle`).

1. :func:`defocus_candidates` — mean defocus from the profile of all tiles together, one
   candidate per band;
2. :func:`tile_curves` — per tile, the correlation of its flattened profile with ``sin² χ``
   over a grid of defocus values;
3. :func:`initial_plane` — per tile, the best defocus of the curves summed over its 3 × 3
   neighbourhood, then a robust plane;
4. :func:`~daskmic.tilt.angle_model.spectrum_model` — sector profiles of all tiles aligned to
   one defocus, one defocus offset per sector, a ``cos 2α`` fit, and the drift's fade of the
   rings (:mod:`~daskmic.tilt.angle_drift`);
5. :func:`corrected_profiles` — each tile's sectors moved onto its own mean defocus and summed;
6. :func:`local_defocus` — per tile, the best defocus near the plane, refined to sub-step.
"""

from __future__ import annotations

import math

import numpy as np

from daskmic.tilt.angle_fit import (
    PlaneFit,
    box_width,
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
from daskmic.tilt.ctf import Optics

DEFOCUS_STEP_A = 10.0


def band_weights(
    s_invA2: np.ndarray, defocus_A: float, tile_px: int, pixel_size_A: float, optics: Optics
) -> np.ndarray:
    """Weights of the ``s`` bins fitted near ``defocus_A``: 0 outside the band, soft edges.

    The band runs from the first CTF maximum, ``s = 1/(2λΔf)``, while the rings stay
    resolved: a ring period (in k) must span at least 6 tile frequency samples,
    ``k ≤ T·p / (6 λ Δf)``. The edges are raised-cosine tapers one (low) and two (high) ring
    periods wide, so that
    no ring enters or leaves the fit abruptly as the trial defocus changes (a hard edge makes
    the correlation peak wander with the defocus).
    """
    lam = optics.wavelength_A
    period = 1.0 / (lam * defocus_A)
    k_resolved = tile_px * pixel_size_A / (6.0 * lam * defocus_A)
    lo, hi = 0.5 * period, min(k_resolved * k_resolved, s_invA2[-1])
    ramp_lo = min(period, 0.25 * max(hi - lo, 0.0))
    ramp_hi = min(2.0 * period, 0.25 * max(hi - lo, 0.0))
    if ramp_lo <= 0:
        return np.zeros_like(s_invA2)
    rise = np.clip((s_invA2 - lo) / ramp_lo, 0.0, 1.0)
    fall = np.clip((hi - s_invA2) / ramp_hi, 0.0, 1.0)
    return np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2


def period_bins(s_invA2: np.ndarray, defocus_A: float, optics: Optics) -> float:
    return 1.0 / (optics.wavelength_A * defocus_A) / (s_invA2[1] - s_invA2[0])


def defocus_candidates(
    prof: SectorProfiles, optics: Optics, defocus_range_A: tuple[float, float]
) -> list[tuple[float, float]]:
    """Best mean defocus of the whole micrograph in each band (×1.5) and its correlation.

    Sorted by correlation, best first; candidates within 2 % of a better one are dropped.
    The best is the mean defocus unless the field spans a large defocus range (a steep tilt
    at low defocus): the mean profile then mixes ring periods a factor 2 apart and a band
    that holds none of the tiles may match better (:mod:`daskmic.tilt.angle`, step 3).
    """
    s = prof.s_invA2
    profile = prof.power.mean(axis=(0, 1), dtype=np.float64)
    lo, hi = defocus_range_A
    edges = np.geomspace(lo, hi, max(math.ceil(math.log(hi / lo) / math.log(1.5)), 1) + 1)
    found: list[tuple[float, float]] = []
    for d_lo, d_hi in zip(edges[:-1], edges[1:], strict=True):
        weights = band_weights(s, math.sqrt(d_lo * d_hi), prof.tile_px, prof.pixel_size_A, optics)
        if np.count_nonzero(weights) < 8:
            continue
        flat = flatten(profile, period_bins(s, math.sqrt(d_lo * d_hi), optics))
        grid = np.arange(d_lo, d_hi, 2 * DEFOCUS_STEP_A)
        score = weighted_correlation(flat[None, :], s, grid, optics, weights)[0]
        i = int(np.argmax(score))
        found.append((float(grid[i]), float(score[i])))
    kept: list[tuple[float, float]] = []
    for d, score in sorted(found, key=lambda pair: -pair[1]):
        if all(abs(d - other) > 0.02 * other for other, _ in kept):
            kept.append((d, score))
    return kept


def tile_curves(
    profiles: np.ndarray,
    d_ref_A: float,
    grid_A: np.ndarray,
    prof: SectorProfiles,
    optics: Optics,
    envelope: np.ndarray | None = None,
    rings: np.ndarray | None = None,
    tile_defocus_A: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted correlation of each flattened tile profile with the rings at each grid defocus.

    ``envelope`` (per ``s`` bin, default none) is the expected ring amplitude: the model is
    then ``E(s) (sin² χ - ½)``, the matched filter of a constant-noise profile whose rings
    have that envelope, and it peaks at the true defocus however fast the rings fade (see
    :func:`~daskmic.tilt.angle_fit.weighted_correlation`). ``rings`` is :func:`ring_table`
    of the grid, for callers that use one grid several times (else it is computed here).
    ``tile_defocus_A`` (per tile, default ``d_ref_A`` for all) sets each profile's
    flattening box to one of its own ring periods: a box of another period lets the rings
    leak into the background, and across a field of 0.37–0.74 µm that compressed the
    readings towards ``d_ref_A`` by 1.1–1.5 % of the defocus difference (a 35° tilt read
    0.3° low).
    """
    s = prof.s_invA2
    band = band_weights(s, d_ref_A, prof.tile_px, prof.pixel_size_A, optics)
    if tile_defocus_A is None:
        flat = flatten(profiles, period_bins(s, d_ref_A, optics))
    else:
        widths = np.array([box_width(period_bins(s, d, optics)) for d in tile_defocus_A])
        flat = np.empty(profiles.shape, dtype=np.float64)
        for width in np.unique(widths):  # the tiles of one box width together
            rows = widths == width
            flat[rows] = flatten(profiles[rows], float(width))
    return weighted_correlation(flat, s, grid_A, optics, band, envelope, rings)


def ring_table(prof: SectorProfiles, grid_A: np.ndarray, optics: Optics) -> np.ndarray:
    """``sin² χ`` at every ``s`` bin of ``prof`` and defocus of ``grid_A`` (:func:`tile_curves`)."""
    return ring_model(prof.s_invA2, grid_A, optics)


def neighbourhood_sum(curves: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Sum of each tile's curve with those of its (up to 8) neighbours on the tile grid."""
    ny, nx = grid_shape
    padded = np.pad(curves.reshape(ny, nx, -1), ((1, 1), (1, 1), (0, 0)))
    total = np.zeros_like(padded[:ny, :nx])
    for i in range(3):
        for j in range(3):
            total += padded[i : i + ny, j : j + nx]
    return total.reshape(ny * nx, -1)


def initial_plane(
    curves: np.ndarray, grid_A: np.ndarray, prof: SectorProfiles, regions: np.ndarray
) -> PlaneFit:
    """Robust plane through the best defocus of each tile's 3 × 3 neighbourhood.

    ``regions`` labels the tiles as in :func:`~daskmic.tilt.angle_fit.robust_plane`.
    """
    smooth = neighbourhood_sum(curves, prof.grid_shape)
    return robust_plane(prof.centers_A, grid_A[np.argmax(smooth, axis=1)], regions)


def corrected_profiles(
    prof: SectorProfiles,
    defocus_A: np.ndarray,
    astig_ab_A: tuple[float, float],
    optics: Optics,
    sector_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Per tile, the weighted sum over sectors of each sector read where its rings match.

    Sector ``σ`` of a tile at defocus ``Δf`` has its rings at ``Δf + a_σ``; reading it at
    ``s'`` with ``χ(s', Δf + a_σ) = χ(s, Δf)`` puts them where ``Δf`` would (astigmatism-
    corrected radial average). Tiles are grouped by defocus (1 % bins) to share the map.

    A sector whose rings are sparser (``a_σ < 0``) is read at ``s' > s`` and runs off the
    measured grid before the others do, from ``s ≈ s_max (Δf + a_σ)/Δf`` on. A plain sum
    would drop by that sector's share there: a step at an ``s`` that moves with the tile's
    defocus, which the ring correlation then follows (it gave a gain of ~1.2 on the defocus
    differences, +1° on a 5.7° tilt, at 0.57 µm defocus with 0.16 µm astigmatism). The sum is
    therefore divided, bin by bin, by the weight of the sectors that reach it: a weighted
    *mean* over the sectors available at each ``s``.
    """
    s = prof.s_invA2
    angle = prof.sector_angle_rad
    a_sector = astig_ab_A[0] * np.cos(2 * angle) + astig_ab_A[1] * np.sin(2 * angle)
    n_tiles, n_sectors, n_bins = prof.power.shape
    flat_power = prof.power.reshape(n_tiles, n_sectors * n_bins)
    if sector_weights is None:
        weight_bins = np.ones(n_sectors * n_bins)
    else:
        weight_bins = np.broadcast_to(
            np.asarray(sector_weights, np.float64).reshape(n_sectors, -1), (n_sectors, n_bins)
        ).ravel()
    if (weight_bins != 1.0).any():  # weights of 1 (no drift) leave the power as it is
        flat_power = flat_power * weight_bins.astype(np.float32)
    out = np.empty((n_tiles, n_bins), dtype=np.float32)
    for group in defocus_groups(defocus_A, relative_step=0.01):
        d = float(np.mean(defocus_A[group]))
        source = phase_matched_s(s[None, :], d, d + a_sector[:, None], optics)
        matrix = interp_matrix(s, source)
        coverage = matrix @ weight_bins
        share = np.where(coverage > 0, 1.0 / np.maximum(coverage, 1e-12), 0.0)
        out[group] = (matrix @ flat_power[group].T).T * share.astype(np.float32)
    return out


def local_defocus(
    curves: np.ndarray, grid_A: np.ndarray, predicted_A: np.ndarray, window_A: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per tile, the best defocus within ``± window_A`` of the prediction, and its peak z-score.

    The z-score is the peak correlation over the standard deviation of the tile's whole curve:
    a tile whose rings stand out has a peak well above its curve's typical values (noise
    alone gives about 1 for the maximum within the window).
    """
    near = np.abs(grid_A[None, :] - predicted_A[:, None]) <= window_A
    masked = np.where(near, curves, -np.inf)
    index = np.argmax(masked, axis=1)
    peak = refine_peak(np.where(near, curves, curves.min()), index)
    rows = np.arange(len(curves))
    z = curves[rows, index] / np.maximum(curves.std(axis=1), 1e-12)
    return np.interp(peak, np.arange(len(grid_A)), grid_A), z
