"""The run manifest: the single source of truth of what an output folder holds.

A micrograph is *done* when its outputs are in place (each written whole) and its done-record
(:meth:`daskmic.run.layout.OutputLayout.record`: its table row and the hash of the parameters)
exists: the record is written last, so outputs without a record are simply made again. The
folder may be local or a URL prefix (``s3://bucket/run``): every file is written whole
(:func:`daskmic.io.storage.write_whole`), the folder is bound to its parameters by an exclusive
create, and the records are found by one listing.
Failed micrographs get a record too (``status == "failed"``) so the tables can report them, but
a failed record does not count as done: a rerun tries that micrograph again. The tables and the
zarr store are rebuilt from the records (:mod:`daskmic.run.publish`), sorted by micrograph name, so
batch, resumed and streamed runs give the same outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daskmic.errors import UsageError
from daskmic.io.storage import (
    Location,
    create_exclusive,
    is_local,
    list_files,
    location,
    read_all,
    remove,
    write_whole,
    write_wholes,
)
from daskmic.io.thumbnails import THUMBNAIL_DTYPE, decode_thumbnails, encode_thumbnail
from daskmic.run.layout import OutputLayout

PARTIAL_NAME = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{8}$")
"""Names :func:`daskmic.io.atomic.atomic_path` gives outputs that are not complete yet."""


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically (sorted keys, no whitespace variation)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


RECORD_FIELDS = {"micrograph": str, "status": str, "error": str}
"""What every record's row holds, with its type: a record without them cannot be trusted."""


def _load_record(path: Location, data: bytes | OSError | None = None) -> dict[str, Any] | None:
    """The record stored at ``path`` (or its bytes ``data``, already read); None when there is
    none or it cannot be read.

    A record that cannot be read (truncated, not JSON, not a record of this micrograph) is
    reported with a warning naming it: its micrograph counts as not done.
    """
    try:
        record = json.loads(path.read_bytes() if data is None else _raised(data))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # ValueError: not UTF-8, not JSON
        problem = f"{type(error).__name__}: {error}"
    else:
        problem = _record_problem(record, path.stem)
        if not problem:
            return record
    warnings.warn(
        f"unreadable done-record {path} ({problem}): micrograph {path.stem!r} counts as not "
        "done and is processed again",
        stacklevel=3,
    )
    return None


def _raised(data: bytes | OSError) -> bytes:
    if isinstance(data, OSError):
        raise data
    return data


def _record_problem(record: Any, micrograph: str) -> str:
    """What makes ``record`` unusable as the record of ``micrograph`` ("" when nothing)."""
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
        return "not a record: no parameters' hash"
    row = record.get("row")
    if not isinstance(row, dict):
        return "not a record: no row"
    wrong = [k for k, kind in RECORD_FIELDS.items() if not isinstance(row.get(k), kind)]
    if wrong:
        return f"its row lacks {', '.join(wrong)}"
    if row["micrograph"] != micrograph:
        return f"its row is micrograph {row['micrograph']!r}"
    return ""


