"""Outputs appear whole or not at all: write under a temporary name, then rename.

On an object store (a URL :data:`~daskmic.io.storage.Location`) there is no rename: the file
is made in a local temporary folder and goes up whole in one request
(:func:`daskmic.io.storage.write_whole`), so every writer of a file (tables, Scipion sets)
works on both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Final

from daskmic.io.storage import Location, location, write_whole


@contextmanager
def atomic_path(path: str | os.PathLike[str] | Location) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name starts with ``.`` and ends in ``.tmp-<random>`` so that a reader
    globbing for outputs never sees a partial file. Works for files and for directories
    (e.g. a zarr store); an existing directory at ``path`` is replaced. For a URL the block
    writes one file in a local temporary folder, uploaded whole when it succeeds.

    Parameters
    ----------
    path : path-like or Location
        Final location of the output.

    Yields
    ------
    pathlib.Path
        Where to write. Removed if the block raises.
    """
    final = location(path)
    if not isinstance(final, Path):  # an object store
        with tempfile.TemporaryDirectory(prefix="daskmic-") as folder:
            tmp = Path(folder, final.name)
            yield tmp
            if tmp.is_dir():
                raise ValueError(f"{final}: a folder cannot be written whole to an object store")
            write_whole(final, tmp.read_bytes())
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(final)
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _temporary(final: Path) -> Path:
    """A temporary sibling's name for ``final`` (see :data:`daskmic.run.manifest.PARTIAL_NAME`)."""
    return final.with_name(f".{final.name}.tmp-{os.urandom(4).hex()}")


def _write_temporary(final: Path, data: bytes, *, sync: bool) -> Path:
    """Write ``data`` to a new temporary sibling of ``final`` (its folder made if missing)."""
    tmp = _temporary(final)
    try:
        handle = open(tmp, "wb")
    except FileNotFoundError:  # the folder's first file: no mkdir call for the others
        final.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "wb")
    try:
        with handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_bytes_atomic(
    path: str | os.PathLike[str] | Location, data: bytes, *, sync: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically (rename of a temporary sibling, fsynced before it
    unless ``sync`` is False; one request to a URL)."""
    final = location(path)
    if not isinstance(final, Path):
        write_whole(final, data)
        return
    tmp = _write_temporary(final, data, sync=sync)
    try:
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


SYNC_THREADS: Final = 32
"""Files :func:`write_all_atomic` fsyncs at once: concurrent fsyncs share the filesystem's
journal commits (on ext4, 32 small files in about 20 ms together against 100-200 ms one after
the other)."""


@cache
def _sync_pool(pid: int) -> ThreadPoolExecutor:
    """This process's fsync threads (one pool per process id: a forked child makes its own)."""
    return ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="daskmic-fsync")


def write_all_atomic(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write each ``(path, data)`` as :func:`write_bytes_atomic` does, the fsyncs together.

    Every file goes to its temporary sibling, all are fsynced at once, then each is renamed
    into place in the order given: a file appears only once it is durable, and only after
    those before it. Each write costs the caller what one would, not one journal commit each.
    If anything fails, no temporary file is left and the files not renamed yet do not appear.
    """
    pending: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            pending.append((_write_temporary(path, data, sync=False), path))
        if len(pending) == 1:
            _fsync(pending[0][0])
        else:
            list(_sync_pool(os.getpid()).map(_fsync, [tmp for tmp, _ in pending]))
        while pending:
            tmp, path = pending[0]
            os.replace(tmp, path)
            pending.pop(0)
    finally:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
