"""Scipion sets of a run: ``micrographs.sqlite``, ``accepted.sqlite`` and ``discarded.sqlite``.

Built from the same rows and optics groups as the STAR files, so both agree. Each micrograph
keeps its input set's ``id``, ``_micName`` and acquisition when it came from a Scipion set (as
the Xmipp protocols' outputs do); paths are relative to the working directory, which is the
project folder when Scipion runs daskmic. The tilt sets list the input micrographs with the
screen's ``_tilt_*`` attributes, as Xmipp's tilt analysis does, and the angle estimate's
columns as ``_tilt_angle_deg``, ``_tilt_axis_deg``, ``_tilt_defocus_mean_A``, ...
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from daskmic.io.live_set import LiveSet
from daskmic.io.readers import read_header
from daskmic.io.row_cache import Rows
from daskmic.io.scipion import ACQUISITION
from daskmic.io.scipion_write import write_set_rows
from daskmic.io.storage import Location, is_url

TILT_ATTRIBUTES = {
    "tilt_mean_corr": "_tilt_mean_corr",
    "tilt_std_corr": "_tilt_std_corr",
    "tilt_min_corr": "_tilt_min_corr",
    "tilt_max_corr": "_tilt_max_corr",
}
"""tilt.csv columns and the attributes Xmipp's tilt analysis gives them."""

_OPTICS = {
    "_acquisition._voltage": "rlnVoltage",
    "_acquisition._sphericalAberration": "rlnSphericalAberration",
    "_acquisition._amplitudeContrast": "rlnAmplitudeContrast",
}


@functools.lru_cache(maxsize=2**17)
def relative_path(path: str, start: str) -> str:
    """``os.path.relpath(path, start)``, remembered: every publish names every micrograph."""
    return os.path.relpath(path, start)


def set_paths(paths: pd.Series) -> list[str]:
    """Paths as a set stores them: relative to the working directory when under it; URLs as
    they are."""
    cwd = os.getcwd()
    return [_set_path(path, cwd) for path in paths.tolist()]


@functools.lru_cache(maxsize=2**17)  # every publish names every micrograph
def _set_path(path: str, cwd: str) -> str:
    if is_url(path):
        return path
    absolute = os.path.abspath(path)
    relative = relative_path(absolute, cwd)
    return absolute if relative.startswith("..") else relative


def angle_attribute(column: str) -> str:
    """The set attribute of an angle-estimate column (``tilt_angle_deg`` -> ``_tilt_angle_deg``)."""
    return f"_{column}" if column.startswith("tilt_") else f"_tilt_{column}"


def _ids(table: pd.DataFrame) -> np.ndarray:
    """The input set's ids when every micrograph has one, else 1..N in table order."""
    if "scipion_id" in table.columns:
        ids = pd.to_numeric(table["scipion_id"], errors="coerce")
        if ids.notna().all() and not ids.duplicated().any():
            return ids.to_numpy(dtype=int)
    return np.arange(1, len(table) + 1)


def _carried(table: pd.DataFrame, label: str) -> pd.Series:
    if label in table.columns:
        return table[label].reset_index(drop=True)
    return pd.Series([None] * len(table), dtype=object)


def _items(
    table: pd.DataFrame,
    paths: pd.Series,
    pixel_size_A: pd.Series,
    optics: pd.DataFrame,
    groups: np.ndarray,
) -> pd.DataFrame:
    """The pwem ``Micrograph`` attributes of ``table``'s rows (but their ids)."""
    by_group = optics.set_index("rlnOpticsGroup")
    items = pd.DataFrame(
        {
            "_index": 0,
            "_filename": set_paths(paths),
            "_samplingRate": pixel_size_A.to_numpy(dtype=float),
        },
        index=range(len(table)),
    )
    for name in ACQUISITION:
        label = f"_acquisition.{name}"
        if label in _OPTICS:
            items[label] = by_group.loc[groups, _OPTICS[label]].to_numpy(dtype=float)
        else:
            items[label] = _carried(table, label).to_numpy()
    names = _carried(table, "_micName")
    fallback = pd.Series([os.path.basename(p) for p in table["path"].tolist()])
    items["_micName"] = names.where(names.notna() & (names != ""), fallback).to_numpy()
    return items


