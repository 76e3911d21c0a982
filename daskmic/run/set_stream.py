"""Streaming from a Scipion set: follow an open ``SetOfMicrographs`` until it is closed.

A Scipion protocol upstream (an import, a movie alignment) appends micrographs to its output
set while its stream state is open (1) and closes it (2) when it is done. :class:`SetArrivals`
rereads the set at each poll and reports every enabled item not seen before (its file is
complete when the producer commits the row); :class:`SetClosing` ends the stream once the set
is closed and everything seen is done. Names, pixel sizes, optics and carried attributes are
those a batch run on the same set gives, so the outputs end identical.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from daskmic.io import MicrographError, read_header
from daskmic.io.open import carried_columns, optics_rows
from daskmic.io.scipion import read_set
from daskmic.io.sources import list_source
from daskmic.run.arrivals import Progress
from daskmic.run.config import RunConfig
from daskmic.run.manifest import Manifest
from daskmic.run.sources import input_stamp
from daskmic.run.unit import Source


class SetArrivals:
    """The items of a Scipion set, each reported once, and whether the set is closed.

    Parameters
    ----------
    set_file : path-like
        The ``SetOfMicrographs`` sqlite file a producer appends to.
    out_dir : path-like
        The output folder, whose input optics are kept up to date as items arrive.
    """

    def __init__(self, set_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
        self.set_file = Path(set_file)
        self.out = Path(out_dir)
        listing = list_source(self.set_file)
        self.root = str(listing.root)
        self.closed = False
        self.last_change = time.monotonic()
        self._sources: dict[str, Source] = {}
        self._optics: list[dict] | None = None

    @property
    def seen(self) -> list[str]:
        """Every path reported, sorted."""
        return sorted(self._sources)

    @property
    def waiting(self) -> int:
        """Items seen but not reported: none (a committed row names a complete file)."""
        return 0

    def poll(self, now: float | None = None) -> list[str]:
        """Reread the set; return the paths of its new enabled items."""
        closed = not read_set(self.set_file).stream_open  # before the listing: nothing missed
        listing = list_source(self.set_file)
        optics = optics_rows(listing)
        if optics != self._optics:
            Manifest(self.out).write_optics(optics)
            self._optics = optics
        rows = [r for r, p in enumerate(listing.paths) if str(p) not in self._sources]
        sizes = listing.table_pixel_size_A
        for row, columns in zip(rows, carried_columns(listing, rows), strict=True):
            path = str(listing.paths[row])
            self._sources[path] = Source(
                micrograph="",
                path=path,
                pixel_size_A=float("nan") if sizes is None else float(sizes[row]),
                columns=columns,
            )
        if rows:
            self.last_change = time.monotonic() if now is None else now
        self.closed = closed
        return [str(listing.paths[row]) for row in rows]

    def source(self, path: str, name: str, config: RunConfig) -> Source:
        """The run's view of one item, named as in a batch run on the whole set."""
        stamp = input_stamp(path, config.storage_options)
        source = replace(self._sources[path], micrograph=name, stamp=stamp)
        if config.pixel_size_A is not None:
            return replace(source, pixel_size_A=config.pixel_size_A)
        if not source.pixel_size_A > 0:  # the set gives none: the header's, as a batch run
            try:
                header_size = read_header(path).pixel_size_A
            except MicrographError as error:
                return replace(source, error=error.problem)
            return replace(source, pixel_size_A=float(header_size or float("nan")))
        return source


@dataclass(frozen=True)
class SetClosing:
    """The stream ends when the followed set is closed (or nothing arrived for a while)."""

    arrivals: SetArrivals
    idle_timeout: float | None

    def signalled(self) -> bool:
        """Whether the producer has closed the set (as of the last poll)."""
        return self.arrivals.closed

    def due(self, signalled: bool, arrivals: Progress) -> bool:
        """Whether to stop now that nothing is ready."""
        if signalled:
            return True
        quiet = time.monotonic() - arrivals.last_change
        return self.idle_timeout is not None and quiet >= self.idle_timeout
