"""The two entry points for one file: its header, and its pixels (all or a region)."""

from __future__ import annotations

import os

import numpy as np
from upath import UPath

from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader
from daskmic.io.mrc_read import MRC_HEADER_BYTES, mrc_header, read_mrc
from daskmic.io.storage import Location, StorageOptions, is_local, location, read_range
from daskmic.io.tiff_read import read_tiff, tiff_header

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

Region = tuple[slice, slice]

Readable = str | os.PathLike[str] | Location
"""A micrograph file: a local path, a URL, or a :data:`~daskmic.io.storage.Location`."""


def _probe(path: Readable, storage_options: StorageOptions | None) -> tuple[Location, int, bytes]:
    """The file's location, size and first bytes (enough for an MRC header), or why not.

    Locally a stat and one read; at a URL one metadata request (``HEAD``) and one ranged
    ``GET`` of at most :data:`MRC_HEADER_BYTES`.
    """
    loc = location(path, storage_options)
    if is_local(loc):
        if not loc.exists():
            raise MicrographError(loc, "no such file")
        if loc.is_dir():
            raise MicrographError(loc, "is a folder, not a micrograph file")
        try:
            with open(loc, "rb") as handle:
                head = handle.read(MRC_HEADER_BYTES)
                size = os.fstat(handle.fileno()).st_size
        except OSError as error:
            raise MicrographError(loc, f"cannot be read ({error.strerror or error})") from error
    else:
        size, head = _probe_url(loc)
    if not head:
        raise MicrographError(loc, "empty file (0 bytes)")
    return loc, size, head


def _probe_url(loc: UPath) -> tuple[int, bytes]:
    try:
        info = loc.fs.info(loc.path)
        if info.get("type") == "directory":
            raise MicrographError(loc, "is a folder, not a micrograph file")
        size = int(info.get("size") or 0)
        return size, read_range(loc, 0, min(size, MRC_HEADER_BYTES)) if size else b""
    except MicrographError:
        raise
    except FileNotFoundError as error:
        raise MicrographError(loc, f"no such file ({error})") from error
    except PermissionError as error:
        raise MicrographError(loc, f"access denied ({error})") from error
    except Exception as error:  # the store's own errors (network, credentials, bucket)
        raise MicrographError(loc, f"cannot be read ({type(error).__name__}: {error})") from error


def _format(head: bytes) -> str:
    """The file's format, sniffed from its first bytes (TIFF's magic number, else MRC)."""
    return "tiff" if head[:4] in _TIFF_MAGIC else "mrc"


def read_header(
    path: Readable, storage_options: StorageOptions | None = None
) -> MicrographHeader:
    """Read the header of one 2-D micrograph (MRC or TIFF) without reading its pixels.

    The format is recognised from the file's first bytes (TIFF magic number), else MRC.

    Parameters
    ----------
    path : path-like, URL or Location
        The micrograph file. At a URL, two small requests: its size and its first KiB.
    storage_options : dict, optional
        For a URL's filesystem (see :func:`daskmic.io.storage.location`).

    Returns
    -------
    MicrographHeader
        Shape ``(ny, nx)``, stored dtype, pixel size (``None`` if the header has none), format.

    Raises
    ------
    MicrographError
        Missing or empty file, not an MRC/TIFF file, unsupported MRC mode, 3-D stack,
        truncated data. The message names the file and the problem.
    """
    loc, size, head = _probe(path, storage_options)
    fmt = _format(head)
    try:
        return mrc_header(loc, head, size) if fmt == "mrc" else tiff_header(loc, size)
    except MicrographError:
        raise
    except Exception as error:  # any parser failure means the file is unusable
        raise MicrographError(loc, f"cannot read {fmt.upper()} header ({error})") from error


def _check_region(region: object) -> Region:
    full = (slice(None), slice(None))
    if region is None:
        return full
    if (
        not isinstance(region, tuple)
        or len(region) != 2
        or not all(isinstance(s, slice) for s in region)
    ):
        raise ValueError(f"region must be a (y, x) tuple of two slices or None, got {region!r}")
    return region


def read_micrograph(
    path: Readable, region: Region | None = None, storage_options: StorageOptions | None = None
) -> np.ndarray:
    """Read the pixels of one 2-D micrograph, or only a region of it, as stored.

    Parameters
    ----------
    path : path-like, URL or Location
        The micrograph file (MRC or TIFF).
    region : tuple of two slices, optional
        ``(y_slice, x_slice)`` to read; ``None`` reads the whole image. For MRC files and
        uncompressed TIFF files only the pages holding the region are read from disk, or at a
        URL only the rows holding it, in one ranged request.
    storage_options : dict, optional
        For a URL's filesystem (see :func:`daskmic.io.storage.location`).

    Returns
    -------
    numpy.ndarray
        Two-dimensional array in the stored dtype (native byte order).

    Raises
    ------
    MicrographError
        For the same unusable files as :func:`read_header`, or a read failure.
    """
    region = _check_region(region)
    loc, size, head = _probe(path, storage_options)
    fmt = _format(head)
    try:
        if fmt == "mrc":
            return read_mrc(loc, head, size, region)
        return read_tiff(loc, size, region)
    except MicrographError:
        raise
    except FileNotFoundError as error:  # it vanished since its header was read
        raise MicrographError(loc, f"no such file ({error})") from error
    except Exception as error:  # any parser or I/O failure means the file is unusable
        raise MicrographError(loc, f"cannot read {fmt.upper()} pixels ({error})") from error
