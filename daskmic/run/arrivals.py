"""Which files of a watched folder are completely written, and when the folder's stream ends.

:class:`Arrivals` reports each complete file once; :class:`FolderClosing` ends the stream when a
marker file appears (and nothing is being written) or nothing happened for a while. The
Scipion-set counterparts are :mod:`daskmic.run.set_stream`'s; :func:`daskmic.watch` drives
either.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time
from pathlib import Path
from typing import Protocol

from daskmic.io import MicrographError, read_header
from daskmic.io.sources import glob_root
from daskmic.run.config import RunConfig
from daskmic.run.sources import catalogue
from daskmic.run.unit import Source


class Progress(Protocol):
    """What a stream's closing looks at: files still being written, and the last change."""

    last_change: float

    @property
    def waiting(self) -> int: ...


def _signature(path: str) -> tuple[int, int]:
    """Size and modification time of ``path`` (of the link itself when it dangles)."""
    try:
        stat = os.stat(path)
    except OSError:
        stat = os.lstat(path)
    return stat.st_size, stat.st_mtime_ns


def _header_complete(path: str) -> bool:
    """Whether the file's header can be read and its size matches what the header implies."""
    try:
        read_header(path)
    except MicrographError:
        return False
    return True


def inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


class Arrivals:
    """The files of a watched folder that are completely written, each reported once.

    A file is complete when its size and modification time have not changed for
    ``settle_seconds`` and its header is readable and consistent with its size (a truncated MRC
    is still being written). A file still unreadable after twice the settle time is reported
    anyway, so that the run records why it cannot be used instead of waiting for ever.
    Directories, hidden names (``.*``, temporary files) and anything inside ``exclude`` are
    never reported.

    Parameters
    ----------
    folder : path-like
        The watched folder.
    pattern : str
        Glob relative to ``folder``; ``**`` recurses (e.g. ``"GridSquare_*/Data/*.mrc"``).
    exclude : path-like
        A folder whose contents are never input (the output folder).
    settle_seconds : float
        Quiet time before a file counts as complete, >= 0.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        pattern: str,
        *,
        exclude: str | os.PathLike[str],
        settle_seconds: float,
    ) -> None:
        self.folder = os.path.abspath(folder)
        self.pattern = pattern
        self.root = os.path.abspath(glob_root(os.path.join(self.folder, pattern)))
        self._exclude = [os.path.abspath(exclude), os.path.realpath(exclude)]
        self.settle_seconds = settle_seconds
        self._waiting: dict[str, tuple[tuple[int, int], float]] = {}
        self._reported: set[str] = set()
        self.last_change = time.monotonic()

    def _candidate(self, path: str) -> bool:
        relative = os.path.relpath(path, self.folder)
        if any(part.startswith(".") for part in Path(relative).parts) or os.path.isdir(path):
            return False
        real = os.path.realpath(path)
        return not any(inside(p, ex) for p in (path, real) for ex in self._exclude)

    def scan(self) -> list[str]:
        """Every matching input path in the folder now (absolute, sorted)."""
        found = glob.glob(self.pattern, root_dir=self.folder, recursive=True)
        paths = (os.path.join(self.folder, name) for name in found)
        # a reported path was a candidate already: only new names pay the checks (lstat, ...)
        return sorted(p for p in paths if p in self._reported or self._candidate(p))

    @property
    def seen(self) -> list[str]:
        """Every path reported or waiting, sorted."""
        return sorted(self._reported | set(self._waiting))

    @property
    def waiting(self) -> int:
        """Number of files seen but not yet complete."""
        return len(self._waiting)

    def poll(self, now: float | None = None) -> list[str]:
        """Look at the folder; return the paths that became complete since the last poll."""
        now = time.monotonic() if now is None else now
        complete = []
        for path in self.scan():
            if path in self._reported:
                continue
            try:
                signature = _signature(path)
            except OSError:  # vanished between the listing and the look
                continue
            previous = self._waiting.get(path)
            if previous is None or previous[0] != signature:
                self._waiting[path] = (signature, now)
                self.last_change = now
                continue
            quiet = now - previous[1]
            if quiet >= self.settle_seconds and (
                quiet >= 2 * self.settle_seconds or _header_complete(path)
            ):
                complete.append(path)
        for path in complete:
            del self._waiting[path]
            self._reported.add(path)
        return complete

    def source(self, path: str, name: str, config: RunConfig) -> Source:
        """The run's view of one file (header only), named as in a batch run on the whole set."""
        (source,), _ = catalogue([path], config.pixel_size_A)
        return dataclasses.replace(source, micrograph=name)


@dataclasses.dataclass(frozen=True)
class FolderClosing:
    """When the stream ends: a marker file exists, or nothing happened for a while."""

    marker: Path
    idle_timeout: float | None

    def signalled(self) -> bool:
        """Whether the marker file exists."""
        return self.marker.exists()

    def due(self, marker_seen: bool, arrivals: Progress) -> bool:
        """Whether to stop now that nothing is ready (``marker_seen`` before the listing)."""
        if arrivals.waiting:
            return False
        if marker_seen:
            return True
        quiet = time.monotonic() - arrivals.last_change
        return self.idle_timeout is not None and quiet >= self.idle_timeout
