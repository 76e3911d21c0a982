"""The QC report: one self-contained HTML page in an output folder (``OUT/report.html``).

It holds the counts, the parameters used, the plots, a sortable table of every micrograph with
its statistics and status, and thumbnails and PSD summary images of the failed and discarded
micrographs and of a sample of the others. Images are embedded as PNG data URIs and the style
and the few lines of script are inline: the page opens from disk with no server and no network
(its Content-Security-Policy forbids any fetch). It works for preprocess-only, tilt-only and
combined output folders.
"""

from __future__ import annotations

import html
import json
import math
import os
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from daskmic import __version__
from daskmic.errors import UsageError
from daskmic.io import open_results, read_micrograph
from daskmic.io.png import grey_png
from daskmic.io.storage import Location, StorageOptions, location, write_whole
from daskmic.report.plot.data import TILT_STATISTICS, as_table, thumbnail_data
from daskmic.report.plot.figures import statistic_histograms, tilt_scatter
from daskmic.report.plot.png import data_uri, figure_png
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest
from daskmic.tilt.angle_plot import plot_local_defocus
from daskmic.tilt.defocus_map import load_defocus_map, result_from_map

TABLE_COLUMNS = (
    "micrograph",
    "status",
    *TILT_STATISTICS,
    "window_size_px",
    "band_limit_A",
    "pixel_size_A",
    "output_pixel_size_A",
    "output_ny",
    "output_nx",
    "crop_px",
    "error",
)
"""Columns of the report's table, when the run has them."""


@dataclass
class OutputFolder:
    """What the report shows of one output folder.

    Parameters
    ----------
    out_dir : Location
        The folder (local, or a URL carrying its storage options).
    table : pandas.DataFrame
        One row per micrograph (``micrographs.csv``).
    parameters : dict
        The run's parameters (``.daskmic/parameters.json``).
    provenance : dict
        Attributes of the results store (version, creation time, ...), if any.
    thumbnails : xarray.DataArray or None
        The results store's ``thumbnail`` stack, lazily, if any.
    live : bool
        Read only what a running run has published (the table, parameters, the manifest's
        thumbnails and the PSD images), never the results store or an input micrograph.
    """

    out_dir: Location
    table: pd.DataFrame
    parameters: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    thumbnails: Any = None
    live: bool = False

    @property
    def has_tilt(self) -> bool:
        """Whether the run included the tilt screen."""
        return "tilt_mean_corr" in self.table.columns

    @classmethod
    def load(
        cls, out_dir: str | os.PathLike[str] | Location, *, live: bool = False
    ) -> OutputFolder:
        """Read an output folder's table, parameters and (unless ``live``) results store.

        Raises
        ------
        UsageError
            If ``out_dir`` holds neither ``micrographs.csv`` nor ``tilt.csv``.
        """
        out = location(out_dir)
        found = _table_path(out)
        if found is None:
            raise UsageError(f"{out} is not a daskmic output folder (no micrographs.csv)")
        table = as_table(found)
        folder = cls(out, table, {}, live=live)
        manifest = Manifest(out)
        if manifest.is_bound():
            folder.parameters = manifest.parameters()
        zarr = OutputLayout(out).zarr
        if not live and zarr.is_dir():
            results = open_results(zarr)
            folder.provenance = dict(results.attrs)
            if "thumbnail" in results:
                folder.thumbnails = results["thumbnail"]
        if not folder.parameters and "parameters" in folder.provenance:
            folder.parameters = _parsed(folder.provenance["parameters"])
        return folder

    def thumbnail(self, row: pd.Series) -> np.ndarray | None:
        """The stored thumbnail of a micrograph, else one made from its input file, else None.

        A live folder shows the manifest's thumbnail only (what the run published).
        """
        name = str(row["micrograph"])
        if self.live:
            stored = Manifest(self.out_dir).thumbnail(name)
            return None if stored is None else thumbnail_data(stored.values())
        if self.thumbnails is not None and name in self.thumbnails["micrograph"].values:
            values = np.asarray(self.thumbnails.sel(micrograph=name).values)
            if np.isfinite(values).any():
                return thumbnail_data(values)
        path = row.get("path")
        if not isinstance(path, str) or not Path(path).is_file():
            return None
        try:
            return thumbnail_data(read_micrograph(path))
        except Exception:  # an unreadable input is shown as "no image"
            return None


