"""Remembered rows of a table that is rewritten whole: only new or changed rows are formatted.

A table file (CSV, STAR, ``.xmd``, a Scipion set) is written whole at every publish, sorted by
micrograph name, but each row's formatted text (or sqlite values) depends only on that row and
on the table's columns. :class:`RowCache` keeps each row's text by a key (the micrograph) and a
version (what identifies the row's content, e.g. its record file's stamp and its optics group),
so a writer formats the rows whose version changed and joins the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RowCache:
    """Formatted rows of one table file, by key, valid while their version and the table's
    schema (its columns and their types) stay."""

    schema: Hashable = None
    rows: dict[Hashable, tuple[Hashable, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Rows:
    """Which rows a writer may take from a :class:`RowCache`: each row's key and version, in
    the table's order. A version ``None`` is never reused."""

    cache: RowCache
    keys: Sequence[Hashable]
    versions: Sequence[Hashable]


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
    if len(rows.keys) != count or len(rows.versions) != count:
        raise ValueError(f"rows name {len(rows.keys)} keys for a table of {count} rows")
    cache = rows.cache
    if cache.schema != schema:
        cache.schema, cache.rows = schema, {}
    known = cache.rows
    stale = []
    for position, (key, version) in enumerate(zip(rows.keys, rows.versions, strict=True)):
        found = known.get(key)
        if version is None or found is None or found[0] != version:
            stale.append(position)
    if stale:
        made = make(stale)
        if len(made) != len(stale):
            raise ValueError(f"{len(made)} rows formatted for {len(stale)} asked")
        for position, value in zip(stale, made, strict=True):
            known[rows.keys[position]] = (rows.versions[position], value)
    if len(known) > count:  # rows gone from the table
        cache.rows = known = {key: known[key] for key in rows.keys}
    return [known[key][1] for key in rows.keys]
