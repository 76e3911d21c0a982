"""The two entry points for one file: its header, and its pixels (all or a region)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader
from daskmic.io.mrc_read import mrc_header, read_mrc
from daskmic.io.tiff_read import read_tiff, tiff_header

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

Region = tuple[slice, slice]


def _existing_file(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Check that ``path`` is a non-empty file; return it and its format, sniffed from content."""
    path = Path(path)
    if not path.exists():
        raise MicrographError(path, "no such file")
    if path.is_dir():
        raise MicrographError(path, "is a folder, not a micrograph file")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise MicrographError(path, f"cannot be read ({error.strerror or error})") from error
    if not magic:
        raise MicrographError(path, "empty file (0 bytes)")
    return path, "tiff" if magic in _TIFF_MAGIC else "mrc"


def read_header(path: str | os.PathLike[str]) -> MicrographHeader:
    """Read the header of one 2-D micrograph (MRC or TIFF) without reading its pixels.

    The format is recognised from the file's first bytes (TIFF magic number), else MRC.

    Parameters
    ----------
    path : path-like
        The micrograph file.

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
    path, fmt = _existing_file(path)
    try:
        return mrc_header(path) if fmt == "mrc" else tiff_header(path)
    except MicrographError:
        raise
    except Exception as error:  # any parser failure means the file is unusable
        raise MicrographError(path, f"cannot read {fmt.upper()} header ({error})") from error


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


def read_micrograph(path: str | os.PathLike[str], region: Region | None = None) -> np.ndarray:
    """Read the pixels of one 2-D micrograph, or only a region of it, as stored.

    Parameters
    ----------
    path : path-like
        The micrograph file (MRC or TIFF).
    region : tuple of two slices, optional
        ``(y_slice, x_slice)`` to read; ``None`` reads the whole image. For MRC files and
        uncompressed TIFF files only the pages holding the region are read from disk.

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
    path, fmt = _existing_file(path)
    try:
        return read_mrc(path, region) if fmt == "mrc" else read_tiff(path, region)
    except MicrographError:
        raise
    except Exception as error:  # any parser or I/O failure means the file is unusable
        raise MicrographError(path, f"cannot read {fmt.upper()} pixels ({error})") from error
