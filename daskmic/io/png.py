"""Grey images as PNG files: one encoder for the PSD summaries and the report's thumbnails."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def grey_png(image: np.ndarray, *, compress_level: int = 6) -> bytes:
    """Encode a grey image scaled to [0, 1] as an 8-bit PNG, row 0 at the bottom.

    Row 0 is drawn at the bottom, as MRC viewers show micrographs. Values outside [0, 1] are
    clipped. An image with NaN pixels gets an alpha channel in which they are transparent;
    otherwise the PNG is plain 8-bit grey.

    Parameters
    ----------
    image : numpy.ndarray
        Two-dimensional image, values in [0, 1].
    compress_level : int
        zlib level 0-9 (1 writes a 4096² PSD summary about 0.1 s faster than 6, ~10 % larger).

    Returns
    -------
    bytes
        The PNG file.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    flipped = image[::-1]
    finite = np.isfinite(flipped)
    grey = np.rint(np.clip(np.where(finite, flipped, 0.0), 0.0, 1.0) * 255).astype(np.uint8)
    if finite.all():
        picture = Image.fromarray(grey, mode="L")
    else:
        alpha = np.where(finite, 255, 0).astype(np.uint8)
        picture = Image.fromarray(np.dstack([grey, alpha]), mode="LA")
    buffer = io.BytesIO()
    picture.save(buffer, format="png", compress_level=compress_level)
    return buffer.getvalue()