def _table_path(out: Location) -> Location | None:
    """The table the page shows (``micrographs.csv``, else ``tilt.csv``), None if neither."""
    layout = OutputLayout(out)
    found = [p for p in (layout.micrographs_csv, layout.tilt_csv) if p.is_file()]
    return found[0] if found else None


def has_table(out_dir: str | os.PathLike[str] | Location) -> bool:
    """Whether ``out_dir`` holds a run's table (a page can be drawn)."""
    return _table_path(location(out_dir)) is not None


def _parsed(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not np.isfinite(value))


def _cell(column: str, value: Any, linked: bool = False) -> str:
    """One table cell; numbers carry their full value in ``data-value`` for sorting."""
    if _is_missing(value):
        return '<td data-value=""></td>'
    if column == "micrograph":
        text = f'<a href="#mic-{_e(value)}">{_e(value)}</a>' if linked else _e(value)
        return f'<td data-value="{_e(value)}">{text}</td>'
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return f'<td class="num">{int(value)}</td>'
    if isinstance(value, float | np.floating):
        text = format(value, ".4f" if column in TILT_STATISTICS else ".4g")
        return f'<td class="num" data-value="{float(value)!r}">{text}</td>'
    css = f"status-{value}" if column == "status" else column
    return f'<td class="{_e(css)}">{_e(value)}</td>'


def _counts(table: pd.DataFrame) -> dict[str, int]:
    counts = table["status"].astype(str).value_counts()
    order = ["accepted", "discarded", "done", "failed"]
    return {
        s: int(counts[s]) for s in [*order, *sorted(set(counts.index) - set(order))] if s in counts
    }


def counts_html(table: pd.DataFrame) -> str:
    cards = [f'<div class="count"><b>{len(table)}</b>micrographs</div>']
    for status, n in _counts(table).items():
        cards.append(f'<div class="count status-{_e(status)}"><b>{n}</b>{_e(status)}</div>')
    return f'<h2 id="counts">Counts</h2><div class="counts">{"".join(cards)}</div>'


def _flatten(values: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(values, dict):
        items: list[tuple[str, Any]] = []
        for key in values:
            items += _flatten(values[key], f"{prefix}.{key}" if prefix else str(key))
        return items
    return [(prefix, values)]


def parameters_html(folder: OutputFolder) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v))}</td></tr>"
        for k, v in _flatten(folder.parameters)
    )
    shown = {k: v for k, v in folder.provenance.items() if k != "parameters"}
    prov = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in shown.items())
    prov_table = f'<h3>Provenance</h3><table class="params">{prov}</table>' if prov else ""
    return (
        '<h2 id="parameters">Parameters</h2>'
        f'<table class="params"><tr><th>parameter</th><th>value</th></tr>{rows}</table>'
        f"{prov_table}"
    )


def _thresholds(folder: OutputFolder) -> tuple[float, float] | None:
    tilt = folder.parameters.get("tilt") or {}
    if "mean_threshold" in tilt and "std_threshold" in tilt:
        return float(tilt["mean_threshold"]), float(tilt["std_threshold"])
    return None


def plots_html(folder: OutputFolder) -> str:
    thresholds = _thresholds(folder)
    if not folder.has_tilt or thresholds is None:
        return ""
    mean, std = thresholds
    scatter = tilt_scatter(folder.table, mean_threshold=mean, std_threshold=std).figure
    hist = statistic_histograms(folder.table, mean_threshold=mean, std_threshold=std)
    images = "".join(
        f'<img class="plot" alt="{_e(alt)}" src="{data_uri(figure_png(fig))}">'
        for alt, fig in (("tilt scatter", scatter), ("tilt statistic histograms", hist))
    )
    return f'<h2 id="plots">Plots</h2><div class="plots">{images}</div>'


