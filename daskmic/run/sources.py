"""From inputs to the sources a run processes, and the checks the run makes before any work.

A batch run and a stream list their inputs the same way (:func:`catalogue`: headers only, the
names, pixel sizes and table columns of :func:`daskmic.open_micrographs`; ``--pixel-size``
applied there, once). :func:`daskmic.write` takes them from an opened set's coordinates
(:func:`sources_from`), which :func:`daskmic.open_micrographs` filled by the same rules.
:func:`check_run` refuses parameters that the set cannot support, before any work.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from daskmic.errors import UsageError
from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader
from daskmic.io.open import catalogue_micrographs, read_headers
from daskmic.io.storage import (
    Location,
    StorageOptions,
    absolute,
    file_stamp,
    location,
    write_whole,
)
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.source import Source, Stamp

if TYPE_CHECKING:
    import xarray as xr


def input_stamp(
    path: str | Location, storage_options: StorageOptions | None = None
) -> Stamp | None:
    """The stamp a run keeps of an input file (:attr:`daskmic.run.source.Source.stamp`).

    ``(size, mtime_ns)`` locally, ``(size, version)`` at a URL (the object's ETag or
    modification time: :func:`daskmic.io.storage.file_stamp`; a folder or glob on an object
    store costs no request, its listing has them). None for a file that cannot be found, or at
    a URL whose server names no version (a plain web server): nothing then says it changed.
    """
    stamp = file_stamp(location(path, storage_options))
    return stamp if stamp[0] >= 0 and stamp[1] != "" else None


class KnownHeaders:
    """The input headers a run read, by file and stamp: the next run reads only those of new or
    changed files.

    Kept in the output folder (:attr:`daskmic.run.layout.OutputLayout.headers`) as a cache:
    a header is taken from it only for the same file with the same size and modification time
    or version (:func:`input_stamp`), so a touched or rewritten file is read again; a missing
    or unreadable cache reads every header, and so does a URL whose server names no version.

    Parameters
    ----------
    out : Location, optional
        The output folder; without one, every header is read and nothing is kept.
    """

    def __init__(self, out: Location | None = None) -> None:
        self.file = None if out is None else OutputLayout(out).headers
        try:
            kept = {} if self.file is None else json.loads(self.file.read_bytes())
        except (OSError, ValueError):
            kept = {}
        self._kept: dict[str, list[Any]] = kept if isinstance(kept, dict) else {}
        self._now: dict[str, list[Any]] = {}
        self.stamps: dict[str, Stamp] = {}
        """The stamp of each file listed, by absolute path or URL."""

    def __call__(self, paths: list[Location]) -> list[MicrographHeader | MicrographError]:
        """The headers of ``paths`` (see :data:`daskmic.io.open.HeaderReader`)."""
        found: list[MicrographHeader | MicrographError | None] = []
        for path in paths:
            key = absolute(path)
            stamp = input_stamp(path)
            if stamp is not None:
                self.stamps[key] = stamp
            found.append(_known(key, self._kept.get(key), stamp))
        unknown = [i for i, header in enumerate(found) if header is None]
        for i, header in zip(unknown, read_headers([paths[i] for i in unknown]), strict=True):
            found[i] = header
        headers = [header for header in found if header is not None]
        self._now = {
            h.path: [*self.stamps[h.path], *h.shape, h.dtype.str, _number(h.pixel_size_A), h.format]
            for h in headers
            if isinstance(h, MicrographHeader) and h.path in self.stamps
        }
        return headers

    def keep(self) -> None:
        """Store the headers of the files listed last, unless they are stored already."""
        if self.file is not None and self._now != self._kept:
            write_whole(self.file, json.dumps(self._now).encode(), sync=False)  # a cache
            self._kept = self._now


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def _known(path: str, kept: list[Any] | None, stamp: Stamp | None) -> MicrographHeader | None:
    """The header of ``path`` as kept, if it was kept for the file's ``stamp``."""
    if kept is None or stamp is None or len(kept) != 7 or kept[:2] != list(stamp):
        return None
    ny, nx, dtype, pixel_size_A, fmt = kept[2:]
    return MicrographHeader(path, (ny, nx), np.dtype(dtype), pixel_size_A, fmt)


def catalogue(
    inputs: str | os.PathLike[str] | list[str],
    pixel_size_A: float | None = None,
    storage_options: StorageOptions | None = None,
    known: KnownHeaders | None = None,
) -> tuple[list[Source], list[dict[str, Any]]]:
    """The micrographs of ``inputs``, sorted by name, and the input table's optics.

    Parameters
    ----------
    inputs : path, glob, folder, table or list of them
        As for :func:`daskmic.open_micrographs`: local paths or URLs. Each source's ``path``
        is then the absolute path or the URL (the workers read it, the driver never does).
    pixel_size_A : float, optional
        The pixel size of every micrograph, overriding tables and headers.
    storage_options : dict, optional
        For the URLs' filesystems (a run's :attr:`RunConfig.storage_options`).
    known : KnownHeaders, optional
        The headers read before (an output folder's); by default every header is read.

    Raises
    ------
    UsageError
        Nothing found, or an unusable table: no run can start.
    """
    known = KnownHeaders() if known is None else known
    try:
        entries, optics = catalogue_micrographs(
            inputs, pixel_size_A=pixel_size_A, storage_options=storage_options, headers=known
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    sources = [
        Source(
            e.micrograph,
            e.path,
            e.pixel_size_A,
            e.columns,
            e.error,
            e.shape,
            known.stamps.get(e.path),
        )
        for e in entries
    ]
    return sorted(sources, key=lambda s: s.micrograph), optics


def sources_from(
    mics: xr.DataArray | xr.Dataset, storage_options: StorageOptions | None = None
) -> list[Source]:
    """The micrographs of an opened set, error rows included, sorted by name (URLs opened with
    ``storage_options``)."""
    carried = [
        name
        for name, coord in mics.coords.items()
        if coord.dims == ("micrograph",) and name not in ("micrograph", "path", "pixel_size_A")
    ]
    shape = (mics.sizes.get("y", 0), mics.sizes.get("x", 0))
    sources = [
        Source(
            micrograph=str(name),
            path=str(mics["path"].values[i]),
            pixel_size_A=float(mics["pixel_size_A"].values[i]),
            columns={str(c): _plain(mics[c].values[i]) for c in carried},
            shape=shape,
            stamp=input_stamp(str(mics["path"].values[i]), storage_options),
        )
        for i, name in enumerate(mics["micrograph"].values)
    ]
    sources += [
        Source(
            micrograph=bad["micrograph"],
            path=bad["path"],
            pixel_size_A=float("nan"),
            error=bad["error"],
        )
        for bad in mics.attrs.get("failed", [])
    ]
    return sorted(sources, key=lambda s: s.micrograph)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def check_run(config: RunConfig, sources: list[Source]) -> None:
    """Refuse, before any work, parameters that the micrographs of ``sources`` cannot support.

    Preprocessing must fit every shape of the set; the tilt screen must suit at least one
    micrograph (those it does not suit fail alone).

    Raises
    ------
    UsageError
        Naming the parameter, the value given and the valid range.
    """
    good = [(s.shape, s.pixel_size_A) for s in sources if not s.error and s.shape is not None]
    shapes = [shape for shape, _ in good]
    if config.preprocess is not None:
        for shape in sorted(set(shapes)):
            config.preprocess.validate(shape)
    if config.tilt is not None and good:
        config.tilt.validate_for_set(shapes, [pixel_size_A for _, pixel_size_A in good])
