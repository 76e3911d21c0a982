"""Which files of a watched folder are completely written, and when the folder's stream ends.

:class:`Arrivals` reports each complete file of a local folder once; :class:`KeyArrivals` each
object under a prefix of an object store (``s3://bucket/incoming``), where an object is
complete as soon as it is listed (one PUT is atomic there: no settling). :class:`FolderClosing`
ends the stream when a marker file appears (and nothing is being written) or nothing happened
for a while; :class:`PrefixClosing` does so for a marker key, seen in a listing. The
Scipion-set counterparts are :mod:`daskmic.run.set_stream`'s; :func:`daskmic.watch` drives
any of them.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import time
from pathlib import Path
from typing import Protocol

from fsspec.utils import glob_translate
from upath import UPath

from daskmic.io import MicrographError, read_header
from daskmic.io.sources import glob_root
from daskmic.io.storage import Location, is_local, location
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
    exclude : path-like or Location
        A folder whose contents are never input (the output folder; a URL is elsewhere).
    settle_seconds : float
        Quiet time before a file counts as complete, >= 0.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        pattern: str,
        *,
        exclude: str | os.PathLike[str] | UPath,
        settle_seconds: float,
    ) -> None:
        self.folder = os.path.abspath(folder)
        self.pattern = pattern
        self.root = os.path.abspath(glob_root(os.path.join(self.folder, pattern)))
        self._exclude = []
        if is_local(out := location(exclude)):  # a URL is elsewhere
            self._exclude = [os.path.abspath(out), os.path.realpath(out)]
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
        return _source(path, name, config)


def _source(path: str, name: str, config: RunConfig) -> Source:
    """The run's view of one arrived file or object (header only), named ``name``."""
    (source,), _ = catalogue([path], config.pixel_size_A, config.storage_options)
    return dataclasses.replace(source, micrograph=name)


class KeyArrivals:
    """The objects under a prefix of an object store, each reported once, as soon as listed.

    An object store writes an object in one request (a PUT, or a multipart upload that
    completes or aborts): a key that is listed is complete, so no settle time applies. Each
    :meth:`poll` makes one listing (paged) and no request per key: of the prefix's top level
    when ``pattern`` has one level, else of every key under the prefix. The listing also
    tells whether the close marker is there. Hidden names (``.*``) and keys under
    ``exclude`` (the output prefix) are never reported.

    Parameters
    ----------
    folder : upath.UPath
        The watched prefix (``s3://bucket/incoming``), carrying its storage options.
    pattern : str
        Glob relative to ``folder``; ``**`` recurses.
    exclude : Location
        A location whose keys are never input (the output prefix).
    marker : str
        The name of the key that closes the stream (``folder/marker``).
    """

    waiting = 0
    """Objects seen but not complete: none (a listed object is whole)."""

    def __init__(self, folder: UPath, pattern: str, *, exclude: Location, marker: str) -> None:
        self.folder = folder
        self.pattern = pattern
        self.root = str(folder.joinpath(*glob_root(pattern).parts))
        self._base = folder.path.rstrip("/")
        self._match = re.compile(glob_translate(pattern))
        self._top_level = "/" not in pattern and "**" not in pattern
        self._marker = f"{self._base}/{marker}"
        self._exclude = None
        if not is_local(exclude) and exclude.protocol == folder.protocol:
            self._exclude = f"{exclude.path.rstrip('/')}/"
        self._reported: set[str] = set()
        self.marker_listed = False
        self.last_change = time.monotonic()

    def _wanted(self, key: str) -> bool:
        relative = key[len(self._base) + 1 :]
        if any(part.startswith(".") for part in relative.split("/")):
            return False
        if self._exclude is not None and key.startswith(self._exclude):
            return False
        return self._match.match(relative) is not None

    def scan(self) -> list[str]:
        """Every matching key under the prefix now, as URLs, sorted (one listing)."""
        fs = self.folder.fs
        try:  # refresh: a listing cached by an earlier poll would hide new keys
            keys = fs.find(self._base, maxdepth=1 if self._top_level else None, refresh=True)
        except FileNotFoundError:  # an empty prefix, on some stores
            keys = []
        self.marker_listed = self._marker in keys
        return sorted(fs.unstrip_protocol(k) for k in keys if self._wanted(k))

    @property
    def seen(self) -> list[str]:
        """Every URL reported, sorted."""
        return sorted(self._reported)

    def poll(self, now: float | None = None) -> list[str]:
        """List the prefix; return the URLs of the objects that appeared since the last poll."""
        new = [url for url in self.scan() if url not in self._reported]
        if new:
            self.last_change = time.monotonic() if now is None else now
        self._reported.update(new)
        return new

    def source(self, path: str, name: str, config: RunConfig) -> Source:
        """The run's view of one object (header only), named as in a batch run on the set."""
        return _source(path, name, config)


@dataclasses.dataclass(frozen=True)
class FolderClosing:
    """When the stream ends: a marker file exists, or nothing happened for a while."""

    marker: Location
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


@dataclasses.dataclass(frozen=True)
class PrefixClosing(FolderClosing):
    """When a watched prefix's stream ends: its marker key was in the previous listing.

    The listing before the current one ended before the current one began, so every key
    written before the marker is in the current listing: nothing is missed, at no request of
    its own.
    """

    arrivals: KeyArrivals

    def signalled(self) -> bool:
        """Whether the marker key was listed by the last poll."""
        return self.arrivals.marker_listed
