"""Micrograph tables: RELION STAR, Xmipp ``.xmd`` and CSV.

STAR files are read with ``starfile``; STAR and ``.xmd`` blocks are written with it too
(:mod:`daskmic.io.star`, which also says which text they can hold); Xmipp's own ``.xmd`` files
are read with :mod:`daskmic.io.xmd`. Readers return ``(micrographs, optics)`` DataFrames;
writers put each file in place atomically, without an fsync: a table is made again from what
it shows (a run's records), like the other derived outputs (:func:`daskmic.io.storage.write_whole`).
"""

from __future__ import annotations

import csv
import linecache
import os
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from upath import UPath

from daskmic.io.errors import MicrographError
from daskmic.io.row_cache import Rows, formatted
from daskmic.io.star import star_block, star_label
from daskmic.io.storage import Location, StorageOptions, fetched, location, write_whole
from daskmic.io.xmd import read_blocks

TABLE_SUFFIXES = (".star", ".xmd", ".csv")

OPTICS_COLUMNS = (
    "rlnOpticsGroup",
    "rlnOpticsGroupName",
    "rlnMicrographOriginalPixelSize",
    "rlnMicrographPixelSize",
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
)
"""The ``data_optics`` columns RELION 3.1+ expects for micrographs, in its order."""

PATH_COLUMNS = {
    ".star": ("rlnMicrographName",),
    ".xmd": ("micrograph", "image"),
    ".csv": ("path", "rlnMicrographName", "micrograph_path"),
}
"""Per table format, the columns that may hold the micrograph file path, by preference."""

XMIPP_LABELS = {
    "pixel_size_A": "samplingRate",
    "rlnMicrographPixelSize": "samplingRate",
    "original_pixel_size_A": "samplingRateOriginal",
    "rlnMicrographOriginalPixelSize": "samplingRateOriginal",
    "mean": "avg",
    "std": "stddev",
    "min": "min",
    "max": "max",
    "voltage_kV": "ctfVoltage",
    "rlnVoltage": "ctfVoltage",
    "spherical_aberration_mm": "ctfSphericalAberration",
    "rlnSphericalAberration": "ctfSphericalAberration",
    "micrograph": "micrographName",
}
"""Column names written under Xmipp's metadata labels by :func:`write_xmd`."""


def split_table_path(
    source: str | os.PathLike[str] | Location, storage_options: StorageOptions | None = None
) -> tuple[str | None, Location]:
    """Split Xmipp's ``block@file`` notation; ``(None, location)`` for a plain path or URL."""
    if isinstance(source, UPath):
        return None, location(source, storage_options)
    text = os.fspath(source)
    block, at, name = text.partition("@")
    if at and "/" not in block and ":" not in block and not Path(text).exists():
        return block, location(name, storage_options)
    return None, location(text, storage_options)


def is_table(source: object) -> bool:
    """Whether ``source`` names a STAR, xmd or CSV table (by suffix)."""
    if not isinstance(source, str | os.PathLike | UPath):
        return False
    return split_table_path(source)[1].suffix.lower() in TABLE_SUFFIXES


def _pick_block(blocks: dict, wanted: str | None, path: Location, label: str) -> pd.DataFrame:
    """The micrograph block: by name, ``micrographs``, one with ``label``, or the only one."""
    frames = {k: (pd.DataFrame([v]) if isinstance(v, dict) else v) for k, v in blocks.items()}
    if wanted is not None:
        if wanted not in frames:
            raise MicrographError(path, f"no block data_{wanted} (blocks: {sorted(frames)})")
        return frames[wanted]
    if "micrographs" in frames:
        return frames["micrographs"]
    with_label = [f for f in frames.values() if label in f.columns]
    if with_label:
        return with_label[0]
    if len(frames) == 1:
        return next(iter(frames.values()))
    raise MicrographError(path, f"no data_micrographs block (blocks: {sorted(frames)})")


