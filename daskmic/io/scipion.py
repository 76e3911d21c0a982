"""Scipion ``SetOfMicrographs`` files, read and written with the standard library's sqlite3.

A set file has three tables:

- ``Properties(key, value)``: the set's own attributes (``self`` = the set's class, ``_size``,
  ``_streamState`` 1 = open / 2 = closed, ``_samplingRate``, ``_acquisition._voltage``, ...);
- ``Classes(id, label_property, column_name, class_name)``: one row per item attribute, mapping
  its label (``_filename``, ``_acquisition._voltage``) to a column (``c02``) and its class
  (``String``, ``Float``, ...); the row labelled ``self`` names the items' class (``c00``);
- ``Objects(id, enabled, label, comment, creation, c01, c02, ...)``: one row per item, the
  attribute columns in the order of ``Classes``. pyworkflow reads them by position.

Paths in a project's sets are relative to the project folder (Scipion runs protocols there).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from upath import UPath

from daskmic.io.errors import MicrographError
from daskmic.io.storage import Location, StorageOptions, fetched, is_local, is_url, location

SET_SUFFIX = ".sqlite"
STREAM_OPEN, STREAM_CLOSED = 1, 2
"""Values of ``_streamState``: a producer may still append (open) or is done (closed)."""

ACQUISITION = {
    "_magnification": "Float",
    "_voltage": "Float",
    "_sphericalAberration": "Float",
    "_amplitudeContrast": "Float",
    "_doseInitial": "Float",
    "_dosePerFrame": "Float",
    "opticsGroupInfo": "String",
}
"""pwem's ``Acquisition`` attributes and their classes, in its order."""

MICROGRAPH_SCHEMA = {
    "_index": "Integer",
    "_filename": "String",
    "_samplingRate": "Float",
    "_acquisition": "Acquisition",
    **{f"_acquisition.{name}": kind for name, kind in ACQUISITION.items()},
    "_micName": "String",
}
"""pwem's ``Micrograph`` attributes (label -> class), in the order its sets store them."""

IMAGE_SCHEMA = {"_index": "Integer", "_filename": "String", "_samplingRate": "Float"}
"""pwem's ``Image`` attributes, for image-valued attributes such as ``_tilt_psds_image``."""



def is_set_file(source: object) -> bool:
    """Whether ``source`` names a Scipion set file (by its ``.sqlite`` suffix)."""
    if isinstance(source, UPath):
        return source.suffix.lower() == SET_SUFFIX
    return isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == SET_SUFFIX


@dataclass(frozen=True)
class ScipionSet:
    """The enabled items of a set and its properties.

    Attributes
    ----------
    items : pandas.DataFrame
        One row per enabled item: ``scipion_id`` (the item's ``id``) and one column per
        attribute label (``_filename``, ``_samplingRate``, ``_acquisition._voltage``, ...).
    properties : dict
        The ``Properties`` table (values as stored: text or None).
    disabled : int
        Number of rows skipped because they are disabled.
    """

    items: pd.DataFrame
    properties: dict[str, str | None]
    disabled: int = 0

    @property
    def stream_open(self) -> bool:
        """Whether the producer may still append items (``_streamState`` 1)."""
        return number(self.properties.get("_streamState")) == STREAM_OPEN


