"""Bad pixels: strict outliers replaced by a sequential 5×5 masked median (spec A.2 #3).

Detection is vectorised; replacement visits only the bad pixels (they are rare), in raster
order, with Xmipp's Gauss–Seidel rule: a replaced pixel becomes a good neighbour, with its new
value, for the bad pixels after it. Medians are taken over float64 values and a pixel's new
value is kept in float64 for its later neighbours, as Xmipp does on its double image, so the
float32 result is bit-identical to ``xmipp_transform_filter --bad_pixels outliers k``.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from daskmic.ops.kernel import FULL_FRAME, Kernel
from daskmic.ops.stats import BLOCK_ELEMENTS, mean_std

RADIUS_PX = 2
"""Half-width of the replacement neighbourhood (5×5)."""


def _float32_bounds(low: float, high: float) -> tuple[np.float32, np.float32]:
    """float32 thresholds giving, for float32 pixels, exactly the float64 comparisons.

    ``x < low`` iff ``x < low↑`` (the smallest float32 ≥ low) and ``x > high`` iff
    ``x > high↓`` (the largest float32 ≤ high), so comparing in float32 changes no decision.
    """
    up, down = np.float32(low), np.float32(high)
    if up < low:
        up = np.nextafter(up, np.float32(np.inf))
    if down > high:
        down = np.nextafter(down, np.float32(-np.inf))
    return up, down


def outlier_mask(image: np.ndarray, k: float) -> np.ndarray:
    """Boolean mask of strict outliers: ``x < m - k·s`` or ``x > m + k·s``.

    ``m`` and ``s`` are the mean and population standard deviation of the whole image. The
    comparison runs in row blocks (one pass over the image).
    """
    mean, std = mean_std(image)
    low: np.floating = np.float64(mean - k * std)
    high: np.floating = np.float64(mean + k * std)
    if image.dtype == np.float32:
        low, high = _float32_bounds(float(low), float(high))
    bad = np.empty(image.shape, dtype=bool)
    step = max(1, BLOCK_ELEMENTS // max(1, image.shape[1]))
    for start in range(0, image.shape[0], step):
        rows, flags = image[start : start + step], bad[start : start + step]
        np.less(rows, low, out=flags)
        flags |= rows > high
    return bad


def _neighbour_median(
    out: np.ndarray, bad: np.ndarray, replaced: dict[int, float], i: int, j: int
) -> float | None:
    """Median of the good pixels in the 5×5 window around ``(i, j)``, or None if none."""
    ny, nx = out.shape
    i0, j0 = max(i - RADIUS_PX, 0), max(j - RADIUS_PX, 0)
    i1, j1 = min(i + RADIUS_PX + 1, ny), min(j + RADIUS_PX + 1, nx)
    good_i, good_j = np.nonzero(~bad[i0:i1, j0:j1])
    if good_i.size == 0:
        return None
    values = out[i0:i1, j0:j1][good_i, good_j].astype(np.float64)
    if replaced:
        flat = (good_i + i0) * nx + (good_j + j0)
        for n, index in enumerate(flat.tolist()):
            if index in replaced:
                values[n] = replaced[index]
    values.sort()
    half = values.size // 2
    if values.size % 2:
        return float(values[half])
    return float(0.5 * (values[half - 1] + values[half]))


def replace_bad_pixels(out: np.ndarray, bad: np.ndarray) -> int:
    """Replace, in place and in raster order, every pixel flagged in ``bad``.

    Each flagged pixel gets the median of the unflagged pixels of its 5×5 neighbourhood
    (clipped at the borders; mean of the two middle values for an even count) and is then
    unflagged, so later pixels see its new value. Pixels without a good neighbour wait for
    the next pass; passes repeat until none remain, or until a pass replaces nothing (an image
    with no good pixel at all), where Xmipp would loop forever and the rest is left as is.

    Parameters
    ----------
    out : numpy.ndarray
        Writable 2-D float image, modified in place.
    bad : numpy.ndarray
        Writable boolean mask of the same shape, modified in place.

    Returns
    -------
    int
        Number of pixels still flagged (normally 0).
    """
    nx = out.shape[1]
    replaced: dict[int, float] = {}
    pending = np.flatnonzero(bad).tolist()
    while pending:
        waiting = []
        for index in pending:
            i, j = divmod(index, nx)
            median = _neighbour_median(out, bad, replaced, i, j)
            if median is None:
                waiting.append(index)
                continue
            out[i, j] = median
            replaced[index] = median
            bad[i, j] = False
        if len(waiting) == len(pending):
            break
        pending = waiting
    return len(pending)


def _remove_bad_pixels(image: np.ndarray, k: float) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    bad = outlier_mask(image, k)
    if not bad.any():
        return image  # nothing to replace: no copy
    out = image.copy()
    replace_bad_pixels(out, bad)
    return out


def bad_pixels_kernel(k: float) -> Kernel:
    """Kernel replacing pixels beyond ``mean ± k·std`` by the median of their good neighbours.

    Parameters
    ----------
    k : float
        Threshold in population standard deviations of the whole image, ``k > 0`` (the
        protocol's default is 5).

    Returns
    -------
    Kernel
        Full-frame kernel (the statistics are global), float32 output.
    """
    if isinstance(k, bool) or not isinstance(k, int | float | np.number):
        raise ValueError(f"bad_pixels: expected a number, got {k!r}; valid range: k > 0")
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"bad_pixels: got k = {k}; valid range: finite k > 0")
    return Kernel(name="bad_pixels", func=partial(_remove_bad_pixels, k=float(k)), halo=FULL_FRAME)