def read_table(
    path: str | os.PathLike[str] | Location, storage_options: StorageOptions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read a micrograph table.

    Parameters
    ----------
    path : path-like, URL or Location
        A RELION ``.star`` file (``data_optics`` + ``data_micrographs``, or a single block), an
        Xmipp ``.xmd`` file (``block@file.xmd`` picks a block) or a ``.csv`` file.
    storage_options : dict, optional
        For a URL's filesystem (see :func:`daskmic.io.storage.location`).

    Returns
    -------
    micrographs : pandas.DataFrame
        One row per micrograph; STAR/xmd labels without their leading ``_``.
    optics : pandas.DataFrame or None
        The STAR ``data_optics`` block, ``None`` for other formats or when absent.

    Raises
    ------
    MicrographError
        Missing or unparsable file.
    ValueError
        A suffix other than ``.star``, ``.xmd``, ``.csv``.
    """
    block, where = split_table_path(path, storage_options)
    suffix = where.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"path must end in .star, .xmd or .csv, got {str(path)!r}")
    try:
        if not where.is_file():
            raise MicrographError(where, "no such table file")
        with fetched(where) as file:
            return _parse_table(file, suffix, block, where)
    except MicrographError:
        raise
    except Exception as error:  # any parser or storage failure means the table is unusable
        raise MicrographError(where, f"cannot read {suffix} table ({error})") from error


def _parse_table(
    file: Path, suffix: str, block: str | None, where: Location
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The micrograph and optics blocks of the local table ``file`` (a copy of ``where``)."""
    if suffix == ".star":
        linecache.checkcache(str(file))  # starfile reads through linecache; drop stale text
        blocks = starfile.read(file, always_dict=True)
        optics = blocks.get("optics")
        return _pick_block(blocks, block, where, "rlnMicrographName"), optics
    if suffix == ".xmd":
        with open(file, encoding="utf-8") as handle:
            return _pick_block(read_blocks(handle), block, where, "micrograph"), None
    return pd.read_csv(file), None


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], parameter: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{parameter} lacks column(s) {missing}; it has {list(df.columns)}")


def write_star(
    path: str | os.PathLike[str] | Location,
    micrographs: pd.DataFrame,
    optics: pd.DataFrame,
    *,
    rows: Rows | None = None,
) -> None:
    """Write a RELION 3.1+ micrograph STAR file (``data_optics`` + ``data_micrographs``).

    Parameters
    ----------
    path : path-like
        Destination; it appears only once completely written.
    micrographs : pandas.DataFrame
        Needs ``rlnMicrographName`` (relative to the working directory, RELION's convention)
        and ``rlnOpticsGroup``; every other column is written too (booleans as 1/0).
    optics : pandas.DataFrame
        Needs :data:`OPTICS_COLUMNS` (see :func:`daskmic.io.optics_table`); extra columns kept.
    rows : Rows, optional
        The micrographs' rows already formatted (:mod:`daskmic.io.row_cache`): only the others
        are formatted; the file is the same.

    Raises
    ------
    ValueError
        A required column is missing, a micrograph names an optics group not in ``optics``, or
        a text value cannot be written (see :func:`daskmic.io.star.star_text_problem`).
    """
    _require_columns(optics, OPTICS_COLUMNS, "optics")
    _require_columns(micrographs, ("rlnMicrographName", "rlnOpticsGroup"), "micrographs")
    optics = optics[[*OPTICS_COLUMNS, *(c for c in optics.columns if c not in OPTICS_COLUMNS)]]
    optics = optics.astype({"rlnOpticsGroup": int})
    first = ["rlnMicrographName", "rlnOpticsGroup"]
    micrographs = micrographs[[*first, *(c for c in micrographs.columns if c not in first)]]
    micrographs = micrographs.astype({"rlnOpticsGroup": int})
    unknown = sorted(set(micrographs["rlnOpticsGroup"]) - set(optics["rlnOpticsGroup"]))
    if unknown:
        raise ValueError(f"micrographs use optics groups {unknown} that optics does not define")
    text = "".join(
        f"\n# version 30001\n\n{block}"
        for block in (star_block("optics", optics), star_block("micrographs", micrographs, rows))
    )
    write_whole(location(path), text.encode("utf-8"), sync=False)


