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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes_atomic(
    path: str | os.PathLike[str] | Location, data: bytes, *, sync: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically (rename of a temporary sibling, fsynced before it
    unless ``sync`` is False; one request to a URL)."""
    final = location(path)
    if not isinstance(final, Path):
        write_whole(final, data)
        return
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
