"""The steps of the tilt estimator, in order (the maths is in :mod:`daskmic.tilt.angle`).

1. :func:`global_defocus` — mean defocus from the profile of all tiles together;
2. :func:`tile_curves` — per tile, the correlation of its flattened profile with ``sin² χ``
   over a grid of defocus values;
3. :func:`initial_plane` — per tile, the best defocus of the curves summed over its 3 × 3
   neighbourhood, then a robust plane;
4. :func:`astigmatism` — sector profiles of all tiles aligned to one defocus, one defocus
   offset per sector, a ``cos 2α`` fit, and the drift's fade of the rings
   (:mod:`~daskmic.tilt.angle_drift`);
5. :func:`corrected_profiles` — each tile's sectors moved onto its own mean defocus and summed;
6. :func:`local_defocus` — per tile, the best defocus near the plane, refined to sub-step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from daskmic.tilt.angle_drift import drift_fade, find_drift
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
    envelope: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted correlation of each flattened tile profile with the rings at each grid defocus.

    ``envelope`` (per ``s`` bin, default none) is the expected ring amplitude: the model is
    then ``E(s) (sin² χ - ½)``, the matched filter of a constant-noise profile whose rings
    have that envelope, and it peaks at the true defocus however fast the rings fade (see
    :func:`~daskmic.tilt.angle_fit.weighted_correlation`).
    """
    s = prof.s_invA2
    band = band_weights(s, d_ref_A, prof.tile_px, prof.pixel_size_A, optics)
    flat = flatten(profiles, _period_bins(s, d_ref_A, optics))
    return weighted_correlation(flat, s, grid_A, optics, band, envelope)


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


@dataclass(frozen=True)
class SpectrumModel:
    """What the tile-averaged sectors say about the rings of every tile.

    Attributes
    ----------
    astig_ab_A : tuple of float
        Astigmatism ``(A, B)``: sector ``α`` has its rings at ``Δf + A cos 2α + B sin 2α``.
    envelope : numpy.ndarray
        Expected ring amplitude of the combined (astigmatism-corrected, weighted) profile
        per ``s`` bin: the template envelope of :func:`tile_curves`.
    d_ref_A : float
        Defocus the envelope refers to (harmonic mean of the tiles').
    weights : numpy.ndarray
        ``(n_sectors, n_bins)`` weight of every sector and bin where its pixels are: the
        drift fade ``f_σ(s)`` (1 without drift).
    drift_A, drift_angle_deg : float
        Drift length and direction found (:mod:`~daskmic.tilt.angle_drift`).
    """

    astig_ab_A: tuple[float, float]
    envelope: np.ndarray
    d_ref_A: float
    weights: np.ndarray
    drift_A: float
    drift_angle_deg: float


def _aligned_sectors(
    prof: SectorProfiles, defocus_A: np.ndarray, optics: Optics
) -> tuple[float, np.ndarray]:
    """``Δf_ref`` and the mean over tiles of each sector moved from its tile's defocus onto it."""
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
    return d_ref, aligned * np.where(count > 0, 1.0 / np.maximum(count, 1.0), 0.0)