def parameters_hash(parameters: dict[str, Any]) -> str:
    """Return a short stable hash of a parameter dictionary."""
    return hashlib.sha256(canonical_json(parameters).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredThumbnail:
    """A micrograph's stored thumbnail: its file, 8-bit levels and their mapping."""

    path: Location
    levels: np.ndarray
    low: float
    high: float

    def values(self) -> np.ndarray:
        """The thumbnail's grey values (float32)."""
        return decode_thumbnails(self.levels.astype(np.float64), self.low, self.high).astype(
            np.float32
        )


@dataclass(frozen=True)
class Manifest:
    """The records of one output folder.

    Parameters
    ----------
    out_dir : path-like, URL or Location
        The output folder: a local path, or a URL prefix as a Location carrying its storage
        options (a URL given as text uses the backend's own credentials).
    """

    out_dir: Location
    layout: OutputLayout = field(init=False, repr=False, compare=False)
    """Where the folder's outputs, records and thumbnails are."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", location(self.out_dir))
        object.__setattr__(self, "layout", OutputLayout(self.out_dir))

    @property
    def root(self) -> Location:
        """Folder holding the manifest (hidden inside the output folder)."""
        return self.layout.manifest

    @property
    def records_dir(self) -> Location:
        """Folder of the per-micrograph records."""
        return self.layout.records

    @property
    def thumbnails_dir(self) -> Location:
        """Folder of the per-micrograph thumbnails (8-bit levels and their mapping)."""
        return self.layout.thumbnails

    def bind(
        self, parameters: dict[str, Any], hashed: dict[str, Any], *, overwrite: bool = False
    ) -> str:
        """Tie the folder to ``parameters``; refuse a folder made with other parameters.

        The first run creates ``parameters.json`` exclusively (``If-None-Match`` on an object
        store, a hard link locally), so of two runs racing into one new folder with other
        parameters exactly one binds it and the other is refused.

        Parameters
        ----------
        parameters : dict
            The run's parameters (JSON-able), stored.
        hashed : dict
            The part of them that changes computed results; a folder bound to another hash
            is refused.
        overwrite : bool
            Discard the records of a run made with other parameters instead of refusing.

        Returns
        -------
        str
            The parameters' hash, stored in every record.

        Raises
        ------
        UsageError
            If the folder holds a run made with other parameters (or parameters that cannot
            be read) and ``overwrite`` is false, or it cannot be written (a missing bucket,
            access denied, a file in the way).
        """
        digest = parameters_hash(hashed)
        stored = self.layout.parameters
        payload = _bound(parameters, hashed)
        try:
            if _content(stored) != payload and not create_exclusive(stored, payload):
                self._rebind(stored, payload, digest, overwrite)
        except OSError as error:
            raise UsageError(
                f"cannot write to the output folder {self.out_dir}: {type(error).__name__}: "
                f"{error}"
            ) from None
        if is_local(self.out_dir):
            self.records_dir.mkdir(parents=True, exist_ok=True)
            self.thumbnails_dir.mkdir(parents=True, exist_ok=True)
        return digest

    def _rebind(self, stored: Location, payload: bytes, digest: str, overwrite: bool) -> None:
        """Bind a folder already bound: same hash (new thresholds) or, if allowed, anew."""
        try:
            previous = json.loads(stored.read_bytes())["hash"]
        except (OSError, ValueError, TypeError, KeyError):
            previous = f"unreadable in {stored}"
        if previous != digest:
            if not overwrite:
                raise UsageError(
                    f"output folder {self.out_dir} holds a run made with other parameters "
                    f"(stored hash {previous}, now {digest}); choose another "
                    "folder or pass overwrite=True (--overwrite) to start it anew"
                )
            remove(self.records_dir)
            remove(self.thumbnails_dir)
        write_whole(stored, payload)

    def is_bound_to(self, parameters: dict[str, Any], hashed: dict[str, Any]) -> bool:
        """Whether the folder is bound to exactly these ``parameters`` (see :meth:`bind`)."""
        return _content(self.layout.parameters) == _bound(parameters, hashed)

    def is_bound(self) -> bool:
        """Whether the folder has been bound to parameters (it is a daskmic output folder)."""
        return self.layout.parameters.exists()

    def parameters(self) -> dict[str, Any]:
        """Return the parameters the folder is bound to."""
        return json.loads(self.layout.parameters.read_bytes())["parameters"]

    def record_path(self, micrograph: str) -> Location:
        """Where the record of ``micrograph`` lives."""
        return self.layout.record(micrograph)

    def thumbnail_path(self, micrograph: str) -> Location:
        """Where the thumbnail of ``micrograph`` lives."""
        return self.layout.thumbnail(micrograph)

    def is_done(
        self,
        micrograph: str,
        digest: str,
        path: str,
        stamp: tuple[int, int | str] | None = None,
    ) -> bool:
        """Whether ``micrograph`` has a successful record made from ``path`` with ``digest``
        (and, when the record and ``stamp`` say, from the file as it is: see
        :func:`input_changed`)."""
        record = self.read(micrograph)
        return (
            record is not None
            and _succeeded(record, digest, path)
            and not input_changed(record, stamp)
        )

    def read(self, micrograph: str) -> dict[str, Any] | None:
        """Return the record of ``micrograph``, or None if it has none or it cannot be read."""
        return _load_record(self.record_path(micrograph))

    def records(self) -> dict[str, dict[str, Any]]:
        """Every readable record, by micrograph: one listing, then the records' reads.

        On an object store the reads go concurrently; an unreadable record is left out with
        a warning (see :meth:`remove_unreadable`).
        """
        return {name: record for name, record in self._loaded().items() if record is not None}

    def done(self, digest: str) -> dict[str, dict[str, Any]]:
        """The records of the micrographs done with ``digest``, by micrograph.

        A micrograph counts as done for a source when its record is here and its row's
        ``path`` is the source's (see :meth:`is_done`); failed records are left out, so their
        micrographs are tried again. One listing and the records' reads, never a request per
        micrograph of the input set.
        """
        return {
            name: record
            for name, record in self.records().items()
            if _succeeded(record, digest, record["row"].get("path"))
        }

    def write(
        self, row: dict[str, Any], digest: str, *, stamp: tuple[int, int | str] | None = None
    ) -> None:
        """Record ``row`` (its ``micrograph`` names it); this is what marks it done.

        ``stamp`` is the input file's (:attr:`daskmic.run.source.Source.stamp`) when it was
        listed: kept as the record's ``input``, it lets a later run see that the file changed
        (see :func:`input_changed`).
        """
        self.write_records([(row, stamp)], digest)

    def write_records(
        self, rows: list[tuple[dict[str, Any], tuple[int, int | str] | None]], digest: str
    ) -> None:
        """Record each ``(row, stamp)`` as :meth:`write` does, made durable together, then
        each in turn.

        One round of fsyncs for all (:func:`daskmic.io.storage.write_wholes`): a group of small
        micrographs pays for its records about what one record costs.
        """
        files = []
        for row, stamp in rows:
            record: dict[str, Any] = {"hash": digest, "row": row}
            if stamp is not None:
                record["input"] = list(stamp)
            files.append((self.record_path(row["micrograph"]), canonical_json(record).encode()))
        write_wholes(files)

    def write_thumbnail(self, micrograph: str, thumbnail: np.ndarray) -> None:
        """Store a micrograph's thumbnail once, as 8-bit grey levels and their mapping.

        The levels file is raw bytes, exactly the thumbnail's zarr chunk, so the results
        store links it rather than copying it (:class:`daskmic.io.zarr_store.Thumbnails`);
        the mapping (:func:`daskmic.io.thumbnails.encode_thumbnail`) goes first, the levels,
        which mark the thumbnail complete, last. Each file is written whole.
        """
        levels, low, high = encode_thumbnail(thumbnail)
        mapping = {"low": low, "high": high, "shape": list(levels.shape)}
        mapping_file = self.layout.thumbnail_mapping(micrograph)
        write_whole(mapping_file, json.dumps(mapping).encode(), sync=False)
        write_whole(self.thumbnail_path(micrograph), levels.tobytes(), sync=False)

    def thumbnail(self, micrograph: str) -> StoredThumbnail | None:
        """The stored thumbnail of ``micrograph``, or None when it has none (or half of one)."""
        try:
            mapping = json.loads(self.layout.thumbnail_mapping(micrograph).read_bytes())
            levels = np.frombuffer(self.thumbnail_path(micrograph).read_bytes(), THUMBNAIL_DTYPE)
            shape = tuple(mapping["shape"])
            return StoredThumbnail(
                self.thumbnail_path(micrograph),
                levels.reshape(shape),
                float(mapping["low"]),
                float(mapping["high"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_optics(self, optics: list[dict[str, Any]]) -> None:
        """Keep the input table's optics groups for the STAR outputs (unless kept already)."""
        if not self.keeps_optics(optics):
            write_whole(self.layout.optics, canonical_json(optics).encode())

    def keeps_optics(self, optics: list[dict[str, Any]]) -> bool:
        """Whether the folder keeps these optics groups (see :meth:`write_optics`)."""
        return _content(self.layout.optics) == canonical_json(optics).encode()

    def optics(self) -> list[dict[str, Any]]:
        """The input table's optics groups (empty when the input had none)."""
        try:
            return json.loads(self.layout.optics.read_bytes())
        except FileNotFoundError:
            return []

    def rows(self) -> list[dict[str, Any]]:
        """All recorded rows, sorted by micrograph name."""
        return sorted((r["row"] for r in self.records().values()), key=lambda r: r["micrograph"])

    def completed_at(self, micrographs: list[str]) -> np.ndarray:
        """When each micrograph completed: its record's modification time (NaN without one).

        A record is written once, as its micrograph completes (a resumed run keeps it, a retry
        rewrites it), so the time lives in the file system (or the object's last-modified
        time), outside every table and record text: batch, resumed and streamed outputs stay
        equal. One listing.

        Returns
        -------
        numpy.ndarray
            Seconds since the epoch, float64, in the order of ``micrographs``.
        """
        written = list_files(self.records_dir)
        return np.array([written.get(f"{name}.json", np.nan) for name in micrographs])

    def _loaded(self) -> dict[str, dict[str, Any] | None]:
        """Each record by its file's name without ``.json`` (None when unreadable), sorted.

        Locally a record already read by this process is not read again while its file is
        the same (same inode, size and modification time: a record is replaced whole, by a
        rename), so the checks of a run's start and its resume read each record once.
        """
        folder = self.records_dir
        if not isinstance(folder, Path):
            names = sorted(n for n in list_files(folder) if _is_record_name(n))
            paths: list[Location] = [folder / name for name in names]
            found = read_all(paths)
            return {
                name[: -len(".json")]: _load_record(path, data)
                for name, path, data in zip(names, paths, found, strict=True)
            }
        known = _READ.pop(str(folder), {})
        now: dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}
        for name, identity in sorted(_identities(folder).items()):
            cached = known.get(name)
            if cached is not None and cached[0] == identity and cached[1] is not None:
                now[name] = cached
            else:
                now[name] = (identity, _load_record(folder / name))
        _READ[str(folder)] = now
        while len(_READ) > _READ_FOLDERS:
            del _READ[next(iter(_READ))]
        return {name[: -len(".json")]: _copied(record) for name, (_, record) in now.items()}

    def remove_unreadable(self) -> list[Location]:
        """Delete the records that cannot be read, each with a warning naming it.

        Their micrographs count as not done: the run processes them again. Call this only
        while no run writes into the folder (at the start of a run).

        Returns
        -------
        list of Location
            The records removed.
        """
        loaded = self._loaded()
        removed = [self.record_path(name) for name, record in loaded.items() if record is None]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def remove_partial(self, depth: int = 3) -> list[Path]:
        """Delete what interrupted atomic writes left (temporary files and folders).

        A run killed mid-write (``SIGKILL`` included) leaves ``.<name>.tmp-xxxxxxxx`` siblings
        of outputs that never got renamed into place. Call this only while no run writes into
        the folder (at the start of a run). Looks ``depth`` levels down (``OUT/mrc``,
        ``OUT/.daskmic/records``, ``OUT/micrographs.zarr/micrographs``, ...), not into the images.
        On an object store there is nothing to remove: every object is written whole in one
        request (outputs whose record is missing are made again).

        Returns
        -------
        list of pathlib.Path
            What was removed.
        """
        removed: list[Path] = []
        out = self.out_dir
        level = [out] if isinstance(out, Path) and out.is_dir() else []
        for _ in range(depth):
            below = []
            for folder in level:
                with os.scandir(folder) as entries:  # the entry's type without a stat
                    for entry in entries:
                        if PARTIAL_NAME.match(entry.name):
                            remove(folder / entry.name)
                            removed.append(folder / entry.name)
                        elif entry.is_dir(follow_symlinks=False):
                            below.append(folder / entry.name)
            level = below
        return removed


