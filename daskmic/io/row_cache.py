"""Remembered rows of a table that is rewritten whole: only new or changed rows are formatted.

A table file (CSV, STAR, ``.xmd``) is written whole at every publish, sorted by micrograph
name, but each row's formatted text depends only on that row and on the table's columns.
:class:`RowCache` keeps each row's text by a key (the micrograph) and a version (what
identifies the row's content: its record file's stamp, its optics group), so a writer formats
the rows whose version changed and takes the others as they were. Matching the rows is
vectorised: a comparison when the rows only grew (or shrank) at the end, a join otherwise, so
the cost besides the new rows is that and the file's bytes. The Scipion sets keep their rows
in a live database instead (:mod:`daskmic.io.live_set`), with the same matching.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def objects(values: Sequence[Any]) -> np.ndarray:
    """``values`` as a 1-D object array (tuples stay elements, not rows)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


@dataclass
class RowCache:
    """Formatted rows of one table file, by key, valid while their version and the table's
    schema (its columns and their types) stay."""

    schema: Hashable = None
    keys: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object))
    """The rows' keys, in the order of :attr:`values` (an object index)."""
    versions: list[np.ndarray] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: objects([]))

    def clear(self) -> None:
        """Forget every row."""
        self.schema, self.keys = None, pd.Index([], dtype=object)
        self.versions, self.values = [], objects([])


@dataclass(frozen=True)
class Rows:
    """Which rows a writer may take from a :class:`RowCache`: each row's key (unique) and
    version parts (arrays aligned with the keys), in the table's order. A row whose first
    version part is missing (None, NaN) is always formatted again."""

    cache: RowCache
    keys: np.ndarray
    versions: Sequence[np.ndarray]


def formatted(
    rows: Rows | None,
    schema: Hashable,
    count: int,
    make: Callable[[list[int]], list[Any]],
) -> list[Any]:
    """Each of ``count`` rows formatted, ``make`` called only for those ``rows`` lacks.

    Parameters
    ----------
    rows : Rows or None
        The remembered rows (None: format every row).
    schema : hashable
        What every row's format depends on besides the row (columns, types); when it differs
        from the remembered one, nothing is reused.
    count : int
        Number of rows in the table.
    make : callable
        ``make(positions)`` -> the formatted rows at those positions, in that order.

    Returns
    -------
    list
        The formatted rows, in table order.
    """
    if rows is None:
        return make(list(range(count)))
    values, positions = known(rows, schema, count)
    if positions:
        made = make(positions)
        if len(made) != len(positions):
            raise ValueError(f"{len(made)} rows formatted for {len(positions)} asked")
        values[positions] = objects(made)
    remember(rows, schema, values)
    return values.tolist()


def known(rows: Rows, schema: Hashable, count: int) -> tuple[np.ndarray, list[int]]:
    """The remembered values of ``count`` rows (None where there are none) and the positions
    of the rows to make: new, changed (another version), unstamped, or all of them when the
    ``schema`` is not the remembered one (:func:`formatted`)."""
    if len(rows.keys) != count or any(len(v) != count for v in rows.versions):
        raise ValueError(f"rows name {len(rows.keys)} keys for a table of {count} rows")
    cache = rows.cache
    same = cache.schema == schema and len(cache.versions) == len(rows.versions)
    if not same or not len(cache.keys):
        return objects([None] * count), list(range(count))
    where = positions(rows.keys, cache.keys)
    stale = where < 0
    if rows.versions:
        stale |= pd.isna(rows.versions[0])
    for old, new in zip(cache.versions, rows.versions, strict=True):
        stale |= np.asarray(old[where] != new, dtype=bool)
    return cache.values[where], np.flatnonzero(stale).tolist()


def remember(rows: Rows, schema: Hashable, values: np.ndarray) -> None:
    """Keep ``values`` (every row's, in table order) as the rows of ``rows.cache``."""
    cache = rows.cache
    cache.schema, cache.keys, cache.values = schema, pd.Index(rows.keys, dtype=object), values
    cache.versions = list(rows.versions)


def positions(keys: np.ndarray | pd.Index, among: np.ndarray | pd.Index) -> np.ndarray:
    """Each of ``keys``' position in ``among`` (-1 where absent); the keys of each unique.

    Linear, without hashing, when one begins with the other: rows appended or removed at the
    end, or none moved (a stream's publishes); a join otherwise.
    """
    mine, theirs = np.asarray(keys, dtype=object), np.asarray(among, dtype=object)
    common = min(len(mine), len(theirs))
    if np.array_equal(mine[:common], theirs[:common]):
        return np.concatenate([np.arange(common), np.full(len(mine) - common, -1)])
    index: pd.Index = pd.Index(theirs, dtype="object")
    return index.get_indexer(pd.Index(mine, dtype="object"))
