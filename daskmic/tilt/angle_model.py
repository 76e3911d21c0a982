"""The spectrum model of the tilt estimator: astigmatism, drift and the rings' envelope.

All tiles' sector profiles, moved onto one defocus and averaged, are rich enough to tell
what every tile's rings look like: the astigmatism (each sector's defocus offset), the
drift's fade of the rings per sector and frequency (:mod:`~daskmic.tilt.angle_drift`) and
the rings' amplitude along ``s``. :func:`spectrum_model` measures them (maths in its
docstring and in :mod:`daskmic.tilt.angle`); the local defocus step uses them as sector
weights and as the template of each tile's ring correlation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from daskmic.tilt.angle_drift import drift_fade, find_drift
from daskmic.tilt.angle_fit import (
    defocus_groups,
    flatten,
    interp_matrix,
    phase_matched_s,
    refine_peak,
    weighted_correlation,
    weighted_lstsq,
)
from daskmic.tilt.angle_spectra import SectorProfiles
from daskmic.tilt.angle_steps import DEFOCUS_STEP_A, band_weights, period_bins
from daskmic.tilt.ctf import Optics

_SECTOR_CHUNK = 8


@dataclass(frozen=True)
class SpectrumModel:
    """What the tile-averaged sectors say about the rings of every tile.

    Attributes
    ----------
    astig_ab_A : tuple of float
        Astigmatism ``(A, B)``: sector ``α`` has its rings at ``Δf + A cos 2α + B sin 2α``.
    envelope : numpy.ndarray
        Expected ring amplitude of the combined (astigmatism-corrected, weighted) profile
        per ``s`` bin: the template envelope of ``angle_steps.tile_curves``.
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
    """``Δf_ref`` and the mean over tiles of each sector moved from its tile's defocus onto it.

    Tiles are grouped by defocus (0.5 % bins); each group's sum is read at the ``s`` where its
    mean defocus has the phase ``Δf_ref`` has at ``s``, and the groups are added in order.
    """
    s = prof.s_invA2
    d_ref = len(defocus_A) / float(np.sum(1.0 / defocus_A))
    groups = defocus_groups(defocus_A)
    sizes = np.array([len(group) for group in groups])
    means = np.array([float(np.mean(defocus_A[group])) for group in groups])
    source = phase_matched_s(s[None, :], d_ref, means[:, None], optics)  # (groups, bins)
    count = (sizes[:, None] * ((source >= s[0]) & (source <= s[-1]))).sum(axis=0)
    n_tiles, n_sectors, n_bins = prof.power.shape
    pointers = np.concatenate([[0], np.cumsum(sizes)])
    members = scipy.sparse.csr_matrix(  # group sums in tile order, from 0: a plain loop's bits
        (np.ones(n_tiles), np.concatenate(groups), pointers), shape=(len(groups), n_tiles)
    )
    aligned = np.empty((n_sectors, n_bins))
    for first in range(0, n_sectors, _SECTOR_CHUNK):  # bounds the (groups, sectors, bins) arrays
        part = slice(first, first + _SECTOR_CHUNK)
        blocks = members @ prof.power[:, part].reshape(n_tiles, -1).astype(np.float64)
        moved = interp_rows(source[:, None, :], s, blocks.reshape(len(groups), -1, n_bins))
        aligned[part] = moved.sum(axis=0)
    return d_ref, aligned * np.where(count > 0, 1.0 / np.maximum(count, 1.0), 0.0)


def interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x, xp, f, left=0, right=0)`` for every row ``f`` of ``fp`` at once.

    ``x`` broadcasts against ``fp``'s rows (the last axis of each is read at the other's);
    the arithmetic is ``np.interp``'s own (in float64), so the bits are the same as one call
    per row. In place on one output array: the rows are the large operand.
    """
    n = len(xp)
    fp = np.asarray(fp, np.float64)
    shape = np.broadcast_shapes(fp.shape[:-1] + (1,), x.shape)
    inner = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, n - 2)
    x0 = xp[inner]
    y0 = np.take_along_axis(fp, np.broadcast_to(inner, shape), axis=-1)
    out = np.take_along_axis(fp, np.broadcast_to(inner + 1, shape), axis=-1)
    out -= y0  # (y1 - y0) / (x1 - x0) * (x - x0) + y0, operation by operation
    out /= xp[inner + 1] - x0
    out *= x - x0
    out += y0
    np.copyto(out, y0, where=x == x0)
    np.copyto(out, fp[..., -1:], where=x == xp[-1])
    np.copyto(out, 0.0, where=(x < xp[0]) | (x > xp[-1]))
    return out


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
    scores = weighted_correlation(flat, s, grid, optics, band, envelopes)
    peak = refine_peak(scores, np.argmax(scores, axis=1))
    return np.interp(peak, np.arange(len(offsets_A)), offsets_A), scores.max(axis=1)


def spectrum_model(
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
    of those that reach that bin (see ``angle_steps.corrected_profiles``): no step where one
    runs off.
    """
    s = prof.s_invA2
    d_ref, aligned = _aligned_sectors(prof, defocus_A, optics)
    offsets = np.arange(-max_half_A, max_half_A + DEFOCUS_STEP_A / 2, DEFOCUS_STEP_A)
    band = band_weights(s, d_ref, prof.tile_px, prof.pixel_size_A, optics)
    flat = flatten(aligned, period_bins(s, d_ref, optics))
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
    moved_fade = interp_rows(source, s, fade)
    combined = (moved_fade**2).sum(axis=0) / np.maximum(moved_fade.sum(axis=0), 1e-12)
    smooth = gaussian_filter1d(combined, 4 * period_bins(s, d_ref, optics))
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
    moved = interp_rows(sources, s, aligned)
    amplitude = ring_amplitude(moved, d_ref_A, prof, optics)
    inside = (sources >= s[0]) & (sources <= s[-1])
    out = np.zeros_like(amplitude)
    for sector, ok in enumerate(inside):
        if ok.sum() >= 2:
            out[sector] = np.interp(s, sources[sector, ok], amplitude[sector, ok], 0.0, 0.0)
    return out


def ring_amplitude(
    profile: np.ndarray, d_ref_A: float, prof: SectorProfiles, optics: Optics
) -> np.ndarray:
    """Local Thon-ring amplitude of a flattened, well-aligned ``profile`` (0 outside the band).

    ``A(s) = box(P̃ · m) / box(m²)`` with ``m = sin² χ(s, Δf_ref) - ½`` and boxes two ring
    periods wide, clipped at 0: the matched-filter weight of each ``s`` bin.
    """
    s = prof.s_invA2
    period = period_bins(s, d_ref_A, optics)
    flat = flatten(profile, period)
    lam = optics.wavelength_A
    c = 0.5 * math.pi * optics.spherical_aberration_mm * 1e7 * lam**3
    chi = math.pi * lam * d_ref_A * s - c * s * s + optics.constant_phase_rad
    model = np.sin(chi) ** 2 - 0.5
    width = max(int(round(2 * period)), 3)
    amplitude = uniform_filter1d(flat * model, width) / uniform_filter1d(model * model, width)
    amplitude = gaussian_filter1d(amplitude, 4 * period)
    return np.clip(amplitude, 0.0, None)
