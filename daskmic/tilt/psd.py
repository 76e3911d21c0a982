"""The PSD of one corner window, as the reference computes it (spec B.3 #4-6).

normalize (mean 0, population std 1) -> edge taper -> amplitude ``|FFT|`` -> centre the zero
frequency -> ``10 log10`` -> clip outliers with a 400-bin histogram. Everything runs in float64.
"""

from __future__ import annotations

import math
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


def amplitude_spectrum(patch: np.ndarray) -> np.ndarray:
    """``|FFT(patch)|`` in standard FFT layout, built from the half spectrum by symmetry.

    Like the reference (``half2whole``), the second half is an exact mirror of the first, so
    ``A[k, l] == A[-k, -l]`` holds bit for bit.
    """
    ny, nx = patch.shape
    half = np.abs(scipy.fft.rfft2(patch))
    width = half.shape[1]
    full = np.empty((ny, nx))
    full[:, :width] = half
    if nx > width:
        rows = (-np.arange(ny)) % ny
        cols = nx - np.arange(width, nx)
        full[:, width:] = half[np.ix_(rows, cols)]
    return full


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
        Finite values, not all equal.
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
    step = (high - low) / bins
    if not step > 0:
        return low, high
    inverse_step = 1.0 / step
    index = ((flat - low) * inverse_step).astype(np.int64)
    index[flat == high] = bins - 1
    counts = np.bincount(index[index < bins], minlength=bins)
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


def window_psd(window: np.ndarray, *, xmipp_compat: bool = False) -> np.ndarray:
    """The centred, decibel, outlier-clipped amplitude spectrum of one corner window.

    Parameters
    ----------
    window : numpy.ndarray
        The 2-D corner window (any real dtype).
    xmipp_compat : bool
        Build the taper's column profile from the row count, as the reference does.

    Returns
    -------
    numpy.ndarray
        Float64 PSD, zero frequency at ``(ny // 2, nx // 2)``.
    """
    patch = normalize_window(window)
    patch *= edge_taper(patch.shape, xmipp_compat=xmipp_compat)
    psd = to_decibels(np.fft.fftshift(amplitude_spectrum(patch)))
    low, high = outlier_limits(psd)
    return np.clip(psd, low, high, out=psd)
