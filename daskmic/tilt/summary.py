"""The PSD summary image: the four filtered sub-PSDs in a 2x2 montage (spec B.3 #12)."""

from __future__ import annotations

import os

import numpy as np

from daskmic.io.png import grey_png
from daskmic.io.storage import Location, location, write_whole


def psd_summary(filtered: np.ndarray) -> np.ndarray:
    """Paint the four filtered (unrotated) sub-PSDs into one ``(2 sub - 1)²`` image.

    Each sub-PSD goes where its corner lies in the micrograph (near-y blocks at the top rows,
    near-x blocks at the left columns). As in the reference the blocks overlap by one row and
    one column at index ``sub - 1``, later corners (order 00, 02, 20, 22) overwriting earlier.

    Parameters
    ----------
    filtered : numpy.ndarray
        ``(4, sub, sub)`` low-passed sub-PSDs in corner order.

    Returns
    -------
    numpy.ndarray
        Float32 image of shape ``(2 sub - 1, 2 sub - 1)``.
    """
    n_corners, sub, sub_x = filtered.shape
    if n_corners != 4 or sub != sub_x:
        raise ValueError(f"expected four square sub-PSDs, got shape {filtered.shape}")
    summary = np.zeros((2 * sub - 1, 2 * sub - 1), dtype=np.float32)
    starts = (0, sub - 1)
    for k, (i, j) in enumerate((i, j) for i in (0, 1) for j in (0, 1)):
        y0, x0 = starts[j], starts[i]
        summary[y0 : y0 + sub, x0 : x0 + sub] = filtered[k]
    return summary


def write_psd_png(path: str | os.PathLike[str] | Location, summary: np.ndarray) -> None:
    """Write a PSD summary image as a greyscale PNG, whole or not at all (local or URL).

    Row 0 is drawn at the bottom, as MRC viewers show the ``.mrc`` twin, so both look alike.
    Grey levels span the finite values' range; NaN padding is drawn black.

    Parameters
    ----------
    path : path-like or Location
        Destination ``.png`` file.
    summary : numpy.ndarray
        Two-dimensional image (as returned by :func:`psd_summary`).
    """
    image = np.asarray(summary, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"write_psd_png expects a 2-D image, got shape {image.shape}")
    finite = np.isfinite(image)
    low, high = (image[finite].min(), image[finite].max()) if finite.any() else (0.0, 1.0)
    if not high > low:
        high = low + 1.0
    grey = np.where(finite, (image - low) / (high - low), 0.0)
    write_whole(location(path), grey_png(grey, compress_level=1), sync=False)  # derived
