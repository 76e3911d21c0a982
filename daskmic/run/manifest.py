"""The run manifest: the single source of truth of what an output folder holds.

A micrograph is *done* when its outputs have been renamed into place and its done-record
(:meth:`daskmic.run.layout.OutputLayout.record`: its table row and the hash of the parameters)
exists.
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
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daskmic.errors import UsageError
from daskmic.io.atomic import write_bytes_atomic
from daskmic.io.storage import write_whole
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


def _load_record(path: Path) -> dict[str, Any] | None:
    """The record stored at ``path``; None when there is none or it cannot be read.

    A record that cannot be read (truncated, not JSON, not a record of this micrograph) is
    reported with a warning naming it: its micrograph counts as not done.
    """
    try:
        record = json.loads(path.read_bytes())
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

    path: Path
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
    out_dir : pathlib.Path
        The output folder.
    """

    out_dir: Path

    @property
    def layout(self) -> OutputLayout:
        """Where the folder's outputs, records and thumbnails are."""
        return OutputLayout(self.out_dir)

    @property
    def root(self) -> Path:
        """Folder holding the manifest (hidden inside the output folder)."""
        return self.layout.manifest

    @property
    def records_dir(self) -> Path:
        """Folder of the per-micrograph records."""
        return self.layout.records

    @property
    def thumbnails_dir(self) -> Path:
        """Folder of the per-micrograph thumbnails (8-bit levels and their mapping)."""
        return self.layout.thumbnails

    def bind(
        self, parameters: dict[str, Any], hashed: dict[str, Any], *, overwrite: bool = False
    ) -> str:
        """Tie the folder to ``parameters``; refuse a folder made with other parameters.

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
            be read) and ``overwrite`` is false.
        """
        digest = parameters_hash(hashed)
        stored = self.layout.parameters
        if stored.exists():
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
                shutil.rmtree(self.records_dir, ignore_errors=True)
                shutil.rmtree(self.thumbnails_dir, ignore_errors=True)
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self.thumbnails_dir.mkdir(parents=True, exist_ok=True)
        payload = {"hash": digest, "parameters": parameters}
        write_bytes_atomic(stored, canonical_json(payload).encode())
        return digest

    def is_bound(self) -> bool:
        """Whether the folder has been bound to parameters (it is a daskmic output folder)."""
        return self.layout.parameters.exists()

    def parameters(self) -> dict[str, Any]:
        """Return the parameters the folder is bound to."""
        return json.loads(self.layout.parameters.read_text())["parameters"]

    def record_path(self, micrograph: str) -> Path:
        """Where the record of ``micrograph`` lives."""
        return self.layout.record(micrograph)

    def thumbnail_path(self, micrograph: str) -> Path:
        """Where the thumbnail of ``micrograph`` lives."""
        return self.layout.thumbnail(micrograph)

    def is_done(self, micrograph: str, digest: str, path: str) -> bool:
        """Whether ``micrograph`` has a successful record made from ``path`` with ``digest``."""
        record = self.read(micrograph)
        return (
            record is not None
            and record["hash"] == digest
            and record["row"]["error"] == ""
            and record["row"].get("path") == path
        )

    def read(self, micrograph: str) -> dict[str, Any] | None:
        """Return the record of ``micrograph``, or None if it has none or it cannot be read."""
        return _load_record(self.record_path(micrograph))

    def write(self, row: dict[str, Any], digest: str) -> None:
        """Record ``row`` (its ``micrograph`` names it); this is what marks it done."""
        record = {"hash": digest, "row": row}
        write_bytes_atomic(self.record_path(row["micrograph"]), canonical_json(record).encode())

    def write_thumbnail(self, micrograph: str, thumbnail: np.ndarray) -> None:
        """Store a micrograph's thumbnail once, as 8-bit grey levels and their mapping.

        The levels file is raw bytes, exactly the thumbnail's zarr chunk, so the results
        store links it rather than copying it (:func:`daskmic.io.zarr_store.link_thumbnails`);
        the mapping (:func:`daskmic.io.thumbnails.encode_thumbnail`) goes first, the levels,
        which mark the thumbnail complete, last. Each file is written whole.
        """
        levels, low, high = encode_thumbnail(thumbnail)
        mapping = {"low": low, "high": high, "shape": list(levels.shape)}
        write_whole(self.layout.thumbnail_mapping(micrograph), json.dumps(mapping).encode())
        write_whole(self.thumbnail_path(micrograph), levels.tobytes())

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
        """Keep the input table's optics groups for the STAR outputs."""
        write_bytes_atomic(self.layout.optics, canonical_json(optics).encode())

    def optics(self) -> list[dict[str, Any]]:
        """The input table's optics groups (empty when the input had none)."""
        path = self.layout.optics
        return json.loads(path.read_text()) if path.exists() else []

    def rows(self) -> list[dict[str, Any]]:
        """All recorded rows, sorted by micrograph name."""
        if not self.records_dir.exists():
            return []
        records = [_load_record(path) for path in self._record_files()]
        rows = [record["row"] for record in records if record is not None]
        return sorted(rows, key=lambda row: row["micrograph"])

    def completed_at(self, micrographs: list[str]) -> np.ndarray:
        """When each micrograph completed: its record's modification time (NaN without one).

        A record is written once, as its micrograph completes (a resumed run keeps it, a retry
        rewrites it), so the time lives in the file system, outside every table and record
        text: batch, resumed and streamed outputs stay equal.

        Returns
        -------
        numpy.ndarray
            Seconds since the epoch, float64, in the order of ``micrographs``.
        """
        written: dict[str, float] = {}
        if self.records_dir.is_dir():
            with os.scandir(self.records_dir) as entries:
                for entry in entries:
                    try:
                        written[entry.name] = entry.stat().st_mtime
                    except OSError:  # removed since the listing
                        continue
        return np.array([written.get(f"{name}.json", np.nan) for name in micrographs])

    def _record_files(self) -> list[Path]:
        return [p for p in self.records_dir.glob("*.json") if not p.name.startswith(".")]

    def remove_unreadable(self) -> list[Path]:
        """Delete the records that cannot be read, each with a warning naming it.

        Their micrographs count as not done: the run processes them again. Call this only
        while no run writes into the folder (at the start of a run).

        Returns
        -------
        list of pathlib.Path
            The records removed.
        """
        removed = [path for path in self._record_files() if _load_record(path) is None]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def remove_partial(self, depth: int = 3) -> list[Path]:
        """Delete what interrupted atomic writes left (temporary files and folders).

        A run killed mid-write (``SIGKILL`` included) leaves ``.<name>.tmp-xxxxxxxx`` siblings
        of outputs that never got renamed into place. Call this only while no run writes into
        the folder (at the start of a run). Looks ``depth`` levels down (``OUT/mrc``,
        ``OUT/.daskmic/records``, ``OUT/micrographs.zarr/micrographs``, ...), not into the images.

        Returns
        -------
        list of pathlib.Path
            What was removed.
        """
        removed = []
        level = [self.out_dir] if self.out_dir.is_dir() else []
        for _ in range(depth):
            below = []
            for folder in level:
                for entry in folder.iterdir():
                    if PARTIAL_NAME.match(entry.name):
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink(missing_ok=True)
                        removed.append(entry)
                    elif entry.is_dir() and not entry.is_symlink():
                        below.append(entry)
            level = below
        return removed
