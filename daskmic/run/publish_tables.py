"""The tables of an output folder, written from its records: ``micrographs.csv``, the STAR
and ``.xmd`` tables, ``tilt.csv``, the tilt split (STAR and lists) and the Scipion sets.

One function, :func:`write_tables`, writes them all from the records' table (sorted by
micrograph name), so every publish (:mod:`daskmic.run.publish`) gives the same bytes. With
:class:`RememberedRows` it formats only the rows whose record changed since the last publish
(:mod:`daskmic.io.row_cache`): each file is still written whole, with the same bytes.
:func:`check_table_names` refuses, before a run, paths they could not hold (here, not in
:mod:`daskmic.run.publish`, so a run's checks do not import the zarr store).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from daskmic.errors import UsageError
from daskmic.io import write_csv, write_star, write_xmd
from daskmic.io.live_set import LiveSet
from daskmic.io.row_cache import RowCache, Rows, objects, positions
from daskmic.io.star import check_star_text
from daskmic.io.storage import Location, is_url, write_whole
from daskmic.io.tables import OPTICS_COLUMNS
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest
from daskmic.run.optics_groups import optics_table
from daskmic.run.publish_sets import relative_path, write_preprocess_set, write_tilt_set
from daskmic.run.source import Source
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


@dataclass
class RememberedRows:
    """The rows of every table file as last formatted, for the next publish of one folder.

    ``stamps`` gives, by micrograph, what identifies its record's content (a new stamp: the
    row changed); a micrograph without a stamp is always formatted again. The Scipion sets
    are kept as live databases (:mod:`daskmic.io.live_set`) where ``layout`` puts them (a
    local folder's ``.daskmic/sets``: a new process takes them over), or in memory when None.
    """

    stamps: Mapping[str, Hashable] = field(default_factory=dict)
    layout: OutputLayout | None = None
    _caches: dict[str, tuple[Hashable, RowCache]] = field(default_factory=dict)
    _sets: dict[str, LiveSet] = field(default_factory=dict)
    _names: np.ndarray = field(default_factory=lambda: objects([]))
    _stamps: np.ndarray = field(default_factory=lambda: objects([]))

    def refresh(self) -> None:
        """Take the stamps as they are now (once per publish), in the tables' order."""
        names = sorted(self.stamps)
        self._names, self._stamps = objects(names), objects([self.stamps[n] for n in names])

    def rows(
        self, file: Location, names: pd.Series, context: Hashable, *derived: np.ndarray
    ) -> Rows:
        """The remembered rows of ``file``: keyed by micrograph ``names``, versioned by record
        stamp and each row's ``derived`` values (optics group); ``context`` (the optics
        groups' table) is what every row depends on."""
        context = (os.getcwd(), context)  # the paths are relative to the working directory
        known, cache = self._caches.get(str(file), (None, None))
        if cache is None or known != context:
            cache = RowCache()
            self._caches[str(file)] = (context, cache)
        return self._keyed(cache, names, derived)

    def set_rows(
        self, kind: str, names: pd.Series, context: Hashable, *derived: np.ndarray
    ) -> tuple[LiveSet, Rows]:
        """The live database of the Scipion set of ``kind`` and its rows, as :meth:`rows`."""
        live = self._sets.get(kind)
        if live is None:
            stored = None if self.layout is None else self.layout.live_set(kind)
            live = self._sets[kind] = LiveSet(stored if isinstance(stored, Path) else None)
        live.context = repr((os.getcwd(), context))  # paths relative to the working directory
        return live, self._keyed(live.cache, names, derived)

    def close(self) -> None:
        """Close the live databases (a run's last publish): they open again when needed."""
        for live in self._sets.values():
            live.close()

    def _keyed(self, cache: RowCache, names: pd.Series, derived: tuple[np.ndarray, ...]) -> Rows:
        keys = names.to_numpy(dtype=object)
        where = positions(keys, self._names)
        stamps, found = objects([None] * len(keys)), where >= 0  # unstamped: made again
        stamps[found] = self._stamps[where[found]]
        return Rows(cache, keys, [stamps, *derived])


def _rows(
    remembered: RememberedRows | None,
    file: Location,
    names: pd.Series,
    context: Hashable = None,
    *derived: np.ndarray,
) -> Rows | None:
    if remembered is None:
        return None
    return remembered.rows(file, names, context, *derived)


def _set_rows(
    remembered: RememberedRows | None,
    kind: str,
    names: pd.Series,
    context: Hashable,
    groups: np.ndarray,
) -> dict[str, Any]:
    """``live`` and ``rows`` for a Scipion set's writer (none: the set is written whole)."""
    if remembered is None:
        return {}
    live, rows = remembered.set_rows(kind, names, context, groups)
    return {"live": live, "rows": rows}


def _context(optics: pd.DataFrame) -> Hashable:
    return tuple(map(str, optics.columns)), tuple(
        tuple(str(value) for value in row) for row in optics.itertuples(index=False)
    )


def project_path(path: str) -> str:
    """A path relative to the working directory (RELION's project convention); a URL as is."""
    return _project_path(path, os.getcwd())


def project_paths(paths: pd.Series) -> list[str]:
    """Paths as :func:`project_path` gives them (the working directory asked once)."""
    cwd = os.getcwd()
    return [_project_path(path, cwd) for path in paths.tolist()]


@functools.lru_cache(maxsize=2**17)  # every publish names every micrograph
def _project_path(path: str, cwd: str) -> str:
    return path if is_url(path) else relative_path(path, cwd)


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
    layout = OutputLayout(out_dir)
    folder = layout.micrograph("").parent.resolve()  # as recorded, resolved once
    try:
        check_star_text([project_path(os.fspath(out_dir))], "output folder", fragment=True)
        for source in sources:
            check_star_text([project_path(source.path)], "micrograph file")
            if "rlnMicrographName" in source.columns:
                check_star_text([str(source.columns["rlnMicrographName"])], "rlnMicrographName")
            output = folder / layout.micrograph(source.micrograph).name
            check_star_text([project_path(str(output))], "output file")
    except ValueError as error:
        raise UsageError(str(error)) from None


def _optics(
    table: pd.DataFrame, manifest: Manifest, config: RunConfig, output_pixel_size: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """The optics groups of ``table``'s rows (:func:`daskmic.run.optics_groups.optics_table`).

    The table depends only on the distinct (pixel sizes, group) of the rows, so it is made from
    those, once each.
    """
    if table.empty:
        return pd.DataFrame(columns=list(OPTICS_COLUMNS)), np.zeros(0, dtype=int)
    keys = pd.DataFrame(
        {
            "pixel": table["output_pixel_size_A" if output_pixel_size else "pixel_size_A"],
            "original": table["pixel_size_A"],
            "group": table["rlnOpticsGroup"] if "rlnOpticsGroup" in table.columns else 0,
        }
    )
    codes = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy()
    distinct = keys.iloc[np.unique(codes, return_index=True)[1]]  # in the order of the codes
    optics, groups = optics_table(
        distinct["pixel"],
        original_pixel_size_A=distinct["original"],
        optics_group=distinct["group"] if "rlnOpticsGroup" in table.columns else None,
        carried_optics=manifest.optics() or None,
        **config.optics,
    )
    return optics, groups[codes]


def _write_star(
    path: Location,
    table: pd.DataFrame,
    names: pd.Series,
    optics: pd.DataFrame,
    groups: np.ndarray,
    remembered: RememberedRows | None,
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
        {"rlnMicrographName": project_paths(names), "rlnOpticsGroup": groups}
    )
    star = pd.concat([star, table[carried].reset_index(drop=True)], axis=1)
    rows = _rows(remembered, path, table["micrograph"], _context(optics), groups)
    write_star(path, star, optics, rows=rows)


def _publish_preprocess(
    out: OutputLayout,
    table: pd.DataFrame,
    written: Mapping[str, float],
    manifest: Manifest,
    config: RunConfig,
    stream_open: bool,
    remembered: RememberedRows | None,
) -> None:
    outputs = ["output_path", "output_pixel_size_A"]  # absent when every micrograph failed
    done = table[table["status"] != "failed"]
    done = done.reindex(columns=list(dict.fromkeys([*done.columns, *outputs])))
    optics, groups = _optics(done, manifest, config, True)
    _write_star(out.micrographs_star, done, done["output_path"], optics, groups, remembered)
    micrographs = out.scipion_set("micrographs")
    live = _set_rows(remembered, "micrographs", done["micrograph"], _context(optics), groups)
    write_preprocess_set(
        micrographs, done, optics, groups, written, stream_open=stream_open, **live
    )
    write_xmd(
        out.micrographs_xmd,
        pd.DataFrame(
            {
                "micrograph": project_paths(done["output_path"]),
                "enabled": 1,
                "samplingRate": done["output_pixel_size_A"],
            }
        ),
        rows=_rows(remembered, out.micrographs_xmd, done["micrograph"]),
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
    remembered: RememberedRows | None,
) -> None:
    tilt = table.copy()
    rows = _rows(remembered, out.tilt_csv, tilt["micrograph"])
    write_csv(out.tilt_csv, _ordered(tilt, TILT_COLUMNS).drop(columns=["tilt_status"]), rows=rows)
    for status in ("accepted", "discarded"):
        part = tilt[tilt["status"] == status]
        names = part["rlnMicrographName"] if "rlnMicrographName" in part else part["path"]
        optics, groups = _optics(part, manifest, config, False)
        _write_star(out.split_star(status), part, names, optics, groups, remembered)
        file = out.scipion_set(status)
        live = _set_rows(remembered, status, part["micrograph"], _context(optics), groups)
        write_tilt_set(file, part, names, optics, groups, written, stream_open=stream_open, **live)
        text = "".join(f"{path}\n" for path in part["path"].tolist())
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
    remembered: RememberedRows | None = None,
) -> None:
    """Write every table of the run's steps from ``table`` (:func:`table_of`).

    ``written`` gives, by micrograph, when its record was written (the Scipion sets' creation
    times); ``stream_open`` leaves the Scipion sets open for more micrographs; ``remembered``
    holds the rows formatted by the last call for the same folder (only rows whose record
    stamp changed are formatted again; the files are the same).
    """
    if remembered is not None:
        remembered.refresh()
    rows = _rows(remembered, out.micrographs_csv, table["micrograph"])
    write_csv(out.micrographs_csv, table, rows=rows)
    if config.preprocess is not None:
        _publish_preprocess(out, table, written, manifest, config, stream_open, remembered)
    if config.tilt is not None:
        _publish_tilt(out, table, written, manifest, config, stream_open, remembered)
    if remembered is not None and not stream_open:
        remembered.close()  # the run's last publish: no database file left open

