"""The 90° rotation of a centred PSD (spec B.3 #7).

Default mode: an exact rotation about the zero-frequency pixel ``(n // 2, n // 2)`` of a square
PSD, ``R[r, q] = P[q, (2 (n // 2) - r) mod n]`` (for even ``n`` the Nyquist row wraps).

Compat mode reproduces the reference, which calls ``Image.applyWarpAffine`` with the matrix
``M = T⁻¹ R T`` built for corner coordinates while Xmipp applies it in centred coordinates, with
cubic B-spline interpolation (mirror boundary) and periodic wrapping of the sampling points.
For square PSDs this is exactly the default rotation; for the two non-square corner windows it
samples the PSD half a pixel off the grid, i.e. an interpolated, slightly smoothed rotation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from daskmic.tilt.psd import WindowPSD

PSDLike = np.ndarray | WindowPSD

_EQUAL_ACCURACY = 1e-6  # XMIPP_EQUAL_ACCURACY: tolerance before a coordinate is wrapped


def _rotation_rows(n: int, rows: np.ndarray) -> np.ndarray:
    """Source columns of the rotated rows ``rows``: ``(2 (n // 2) - r) mod n``."""
    return (2 * (n // 2) - rows) % n


def rotate90_about_dc(psd: PSDLike) -> np.ndarray:
    """Rotate a square centred PSD by exactly 90° about its zero-frequency pixel.

    Parameters
    ----------
    psd : numpy.ndarray
        Square 2-D array, zero frequency at ``(n // 2, n // 2)``.

    Returns
    -------
    numpy.ndarray
        ``R[r, q] = P[q, (2 (n // 2) - r) mod n]``; the zero frequency stays in place.
    """
    return rotated_region(psd, slice(None), slice(None), xmipp_compat=False)


def warp_matrix(shape: tuple[int, int]) -> np.ndarray:
    """The 3x3 matrix the reference passes to ``applyWarpAffine`` for a 90° rotation.

    ``M = T⁻¹ R T`` with ``T`` the translation by ``(-nx / 2, -ny / 2)`` and
    ``R = [[cos, sin], [-sin, cos]]`` at 90° (computed in floating point, as the reference).
    """
    ny, nx = shape
    angle = 90 * math.pi / 180
    cos, sin = math.cos(angle), math.sin(angle)
    translate = np.asarray([[1.0, 0.0, -nx / 2], [0.0, 1.0, -ny / 2], [0.0, 0.0, 1.0]])
    rotate = np.asarray([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    return np.linalg.inv(translate) @ (rotate @ translate)


def _wrap(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Xmipp's ``realWRAP(x, low, high)``: periodic, the closed interval left untouched."""
    period = high - low
    below = values - np.trunc((values - low) / period - 1) * period
    above = values - np.trunc((values - high) / period + 1) * period
    inside = (values >= low) & (values <= high)
    return np.where(inside, values, np.where(values < low, below, above))


def _sampling_axis(coord: np.ndarray, n: int) -> np.ndarray:
    """Wrap logical coordinates of an axis of length ``n`` as ``applyGeometry`` does."""
    first, last = -(n // 2), n - n // 2 - 1
    outside = (coord < first - _EQUAL_ACCURACY) | (coord > last + _EQUAL_ACCURACY)
    wrapped = np.where(outside, _wrap(coord, first - 0.5, last + 0.5), coord)
    return wrapped + n // 2


def _warp_bspline(psd: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The reference's warped rotation, evaluated on the output pixels ``rows x cols``."""
    ny, nx = psd.shape
    inverse = np.linalg.inv(warp_matrix((ny, nx)))
    y = (rows - ny // 2).astype(np.float64)[:, None]
    x = (cols - nx // 2).astype(np.float64)[None, :]
    xp = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
    yp = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
    coords = np.stack([_sampling_axis(yp, ny), _sampling_axis(xp, nx)])
    coefficients = ndimage.spline_filter(psd, order=3, mode="reflect")
    return ndimage.map_coordinates(coefficients, coords, order=3, mode="reflect", prefilter=False)


def _sample(psd: PSDLike, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if isinstance(psd, WindowPSD):
        return psd.region(rows, cols)
    return np.asarray(psd)[np.ix_(rows, cols)]


def rotated_region(psd: PSDLike, rows: slice, cols: slice, *, xmipp_compat: bool) -> np.ndarray:
    """A region of the 90°-rotated PSD, without rotating the rest.

    Parameters
    ----------
    psd : numpy.ndarray or WindowPSD
        Centred 2-D PSD (square unless ``xmipp_compat``).
    rows, cols : slice
        The region of the rotated PSD to return.
    xmipp_compat : bool
        Reproduce the reference's warp (interpolated for non-square PSDs).

    Returns
    -------
    numpy.ndarray
        ``rotated[rows, cols]``, float64.
    """
    ny, nx = psd.shape
    row_index = np.arange(ny)[rows]
    col_index = np.arange(nx)[cols]
    if ny == nx:
        return _sample(psd, col_index, _rotation_rows(ny, row_index)).T
    if not xmipp_compat:
        raise ValueError(f"an exact 90° rotation needs a square PSD, got shape {psd.shape}")
    whole = psd.full() if isinstance(psd, WindowPSD) else np.asarray(psd, dtype=np.float64)
    return _warp_bspline(whole, row_index, col_index)


def rotate90_xmipp(psd: PSDLike) -> np.ndarray:
    """The whole PSD rotated as the reference's ``rotation(psd, 90, psd.shape, I)`` does."""
    return rotated_region(psd, slice(None), slice(None), xmipp_compat=True)
