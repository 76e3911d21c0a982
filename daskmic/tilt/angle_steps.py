"""The steps of the tilt estimator, in order (the maths is in :mod:`daskmic.tilt.angle`).

1. :func:`global_defocus` — mean defocus from the profile of all tiles together;
2. :func:`tile_curves` — per tile, the correlation of its flattened profile with ``sin² χ``
   over a grid of defocus values;
3. :func:`initial_plane` — per tile, the best defocus of the curves summed over its 3 × 3
   neighbourhood, then a robust plane;
4. :func:`astigmatism` — sector profiles of all tiles aligned to one defocus, one defocus
   offset per sector, a ``cos 2α`` fit;
5. :func:`corrected_profiles` — each tile's sectors moved onto its own mean defocus and summed;
6. :func:`local_defocus` — per tile, the best defocus near the plane, refined to sub-step.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from daskmic.tilt.angle_fit import (
    PlaneFit,
    defocus_groups,
    flatten,
    interp_matrix,
    phase_matched_s,
    refine_peak,
    robust_plane,
    weighted_correlation,
    weighted_lstsq,
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


def _period_bins(s_invA2: np.ndarray, defocus_A: float, optics: Optics) -> float:
    return 1.0 / (optics.wavelength_A * defocus_A) / (s_invA2[1] - s_invA2[0])


def global_defocus(
    prof: SectorProfiles, optics: Optics, defocus_range_A: tuple[float, float]
) -> tuple[float, float]:
    """Best mean defocus of the whole micrograph and its correlation (bands of ×1.5)."""
    s = prof.s_invA2
    profile = prof.power.mean(axis=(0, 1), dtype=np.float64)
    lo, hi = defocus_range_A
    edges = np.geomspace(lo, hi, max(math.ceil(math.log(hi / lo) / math.log(1.5)), 1) + 1)
    best, best_score = math.nan, -math.inf
    for d_lo, d_hi in zip(edges[:-1], edges[1:], strict=True):
        weights = band_weights(s, math.sqrt(d_lo * d_hi), prof.tile_px, prof.pixel_size_A, optics)
        if np.count_nonzero(weights) < 8:
            continue
        flat = flatten(profile, _period_bins(s, math.sqrt(d_lo * d_hi), optics))
        grid = np.arange(d_lo, d_hi, 2 * DEFOCUS_STEP_A)
        score = weighted_correlation(flat[None, :], s, grid, optics, weights)[0]
        i = int(np.argmax(score))
        if score[i] > best_score:
            best, best_score = float(grid[i]), float(score[i])
    return best, best_score


def tile_curves(
    profiles: np.ndarray,
    d_ref_A: float,
    grid_A: np.ndarray,
    prof: SectorProfiles,
    optics: Optics,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted correlation of each flattened tile profile with ``sin² χ`` at each grid defocus.

    ``weights`` (per ``s`` bin, default 1) multiply both sides' squared deviations: with the
    expected ring amplitude as weight this is the matched filter of a constant-noise profile.
    """
    s = prof.s_invA2
    band = band_weights(s, d_ref_A, prof.tile_px, prof.pixel_size_A, optics)
    weights = band if weights is None else band * weights
    flat = flatten(profiles, _period_bins(s, d_ref_A, optics))
    return weighted_correlation(flat, s, grid_A, optics, weights)


def ring_amplitude(
    profile: np.ndarray, d_ref_A: float, prof: SectorProfiles, optics: Optics
) -> np.ndarray:
    """Local Thon-ring amplitude of a flattened, well-aligned ``profile`` (0 outside the band).

    ``A(s) = box(P̃ · m) / box(m²)`` with ``m = sin² χ(s, Δf_ref) - ½`` and boxes two ring
    periods wide, clipped at 0: the matched-filter weight of each ``s`` bin.
    """
    s = prof.s_invA2
    period = _period_bins(s, d_ref_A, optics)
    flat = flatten(profile, period)
    lam = optics.wavelength_A
    c = 0.5 * math.pi * optics.spherical_aberration_mm * 1e7 * lam**3
    chi = math.pi * lam * d_ref_A * s - c * s * s + optics.constant_phase_rad
    model = np.sin(chi) ** 2 - 0.5
    width = max(int(round(2 * period)), 3)
    amplitude = uniform_filter1d(flat * model, width) / uniform_filter1d(model * model, width)
    amplitude = gaussian_filter1d(amplitude, 4 * period)
    return np.clip(amplitude, 0.0, None)


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


