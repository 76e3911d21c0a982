"""The tables of an output folder, written from its records: ``micrographs.csv``, the STAR
and ``.xmd`` tables, ``tilt.csv``, the tilt split (STAR and lists) and the Scipion sets.

One function, :func:`write_tables`, writes them all from the records' table (sorted by
micrograph name), so every publish (:mod:`daskmic.run.publish`) gives the same bytes.
:func:`check_table_names` refuses, before a run, paths they could not hold (here, not in
:mod:`daskmic.run.publish`, so a run's checks do not import the zarr store).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from daskmic.errors import UsageError
from daskmic.io import write_csv, write_star, write_xmd
from daskmic.io.star import check_star_text
from daskmic.io.storage import Location, is_url, write_whole
from daskmic.io.tables import OPTICS_COLUMNS
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest
from daskmic.run.optics_groups import optics_table
from daskmic.run.publish_sets import relative_path, write_preprocess_set, write_tilt_set
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


def project_path(path: str) -> str:
    """A path relative to the working directory (RELION's project convention); a URL as is."""
    return path if is_url(path) else relative_path(path, os.getcwd())


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
        check_star_text([project_path(os.fspath(out_dir))], "output folder", fragment=True)
        for source in sources:
            check_star_text([project_path(source.path)], "micrograph file")
            if "rlnMicrographName" in source.columns:
                check_star_text([str(source.columns["rlnMicrographName"])], "rlnMicrographName")
            output = OutputLayout(out_dir).micrograph(source.micrograph).resolve()  # as recorded
            check_star_text([project_path(str(output))], "output file")
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
        {"rlnMicrographName": names.map(project_path).to_numpy(), "rlnOpticsGroup": groups}
    )
    star = pd.concat([star, table[carried].reset_index(drop=True)], axis=1)
    write_star(path, star, optics)


def _publish_preprocess(
    out: OutputLayout,
    table: pd.DataFrame,
    written: Mapping[str, float],
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
        out.scipion_set("micrographs"), done, optics, groups, written, stream_open=stream_open
    )
    write_xmd(
        out.micrographs_xmd,
        pd.DataFrame(
            {
                "micrograph": done["output_path"].map(project_path),
                "enabled": 1,
                "samplingRate": done["output_pixel_size_A"],
            }
        ),
    )


def split_tilt(table: pd.DataFrame, params: TiltParams) -> pd.DataFrame:
    """Apply the tilt thresholds to the recorded statistics (the one place they act)."""
    tilt = table.reindex(columns=list(dict.fromkeys([*table.columns, *TILT_COLUMNS])))
    tilt["status"] = tilt["tilt_status"]
    tilt = split(tilt, params.mean_threshold, params.std_threshold, params.max_tilt_deg)
    tilt["tilt_status"] = tilt["status"]
    return tilt


def _publish_tilt(
    out: OutputLayout,
    table: pd.DataFrame,
    written: Mapping[str, float],
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
            out.scipion_set(status), part, names, optics, groups, written, stream_open=stream_open
        )
        text = "".join(f"{path}\n" for path in part["path"])
        write_whole(out.split_list(status), text.encode())


def table_of(rows: list[dict], config: RunConfig) -> pd.DataFrame:
    """The records' rows as the tables show them: leading columns first, the tilt split
    applied (when the run screened tilt)."""
    table = _ordered(pd.DataFrame(rows), LEADING)
    return table if config.tilt is None else split_tilt(table, config.tilt)


def write_tables(
    out: OutputLayout,
    table: pd.DataFrame,
    written: Mapping[str, float],
    manifest: Manifest,
    config: RunConfig,
    *,
    stream_open: bool,
) -> None:
    """Write every table of the run's steps from ``table`` (:func:`table_of`).

    ``written`` gives, by micrograph, when its record was written (the Scipion sets' creation
    times); ``stream_open`` leaves the Scipion sets open for more micrographs.
    """
    write_csv(out.micrographs_csv, table)
    if config.preprocess is not None:
        _publish_preprocess(out, table, written, manifest, config, stream_open)
    if config.tilt is not None:
        _publish_tilt(out, table, written, manifest, config, stream_open)

