"""The PSD of one corner window, as the reference computes it (spec B.3 #4-6).

normalize (mean 0, population std 1) -> edge taper -> amplitude ``|FFT|`` -> centre the zero
frequency -> ``10 log10`` -> clip outliers with a 400-bin histogram. Everything runs in float64.

The amplitude spectrum of a real window is symmetric, so it is kept as its ``rfft2`` half plane:
the decibels, the histogram (the mirrored columns counted twice) and the clipping run on half
the pixels, and only the regions the screen compares are gathered into the centred layout. The
mirrored half is an exact copy, as in the reference's ``half2whole``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.fft

TAPER_FRACTION: Final = 0.025
"""Fraction of each half-width that the edge taper attenuates."""

HISTOGRAM_BINS: Final = 400
OUTLIER_PERCENT: Final = 0.25
"""Percentage of the histogram mass clipped, half at each end (0.125 % / 99.875 %)."""


def normalize_window(window: np.ndarray) -> np.ndarray:
    """Return ``(window - mean) / std`` in float64, with the population std (ddof=0).

    Raises
    ------
    ValueError
        If the window holds NaN/Inf or is constant.
    """
    values = np.asarray(window, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("the window holds NaN or Inf values")
    mean = values.mean()
    std = values.std()
    if not std > 0:
        raise ValueError("the window is constant (standard deviation 0)")
    return (values - mean) / std


def taper_profile(n: int, reference_n: int) -> np.ndarray:
    """One axis of the edge taper of ``ProgCTFEstimateFromMicrograph::constructPieceSmoother``.

    For ``k = idx - n // 2`` and ``f = |k| * 2 / reference_n``: 1 where ``f <= 0.975``, else
    ``(1 + cos(pi * ((f - 1) / 0.025 + 1))) / 2``.

    Parameters
    ----------
    n : int
        Length of the axis.
    reference_n : int
        Length that defines the fraction: ``n`` itself in the default mode, the row count for
        both axes in compat mode (the reference's quirk).

    Returns
    -------
    numpy.ndarray
        Float64 profile of length ``n``.
    """
    k = np.arange(n) - n // 2
    fraction = np.abs(k * (2.0 / reference_n))
    profile = np.ones(n)
    edge = fraction > 1.0 - TAPER_FRACTION
    profile[edge] = 0.5 * (
        1.0 + np.cos(math.pi * ((fraction[edge] - 1.0) * (1.0 / TAPER_FRACTION) + 1.0))
    )
    return profile


def edge_taper(shape: tuple[int, int], *, xmipp_compat: bool) -> np.ndarray:
    """The separable 2-D edge taper for a window of ``shape`` (float64)."""
    ny, nx = shape
    return np.outer(taper_profile(ny, ny), taper_profile(nx, ny if xmipp_compat else nx))


def centred_from_half(half: np.ndarray, nx: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Gather ``fftshift(full)[rows][:, cols]`` from the ``rfft2`` half plane of ``full``.

    ``full[k, l] = half[k, l]`` for ``l <= nx // 2`` and ``half[-k, nx - l]`` beyond (the
    Hermitian mirror of an amplitude spectrum); ``fftshift`` puts index 0 at ``n // 2``.

    Parameters
    ----------
    half : numpy.ndarray
        ``(ny, nx // 2 + 1)`` half plane.
    nx : int
        Column count of the full array.
    rows, cols : numpy.ndarray
        Integer indices into the centred full array.

    Returns
    -------
    numpy.ndarray
        ``(len(rows), len(cols))`` values.
    """
    ny, width = half.shape
    k = (np.asarray(rows) - ny // 2) % ny
    col = (np.asarray(cols) - nx // 2) % nx
    mirrored = col >= width
    out = np.empty((len(k), len(col)), dtype=half.dtype)
    out[:, ~mirrored] = half[np.ix_(k, col[~mirrored])]
    out[:, mirrored] = half[np.ix_((-k) % ny, nx - col[mirrored])]
    return out


def to_decibels(psd: np.ndarray) -> np.ndarray:
    """``10 log10`` of a PSD; values <= 0 take the decibels of the smallest positive value."""
    positive = psd > 0
    if not positive.any():
        raise ValueError("the PSD has no positive value")
    floor = 10.0 * math.log10(psd[positive].min())
    out = np.full(psd.shape, floor)
    np.log10(psd, out=out, where=positive)
    np.multiply(out, 10.0, out=out, where=positive)
    return out


def _bin_index(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    """Xmipp's ``INSERT_VALUE`` bin of each value; ``bins`` marks values it drops."""
    step = (high - low) / bins
    index = ((values - low) * (1.0 / step)).astype(np.int64)
    index[values == high] = bins - 1
    return np.minimum(index, bins)


def _limits_from_counts(
    counts: np.ndarray, low: float, high: float, percent_out: float
) -> tuple[float, float]:
    """Xmipp's ``reject_outliers`` limits from a histogram over ``[low, high]``."""
    bins = len(counts)
    step = (high - low) / bins
    inverse_step = 1.0 / step
    cumulative = np.cumsum(counts)
    total = float(cumulative[-1])

    def percentile_bin(percent: float) -> int:
        required = total * percent / 100.0
        i = int(np.searchsorted(cumulative, required, side="left"))
        return i + 1 if cumulative[i] == required else i

    def bin_of(value: float) -> int:
        i = bins - 1 if value == high else math.floor((value - low) * inverse_step)
        return i if 0 <= i < bins else -1

    eff0 = low + percentile_bin(percent_out / 2) * step
    eff1 = low + percentile_bin(100.0 - percent_out / 2) * step
    first = bin_of(eff0)
    if first == bin_of(eff1):
        eff0, eff1 = low + first * step, low + (first + 1) * step
    return eff0, eff1


def outlier_limits(
    values: np.ndarray, bins: int = HISTOGRAM_BINS, percent_out: float = OUTLIER_PERCENT
) -> tuple[float, float]:
    """The clipping limits of Xmipp's ``reject_outliers`` (XC ``core/histogram.h``).

    A ``bins``-bin histogram over ``[min, max]`` (index ``int((v - min) * (1 / step))``, the
    maximum in the last bin, values whose index rounds to ``bins`` dropped); each limit is the
    left edge of the bin where the cumulative count first reaches ``N * p / 100`` for
    ``p = percent_out / 2`` and ``100 - percent_out / 2``, or that bin's right edge when the
    count equals it exactly. Limits in the same bin become that bin's edges.

    Parameters
    ----------
    values : numpy.ndarray
        Finite values.
    bins : int
        Number of histogram bins.
    percent_out : float
        Total percentage of the mass to clip.

    Returns
    -------
    (float, float)
        Lower and upper clipping values.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(flat.min()), float(flat.max())
    if not high > low:
        return low, high
    counts = np.bincount(_bin_index(flat, low, high, bins), minlength=bins + 1)[:bins]
    return _limits_from_counts(counts, low, high, percent_out)


def half_plane_limits(half: np.ndarray, nx: int) -> tuple[float, float]:
    """:func:`outlier_limits` of the full array whose ``rfft2`` half plane is ``half``.

    Columns ``1 .. (nx - 1) // 2`` appear twice in the full array (once mirrored), so they
    are counted twice; the counts, and so the limits, equal those of the full array exactly.
    """
    low, high = float(half.min()), float(half.max())
    if not high > low:
        return low, high
    index = _bin_index(half, low, high, HISTOGRAM_BINS)
    size = HISTOGRAM_BINS + 1
    counts = np.bincount(index.ravel(), minlength=size)
    counts += np.bincount(index[:, 1 : (nx + 1) // 2].ravel(), minlength=size)
    return _limits_from_counts(counts[:HISTOGRAM_BINS], low, high, OUTLIER_PERCENT)


@dataclass(frozen=True)
class WindowPSD:
    """The centred, decibel, outlier-clipped PSD of one window, kept as its half plane.

    Attributes
    ----------
    half : numpy.ndarray
        ``(ny, nx // 2 + 1)`` float64 decibels, already clipped, in ``rfft2`` layout.
    shape : tuple of int
        ``(ny, nx)`` of the window and of the centred PSD.
    """

    half: np.ndarray
    shape: tuple[int, int]

    def region(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The centred PSD (zero frequency at ``(ny // 2, nx // 2)``) at ``rows x cols``."""
        return centred_from_half(self.half, self.shape[1], rows, cols)

    def full(self) -> np.ndarray:
        """The whole centred PSD, ``(ny, nx)`` float64."""
        ny, nx = self.shape
        return self.region(np.arange(ny), np.arange(nx))


def window_psd(window: np.ndarray, *, xmipp_compat: bool = False) -> WindowPSD:
    """The centred, decibel, outlier-clipped amplitude spectrum of one corner window.

    Parameters
    ----------
    window : numpy.ndarray
        The 2-D corner window (any real dtype).
    xmipp_compat : bool
        Build the taper's column profile from the row count, as the reference does.

    Returns
    -------
    WindowPSD
        The PSD; ``.full()`` gives the float64 array, zero frequency at ``(ny // 2, nx // 2)``.
    """
    patch = normalize_window(window)
    patch *= edge_taper(patch.shape, xmipp_compat=xmipp_compat)
    half = to_decibels(np.abs(scipy.fft.rfft2(patch)))
    low, high = half_plane_limits(half, patch.shape[1])
    return WindowPSD(np.clip(half, low, high, out=half), patch.shape)