def astigmatism(
    prof: SectorProfiles, defocus_A: np.ndarray, optics: Optics, max_half_A: float
) -> tuple[tuple[float, float], np.ndarray, float, np.ndarray]:
    """Astigmatism ``(A, B)``, ring amplitude, ``Δf_ref`` and sector weights.

    Offsets ``A cos 2α + B sin 2α`` per sector.

    Each tile's sector profiles are moved from its own defocus to a common one (the harmonic
    mean, so the offsets keep their scale on average) and summed; each summed sector gives its
    offset from the common defocus, and a least-squares fit of ``c + A cos 2α + B sin 2α``
    weighted by the sector's peak correlation gives ``A, B``. The sectors, moved onto
    ``Δf_ref`` once more with that astigmatism and summed, give the ring amplitude. The
    sector weights let sectors whose rings are faded (drift blurs the image along one
    direction, and with it the rings of the sectors along it) count less, as a matched
    filter would: the sectors' peak correlations ``c_σ`` (0 when negative) are fitted by
    ``a + b cos 2α + c sin 2α`` (the form of a directional fade) and the weights are that
    fit over its maximum, squared. A fit of three numbers to all sectors, not the sectors'
    own values, so that noise alone cannot pick the sectors that happen to match.
    """
    s = prof.s_invA2
    d_ref = len(defocus_A) / float(np.sum(1.0 / defocus_A))
    n_sectors, n_bins = prof.power.shape[1:]
    aligned = np.zeros((n_sectors, n_bins))
    count = np.zeros(n_bins)
    for group in defocus_groups(defocus_A):
        source = phase_matched_s(s, d_ref, float(np.mean(defocus_A[group])), optics)
        block = prof.power[group].sum(axis=0, dtype=np.float64)
        for sector in range(n_sectors):
            aligned[sector] += np.interp(source, s, block[sector], left=0.0, right=0.0)
        count += len(group) * ((source >= s[0]) & (source <= s[-1]))
    aligned *= np.where(count > 0, 1.0 / np.maximum(count, 1.0), 0.0)  # mean of the tiles there
    offsets = np.arange(-max_half_A, max_half_A + DEFOCUS_STEP_A / 2, DEFOCUS_STEP_A)
    weights = band_weights(s, d_ref, prof.tile_px, prof.pixel_size_A, optics)
    flat = flatten(aligned, _period_bins(s, d_ref, optics))
    scores = weighted_correlation(flat, s, d_ref + offsets, optics, weights)
    peak = refine_peak(scores, np.argmax(scores, axis=1))
    delta = np.interp(peak, np.arange(len(offsets)), offsets)
    angle = prof.sector_angle_rad
    design = np.column_stack([np.ones_like(angle), np.cos(2 * angle), np.sin(2 * angle)])
    weight = np.clip(scores.max(axis=1), 0.0, None)
    coef = weighted_lstsq(design, delta, weight * weight)[0]
    astig = (float(coef[1]), float(coef[2]))
    offset = design[:, 1] * coef[1] + design[:, 2] * coef[2]
    source = phase_matched_s(s[None, :], d_ref, d_ref + offset[:, None], optics)
    matrix = interp_matrix(s, source)
    coverage = matrix @ np.ones(n_sectors * n_bins)
    total = (matrix @ aligned.ravel()) / np.maximum(coverage, 1e-12) * (coverage > 0)
    smooth = (design * weighted_lstsq(design, weight, np.ones_like(weight))[0]).sum(axis=1)
    sector_weights = np.clip(smooth / max(float(smooth.max()), 1e-12), 0.0, 1.0) ** 2
    return astig, ring_amplitude(total, d_ref, prof, optics), d_ref, sector_weights


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
    weight = np.ones(n_sectors) if sector_weights is None else np.asarray(sector_weights)
    weight_bins = np.repeat(weight, n_bins)
    if sector_weights is not None:
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
