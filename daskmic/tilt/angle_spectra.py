"""Tile power spectra reduced to sector profiles on a k² grid: the data of the tilt estimator.

A micrograph is cut into ``T × T`` tiles overlapping by half (the grid centred on the image).
Each tile, tapered by a periodic Hann window, gives a periodogram; its half-plane pixels are
summed into ``n_sectors`` angular sectors over [0°, 180°) (Friedel symmetry) and into bins of
the squared spatial frequency ``s = k²`` (1/Å²), which makes the Thon rings periodic (period
``1/(λ Δf)`` in ``s``) and gives every bin the same number of pixels. The result, one
profile per tile and sector, is all the CTF fitting needs; no 2-D spectrum is kept.

The pixels within one frequency sample of either axis (``|k_x|`` or ``|k_y| ≤ 1/(T p)``) are
left out. The detector's line-wise errors live there: a gain reference that no longer matches
multiplies every row (or column) by its own factor ``1 + ε``, whose spectrum is a line on the
``k_y`` (``k_x``) axis, spread by the Hann taper to the next sample on each side (its
transform has taps ½ and -¼, a quarter of the power next door). With ``N`` counts per pixel
the line's periodogram is ``T³ (εN)²`` against the Poisson ``T² N`` of a pixel beside it:
``T ε² N`` ≈ 3 at ``T`` = 512, 1 % and 60 counts. And it is the same in every tile of a row
of tiles: its random profile along the axis (the periodogram of the row factors) puts the
same false rings in one sector of all those tiles, whose defocus readings then err together
(an untilted 2048 × 2883 frame with 1–3 % row stripes read one row of tiles 40 Å off the
others, 0.63°; 0.28° without the axes). The specimen loses 2–3 pixels of each ring in the
sectors that hold the axes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
import scipy.fft
import scipy.sparse

_T = TypeVar("_T")
_R = TypeVar("_R")


def threaded_map(function: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    """``[function(item) for item in items]`` on up to ``workers`` threads, in order.

    Threads, not processes: the work is numpy's and scipy's, which release the GIL, and an
    estimate may run inside a dask worker or a notebook, where forking is unsafe. With
    ``workers`` = 1 (or one item) it is the plain loop; an item's exception is re-raised.
    """
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(function, items))


@dataclass(frozen=True)
class SectorProfiles:
    """Mean tile power per (tile, sector, s-bin).

    Attributes
    ----------
    power : numpy.ndarray
        ``(n_tiles, n_sectors, n_bins)`` float32 mean periodogram values; a bin that holds no
        pixel of its sector is interpolated from its neighbours along ``s``.
    s_invA2 : numpy.ndarray
        Centre of each bin in ``s = k²`` (1/Å²), uniformly spaced.
    sector_angle_rad : numpy.ndarray
        Centre angle of each sector, counter-clockwise from +x, in [0, π).
    centers_A : numpy.ndarray
        ``(n_tiles, 2)`` tile centres ``(x_A, y_A)`` relative to the image centre.
    mean_counts : numpy.ndarray
        ``(n_tiles,)`` Hann-weighted mean pixel value of each tile (its spectrum's zero
        frequency), float64.
    grid_shape : tuple of int
        Tiles along y and x (tile ``i`` is at row ``i // nx``, column ``i % nx``).
    tile_px : int
        Tile size in pixels.
    pixel_size_A : float
        Pixel size of the micrograph.
    """

    power: np.ndarray
    s_invA2: np.ndarray
    sector_angle_rad: np.ndarray
    centers_A: np.ndarray
    mean_counts: np.ndarray
    grid_shape: tuple[int, int]
    tile_px: int
    pixel_size_A: float


def tile_origins(length: int, tile_px: int) -> np.ndarray:
    """Start indices of half-overlapping tiles centred along an axis of ``length`` pixels."""
    step = tile_px // 2
    count = (length - tile_px) // step + 1
    if count < 1:
        raise ValueError(f"an axis of {length} px is shorter than the tile size {tile_px} px")
    offset = (length - (tile_px + (count - 1) * step)) // 2
    return offset + step * np.arange(count)


def _fill_matrix(counts: np.ndarray) -> scipy.sparse.csr_matrix:
    """Linear map replacing each empty bin of a sector by interpolation between its neighbours."""
    n_sectors, n_bins = counts.shape
    rows, cols, vals = [], [], []
    for sector in range(n_sectors):
        full = np.flatnonzero(counts[sector] > 0)
        base = sector * n_bins
        if len(full) == 0:
            continue
        for b in range(n_bins):
            right = int(np.searchsorted(full, b))
            if right < len(full) and full[right] == b:
                rows.append(base + b)
                cols.append(base + b)
                vals.append(1.0)
                continue
            lo = full[max(right - 1, 0)]
            hi = full[min(right, len(full) - 1)]
            frac = 0.0 if hi == lo else (b - lo) / (hi - lo)
            rows += [base + b, base + b]
            cols += [base + lo, base + hi]
            vals += [1.0 - frac, frac]
    size = n_sectors * n_bins
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(size, size))


@lru_cache(maxsize=16)
def _binning(
    tile_px: int, pixel_size_A: float, s_edges: tuple[float, ...], n_sectors: int
) -> tuple[int, np.ndarray, scipy.sparse.csr_matrix]:
    """The rfft2 columns needed, their pixels inside the bins, and the map pixels → bin means.

    Only the columns ``k_x ≤ √s_max`` hold pixels of the bins: the first count is how many
    of the half-plane's columns to transform along ``k_y``; the pixels are flat indices into
    ``(tile_px, that count)``.
    """
    edges = np.asarray(s_edges)
    ky = np.fft.fftfreq(tile_px, d=pixel_size_A)[:, None]
    kx = np.fft.rfftfreq(tile_px, d=pixel_size_A)[None, :]
    s = ky * ky + kx * kx
    angle = np.mod(np.arctan2(ky, kx), np.pi)
    sector = np.minimum((angle / np.pi * n_sectors).astype(np.int64), n_sectors - 1)
    s_bin = np.searchsorted(edges, s, side="right") - 1
    n_bins = len(edges) - 1
    sample = 1.0 / (tile_px * pixel_size_A)
    axes = (np.abs(ky) < 1.5 * sample) | (kx < 1.5 * sample)  # detector lines (module notes)
    used = (s_bin >= 0) & (s_bin < n_bins) & ~axes
    columns = int(np.flatnonzero(used.any(axis=0)).max(initial=0)) + 1
    used, sector, s_bin = used[:, :columns], sector[:, :columns], s_bin[:, :columns]
    inside = np.flatnonzero(used)
    flat = sector.ravel()[inside] * n_bins + s_bin.ravel()[inside]
    counts = np.bincount(flat, minlength=n_sectors * n_bins).astype(np.float64)
    mean = scipy.sparse.csr_matrix(
        (1.0 / counts[flat], (flat, np.arange(len(inside)))),
        shape=(n_sectors * n_bins, len(inside)),
    )
    operator = (_fill_matrix(counts.reshape(n_sectors, n_bins)) @ mean).tocsr()
    return columns, inside, operator.astype(np.float32)


def sector_profiles(
    image: np.ndarray,
    pixel_size_A: float,
    *,
    tile_px: int,
    s_edges: np.ndarray,
    n_sectors: int,
    batch: int = 4,
    workers: int = 1,
) -> SectorProfiles:
    """Tile periodograms of ``image`` reduced to sector profiles (see the module notes).

    Parameters
    ----------
    image : numpy.ndarray
        2-D micrograph.
    pixel_size_A : float
        Pixel size in ångström.
    tile_px : int
        Tile size (even).
    s_edges : numpy.ndarray
        Increasing, uniformly spaced edges of the ``s = k²`` bins (1/Å²).
    n_sectors : int
        Number of angular sectors over [0, 180°).
    batch : int
        Tiles transformed at once per thread. Few: four 512² tiles and their transforms
        stay in the CPU's cache between the steps (16 took 1.5 × the time of 4 on a
        K3 frame).
    workers : int
        Threads that transform batches of tiles at once (numpy and the FFTs release the
        GIL). Give each estimate the cores it may use alone: 1 when as many micrographs
        are estimated at once as there are cores (a dask worker's threads), else
        cores / concurrent estimates. The profiles do not depend on it, bit for bit.

    Returns
    -------
    SectorProfiles
        The reduced spectra and the geometry of the tiles.
    """
    ny, nx = image.shape
    ys, xs = tile_origins(ny, tile_px), tile_origins(nx, tile_px)
    origins = np.array([(y, x) for y in ys for x in xs])
    binning = _binning(tile_px, float(pixel_size_A), tuple(s_edges), n_sectors)
    operator = binning[2]
    # periodic Hann: its transform is zero beyond one frequency sample, so the tile mean only
    # reaches |k| <= 1 sample (below every fitted band) and need not be subtracted
    hann = np.hanning(tile_px + 1)[:-1].astype(np.float32)
    taper = hann[:, None] * hann[None, :]
    taper_sum = float(taper.sum(dtype=np.float64))
    pixels = np.asarray(image, dtype=np.float32)
    offset = np.float32(pixels.mean(dtype=np.float64))  # taken off each tile: accurate FFTs
    means = np.empty(len(origins))
    power = np.empty((operator.shape[0], len(origins)), dtype=np.float32)
    chunks = [slice(start, start + batch) for start in range(0, len(origins), batch)]

    def transform(chunk: slice) -> None:
        zero, power[:, chunk] = _batch_profiles(pixels, offset, origins[chunk], taper, binning)
        means[chunk] = offset + zero / taper_sum

    threaded_map(transform, chunks, workers)  # disjoint columns of the outputs
    centers_px = origins + (tile_px - 1) / 2 - (np.array([ny, nx]) - 1) / 2
    return SectorProfiles(  # tile-major in memory: the fits read and group tiles
        power=np.ascontiguousarray(power.T).reshape(len(origins), n_sectors, len(s_edges) - 1),
        s_invA2=0.5 * (s_edges[1:] + s_edges[:-1]),
        sector_angle_rad=(np.arange(n_sectors) + 0.5) * np.pi / n_sectors,
        centers_A=centers_px[:, ::-1] * pixel_size_A,
        mean_counts=means,
        grid_shape=(len(ys), len(xs)),
        tile_px=tile_px,
        pixel_size_A=float(pixel_size_A),
    )


def _batch_profiles(
    pixels: np.ndarray,
    offset: np.float32,
    origins: np.ndarray,
    taper: np.ndarray,
    binning: tuple[int, np.ndarray, scipy.sparse.csr_matrix],
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-frequency terms and ``(bins, tiles)`` sector profiles of the tiles at ``origins``.

    The 2-D transform is a real one along ``x``, then a complex one along ``y`` of the
    columns that hold binned pixels only: ``rfft2``'s numbers, which transforms every
    column along ``y`` on its own.
    """
    columns, inside, operator = binning
    tile_px = len(taper)
    tiles = np.empty((len(origins), tile_px, tile_px), dtype=np.float32)
    for j, (y, x) in enumerate(origins):
        np.subtract(pixels[y : y + tile_px, x : x + tile_px], offset, out=tiles[j])
        tiles[j] *= taper
    half = scipy.fft.rfft(tiles, axis=2, workers=1)
    spectra = scipy.fft.fft(half[:, :, :columns], axis=1, workers=1, overwrite_x=True)
    zero = spectra[:, 0, 0].real.copy()
    squares = spectra.view(np.float32)  # (re, im) pairs
    np.square(squares, out=squares)
    magnitude = (squares[..., 0::2] + squares[..., 1::2]).reshape(len(origins), -1)[:, inside]
    return zero, operator @ magnitude.T