def _sector_offsets(
    flat: np.ndarray,
    d_ref_A: float,
    offsets_A: np.ndarray,
    band: np.ndarray,
    prof: SectorProfiles,
    optics: Optics,
    envelopes: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each sector's defocus offset from ``Δf_ref`` (sub-step) and its peak correlation."""
    s = prof.s_invA2
    grid = d_ref_A + offsets_A
    if envelopes is None:
        scores = weighted_correlation(flat, s, grid, optics, band)
    else:
        scores = np.stack([weighted_correlation(flat[i : i + 1], s, grid, optics, band, e)[0]
                           for i, e in enumerate(envelopes)])  # fmt: skip
    peak = refine_peak(scores, np.argmax(scores, axis=1))
    return np.interp(peak, np.arange(len(offsets_A)), offsets_A), scores.max(axis=1)


def astigmatism(
    prof: SectorProfiles, defocus_A: np.ndarray, optics: Optics, max_half_A: float
) -> SpectrumModel:
    """Astigmatism, drift and the ring envelope, from all tiles moved onto one defocus.

    Each tile's sector profiles are moved from its own defocus to a common one (the harmonic
    mean, so the offsets keep their scale on average) and averaged; each averaged sector
    gives its offset from the common defocus, and a least-squares fit of
    ``c + A cos 2α + B sin 2α`` weighted by the square of the sector's peak correlation
    gives ``A, B``. Then the drift (:func:`~daskmic.tilt.angle_drift.find_drift`): with
    ``A₀`` the largest sector ring amplitude and ``f_σ`` the drift's fade, the offsets are
    measured again against templates ``A₀ f_σ (sin² χ - ½)`` (a bare model reads faded
    sectors at a biased defocus), the fit and the drift search repeated once.

    The sector weights are the fade ``f_σ(s)`` (a matched filter: a sector's rings count
    where they are), and the envelope of the combined profile, whose fade lobes may be as
    narrow as a ring period, is ``A(s) E(s) / Ē(s)``: ``A`` the measured ring amplitude of
    the combined aligned sectors (smooth over 4 ring periods), ``E = Σ f² / Σ f`` over the
    sectors (the fade of the weighted mean) and ``Ē`` that smoothed alike.

    Sums over tiles (or sectors) read at shifted ``s`` are divided bin by bin by the weight
    of those that reach that bin (see :func:`corrected_profiles`): no step where one runs off.
    """
    s = prof.s_invA2
    n_sectors = prof.power.shape[1]
    d_ref, aligned = _aligned_sectors(prof, defocus_A, optics)
    offsets = np.arange(-max_half_A, max_half_A + DEFOCUS_STEP_A / 2, DEFOCUS_STEP_A)
    band = band_weights(s, d_ref, prof.tile_px, prof.pixel_size_A, optics)
    flat = flatten(aligned, _period_bins(s, d_ref, optics))
    angle = prof.sector_angle_rad
    design = np.column_stack([np.ones_like(angle), np.cos(2 * angle), np.sin(2 * angle)])
    envelopes, drift = None, (0.0, 0.0)
    tile_A = prof.tile_px * prof.pixel_size_A
    for _ in range(2):
        delta, peak = _sector_offsets(flat, d_ref, offsets, band, prof, optics, envelopes)
        weight = np.clip(peak, 0.0, None)
        coef = weighted_lstsq(design, delta, weight * weight)[0]
        offset = design[:, 1] * coef[1] + design[:, 2] * coef[2]
        amplitude0 = sector_envelopes(aligned, d_ref, offset, prof, optics).max(axis=0)
        drift = find_drift(flat, band, amplitude0, d_ref + offset, angle, s, optics, tile_A)
        envelopes = amplitude0[None, :] * drift_fade(angle, s, *drift)
    fade = drift_fade(angle, s, *drift)
    source = phase_matched_s(s[None, :], d_ref, d_ref + offset[:, None], optics)
    matrix = interp_matrix(s, source)
    coverage = matrix @ fade.ravel()
    total = (matrix @ (aligned * fade).ravel()) / np.maximum(coverage, 1e-12) * (coverage > 0)
    moved_fade = np.stack([np.interp(source[i], s, fade[i], 0.0, 0.0) for i in range(n_sectors)])
    combined = (moved_fade**2).sum(axis=0) / np.maximum(moved_fade.sum(axis=0), 1e-12)
    smooth = gaussian_filter1d(combined, 4 * _period_bins(s, d_ref, optics))
    envelope = ring_amplitude(total, d_ref, prof, optics) * combined / np.maximum(smooth, 1e-12)
    return SpectrumModel(
        (float(coef[1]), float(coef[2])), envelope, d_ref, fade, drift[0],
        math.degrees(drift[1]),
    )  # fmt: skip


def sector_envelopes(
    aligned: np.ndarray,
    d_ref_A: float,
    offset_A: np.ndarray,
    prof: SectorProfiles,
    optics: Optics,
) -> np.ndarray:
    """Ring amplitude of each sector of ``aligned`` (at ``Δf_ref + offset_σ``), where it sits.

    Each sector is moved from ``Δf_ref + offset_σ`` onto ``Δf_ref`` (its rings then line up
    with the model's), its amplitude measured there (:func:`ring_amplitude`, smooth over
    4 ring periods) and mapped back to the sector's own ``s`` (0 where it has no data).
    """
    s = prof.s_invA2
    sources = phase_matched_s(s[None, :], d_ref_A, d_ref_A + offset_A[:, None], optics)
    moved = np.stack([np.interp(src, s, row, left=0.0, right=0.0)
                      for src, row in zip(sources, aligned, strict=True)])  # fmt: skip
    amplitude = ring_amplitude(moved, d_ref_A, prof, optics)
    inside = (sources >= s[0]) & (sources <= s[-1])
    out = np.zeros_like(amplitude)
    for sector, ok in enumerate(inside):
        if ok.sum() >= 2:
            out[sector] = np.interp(s, sources[sector, ok], amplitude[sector, ok], 0.0, 0.0)
    return out


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
