"""A Scipion set kept between publishes: a sqlite database that receives only its new, changed
and moved items, published whole as its ``VACUUM INTO`` image.

``VACUUM INTO`` copies each table in the order of its b-tree (the items by ``id``) into a new
database, so the image depends only on the database's content and on the statements that
created its tables: not on the order the items arrived in, nor on what was replaced or deleted
before. A whole write (:func:`daskmic.io.scipion_write.write_set`) fills a new database in
memory with every item and takes the same image, so both give the same bytes.

Beside the set's tables, two more keep each item's key (its micrograph), ``id`` and version,
what every item depends on (the schema) and a generation counted at each change, in the same
transactions; the image leaves them out (they are dropped from it, and it is vacuumed again:
a whole write takes the same steps). The database is in WAL mode: a change costs no fsync,
and after a crash of the machine it is as it was at some earlier change, consistent. A process
that finds the database at another generation than its own (a new process, another writer, a
crash) takes it over from there and compares the versions; one that cannot read it, or finds
another schema, makes it again from every item.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from daskmic.io.row_cache import RowCache, Rows, known, objects, positions, remember

_ROWS_SCHEMA = (
    "CREATE TABLE daskmic_meta (name TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE daskmic_rows (id INTEGER PRIMARY KEY, key TEXT UNIQUE, version TEXT)",
)


class _Changed:
    """A version equal to none: the item must be made again."""

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


class LiveSet:
    """One set file's database, its items made only when new, changed or moved.

    Parameters
    ----------
    file : pathlib.Path, optional
        The live database; None keeps it in memory, for this object's life only.
    """

    def __init__(self, file: Path | None = None) -> None:
        self.file = file
        self.context = ""
        """What every item depends on besides itself and its columns (set by the owner)."""
        self.cache = RowCache()
        """What the database holds, by key: each item's versions, the last its ``id``."""
        self.written = 0
        """Items made by the last :meth:`write` (work done, for tests and benchmarks)."""
        self._db: sqlite3.Connection | None = None
        self._generation = -1

    def write(
        self,
        schema: str,
        create: Callable[[sqlite3.Connection], None],
        ids: np.ndarray,
        rows: Rows | None,
        make: Callable[[list[int]], list[tuple]],
        properties: Sequence[tuple[str, str | None]],
    ) -> bytes:
        """Bring the database to the items and return the set file's bytes.

        Parameters
        ----------
        schema : str
            What every item depends on besides itself (columns, their classes, context);
            another schema than the database's makes it again.
        create : callable
            Creates the set's tables on a new database (the same statements every time).
        ids : numpy.ndarray
            Every item's ``id``, in table order.
        rows : Rows or None
            The items' keys and versions (None: every item is made, nothing is remembered).
        make : callable
            ``make(positions)`` -> the ``Objects`` rows at those positions, but their ids.
        properties : sequence of (str, str or None)
            The ``Properties`` table, written whole.
        """
        for attempt in range(2):
            try:
                db = self._open(schema, create)
                keyed = None if rows is None else Rows(self.cache, rows.keys, [*rows.versions, ids])
                self._store(db, schema, keyed, ids, make, properties)
                break
            except sqlite3.DatabaseError as error:  # damaged, not a database: made again
                busy = getattr(error, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
                if attempt or busy:  # another writer holding it has not damaged it
                    raise
                self.close(discard=True)
        return self._image()

    def close(self, *, discard: bool = False) -> None:
        """Close the database (its WAL merged in); ``discard`` also forgets it and deletes
        its files. A closed one opens again at the next :meth:`write`, where a database
        another writer changed in between is taken over."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if discard:
            self._forget()
            for file in _files(self.file) if self.file is not None else []:
                file.unlink(missing_ok=True)

    def _forget(self) -> None:
        """Remember nothing of the database (it is read again before the next change)."""
        self.cache.clear()
        self._generation = -1

    def _store(
        self,
        db: sqlite3.Connection,
        schema: str,
        keyed: Rows | None,
        ids: np.ndarray,
        make: Callable[[list[int]], list[tuple]],
        properties: Sequence[tuple[str, str | None]],
    ) -> None:
        """In one transaction, store the items ``keyed`` (their last version part their id)
        lacks in the database, delete those gone, and write the properties."""
        count = len(ids)
        db.execute("BEGIN IMMEDIATE")  # one writer at a time (waits for another)
        try:
            generation = int(_meta(db, "generation"))
            if keyed is not None and generation != self._generation:
                self._adopt(db, keyed, schema)
            values, positions = (
                (objects([None] * count), list(range(count)))
                if keyed is None
                else known(keyed, schema, count)
            )
            _delete(db, self._gone(keyed, positions))
            if positions:
                _insert(db, ids[positions].tolist(), make(positions), keyed, positions)
            db.execute("DELETE FROM Properties")
            db.executemany("INSERT INTO Properties (key, value) VALUES (?, ?)", properties)
            _set_generation(db, generation + 1)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._forget()
            raise
        if keyed is not None:
            remember(keyed, schema, values)
        self._generation, self.written = generation + 1, len(positions)

    def _open(
        self, schema: str, create: Callable[[sqlite3.Connection], None]
    ) -> sqlite3.Connection:
        """The database, made anew when missing, unreadable or of another schema."""
        if self._db is None:
            self._db = _connect(self.file)
        try:
            if _meta(self._db, "schema") == schema:
                return self._db
        except sqlite3.DatabaseError:
            pass
        self.close(discard=True)
        db = self._db = _connect(self.file)
        create(db)  # the same statements every time: the image's schema is the same
        for statement in _ROWS_SCHEMA:
            db.execute(statement)
        db.executemany(  # the schema last: a database made only in part is made again
            "INSERT INTO daskmic_meta VALUES (?, ?)", [("generation", "0"), ("schema", schema)]
        )
        return db

    def _adopt(self, db: sqlite3.Connection, rows: Rows, schema: str) -> None:
        """Take what the database holds as remembered: an item whose stored version is the
        current one stays, the others are made again."""
        stored = db.execute("SELECT id, key, version FROM daskmic_rows ORDER BY id").fetchall()
        ids, keys, texts = (objects([row[i] for row in stored]) for i in range(3))
        where = positions(keys, rows.keys)
        found = where >= 0
        same = np.zeros(len(keys), dtype=bool)
        same[found] = objects(_versions(rows.versions, where[found].tolist())) == texts[found]
        versions = []
        for part in rows.versions[:-1]:
            kept = objects([_Changed()] * len(keys))
            kept[same] = part[where[same]]
            versions.append(kept)
        cache = self.cache  # in place: the rows being written name it
        cache.schema, cache.keys = schema, pd.Index(keys, dtype=object)
        cache.versions, cache.values = [*versions, ids], objects([None] * len(keys))

    def _gone(self, rows: Rows | None, made: list[int]) -> list[int]:
        """The ids of the stored items to delete: gone from ``rows`` or to be ``made`` again
        (their positions)."""
        cache = self.cache
        if rows is None or not len(cache.keys) or not cache.versions:
            return []
        where = positions(cache.keys, rows.keys)
        remade = np.zeros(len(rows.keys) + 1, dtype=bool)
        remade[made] = True
        remade[-1] = True  # where -1: the key is gone
        return np.asarray(cache.versions[-1])[remade[where]].tolist()

    def _image(self) -> bytes:
        """The set's bytes: the database's ``VACUUM INTO`` image without daskmic's tables."""
        assert self._db is not None
        copy, image = (f"file:/daskmic-{uuid.uuid4().hex}?vfs=memdb" for _ in range(2))
        with closing(sqlite3.connect(copy, uri=True, isolation_level=None)) as first:
            self._db.execute("VACUUM INTO ?", (copy,))
            for table in ("daskmic_meta", "daskmic_rows"):
                first.execute(f"DROP TABLE {table}")
            with closing(sqlite3.connect(image, uri=True)) as second:
                first.execute("VACUUM INTO ?", (image,))
                return second.serialize()


def _files(file: Path) -> list[Path]:
    return [file, *(file.with_name(f"{file.name}-{end}") for end in ("wal", "shm", "journal"))]


def _connect(file: Path | None) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions explicit) that opens URIs (the image)."""
    uri = "file::memory:" if file is None else file.absolute().as_uri()
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60, check_same_thread=False)
    if file is None:
        return db
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def _meta(db: sqlite3.Connection, name: str) -> Any:
    found = db.execute("SELECT value FROM daskmic_meta WHERE name = ?", (name,)).fetchone()
    if found is None:
        raise sqlite3.DatabaseError(f"no {name} in the set's rows")
    return found[0]


def _delete(db: sqlite3.Connection, ids: list[int]) -> None:
    pairs = [(i,) for i in ids]
    db.executemany("DELETE FROM Objects WHERE id = ?", pairs)
    db.executemany("DELETE FROM daskmic_rows WHERE id = ?", pairs)


def _insert(
    db: sqlite3.Connection,
    ids: list[int],
    made: list[tuple],
    rows: Rows | None,
    positions: list[int],
) -> None:
    """Store the items ``made`` at ``positions`` (and, with ``rows``, their keys and versions)."""
    marks = ", ".join("?" * (1 + len(made[0])))
    objects = [(i, *row) for i, row in zip(ids, made, strict=True)]
    db.executemany(f"INSERT INTO Objects VALUES ({marks})", objects)
    if rows is not None:
        keys = rows.keys[positions].tolist()
        texts = _versions(rows.versions, positions)
        stored = zip(ids, keys, texts, strict=True)
        db.executemany("INSERT INTO daskmic_rows VALUES (?, ?, ?)", stored)


def _set_generation(db: sqlite3.Connection, generation: int) -> None:
    db.execute("UPDATE daskmic_meta SET value = ? WHERE name = 'generation'", (str(generation),))


def _versions(versions: Sequence[np.ndarray], positions: list[int]) -> list[str]:
    """Each version (its parts, the last the ``id``) at ``positions`` as stored text."""
    parts = [np.asarray(part, dtype=object)[positions].tolist() for part in versions]
    return [repr(version) for version in zip(*parts, strict=True)]