def _column_cells(column: str, values: pd.Series, linked: set[str]) -> list[str]:
    """The cells of one column, as :func:`_cell` makes them, typed once per column."""
    if column != "micrograph" and pd.api.types.is_float_dtype(values.dtype):
        spec = ".4f" if column in TILT_STATISTICS else ".4g"
        return [
            f'<td class="num" data-value="{v!r}">{format(v, spec)}</td>'
            if math.isfinite(v)
            else '<td data-value=""></td>'
            for v in values.tolist()
        ]
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        return [f'<td class="num">{v}</td>' for v in values.tolist()]
    return [_cell(column, v, str(v) in linked) for v in values.tolist()]


def table_html(table: pd.DataFrame, linked: set[str]) -> str:
    """The sortable table of every micrograph, ``linked`` ones linking to their card."""
    columns = [c for c in TABLE_COLUMNS if c in table.columns]
    head = "".join(f'<th data-column="{_e(c)}">{_e(c)}</th>' for c in columns)
    cells = [_column_cells(c, table[c], linked) for c in columns]
    statuses = [_e(status) for status in table["status"].tolist()]
    body = "".join(
        f'<tr data-status="{status}">{"".join(row)}</tr>'
        for status, row in zip(statuses, zip(*cells, strict=True), strict=True)
    )
    return (
        '<h2 id="table">Micrographs</h2><p class="note">Click a column to sort.</p>'
        f'<div class="scroll"><table id="micrographs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def image_html(uri: str | None, alt: str) -> str:
    if uri is None:
        return f'<div class="none">no {_e(alt)}</div>'
    return f'<img alt="{_e(alt)}" src="{uri}">'


def _defocus_map_uri(path: Location) -> str:
    """The local-defocus map with its fitted plane, drawn for the page."""
    figure = Figure(figsize=(4.2, 3.6))
    plot_local_defocus(result_from_map(load_defocus_map(path)), figure.add_subplot())
    figure.tight_layout()
    return data_uri(figure_png(figure))


def card_html(folder: OutputFolder, row: pd.Series, note: str = "") -> str:
    """A micrograph's card: name, status, statistics, ``note``, image, PSD (, defocus map)."""
    name = str(row["micrograph"])
    thumb = folder.thumbnail(row)
    layout = OutputLayout(folder.out_dir)
    psd = layout.psd_png(name)
    psd_uri = data_uri(psd.read_bytes()) if psd.is_file() else None
    images = image_html(None if thumb is None else data_uri(grey_png(thumb)), "micrograph")
    if folder.has_tilt:
        images += image_html(psd_uri, "PSD summary")
    defocus = layout.defocus_map(name)
    if defocus.is_file() and not folder.live:  # a figure per card: the final page only
        images += image_html(_defocus_map_uri(defocus), "local-defocus map")
    stats = ", ".join(
        f"{c[5:-5]} {row[c]:.3f}" for c in TILT_STATISTICS[:2] if not _is_missing(row.get(c))
    )
    error = row.get("error")
    error_html = f'<div class="error">{_e(error)}</div>' if isinstance(error, str) and error else ""
    return (
        f'<div class="card" id="mic-{_e(name)}"><b>{_e(name)}</b> '
        f'<span class="status-{_e(row["status"])}">{_e(row["status"])}</span> {_e(stats)}'
        + (f'<div class="reason">{_e(note)}</div>' if note else "")
        +         f'<div class="images">{images}</div>{error_html}</div>'
    )


def _galleries(
    table: pd.DataFrame, sample_size: int, max_images: int
) -> list[tuple[str, pd.DataFrame, int]]:
    """The galleries' titles, rows shown and total rows: failed, discarded, a sample of the rest.

    Beyond its limit a gallery shows rows evenly spaced in name order.
    """
    status = table["status"].astype(str).to_numpy()
    galleries = []
    for title, mask, limit in (
        ("Failed", status == "failed", max_images),
        ("Discarded", status == "discarded", max_images),
        ("A sample of the others", ~np.isin(status, ["failed", "discarded"]), sample_size),
    ):
        part = table[mask]
        if part.empty or limit == 0:
            continue
        picks = np.unique(np.linspace(0, len(part) - 1, min(limit, len(part))).round())
        galleries.append((title, part.iloc[picks.astype(int)], len(part)))
    return galleries


def _galleries_html(folder: OutputFolder, galleries: list[tuple[str, pd.DataFrame, int]]) -> str:
    sections = []
    for title, part, total in galleries:
        note = f'<p class="note">{len(part)} of {total} shown.</p>' if len(part) < total else ""
        cards = "".join(card_html(folder, row) for _, row in part.iterrows())
        anchor = title.split()[0].lower()
        sections.append(f'<h2 id="{anchor}">{title}</h2>{note}<div class="gallery">{cards}</div>')
    return "".join(sections)


def heading_html(folder: OutputFolder, what: str = "QC report") -> str:
    """The page's title line and what it shows (folder, steps, results time, version)."""
    out = folder.out_dir.resolve()
    created = folder.provenance.get("created", "")
    kind = " and ".join(
        k
        for k, on in (("preprocess", "output_path" in folder.table), ("tilt", folder.has_tilt))
        if on
    )
    results = f" · results of {_e(created)}" if not folder.live else ""
    return (
        f"<h1>daskmic {_e(what)}: {_e(out.name)}</h1>"
        f'<p class="meta">{_e(out)} · {_e(kind or "run")}{results} · '
        f"daskmic {_e(__version__)}</p>"
    )


def page_html(folder: OutputFolder, body: str, script: str = "") -> str:
    """The whole page: the template around ``body``, with an extra inline ``script``."""
    template = resources.files(__package__).joinpath("templates/report.html").read_text("utf-8")
    return string.Template(template).substitute(
        title=_e(f"daskmic report: {folder.out_dir.resolve().name}"),
        version=_e(__version__),
        body=body,
        script=script,
    )


def render_report(
    out_dir: str | os.PathLike[str] | Location, *, sample_size: int = 12, max_images: int = 200
) -> str:
    """The report page of an output folder, as HTML text (see :func:`write_report`)."""
    if sample_size < 0 or max_images < 0:
        raise ValueError(
            f"sample_size and max_images must be >= 0, got {sample_size} and {max_images}"
        )
    folder = OutputFolder.load(out_dir)
    galleries = _galleries(folder.table, sample_size, max_images)
    shown = {str(n) for _, part, _ in galleries for n in part["micrograph"]}
    body = (
        heading_html(folder)
        + counts_html(folder.table)
        + parameters_html(folder)
        + plots_html(folder)
        + table_html(folder.table, shown)
        + _galleries_html(folder, galleries)
    )
    return page_html(folder, body)


def write_report(
    out_dir: str | os.PathLike[str] | Location,
    *,
    sample_size: int = 12,
    max_images: int = 200,
    storage_options: StorageOptions | None = None,
) -> Location:
    """Write ``OUT/report.html``, the self-contained QC page of an output folder, whole.

    Parameters
    ----------
    out_dir : path-like, URL or Location
        An output folder of ``daskmic preprocess``, ``tilt`` or ``run``; on an object store
        the page is written as one object.
    sample_size : int
        How many of the accepted (or, without tilt analysis, processed) micrographs to show.
    max_images : int
        At most this many failed and this many discarded micrographs are shown (evenly spaced
        by name beyond that); the table always lists every micrograph.
    storage_options : dict, optional
        For an output folder given by URL: its filesystem's options (credentials, endpoint).

    Returns
    -------
    Location
        The page written.

    Raises
    ------
    UsageError
        If ``out_dir`` is not an output folder.

    Examples
    --------
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> truth = make_dataset("raw", n=2, shape=(700, 700), pixel_size_A=2.0, phase_std=0.3)
    >>> qc = dm.tilt_analysis(dm.open_micrographs("raw/*.mrc"))
    >>> _ = dm.write(None, "screen", tilt=qc, workers=1, dashboard=False, quiet=True)
    >>> dm.write_report("screen").name
    'report.html'
    """
    out = location(out_dir, storage_options)
    page = render_report(out, sample_size=sample_size, max_images=max_images)
    path = OutputLayout(out).report
    write_whole(path, page.encode("utf-8"))
    return path
