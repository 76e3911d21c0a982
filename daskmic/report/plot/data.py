"""What the plots show, as plain arrays: pure functions, tested on their values.

Images keep the array's row order (row 0 first); the drawing functions show row 0 at the bottom
(``origin="lower"``), as MRC viewers do. Non-finite pixels (the NaN padding of PSD summaries and
thumbnail stacks) stay NaN and are drawn as background.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from daskmic.io.storage import Location, location
from daskmic.run.layout import OutputLayout
from daskmic.tilt.select import split

STATUSES = ("accepted", "discarded", "failed")
"""The tilt screen's classes, in drawing order."""

TILT_STATISTICS = ("tilt_mean_corr", "tilt_std_corr", "tilt_min_corr", "tilt_max_corr")
"""The per-micrograph statistics of the tilt screen."""

TableLike = pd.DataFrame | xr.Dataset | str | os.PathLike[str] | Location


def as_table(source: TableLike) -> pd.DataFrame:
    """One row per micrograph from a table, a tilt-analysis Dataset or an output folder.

    Parameters
    ----------
    source : pandas.DataFrame, xarray.Dataset or path-like
        A table; a Dataset whose per-micrograph variables become columns (computed); an output
        folder (its ``tilt.csv``, else its ``micrographs.csv``) or a CSV file.

    Returns
    -------
    pandas.DataFrame
        A copy, with a ``micrograph`` column.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, xr.Dataset):
        names = [n for n, v in source.data_vars.items() if v.dims == ("micrograph",)]
        table = source[names].compute().to_dataframe()
        keep = [c for c in table.columns if c in names or c == "pixel_size_A"]
        return table[keep].reset_index()
    path = location(source)
    if path.is_dir():
        layout = OutputLayout(path)
        path = layout.tilt_csv if layout.tilt_csv.exists() else layout.micrographs_csv
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(
            f"no table at {path}: give a DataFrame, a Dataset or an output folder"
        ) from None
    return pd.read_csv(io.BytesIO(text), keep_default_na=False, na_values=["", "NaN", "nan"])


def _finite_values(image: np.ndarray) -> np.ndarray:
    values = np.asarray(image, dtype=np.float64)
    return values[np.isfinite(values)]


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor × factor`` blocks, ignoring non-finite pixels.

    Trailing rows and columns that do not fill a whole block are dropped; a block with no
    finite pixel is NaN.

    Parameters
    ----------
    image : numpy.ndarray
        Two-dimensional image.
    factor : int
        Block edge in pixels, >= 1.

    Returns
    -------
    numpy.ndarray
        Float32 image of shape ``(ny // factor, nx // factor)``.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if not (isinstance(factor, int | np.integer) and factor >= 1):
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    ny, nx = image.shape[0] // factor, image.shape[1] // factor
    if ny == 0 or nx == 0:
        raise ValueError(f"factor={factor} is larger than the image {image.shape}")
    blocks = np.asarray(image[: ny * factor, : nx * factor], dtype=np.float64)
    blocks = blocks.reshape(ny, factor, nx, factor)
    finite = np.isfinite(blocks)
    sums = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    counts = finite.sum(axis=(1, 3))
    means = np.full((ny, nx), np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    return means.astype(np.float32)


def downsample_factor(shape: Sequence[int], max_px: int) -> int:
    """The smallest integer factor that brings the longer edge of ``shape`` to <= ``max_px``."""
    if not (isinstance(max_px, int | np.integer) and max_px >= 1):
        raise ValueError(f"max_px must be an integer >= 1, got {max_px!r}")
    return max(1, math.ceil(max(int(n) for n in shape) / max_px))


def contrast_limits(
    image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)
) -> tuple[float, float]:
    """Grey levels at the given percentiles of the finite pixels (``high > low`` always).

    Parameters
    ----------
    image : numpy.ndarray
        Any array.
    percentiles : tuple of float
        ``(low, high)`` with ``0 <= low < high <= 100``.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(v, v + 1)`` for a constant image, ``(0, 1)`` with no finite pixel.
    """
    low_pct, high_pct = (float(p) for p in percentiles)
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    values = _finite_values(image)
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, [low_pct, high_pct]))
    return (low, high) if high > low else (low, low + 1.0)


def thumbnail_data(
    image: np.ndarray, *, max_px: int = 256, percentiles: tuple[float, float] = (1.0, 99.0)
) -> np.ndarray:
    """Downsample an image by block averaging and clip its contrast to [0, 1].

    Parameters
    ----------
    image : numpy.ndarray or xarray.DataArray
        Two-dimensional image (row 0 first).
    max_px : int
        The longer edge of the result is at most this.
    percentiles : tuple of float
        Grey levels at these percentiles map to 0 and 1; darker and brighter pixels are clipped.

    Returns
    -------
    numpy.ndarray
        Float32 in [0, 1] (NaN where no pixel was finite), in the input's row order.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    small = block_mean(image, downsample_factor(image.shape, max_px))
    low, high = contrast_limits(small, percentiles)
    with np.errstate(invalid="ignore"):
        scaled = np.clip((small.astype(np.float64) - low) / (high - low), 0.0, 1.0)
    return scaled.astype(np.float32)


def montage_grid(n: int, columns: int | None = None) -> tuple[int, int]:
    """Rows and columns of a montage of ``n`` tiles (about square unless ``columns`` is given)."""
    if n < 1:
        raise ValueError(f"a montage needs at least one image, got {n}")
    if columns is None:
        columns = math.ceil(math.sqrt(n))
    if not (isinstance(columns, int | np.integer) and columns >= 1):
        raise ValueError(f"columns must be an integer >= 1, got {columns!r}")
    columns = min(int(columns), n)
    return math.ceil(n / columns), columns


