"""Writing Scipion ``SetOfMicrographs`` files (layout in :mod:`daskmic.io.scipion`)."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from daskmic.io.live_set import LiveSet
from daskmic.io.row_cache import Rows
from daskmic.io.scipion import (
    ACQUISITION,
    IMAGE_SCHEMA,
    MICROGRAPH_SCHEMA,
    STREAM_CLOSED,
    STREAM_OPEN,
    number,
)
from daskmic.io.storage import Location, location, write_whole

_SQL_TYPES = {"Integer": "INTEGER", "Float": "REAL", "Boolean": "INTEGER"}


def _class_of(label: str, values: pd.Series, schema: Mapping[str, str]) -> str:
    if label in schema:
        return schema[label]
    if pd.api.types.is_bool_dtype(values):
        return "Boolean"
    if pd.api.types.is_integer_dtype(values):
        return "Integer"
    if pd.api.types.is_numeric_dtype(values):
        return "Float"
    return "String"


def _sql_value(value: Any, kind: str) -> Any:
    """A cell as stored: NULL for missing values (NaN, None, "") and for composites."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "String":
        return str(value)
    if kind not in _SQL_TYPES:
        return None  # a composite (Acquisition, Image): its attributes carry the values
    value = number(value)
    if math.isnan(value):
        return None
    return value if kind == "Float" else int(value)


def _properties(
    first_item: pd.DataFrame, size: int, stream_open: bool, dims: tuple[int, int] | None
) -> dict[str, str | None]:
    first = first_item.iloc[0] if len(first_item) else pd.Series(dtype=object)

    def text(label: str) -> str | None:
        value = first.get(label)
        return None if value is None or value == "" or pd.isna(value) else str(value)

    properties: dict[str, str | None] = {
        "self": "SetOfMicrographs",
        "_size": str(size),
        "_streamState": str(STREAM_OPEN if stream_open else STREAM_CLOSED),
        "_samplingRate": text("_samplingRate"),
        "_hasCtf": "False",
        "_alignment": "None",
        "_isPhaseFlipped": "False",
        "_isAmplitudeCorrected": "False",
        "_acquisition": None,
    }
    properties |= {f"_acquisition.{a}": text(f"_acquisition.{a}") for a in ACQUISITION}
    properties["_firstDim"] = "" if dims is None else f"{dims[1]},{dims[0]},1"
    properties["_scannedPixelSize"] = None
    return properties


def write_set(
    path: str | os.PathLike[str] | Location,
    items: pd.DataFrame,
    *,
    stream_open: bool,
    dims: tuple[int, int] | None = None,
    creation: list[str] | None = None,
    rows: Rows | None = None,
    live: LiveSet | None = None,
) -> None:
    """Write a ``SetOfMicrographs`` file that pwem reads, atomically.

    Parameters
    ----------
    path : path-like
        Destination (``.sqlite``); it appears only once complete.
    items : pandas.DataFrame
        One row per micrograph: ``id`` (positive, unique) and one column per attribute label.
        Labels of :data:`MICROGRAPH_SCHEMA` and :data:`IMAGE_SCHEMA` (under an image
        attribute such as ``_tilt_psds_image``) take pwem's classes; other columns take
        ``Float``, ``Integer``, ``Boolean`` or ``String`` from their dtype. A composite
        attribute (``_acquisition``, ``_tilt_psds_image``) is declared before its parts.
    stream_open : bool
        ``_streamState`` 1 (a producer may still append) or 2 (complete).
    dims : tuple of int, optional
        ``(ny, nx)`` of the first micrograph, for ``_firstDim``.
    creation : list of str, optional
        Per item, its creation time (``YYYY-MM-DD HH:MM:SS``).
    rows : Rows, optional
        The items' keys and versions (:mod:`daskmic.io.row_cache`), with ``live``.
    live : LiveSet, optional
        The set's database as last written (:mod:`daskmic.io.live_set`): only the items new,
        changed (another version) or moved (another ``id``) since are converted and stored;
        the file is the same as a whole write's. Without it the set is written whole.
    """
    if "id" not in items.columns:
        raise ValueError("items must have a unique 'id' column")
    times = creation or [time.strftime("%Y-%m-%d %H:%M:%S")] * len(items)
    write_set_rows(
        path,
        items["id"].to_numpy(),
        lambda positions: items.iloc[positions],
        lambda positions: [times[i] for i in positions],
        stream_open=stream_open,
        dims=dims,
        rows=rows,
        live=live,
    )


