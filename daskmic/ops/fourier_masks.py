"""Fourier masks on the ``rfft2`` half-plane grid (spec A.2 #7–#9).

A mask for a real ``(ny, nx)`` image has shape ``(ny, nx//2 + 1)``, the layout of
``scipy.fft.rfft2``. Frequencies follow Xmipp's ``FFT_IDX2DIGFREQ``: per axis, index ``i`` maps
to ``i/n`` for ``i <= n/2`` and ``(i - n)/n`` above, so each axis is normalised by its own size
and ``|f| = sqrt(fx² + fy²)`` is in cycles/pixel (Nyquist 0.5 along each axis).

Builders are cached per ``(shape, parameters)`` and return read-only float64 arrays; the fused
kernel (:mod:`daskmic.ops.fourier`) multiplies them once per shape.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from daskmic.ops.kernel import Shape2D

_CACHE_SIZE = 8


def half_plane_shape(shape: Shape2D) -> Shape2D:
    """Shape ``(ny, nx//2 + 1)`` of the ``rfft2`` of a real ``(ny, nx)`` image."""
    ny, nx = shape
    return ny, nx // 2 + 1


def squared_frequency(shape: Shape2D) -> np.ndarray:
    """``|f|²`` in (cycles/pixel)² on the half-plane grid of a ``(ny, nx)`` image."""
    ny, nx = shape
    index_y = np.arange(ny, dtype=np.float64)
    index_y[ny // 2 + 1 :] -= ny
    fy = (index_y / ny)[:, np.newaxis]
    fx = (np.arange(nx // 2 + 1, dtype=np.float64) / nx)[np.newaxis, :]
    return fy * fy + fx * fx


def _readonly(mask: np.ndarray) -> np.ndarray:
    mask.flags.writeable = False
    return mask


def build_lowpass(shape: Shape2D, cutoff: float, width: float) -> np.ndarray:
    """Uncached :func:`lowpass_mask` (float64, writable)."""
    f = np.sqrt(squared_frequency(shape))
    mask = 0.5 * (1.0 + np.cos(np.pi * (f - cutoff) / width))
    mask[f < cutoff] = 1.0
    mask[f >= cutoff + width] = 0.0
    return mask


def build_highpass(shape: Shape2D, cutoff: float, width: float) -> np.ndarray:
    """Uncached :func:`highpass_mask` (float64, writable)."""
    f = np.sqrt(squared_frequency(shape))
    mask = 0.5 * (1.0 + np.cos(np.pi * (cutoff - f) / width))
    mask[f > cutoff] = 1.0
    mask[f <= cutoff - width] = 0.0
    return mask


def build_gaussian(shape: Shape2D, sigma_px: float, xmipp_compat: bool = False) -> np.ndarray:
    """Uncached :func:`gaussian_mask` (float64, writable)."""
    factor = (1.0 if xmipp_compat else 2.0) * (np.pi * sigma_px) ** 2
    return np.exp(-factor * squared_frequency(shape))


@lru_cache(maxsize=_CACHE_SIZE)
def _cached_lowpass(shape: Shape2D, cutoff: float, width: float) -> np.ndarray:
    return _readonly(build_lowpass(shape, cutoff, width))


@lru_cache(maxsize=_CACHE_SIZE)
def _cached_highpass(shape: Shape2D, cutoff: float, width: float) -> np.ndarray:
    return _readonly(build_highpass(shape, cutoff, width))


@lru_cache(maxsize=_CACHE_SIZE)
def _cached_gaussian(shape: Shape2D, sigma_px: float, xmipp_compat: bool) -> np.ndarray:
    return _readonly(build_gaussian(shape, sigma_px, xmipp_compat))


def _shape(shape: Shape2D) -> Shape2D:
    ny, nx = (int(n) for n in shape)
    return ny, nx


def lowpass_mask(shape: Shape2D, cutoff: float, width: float) -> np.ndarray:
    """Raised-cosine low-pass mask; the cutoff is the passband edge.

    ``H = 1`` for ``|f| < cutoff``, ``½(1 + cos(π(|f| - cutoff)/width))`` for
    ``cutoff <= |f| < cutoff + width``, ``0`` beyond: the transition lies entirely above the
    cutoff (Xmipp's ``low_pass``, spec A.2 #8).

    Parameters
    ----------
    shape : tuple of int
        Real-space image shape ``(ny, nx)``.
    cutoff, width : float
        Passband edge and transition width, in cycles/pixel.

    Returns
    -------
    numpy.ndarray
        Read-only float64 array of shape ``(ny, nx//2 + 1)``.
    """
    return _cached_lowpass(_shape(shape), float(cutoff), float(width))


def highpass_mask(shape: Shape2D, cutoff: float, width: float) -> np.ndarray:
    """Raised-cosine high-pass mask; the cutoff is the passband edge.

    ``H = 1`` for ``|f| > cutoff``, ``½(1 + cos(π(cutoff - |f|)/width))`` for
    ``cutoff - width < |f| <= cutoff``, ``0`` below: the transition lies entirely below the
    cutoff (Xmipp's ``high_pass``, spec A.2 #8).

    Parameters
    ----------
    shape : tuple of int
        Real-space image shape ``(ny, nx)``.
    cutoff, width : float
        Passband edge and transition width, in cycles/pixel.

    Returns
    -------
    numpy.ndarray
        Read-only float64 array of shape ``(ny, nx//2 + 1)``.
    """
    return _cached_highpass(_shape(shape), float(cutoff), float(width))


def gaussian_mask(shape: Shape2D, sigma_px: float, *, xmipp_compat: bool = False) -> np.ndarray:
    """Gaussian low-pass mask of a real-space Gaussian blur.

    Default: ``exp(-2π²σ²|f|²)``, the transfer function of a Gaussian of standard deviation
    ``sigma_px`` pixels. With ``xmipp_compat=True``: ``exp(-π²σ²|f|²)``, Xmipp's
    ``real_gaussian`` mask, which blurs by ``sigma_px/√2`` (spec D.1).

    Parameters
    ----------
    shape : tuple of int
        Real-space image shape ``(ny, nx)``.
    sigma_px : float
        Standard deviation of the blur, in pixels of this grid.
    xmipp_compat : bool, optional
        Reproduce Xmipp's mask.

    Returns
    -------
    numpy.ndarray
        Read-only float64 array of shape ``(ny, nx//2 + 1)``.
    """
    return _cached_gaussian(_shape(shape), float(sigma_px), bool(xmipp_compat))
