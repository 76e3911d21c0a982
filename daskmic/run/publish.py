"""Rebuild an output folder's tables and zarr store from its manifest.

Called after each batch and at the end of every run. The outputs depend only on the records
(sorted by micrograph name) and the parameters, so batch, resumed and streamed runs give the
same files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from daskmic.errors import UsageError
from daskmic.io import write_csv, write_results, write_star, write_xmd
from daskmic.io.atomic import write_bytes_atomic
from daskmic.io.star import check_star_text
from daskmic.io.storage import Location, StorageOptions, is_url, location
from daskmic.io.tables import OPTICS_COLUMNS
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest
from daskmic.run.optics_groups import optics_table
from daskmic.run.publish_sets import write_preprocess_set, write_tilt_set
from daskmic.run.unit import Source
from daskmic.tilt.params import TiltParams
from daskmic.tilt.select import split

LEADING = [
    "micrograph",
    "status",
    "error",
    "path",
    "pixel_size_A",
    "output_path",
    "output_pixel_size_A",
    "crop_px",
]
TILT_COLUMNS = [
    "micrograph",
    "status",
    "tilt_mean_corr",
    "tilt_std_corr",
    "tilt_min_corr",
    "tilt_max_corr",
    "accepted",
    "error",
    "window_size_px",
    "sub_window_px",
    "band_limit_A",
    "pixel_size_A",
    "path",
    "psd_path",
]


def _ordered(table: pd.DataFrame, leading: list[str]) -> pd.DataFrame:
    first = [c for c in leading if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def _project_path(path: str) -> str:
    """A path relative to the working directory (RELION's project convention); a URL as is."""
    return path if is_url(path) else os.path.relpath(path, Path.cwd())


def check_table_names(out_dir: str | os.PathLike[str], sources: list[Source]) -> None:
    """Refuse, before any work, paths the STAR and ``.xmd`` tables could not hold.

    The tables name each micrograph by its input path or ``rlnMicrographName`` and by its
    output's path, relative to the working directory (RELION's convention); see
    :func:`daskmic.io.star.star_text_problem`.

    Raises
    ------
    UsageError
        Naming the first path that cannot be written.
    """
    try:
        check_star_text([_project_path(os.fspath(out_dir))], "output folder", fragment=True)
        for source in sources:
            check_star_text([_project_path(source.path)], "micrograph file")
            if "rlnMicrographName" in source.columns:
                check_star_text([str(source.columns["rlnMicrographName"])], "rlnMicrographName")
            output = OutputLayout(out_dir).micrograph(source.micrograph).resolve()  # as recorded
            check_star_text([_project_path(str(output))], "output file")
    except ValueError as error:
        raise UsageError(str(error)) from None


def _optics(
    table: pd.DataFrame, manifest: Manifest, config: RunConfig, output_pixel_size: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """The optics groups of ``table``'s rows (:func:`daskmic.run.optics_groups.optics_table`)."""
    if table.empty:
        return pd.DataFrame(columns=list(OPTICS_COLUMNS)), np.zeros(0, dtype=int)
    groups = table["rlnOpticsGroup"] if "rlnOpticsGroup" in table.columns else None
    return optics_table(
        table["output_pixel_size_A" if output_pixel_size else "pixel_size_A"],
        original_pixel_size_A=table["pixel_size_A"],
        optics_group=groups,
        carried_optics=manifest.optics() or None,
        **config.optics,
    )


def _write_star(
    path: Location, table: pd.DataFrame, names: pd.Series, optics: pd.DataFrame, groups: np.ndarray
) -> None:
    """A RELION STAR of ``table``'s rows, named ``names``, keeping the input's columns.

    Like the reference's output sets, a STAR with no micrograph is not written (a stale one
    from an earlier split is removed).
    """
    if table.empty:
        path.unlink(missing_ok=True)
        return
    carried = [
        c
        for c in table.columns
        if c.startswith("rln") and c not in ("rlnMicrographName", "rlnOpticsGroup")
    ]
    star = pd.DataFrame(
        {"rlnMicrographName": names.map(_project_path).to_numpy(), "rlnOpticsGroup": groups}
    )
    star = pd.concat([star, table[carried].reset_index(drop=True)], axis=1)
    write_star(path, star, optics)


def _publish_preprocess(
    out: OutputLayout,
    table: pd.DataFrame,
    manifest: Manifest,
    config: RunConfig,
    stream_open: bool,
) -> None:
    outputs = ["output_path", "output_pixel_size_A"]  # absent when every micrograph failed
    done = table[table["status"] != "failed"]
    done = done.reindex(columns=list(dict.fromkeys([*done.columns, *outputs])))
    optics, groups = _optics(done, manifest, config, True)
    _write_star(out.micrographs_star, done, done["output_path"], optics, groups)
    write_preprocess_set(
        out.scipion_set("micrographs"), done, optics, groups, stream_open=stream_open
    )
    write_xmd(
        out.micrographs_xmd,
        pd.DataFrame(
            {
                "micrograph": done["output_path"].map(_project_path),
                "enabled": 1,
                "samplingRate": done["output_pixel_size_A"],
            }
        ),
    )


def _split(table: pd.DataFrame, params: TiltParams) -> pd.DataFrame:
    """Apply the tilt thresholds to the recorded statistics (the one place they act)."""
    tilt = table.reindex(columns=list(dict.fromkeys([*table.columns, *TILT_COLUMNS])))
    tilt["status"] = tilt["tilt_status"]
    tilt = split(tilt, params.mean_threshold, params.std_threshold, params.max_tilt_deg)
    tilt["tilt_status"] = tilt["status"]
    return tilt


def _publish_tilt(
    out: OutputLayout,
    table: pd.DataFrame,
    manifest: Manifest,
    config: RunConfig,
    stream_open: bool,
) -> None:
    tilt = table.copy()
    write_csv(out.tilt_csv, _ordered(tilt, TILT_COLUMNS).drop(columns=["tilt_status"]))
    for status in ("accepted", "discarded"):
        part = tilt[tilt["status"] == status]
        names = part["rlnMicrographName"] if "rlnMicrographName" in part else part["path"]
        optics, groups = _optics(part, manifest, config, False)
        _write_star(out.split_star(status), part, names, optics, groups)
        write_tilt_set(
            out.scipion_set(status), part, names, optics, groups, stream_open=stream_open
        )
        text = "".join(f"{path}\n" for path in part["path"])
        write_bytes_atomic(out.split_list(status), text.encode())


def publish(
    out_dir: Location, config: RunConfig, *, stream_open: bool = False
) -> list[dict[str, Any]]:
    """Rewrite every table and the zarr store of ``out_dir`` from its records.

    Parameters
    ----------
    out_dir : Location
        The output folder (a URL as a Location carrying its storage options).
    config : RunConfig
        The run's steps and options.
    stream_open : bool
        Whether the run is still going (more micrographs may come): the Scipion sets are
        written with their stream state open; the last rebuild of a run closes them.

    Returns
    -------
    list of dict
        The recorded rows, sorted by micrograph name.
    """
    manifest = Manifest(out_dir)
    rows = manifest.rows()
    if not rows:
        return rows
    out = manifest.layout
    table = _ordered(pd.DataFrame(rows), LEADING)
    if config.tilt is not None:
        table = _split(table, config.tilt)
    write_csv(out.micrographs_csv, table)
    if config.preprocess is not None:
        _publish_preprocess(out, table, manifest, config, stream_open)
    if config.tilt is not None:
        _publish_tilt(out, table, manifest, config, stream_open)
    stack = manifest.thumbnail_stack(list(table["micrograph"]), config.thumbnail_px)
    write_results(out.zarr, table, thumbnails=stack, parameters=config.to_dict())
    return rows


def select(
    out_dir: str | os.PathLike[str],
    *,
    mean_threshold: float,
    std_threshold: float,
    max_tilt_deg: float | None = None,
    storage_options: StorageOptions | None = None,
) -> dict[str, int]:
    """Re-split a tilt run's micrographs with new thresholds, without recomputing.

    Parameters
    ----------
    out_dir : path-like
        Output folder of a run that included tilt analysis.
    mean_threshold, std_threshold : float
        Accept when ``tilt_mean_corr > mean_threshold`` and ``tilt_std_corr < std_threshold``.
    max_tilt_deg : float, optional
        Also discard micrographs whose estimated ``tilt_angle_deg`` is above it (runs made
        with angle estimation only).
    storage_options : dict, optional
        For an output folder given by URL: its filesystem's options (credentials, endpoint).

    Returns
    -------
    dict
        Number of micrographs per status (accepted, discarded, failed).

    Examples
    --------
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> truth = make_dataset("raw", n=2, shape=(700, 700), pixel_size_A=2.0, phase_std=0.3)
    >>> qc = dm.tilt_analysis(dm.open_micrographs("raw/*.mrc"))
    >>> dm.write(None, "screen", tilt=qc, workers=1, dashboard=False, quiet=True).counts()
    {'accepted': 2}
    >>> dm.select("screen", mean_threshold=0.99, std_threshold=0.1)   # no recomputation
    {'discarded': 2}
    """
    out = location(out_dir, storage_options)
    manifest = Manifest(out)
    if not manifest.is_bound():
        raise UsageError(f"{out} is not a daskmic output folder (no {manifest.root.name}/)")
    config = RunConfig.from_dict(manifest.parameters())
    if config.tilt is None:
        raise UsageError(f"{out} holds no tilt analysis to re-split")
    tilt = dataclasses.replace(
        config.tilt,
        mean_threshold=mean_threshold,
        std_threshold=std_threshold,
        max_tilt_deg=max_tilt_deg,
    )
    config = dataclasses.replace(config, tilt=tilt)
    manifest.bind(config.to_dict(), config.hashed_parameters())
    rows = publish(out, config)
    counts: dict[str, int] = {}
    for status in _split(pd.DataFrame(rows), tilt)["tilt_status"]:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))