def write_csv(
    path: str | os.PathLike[str] | Location, df: pd.DataFrame, *, rows: Rows | None = None
) -> None:
    """Write ``df`` as CSV (no index column), atomically.

    Text is always quoted: Python's CSV writer leaves a carriage return in a value unquoted,
    which every reader takes for the end of a row. With ``rows``, the rows it remembers are not
    formatted again (:mod:`daskmic.io.row_cache`); the file is the same.
    """
    head = df.iloc[:0].to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)

    def make(positions: list[int]) -> list[str]:
        part = df.iloc[positions]
        text = part.to_csv(
            index=False, header=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator=_ROW_END
        )
        lines = text.split(_ROW_END)[:-1]
        if len(lines) != len(positions):  # a value holds the separator: one row at a time
            return [_csv_row(part.iloc[[i]]) for i in range(len(part))]
        return [f"{line}\n" for line in lines]

    schema = (tuple(map(str, df.columns)), tuple(map(str, df.dtypes)))
    text = head + "".join(formatted(rows, schema, len(df), make))
    write_whole(location(path), text.encode("utf-8"), sync=False)


_ROW_END = "\x1e\n"
"""What ends a CSV row while rows are formatted apart (the ASCII record separator)."""


def _csv_row(row: pd.DataFrame) -> str:
    return row.to_csv(index=False, header=False, quoting=csv.QUOTE_NONNUMERIC)


def _enabled(df: pd.DataFrame) -> np.ndarray:
    """Xmipp's ``_enabled`` (1 / -1) from ``enabled``, ``accepted`` or ``status`` columns."""
    if "enabled" in df.columns:
        keep = pd.to_numeric(df["enabled"], errors="coerce").fillna(0).to_numpy() > 0
    elif "accepted" in df.columns:
        keep = df["accepted"].fillna(False).astype(bool).to_numpy()
    elif "status" in df.columns:
        keep = ~df["status"].astype(str).isin(["failed", "discarded"]).to_numpy()
    else:
        keep = np.ones(len(df), dtype=bool)
    return np.where(keep, 1, -1)


def write_xmd(
    path: str | os.PathLike[str] | Location,
    df: pd.DataFrame,
    *,
    path_column: str | None = None,
    block: str = "micrographs",
    rows: Rows | None = None,
) -> None:
    """Write an Xmipp metadata (``.xmd``) micrograph table, atomically.

    The file path goes to ``_micrograph``, ``_enabled`` is 1 or -1 (from an ``enabled``,
    ``accepted`` or ``status`` column; ``failed``/``discarded`` are disabled), and columns named
    in :data:`XMIPP_LABELS` take Xmipp's labels (``pixel_size_A`` -> ``_samplingRate``,
    ``mean``/``std``/``min``/``max`` -> ``_avg``/``_stddev``/``_min``/``_max``, ...). Other
    columns keep their names. Note that Xmipp reads ``nan`` as 0.

    Parameters
    ----------
    path : path-like
        Destination.
    df : pandas.DataFrame
        One row per micrograph.
    path_column : str, optional
        Column holding the micrograph file path; by default the first present of
        ``rlnMicrographName``, ``output_path``, ``path``, ``micrograph_path``, ``micrograph``.
    block : str, optional
        Block name (``data_<block>``); Xmipp programs address it as ``block@file.xmd``.
    rows : Rows, optional
        The rows already formatted (:mod:`daskmic.io.row_cache`): only the others are
        formatted; the file is the same.
    """
    candidates = ("rlnMicrographName", "output_path", "path", "micrograph_path", "micrograph")
    if path_column is None:
        path_column = next((c for c in candidates if c in df.columns), None)
    if path_column not in df.columns:
        raise ValueError(
            f"path_column must name a column of df holding file paths, got {path_column!r}; "
            f"df has {list(df.columns)}"
        )
    out = {"micrograph": df[path_column].astype(str), "enabled": _enabled(df)}
    for column in df.columns:
        if column in (path_column, "enabled"):
            continue
        label = XMIPP_LABELS.get(column, star_label(column))
        label = label if label not in out else star_label(column)
        while label in out:
            label += "_"
        out[label] = df[column].to_numpy()
    text = "# XMIPP_STAR_1 *\n#\n" + star_block(block, pd.DataFrame(out, index=df.index), rows)
    write_whole(location(path), text.encode("utf-8"), sync=False)