def number(value: object) -> float:
    """``value`` as a float; NaN when it is missing or not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def read_set(
    path: str | os.PathLike[str] | Location,
    *,
    retries: int = 20,
    storage_options: StorageOptions | None = None,
) -> ScipionSet:
    """Read a set file's enabled items and its properties (read-only; never modifies it).

    Parameters
    ----------
    path : path-like, URL or Location
        A ``SetOfMicrographs`` (or other flat set) sqlite file; at a URL it is copied whole
        to a temporary file first (sqlite reads files).
    retries : int
        Attempts, 0.1 s apart, while a producer holds a write lock on the file.
    storage_options : dict, optional
        For a URL's filesystem (see :func:`daskmic.io.storage.location`).

    Raises
    ------
    MicrographError
        The file is missing or is not a Scipion set.
    """
    where = location(path, storage_options)
    try:
        if not where.is_file():
            raise MicrographError(where, "no such Scipion set file")
        with fetched(where) as file:
            return _read_retrying(file, retries, where)
    except (MicrographError, sqlite3.Error):
        raise
    except Exception as error:  # the store's own errors (network, credentials, bucket)
        raise MicrographError(where, f"cannot read Scipion set ({error})") from error


def _read_retrying(file: Path, retries: int, where: Location) -> ScipionSet:
    """Read the local set ``file`` (``where``'s bytes), retrying while it is locked."""
    for attempt in range(retries + 1):
        try:
            return _read(file, where)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == retries:
                raise MicrographError(where, f"cannot read Scipion set ({error})") from error
            time.sleep(0.1)
        except sqlite3.DatabaseError as error:
            raise MicrographError(where, f"cannot read Scipion set ({error})") from error
    raise AssertionError("unreachable")


def _read(file: Path, where: Location) -> ScipionSet:
    uri = f"{file.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if not {"Properties", "Classes", "Objects"} <= tables:
            raise MicrographError(where, "not a Scipion set (needs Properties, Classes, Objects)")
        properties = dict(db.execute("SELECT key, value FROM Properties").fetchall())
        mapping = db.execute(
            "SELECT label_property, column_name FROM Classes WHERE label_property != 'self' "
            "ORDER BY id"
        ).fetchall()
        columns = ", ".join(["id", "enabled", *(column for _, column in mapping)])
        rows = db.execute(f"SELECT {columns} FROM Objects ORDER BY id").fetchall()
    labels = ["scipion_id", "enabled", *(label for label, _ in mapping)]
    frame = pd.DataFrame(rows, columns=labels)
    enabled = frame["enabled"].fillna(1).astype(int) != 0
    composites = {label.rsplit(".", 1)[0] for label in labels if "." in label}
    items = frame[enabled].drop(columns=["enabled", *composites]).reset_index(drop=True)
    return ScipionSet(items=items, properties=properties, disabled=int((~enabled).sum()))


def project_folder(set_file: str | os.PathLike[str] | Location) -> Location | None:
    """The Scipion project holding ``set_file``: the folder above its ``Runs`` ancestor."""
    where = set_file if isinstance(set_file, UPath) else Path(os.path.abspath(set_file))
    return next((p.parent for p in where.parents if p.name == "Runs"), None)


def resolve_item_path(name: str, set_file: str | os.PathLike[str] | Location) -> Location:
    """An item's file: absolute as is; else under the project, the working folder or the set's.

    Scipion stores paths relative to the project folder and runs its protocols there; a set
    outside a project is read relative to the working directory, then to its own folder. A set
    at a URL names its files relative to its project there, else to its own folder (a URL
    too), and may name them by URL.
    """
    if is_url(name):
        options = set_file.storage_options if isinstance(set_file, UPath) else None
        return location(name, options)
    path = Path(name)
    if path.is_absolute():
        return path
    if isinstance(set_file, UPath) and not is_local(set_file):
        return (project_folder(set_file) or set_file.parent) / name
    set_path = Path(set_file)
    project = project_folder(set_path)
    bases = [b for b in (project, Path.cwd(), Path(os.path.abspath(set_path)).parent) if b]
    found = next((b / path for b in bases if (b / path).exists()), bases[0] / path)
    return Path(os.path.abspath(str(found)))


def _item_optics(items: pd.DataFrame, properties: Mapping[str, Any]) -> pd.DataFrame:
    """Per item: pixel size, voltage, Cs, amplitude contrast (item's, else the set's)."""
    wanted = {
        "_samplingRate": "rlnMicrographPixelSize",
        "_acquisition._voltage": "rlnVoltage",
        "_acquisition._sphericalAberration": "rlnSphericalAberration",
        "_acquisition._amplitudeContrast": "rlnAmplitudeContrast",
    }
    optics = pd.DataFrame(index=items.index)
    for label, column in wanted.items():
        given = items[label] if label in items.columns else pd.Series(np.nan, items.index)
        values = pd.to_numeric(given, errors="coerce")
        optics[column] = values.fillna(number(properties.get(label)))
    return optics


def set_tables(scipion_set: ScipionSet) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A set as daskmic's input tables: micrographs (with optics groups) and RELION optics.

    Items sharing pixel size and acquisition (voltage, Cs, amplitude contrast) form one optics
    group, numbered 1, 2, ... in increasing order of those values; each item's pixel size is
    its own ``_samplingRate``, else the set's.

    Returns
    -------
    micrographs : pandas.DataFrame
        ``scipion_id``, every attribute label and ``rlnOpticsGroup``.
    optics : pandas.DataFrame
        RELION ``data_optics`` columns, one row per group.
    """
    items = scipion_set.items.copy()
    per_item = _item_optics(items, scipion_set.properties)
    keys = [tuple(-1.0 if np.isnan(v) else v for v in row) for row in per_item.to_numpy()]
    groups = {key: number for number, key in enumerate(sorted(set(keys)), 1)}
    items["rlnOpticsGroup"] = [groups[key] for key in keys]
    rows = []
    for key, number in groups.items():
        values = dict(zip(per_item.columns, key, strict=True))
        values = {k: (np.nan if v == -1.0 else v) for k, v in values.items()}
        rows.append(
            {
                "rlnOpticsGroup": number,
                "rlnOpticsGroupName": f"opticsGroup{number}",
                "rlnMicrographOriginalPixelSize": values["rlnMicrographPixelSize"],
                **values,
            }
        )
    optics = pd.DataFrame(rows).sort_values("rlnOpticsGroup", ignore_index=True)
    return items.reset_index(drop=True), optics