def montage(
    images: Sequence[np.ndarray],
    *,
    columns: int | None = None,
    gap_px: int = 2,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tile images into one, each scaled to [0, 1] on its own, NaN between and around them.

    Tiles run in reading order as displayed with row 0 at the bottom: the first image is at the
    top left, i.e. in the *last* band of rows of the array. Each tile keeps its own orientation
    and sits in the bottom-left corner of a cell as large as the largest image.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        Two-dimensional images (e.g. PSD summaries).
    columns : int, optional
        Tiles per row (default: about square).
    gap_px : int
        NaN pixels between tiles, >= 0.
    percentiles : tuple of float
        Contrast clipping of each tile (see :func:`contrast_limits`).

    Returns
    -------
    image : numpy.ndarray
        Float32 montage.
    origins : list of tuple of int
        ``(row, col)`` of each tile's first pixel in the montage array.
    """
    arrays = [np.asarray(image) for image in images]
    if any(a.ndim != 2 for a in arrays):
        raise ValueError("every montage image must be 2-D")
    if not (isinstance(gap_px, int | np.integer) and gap_px >= 0):
        raise ValueError(f"gap_px must be an integer >= 0, got {gap_px!r}")
    rows, cols = montage_grid(len(arrays), columns)
    cell_y = max(a.shape[0] for a in arrays)
    cell_x = max(a.shape[1] for a in arrays)
    out = np.full(
        (rows * cell_y + (rows - 1) * gap_px, cols * cell_x + (cols - 1) * gap_px), np.nan
    )
    origins = []
    for k, array in enumerate(arrays):
        band = rows - 1 - k // cols
        y0, x0 = band * (cell_y + gap_px), (k % cols) * (cell_x + gap_px)
        low, high = contrast_limits(array, percentiles)
        with np.errstate(invalid="ignore"):
            tile = np.clip((array.astype(np.float64) - low) / (high - low), 0.0, 1.0)
        out[y0 : y0 + array.shape[0], x0 : x0 + array.shape[1]] = tile
        origins.append((y0, x0))
    return out.astype(np.float32), origins


def _statistic(table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table.columns:
        raise ValueError(f"the table has no column {column!r}; it has {list(table.columns)}")
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)


def classify(table: TableLike, mean_threshold: float, std_threshold: float) -> pd.DataFrame:
    """The table re-split with these thresholds (the rule of :func:`daskmic.select`)."""
    return split(as_table(table), mean_threshold, std_threshold)


def tilt_scatter_data(
    table: TableLike, mean_threshold: float, std_threshold: float
) -> dict[str, dict[str, Any]]:
    """Points of the tilt scatter per class, for these thresholds.

    Parameters
    ----------
    table : table-like
        Per-micrograph tilt statistics (see :func:`as_table`).
    mean_threshold, std_threshold : float
        Acceptance thresholds; the classes are recomputed with them, so the colours agree with
        the threshold lines.

    Returns
    -------
    dict
        For each of ``accepted``, ``discarded``, ``failed``: ``x`` (``tilt_mean_corr``), ``y``
        (``tilt_std_corr``) and ``micrograph`` arrays of the points with finite statistics, and
        ``count``, the number of micrographs in the class (failed ones usually have no point).
    """
    classified = classify(table, mean_threshold, std_threshold)
    x = _statistic(classified, "tilt_mean_corr")
    y = _statistic(classified, "tilt_std_corr")
    names = classified["micrograph"].astype(str).to_numpy()
    status = classified["status"].to_numpy()
    points = {}
    for name in STATUSES:
        member = status == name
        drawn = member & np.isfinite(x) & np.isfinite(y)
        points[name] = {
            "x": x[drawn],
            "y": y[drawn],
            "micrograph": names[drawn],
            "count": int(member.sum()),
        }
    return points


def histogram_data(
    table: TableLike, column: str, *, bins: int = 20
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Counts of one statistic per status, on bin edges shared by all statuses.

    Parameters
    ----------
    table : table-like
        Per-micrograph statistics with a ``status`` column (see :func:`as_table`).
    column : str
        The statistic.
    bins : int
        Number of equal bins spanning the finite values, >= 1.

    Returns
    -------
    edges : numpy.ndarray
        ``bins + 1`` edges (``[v - 0.5, v + 0.5]`` split evenly when all values equal ``v``).
    counts : dict of str to numpy.ndarray
        Per status present in the table (in :data:`STATUSES` order, then others; ``"all"``
        without a ``status`` column), the number of finite values in each bin; non-finite values
        are not counted.
    """
    if not (isinstance(bins, int | np.integer) and bins >= 1):
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    table = as_table(table)
    values = _statistic(table, column)
    finite = np.isfinite(values)
    if finite.any():
        low, high = float(values[finite].min()), float(values[finite].max())
    else:
        low, high = 0.0, 1.0
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, int(bins) + 1)
    if "status" not in table.columns:
        return edges, {"all": np.histogram(values[finite], bins=edges)[0]}
    status = table["status"].astype(str).to_numpy()
    found = set(status)
    order = [s for s in STATUSES if s in found] + sorted(found - set(STATUSES))
    counts = {
        name: np.histogram(values[finite & (status == name)], bins=edges)[0] for name in order
    }
    return edges, counts
