"""Whole-image statistics in float64 and row-block float64 arithmetic with bounded memory.

Micrographs are large (a 5760×4092 K3 frame holds 23.6 M pixels), so a float64 copy of one costs
~190 MB. The helpers here reduce and transform in blocks of rows: float64 precision, at most
:data:`BLOCK_ELEMENTS` float64 temporaries at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

BLOCK_ELEMENTS: Final = 1 << 20
"""Number of pixels processed at once by the float64 helpers (8 MB of float64)."""


def _row_blocks(shape: tuple[int, ...]) -> range:
    """Start rows of blocks of about :data:`BLOCK_ELEMENTS` pixels."""
    rows_per_block = max(1, BLOCK_ELEMENTS // max(1, int(np.prod(shape[1:]))))
    return range(0, shape[0], rows_per_block)


def mean_std(image: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0) of a whole image, in float64.

    Two passes: the mean, then squared deviations from it accumulated in float64 (the shift
    is rounded to the input's precision and corrected exactly, so a large mean does not cancel
    the variance). This is the population standard deviation Xmipp uses (spec A.2 †).

    Parameters
    ----------
    image : numpy.ndarray
        Any real array; it is not modified.

    Returns
    -------
    mean, std : float
        Both computed in float64.
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError("cannot compute statistics of an empty image")
    mean = float(np.mean(image, dtype=np.float64))
    floating = image.dtype.kind == "f" and image.dtype.itemsize <= 4
    work_dtype = np.dtype(np.float32 if floating else np.float64)
    shift = work_dtype.type(mean)
    step = _row_blocks(image.shape).step
    squares = 0.0
    for start in _row_blocks(image.shape):
        deviation = np.subtract(image[start : start + step], shift, dtype=work_dtype)
        deviation = deviation.reshape(-1)
        squares += float(np.einsum("i,i->", deviation, deviation, dtype=np.float64))
    offset = mean - float(shift)
    variance = max(squares / image.size - offset * offset, 0.0)
    return mean, float(np.sqrt(variance))


def map_float64(
    func: Callable[..., np.ndarray], image: np.ndarray, *args: float
) -> np.ndarray:
    """Apply a pointwise ``func(x_float64, *args)`` block by block; return float32.

    Parameters
    ----------
    func : callable
        A pointwise function of a float64 array (and the scalars ``args``).
    image : numpy.ndarray
        The input; it is not modified.
    *args : float
        Extra scalar arguments for ``func``.

    Returns
    -------
    numpy.ndarray
        ``func(image)`` evaluated in float64, stored as float32, same shape as ``image``.
    """
    image = np.asarray(image)
    out = np.empty(image.shape, dtype=np.float32)
    step = _row_blocks(image.shape).step
    for start in _row_blocks(image.shape):
        block = slice(start, start + step)
        out[block] = func(image[block].astype(np.float64), *args)
    return out