def write_set_rows(
    path: str | os.PathLike[str] | Location,
    ids: np.ndarray,
    items_at: Callable[[list[int]], pd.DataFrame],
    creation_at: Callable[[list[int]], list[str]],
    *,
    stream_open: bool,
    dims: tuple[int, int] | None = None,
    rows: Rows | None = None,
    live: LiveSet | None = None,
) -> None:
    """:func:`write_set` of items made only for the rows ``live`` lacks.

    ``ids`` are every item's id; ``items_at(positions)`` gives those items as
    :func:`write_set` takes them (their column types those of every item), and
    ``creation_at(positions)`` their creation times. ``rows`` (keys and versions) and
    ``live`` as :func:`write_set` takes them.
    """
    if pd.Series(ids).duplicated().any():
        raise ValueError("items must have a unique 'id' column")
    first = items_at([0] if len(ids) else [])
    kinds = _classes([c for c in first.columns if c != "id"], first)
    columns = {label: f"c{i:02d}" for i, label in enumerate(kinds, 1)}

    def make(positions: list[int]) -> list[tuple]:  # a row's values but its id
        return [
            (1, "", "", stamp)
            + tuple(_sql_value(r.get(label), kind) for label, kind in kinds.items())
            for r, stamp in zip(
                items_at(positions).to_dict("records"), creation_at(positions), strict=True
            )
        ]

    def create(db: sqlite3.Connection) -> None:
        _create_tables(db, kinds, columns)
        db.execute(insert_class, ("self", "c00", "Micrograph"))
        db.executemany(insert_class, [(k, columns[k], kind) for k, kind in kinds.items()])

    insert_class = "INSERT INTO Classes (label_property, column_name, class_name) VALUES (?, ?, ?)"
    properties = list(_properties(first, len(ids), stream_open, dims).items())
    target = live if live is not None and rows is not None else LiveSet()  # whole: in memory
    whole = target is not live
    try:
        schema = repr((target.context, tuple(kinds.items())))
        data = target.write(schema, create, ids, rows, make, properties)
    finally:
        if whole:
            target.close()
    write_whole(location(path), data, sync=False)  # derived from the records: no fsync


def _classes(labels: list[str], items: pd.DataFrame) -> dict[str, str]:
    """Each attribute's class, in the order pwem stores them (composites before parts)."""
    schema = dict(MICROGRAPH_SCHEMA)
    for parent in sorted(_parents(labels) - set(MICROGRAPH_SCHEMA)):
        schema[parent] = "Image"
        schema |= {f"{parent}.{name}": kind for name, kind in IMAGE_SCHEMA.items()}
    ordered = [label for label in MICROGRAPH_SCHEMA if label in labels]
    ordered = _parents_first(ordered + [label for label in labels if label not in ordered])
    empty = pd.Series(dtype=object)
    return {label: _class_of(label, items.get(label, empty), schema) for label in ordered}


def _parents(labels: list[str]) -> set[str]:
    return {label.split(".")[0] for label in labels if "." in label}


def _parents_first(labels: list[str]) -> list[str]:
    """Each composite label right before its first part."""
    out: list[str] = []
    for label in labels:
        parent = label.split(".")[0]
        if "." in label and parent not in out:
            out.append(parent)
        if label not in out:
            out.append(label)
    return out


def _create_tables(db: sqlite3.Connection, kinds: dict[str, str], columns: dict[str, str]) -> None:
    attributes = "".join(
        f", {columns[label]} {_SQL_TYPES.get(kind, 'TEXT')} DEFAULT NULL"
        for label, kind in kinds.items()
    )
    db.executescript(
        "CREATE TABLE Properties (key TEXT UNIQUE, value TEXT DEFAULT NULL);"
        "CREATE TABLE Classes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "label_property TEXT UNIQUE, column_name TEXT UNIQUE, class_name TEXT DEFAULT NULL);"
        "CREATE TABLE Objects (id INTEGER PRIMARY KEY, enabled INTEGER DEFAULT 1, "
        "label TEXT DEFAULT NULL, comment TEXT DEFAULT NULL, creation DATE"
        f"{attributes});"
    )
