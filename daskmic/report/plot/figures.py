"""Matplotlib figures of micrographs, PSD summaries and tilt statistics.

Every function draws what :mod:`daskmic.report.plot.data` prepares. Figures are built with
``matplotlib.figure.Figure`` (no pyplot state, safe in threads and on servers); in Jupyter they
show as the cell's value. Pass ``ax=`` to draw into axes of your own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from daskmic.report.plot.data import (
    STATUSES,
    TILT_STATISTICS,
    TableLike,
    as_table,
    histogram_data,
    montage,
    thumbnail_data,
    tilt_scatter_data,
)

STATUS_COLOURS = {
    "accepted": "#1b9e4b",
    "discarded": "#e08a00",
    "failed": "#c62828",
    "done": "#3465a4",
    "all": "#3465a4",
}
"""Colour of each status, shared by the plots and the HTML report."""

_LABELS = {
    "tilt_mean_corr": "mean of the ten correlations",
    "tilt_std_corr": "std of the ten correlations",
    "tilt_min_corr": "lowest correlation",
    "tilt_max_corr": "highest correlation",
}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _extent(image: Any) -> tuple[float, float, float, float] | None:
    """Physical extent (Å) of a DataArray with ``x``/``y`` coordinates, else None."""
    if not isinstance(image, xr.DataArray) or not {"x", "y"} <= set(image.coords):
        return None
    x, y = (np.asarray(image[c].values, dtype=np.float64) for c in ("x", "y"))
    if x.size < 2 or y.size < 2:
        return None
    dx, dy = (x[-1] - x[0]) / (x.size - 1), (y[-1] - y[0]) / (y.size - 1)
    return x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2


def show_image(
    image: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    max_px: int = 512,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> Axes:
    """Draw a micrograph thumbnail: downsampled, contrast-clipped, row 0 at the bottom.

    Parameters
    ----------
    image : numpy.ndarray or xarray.DataArray
        Two-dimensional image. A DataArray with ``x``/``y`` coordinates (Å) is drawn on them.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Axes title.
    max_px, percentiles
        See :func:`daskmic.report.plot.thumbnail_data`.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into (``ax.figure`` is the figure).
    """
    ax = _axes(ax, (4.0, 4.0))
    extent = _extent(image)
    data = thumbnail_data(np.asarray(image), max_px=max_px, percentiles=percentiles)
    ax.imshow(
        data,
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        origin="lower",
        interpolation="nearest",
        extent=extent,
    )
    if extent is None:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
    if title is not None:
        ax.set_title(title)
    return ax


def before_after(
    before: Any,
    after: Any,
    *,
    titles: tuple[str, str] = ("before", "after"),
    max_px: int = 512,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> Figure:
    """Two thumbnails side by side, e.g. a raw micrograph and its preprocessed result.

    Parameters
    ----------
    before, after : numpy.ndarray or xarray.DataArray
        Two-dimensional images (DataArrays are drawn on their Å coordinates).
    titles : tuple of str
        Titles of the two panels.
    max_px, percentiles
        See :func:`daskmic.report.plot.thumbnail_data`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with its two axes in ``fig.axes``.
    """
    fig = Figure(figsize=(9.0, 4.5), layout="constrained")
    for image, title, ax in zip((before, after), titles, fig.subplots(1, 2), strict=True):
        show_image(image, ax=ax, title=title, max_px=max_px, percentiles=percentiles)
    return fig


def psd_montage(
    summaries: Any,
    *,
    names: Sequence[str] | None = None,
    columns: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draw PSD summary images in a grid, each with its own contrast, labelled by name.

    Parameters
    ----------
    summaries : sequence of 2-D arrays, 3-D array or xarray.DataArray
        One image per micrograph (e.g. ``tilt_analysis(...)["psd_summary"]``, whose
        ``micrograph`` coordinate gives the names).
    names : sequence of str, optional
        Labels of the tiles.
    columns : int, optional
        Tiles per row (default: about square).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into.
    """
    if names is None and isinstance(summaries, xr.DataArray) and "micrograph" in summaries.coords:
        names = [str(n) for n in summaries["micrograph"].values]
    images = [
        np.asarray(s) for s in (np.asarray(summaries) if hasattr(summaries, "ndim") else summaries)
    ]
    image, origins = montage(images, columns=columns)
    n_cols = len({x0 for _, x0 in origins})
    ax = _axes(ax, (2.2 * n_cols + 0.4, 2.2 * (len(origins) // n_cols + 1)))
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for label, (y0, x0), tile in zip(names or [], origins, images, strict=False):
        ax.text(
            x0 + 1,
            y0 + tile.shape[0] - 2,
            str(label),
            color="white",
            fontsize=8,
            va="top",
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0, "linewidth": 0},
        )
    return ax


def _thresholds(
    source: TableLike, mean_threshold: float | None, std_threshold: float | None
) -> tuple[float, float]:
    """Thresholds given, else those of a tilt-analysis Dataset or of an output folder's run."""
    if mean_threshold is not None and std_threshold is not None:
        return float(mean_threshold), float(std_threshold)
    found: dict[str, Any] = {}
    if isinstance(source, xr.Dataset):
        found = {k[len("tilt_") :]: v for k, v in source.attrs.items() if k.startswith("tilt_")}
    elif isinstance(source, str | Path) and Path(source, ".daskmic", "parameters.json").exists():
        stored = json.loads(Path(source, ".daskmic", "parameters.json").read_text())
        found = stored["parameters"].get("tilt") or {}
    if "mean_threshold" not in found and mean_threshold is None:
        raise ValueError("give mean_threshold and std_threshold (the table does not carry them)")
    mean = found["mean_threshold"] if mean_threshold is None else mean_threshold
    std = found["std_threshold"] if std_threshold is None else std_threshold
    return float(mean), float(std)


def tilt_scatter(
    table: TableLike,
    *,
    mean_threshold: float | None = None,
    std_threshold: float | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Scatter ``tilt_std_corr`` against ``tilt_mean_corr`` with the threshold lines.

    Points are coloured by the class these thresholds give (accepted: right of the vertical line
    and below the horizontal one); the legend counts each class, failed micrographs included
    (they have no statistics, so usually no point).

    Parameters
    ----------
    table : table-like
        A tilt-analysis Dataset, an output folder or a table (see
        :func:`daskmic.report.plot.as_table`).
    mean_threshold, std_threshold : float, optional
        Thresholds to draw and classify with (default: the Dataset's or the folder's run's).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into.
    """
    mean_threshold, std_threshold = _thresholds(table, mean_threshold, std_threshold)
    points = tilt_scatter_data(table, mean_threshold, std_threshold)
    ax = _axes(ax, (6.0, 4.5))
    for status in STATUSES:
        p = points[status]
        ax.scatter(
            p["x"],
            p["y"],
            s=28,
            color=STATUS_COLOURS[status],
            edgecolors="black",
            linewidths=0.4,
            label=f"{status} ({p['count']})",
        )
    ax.axvline(mean_threshold, color="0.2", linestyle="--", linewidth=1.0)
    ax.axhline(std_threshold, color="0.2", linestyle=":", linewidth=1.0)
    ax.set_xlabel(f"tilt_mean_corr ({_LABELS['tilt_mean_corr']}); threshold {mean_threshold:g}")
    ax.set_ylabel(f"tilt_std_corr; threshold {std_threshold:g}")
    ax.set_title("tilt screen: accepted iff mean > T_mean and std < T_std")
    ax.legend(loc="best", fontsize=8)
    return ax


def statistic_histograms(
    table: TableLike,
    *,
    columns: Sequence[str] | None = None,
    bins: int = 20,
    mean_threshold: float | None = None,
    std_threshold: float | None = None,
) -> Figure:
    """One histogram per statistic, stacked by status, with the thresholds where they apply.

    Parameters
    ----------
    table : table-like
        Per-micrograph statistics (see :func:`daskmic.report.plot.as_table`).
    columns : sequence of str, optional
        Statistics to draw (default: the tilt statistics the table has).
    bins : int
        Bins per histogram.
    mean_threshold, std_threshold : float, optional
        Drawn on the ``tilt_mean_corr`` / ``tilt_std_corr`` panels (default: the Dataset's or
        the folder's run's, when known).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per statistic in ``fig.axes``.
    """
    frame = as_table(table)
    if columns is None:
        columns = [c for c in TILT_STATISTICS if c in frame.columns]
    if not columns:
        raise ValueError("no statistics to draw: give columns= or a table with tilt statistics")
    try:
        lines = dict(
            zip(
                ("tilt_mean_corr", "tilt_std_corr"),
                _thresholds(table, mean_threshold, std_threshold),
                strict=True,
            )
        )
    except ValueError:
        lines = {}
    n_cols = min(len(columns), 2)
    n_rows = -(-len(columns) // n_cols)
    fig = Figure(figsize=(4.5 * n_cols, 3.0 * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    for ax, column in zip(axes, columns, strict=False):
        edges, counts = histogram_data(frame, column, bins=bins)
        base = np.zeros(len(edges) - 1)
        for status, values in counts.items():
            ax.stairs(
                base + values,
                edges,
                baseline=base,
                fill=True,
                label=status,
                color=STATUS_COLOURS.get(status, "0.5"),
            )
            base = base + values
        if column in lines:
            ax.axvline(lines[column], color="0.2", linestyle="--", linewidth=1.0)
        ax.set_xlabel(column)
        ax.set_ylabel("micrographs")
        ax.set_title(_LABELS.get(column, column), fontsize=10)
    for ax in axes[len(columns) :]:
        fig.delaxes(ax)
    axes[0].legend(fontsize=8)
    return fig