def _write(
    path: Location,
    table: pd.DataFrame,
    make_items: Callable[[pd.DataFrame, np.ndarray], pd.DataFrame],
    groups: np.ndarray,
    written: Mapping[str, float],
    dims: tuple[int, int] | None,
    stream_open: bool,
    rows: Rows | None,
    live: LiveSet | None,
) -> None:
    """A set of ``table``'s rows, their items made (``make_items(rows, groups)``) only for
    those ``live`` lacks (:func:`daskmic.io.scipion_write.write_set_rows`)."""
    table = table.reset_index(drop=True)
    ids = _ids(table)

    def items_at(positions: list[int]) -> pd.DataFrame:
        items = make_items(table.iloc[positions].reset_index(drop=True), groups[positions])
        items.insert(0, "id", ids[positions])
        return items

    def creation_at(positions: list[int]) -> list[str]:
        return _creation(written, table["micrograph"].iloc[positions])

    write_set_rows(
        path, ids, items_at, creation_at, stream_open=stream_open, dims=dims, rows=rows, live=live
    )


def _creation(written: Mapping[str, float], names: pd.Series) -> list[str]:
    """Per micrograph, when its record was written (local time, as sqlite's ``datetime``).

    ``written`` gives the records' modification times (seconds since the epoch) by micrograph.
    """
    return [_local_time(written[n]) for n in names.tolist()]


@functools.lru_cache(maxsize=2**17)
def _local_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _dims(path: str) -> tuple[int, int] | None:
    try:
        return read_header(path).shape
    except Exception:  # noqa: BLE001 - dimensions are informative only
        return None


def write_preprocess_set(
    path: Location,
    done: pd.DataFrame,
    optics: pd.DataFrame,
    groups: np.ndarray,
    written: Mapping[str, float],
    *,
    stream_open: bool,
    rows: Rows | None = None,
    live: LiveSet | None = None,
) -> None:
    """``micrographs.sqlite``: the preprocessed micrographs, at their output sampling.

    ``rows`` (keyed by micrograph, versioned by record and optics group) and ``live`` (the set
    as last written, :mod:`daskmic.io.live_set`): only the items new, changed or moved since
    are made (:func:`daskmic.io.scipion_write.write_set_rows`).
    """
    dims = None
    if len(done):
        dims = (int(done["output_ny"].iloc[0]), int(done["output_nx"].iloc[0]))

    def items(part: pd.DataFrame, part_groups: np.ndarray) -> pd.DataFrame:
        pixel_size_A = part["output_pixel_size_A"]
        return _items(part, part["output_path"], pixel_size_A, optics, part_groups)

    _write(path, done, items, groups, written, dims, stream_open, rows, live)


def write_tilt_set(
    path: Location,
    part: pd.DataFrame,
    names: pd.Series,
    optics: pd.DataFrame,
    groups: np.ndarray,
    written: Mapping[str, float],
    *,
    stream_open: bool,
    rows: Rows | None = None,
    live: LiveSet | None = None,
) -> None:
    """``accepted.sqlite`` or ``discarded.sqlite``: input micrographs with the tilt attributes.

    ``rows`` and ``live`` as :func:`write_preprocess_set` takes them.
    """
    part = part.assign(_set_name=names.to_numpy())

    from daskmic.tilt.angle import ANGLE_COLUMNS  # scipy.ndimage: only for a tilt set

    def items(chosen: pd.DataFrame, part_groups: np.ndarray) -> pd.DataFrame:
        made = _items(chosen, chosen["_set_name"], chosen["pixel_size_A"], optics, part_groups)
        for column, label in TILT_ATTRIBUTES.items():
            made[label] = pd.to_numeric(chosen[column], errors="coerce").to_numpy(dtype=float)
        made["_tilt_psds_image._index"] = 0
        made["_tilt_psds_image._filename"] = set_paths(chosen["psd_path"])
        made["_tilt_psds_image._samplingRate"] = np.nan
        for column in ANGLE_COLUMNS:
            if column in chosen.columns:
                made[angle_attribute(column)] = chosen[column].to_numpy()
        return made

    dims = _dims(str(part["path"].iloc[0])) if len(part) else None
    _write(path, part, items, groups, written, dims, stream_open, rows, live)
