"""Small previews of micrographs: block-average, then Fourier-resample to size; 8-bit storage."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np


def _block_mean(image: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """Mean over ``factors``-sized blocks of the centred part that they tile exactly."""
    (ny, nx), (fy, fx) = image.shape, factors
    my, mx = ny // fy, nx // fx
    y0, x0 = (ny - my * fy) // 2, (nx - mx * fx) // 2
    tiled = image[y0 : y0 + my * fy, x0 : x0 + mx * fx]
    return tiled.reshape(my, fy, mx, fx).mean(axis=(1, 3))


def _taps(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``m`` output frequencies takes its value from ``n`` input ones, one axis.

    The kept band is the ``min(n, m)`` frequencies centred on zero (for an even band, one more
    negative than positive: ``-keep/2`` is kept, ``+keep/2`` is not). Per output bin ``d``
    (unshifted order), the signed input frequency that lands there, and the one that lands on
    ``-d`` negated; ``n + m`` (never an input frequency) where none does. The real part of
    the complex resize is the mean of the two, which is what makes the spectrum Hermitian.
    """
    keep = min(n, m)
    low, high = -(keep // 2), keep - keep // 2 - 1
    bins = np.arange(m)
    signed = np.where(bins <= high, bins, bins - m)  # the kept frequency at each bin, if any
    direct = np.where((signed >= low) & (signed <= high), signed, n + m)
    mirrored = direct[(-bins) % m]
    return direct, np.where(mirrored == n + m, n + m, -mirrored)


@dataclass(frozen=True)
class _Gather:
    """Where the full spectrum at signed frequencies ``freq_y`` x ``freq_x`` (0 outside) is
    read from the half spectrum of a real image (``rfft2``; negative x from its conjugate
    symmetry): index arrays that depend only on the shapes."""

    positive: tuple[np.ndarray, ...]
    negative: tuple[np.ndarray, ...]
    from_positive: np.ndarray
    valid: np.ndarray

    @classmethod
    def plan(
        cls, half_shape: tuple[int, int], n_x: int, freq_y: np.ndarray, freq_x: np.ndarray
    ) -> _Gather:
        n_y = half_shape[0]
        valid = np.outer(np.abs(freq_y) < n_y, np.abs(freq_x) < n_x)
        rows_pos, rows_neg = np.mod(freq_y, n_y), np.mod(-freq_y, n_y)
        cols = np.minimum(np.abs(freq_x), half_shape[1] - 1)
        return cls(np.ix_(rows_pos, cols), np.ix_(rows_neg, cols), freq_x >= 0, valid)

    def __call__(self, half: np.ndarray) -> np.ndarray:
        values = np.where(self.from_positive, half[self.positive], np.conj(half[self.negative]))
        return np.where(self.valid, values, 0)


@dataclass(frozen=True)
class _ResizePlan:
    """What :func:`fourier_resize` computes from the shapes alone (made once per pair)."""

    up_y: int
    down_y: int
    columns: int
    rows: np.ndarray
    cols: np.ndarray
    row_gathers: tuple[_Gather, _Gather]
    col_gathers: tuple[_Gather, _Gather]

    @classmethod
    @functools.lru_cache(maxsize=16)
    def of(cls, source: tuple[int, int], target: tuple[int, int]) -> _ResizePlan:
        (n_y, n_x), (m_y, m_x) = source, target
        half_shape = (n_y, n_x // 2 + 1)
        direct_y, mirrored_y = _taps(n_y, m_y)
        direct_x, mirrored_x = (taps[: m_x // 2 + 1] for taps in _taps(n_x, m_x))
        keep_y, keep_x = min(n_y, m_y), min(n_x, m_x)
        rows = np.flatnonzero(direct_y != mirrored_y)
        cols = np.flatnonzero(direct_x != mirrored_x)
        return cls(
            up_y=keep_y - keep_y // 2,  # rows of frequencies >= 0 and < 0
            down_y=keep_y // 2,
            columns=min(keep_x - keep_x // 2, m_x // 2 + 1),
            rows=rows,
            cols=cols,
            row_gathers=(
                _Gather.plan(half_shape, n_x, direct_y[rows], direct_x),
                _Gather.plan(half_shape, n_x, mirrored_y[rows], mirrored_x),
            ),
            col_gathers=(
                _Gather.plan(half_shape, n_x, direct_y, direct_x[cols]),
                _Gather.plan(half_shape, n_x, mirrored_y, mirrored_x[cols]),
            ),
        )


def fourier_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D float64 image to ``shape`` by cropping or zero-padding its spectrum.

    The zero frequency is kept in place and the result is scaled so the mean is preserved;
    a band-limited image is resampled exactly. It is the real part of cropping or padding the
    centred complex spectrum (``fft2``, ``ifft2``), computed with real transforms: an even
    band's unpaired frequency ``-keep/2`` is shared between the output's ``±keep/2`` bins.
    """
    if image.shape == tuple(shape):
        return image
    (n_y, n_x), (m_y, m_x) = image.shape, shape
    import scipy.fft  # here: the manifest reads and writes thumbnails without transforms

    plan = _ResizePlan.of((n_y, n_x), (m_y, m_x))
    half = scipy.fft.rfft2(image)
    # Where both taps agree, the sum is twice the cropped or padded half spectrum ...
    spectrum = np.zeros((m_y, m_x // 2 + 1), dtype=complex)
    up_y, down_y, columns = plan.up_y, plan.down_y, plan.columns
    spectrum[:up_y, :columns] = 2 * half[:up_y, :columns]
    if down_y:
        spectrum[m_y - down_y :, :columns] = 2 * half[n_y - down_y :, :columns]
    # ... and the few rows and columns at an even band's edge take both.
    direct, mirrored = plan.row_gathers
    spectrum[plan.rows] = direct(half) + mirrored(half)
    direct, mirrored = plan.col_gathers
    spectrum[:, plan.cols] = direct(half) + mirrored(half)
    scale = (m_y * m_x) / (n_y * n_x)
    return scipy.fft.irfft2(spectrum, s=(m_y, m_x)) * (scale / 2)


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
    finite_mask = np.isfinite(image)
    all_finite = bool(finite_mask.all())
    finite = image.ravel() if all_finite else image[finite_mask]
    if finite.size == 0:
        return np.zeros(image.shape, THUMBNAIL_DTYPE), float("nan"), float("nan")
    low, high = percentiles(finite, THUMBNAIL_RANGE_PCT)
    if not high > low:
        high = low + 1.0
    scaled = image - low  # the passes below work in place
    scaled /= high - low
    if not all_finite:
        scaled[np.isnan(scaled)] = 0.0  # infinities are clipped like the values beyond
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= THUMBNAIL_LEVELS
    return np.rint(scaled, out=scaled).astype(THUMBNAIL_DTYPE), low, high


def percentiles(values: np.ndarray, percents: tuple[float, ...]) -> tuple[float, ...]:
    """``np.percentile(values, percents)`` (its default 'linear' method, the same floats)
    from one selection per percent of the 1-D ``values``.

    For ``n`` values, percent ``q`` lies at the virtual index ``(n - 1) * q / 100`` between
    two order statistics, interpolated as numpy does (from the nearer end past halfway). Each
    pair is one ``np.partition`` with a single index (numpy's vectorised selection: one with
    several indices takes a slower path, about 15 times slower on a 256² thumbnail) and the
    minimum of what lies above it.
    """
    n = values.size
    virtual = [(n - 1) * (q / 100) for q in percents]
    below = [min(int(np.floor(v)), n - 1) for v in virtual]
    order: dict[int, float] = {}
    for b in sorted(set(below)):
        parted = np.partition(values, b)
        order[b] = float(parted[b])
        order[b + 1] = float(parted[b + 1 :].min()) if b + 1 < n else order[b]
    found = []
    for v, b in zip(virtual, below, strict=True):
        a, c, t = order[b], order[b + 1], v - np.floor(v)
        found.append(c - (c - a) * (1 - t) if t >= 0.5 else a + (c - a) * t)
    return tuple(found)


def decode_thumbnails(levels: Any, low: Any, high: Any) -> Any:
    """Grey values of stored thumbnails: ``low + levels * (high - low) / 255``, in float64.

    Plain arithmetic, so numpy arrays (``low``/``high`` shaped to broadcast, e.g.
    ``low[:, None, None]``), scalars and lazy xarray objects (aligned by dimension) all work;
    a thumbnail whose ``low`` is NaN (none stored) comes back all NaN.
    """
    return low + levels * ((high - low) / THUMBNAIL_LEVELS)
