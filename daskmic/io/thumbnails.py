"""Small previews of micrographs: block-average, then Fourier-resample to size; 8-bit storage."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft


def _block_mean(image: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """Mean over ``factors``-sized blocks of the centred part that they tile exactly."""
    (ny, nx), (fy, fx) = image.shape, factors
    my, mx = ny // fy, nx // fx
    y0, x0 = (ny - my * fy) // 2, (nx - mx * fx) // 2
    tiled = image[y0 : y0 + my * fy, x0 : x0 + mx * fx]
    return tiled.reshape(my, fy, mx, fx).mean(axis=(1, 3))


def fourier_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D float64 image to ``shape`` by cropping or zero-padding its spectrum.

    The zero frequency is kept in place and the result is scaled so the mean is preserved;
    a band-limited image is resampled exactly.
    """
    if image.shape == tuple(shape):
        return image
    spectrum = scipy.fft.fftshift(scipy.fft.fft2(image))
    out = np.zeros(shape, dtype=complex)
    src, dst = [], []
    for n, m in zip(image.shape, shape, strict=True):
        keep = min(n, m)
        src.append(slice(n // 2 - keep // 2, n // 2 - keep // 2 + keep))
        dst.append(slice(m // 2 - keep // 2, m // 2 - keep // 2 + keep))
    out[tuple(dst)] = spectrum[tuple(src)]
    scale = (shape[0] * shape[1]) / (image.shape[0] * image.shape[1])
    return scipy.fft.ifft2(scipy.fft.ifftshift(out)).real * scale


def make_thumbnail(image: np.ndarray, size: int = 256) -> np.ndarray:
    """A ``size`` x ``size`` float32 preview of one micrograph.

    The image is averaged over integer blocks (``ny // size`` by ``nx // size``) in float64,
    then Fourier-resampled to exactly ``size`` x ``size``; a non-square micrograph is squeezed
    to a square. An image whose sides are multiples of ``size`` gives exactly the block means.

    Parameters
    ----------
    image : numpy.ndarray
        One 2-D micrograph, any real dtype (float16 included).
    size : int, optional
        Side of the thumbnail in pixels, >= 1.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float32.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be an integer >= 1 (pixels), got {size!r}")
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {image.shape}")
    factors = (max(1, image.shape[0] // size), max(1, image.shape[1] // size))
    return fourier_resize(_block_mean(image, factors), (size, size)).astype(np.float32)


THUMBNAIL_DTYPE = np.dtype(np.uint8)
"""How thumbnails are stored: 8-bit grey levels with a per-thumbnail intensity mapping."""
THUMBNAIL_RANGE_PCT = (0.1, 99.9)
"""The grey levels 0 and 255 are these percentiles of a thumbnail; beyond them it is clipped.

Wider than any contrast the report draws with (1–99 % and 0.5–99.5 %), so a stored thumbnail
looks like the float one within about one grey level of an 8-bit image.
"""
THUMBNAIL_LEVELS = int(np.iinfo(THUMBNAIL_DTYPE).max)
"""The highest stored level (the grey value ``high``)."""


def encode_thumbnail(thumbnail: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A float thumbnail as 8-bit grey levels and the mapping that gives them back.

    Parameters
    ----------
    thumbnail : numpy.ndarray
        A 2-D float image (:func:`make_thumbnail`).

    Returns
    -------
    levels : numpy.ndarray
        uint8, same shape: ``round((x - low) / (high - low) * 255)``, clipped to 0–255.
    low, high : float
        The grey values of levels 0 and 255 (:data:`THUMBNAIL_RANGE_PCT` of the finite
        pixels; ``high > low``); NaN when no pixel is finite.
    """
    image = np.asarray(thumbnail, dtype=np.float64)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, THUMBNAIL_DTYPE), float("nan"), float("nan")
    low, high = (float(v) for v in np.percentile(finite, THUMBNAIL_RANGE_PCT))
    if not high > low:
        high = low + 1.0
    with np.errstate(invalid="ignore"):
        scaled = np.nan_to_num((image - low) / (high - low), nan=0.0)
    levels = np.rint(np.clip(scaled, 0.0, 1.0) * THUMBNAIL_LEVELS).astype(THUMBNAIL_DTYPE)
    return levels, low, high


def decode_thumbnails(levels: Any, low: Any, high: Any) -> Any:
    """Grey values of stored thumbnails: ``low + levels * (high - low) / 255``, in float64.

    Plain arithmetic, so numpy arrays (``low``/``high`` shaped to broadcast, e.g.
    ``low[:, None, None]``), scalars and lazy xarray objects (aligned by dimension) all work;
    a thumbnail whose ``low`` is NaN (none stored) comes back all NaN.
    """
    return low + levels * ((high - low) / THUMBNAIL_LEVELS)