_READ: dict[str, dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]]] = {}
"""Records this process has read, by local records folder and file name, with the identity
(inode, size, modification time) of the file they were read from."""
_READ_FOLDERS = 4
"""How many folders' records :data:`_READ` keeps (the most recently read)."""


def _copied(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record the caller may change without changing what :data:`_READ` keeps."""
    return None if record is None else {**record, "row": dict(record["row"])}


def _is_record_name(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def _identities(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Each record file in ``folder`` (one listing): its inode, size and modification time."""
    found = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not _is_record_name(entry.name):
                    continue
                try:
                    info = entry.stat()
                except OSError:  # removed since the listing
                    continue
                found[entry.name] = (info.st_ino, info.st_size, info.st_mtime_ns)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return found


def _bound(parameters: dict[str, Any], hashed: dict[str, Any]) -> bytes:
    """What a folder bound to ``parameters`` keeps (:meth:`Manifest.bind`)."""
    return canonical_json({"hash": parameters_hash(hashed), "parameters": parameters}).encode()


def _content(loc: Location) -> bytes | None:
    """The bytes of ``loc``; None when there is none (or it cannot be read)."""
    try:
        return loc.read_bytes()
    except OSError:
        return None


def input_changed(record: dict[str, Any], stamp: tuple[int, int | str] | None) -> bool:
    """Whether the input file of ``record`` has changed since: its stamp now is ``stamp``.

    A record made before records kept their input's stamp (no ``input``), or a source whose
    stamp is not known, counts as unchanged: it is trusted as every record was before.
    """
    kept = record.get("input")
    return kept is not None and stamp is not None and kept != list(stamp)


def _succeeded(record: dict[str, Any], digest: str, path: str | None) -> bool:
    """Whether ``record`` is a success made with ``digest`` from the file ``path``."""
    row = record["row"]
    return record["hash"] == digest and row["error"] == "" and row.get("path") == path
