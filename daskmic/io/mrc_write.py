"""Writing float32 MRC files with their voxel size, atomically, locally or to a URL."""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import numpy as np
from mrcfile.mrcinterpreter import MrcInterpreter

from daskmic.io.atomic import atomic_path
from daskmic.io.storage import Location, location, write_whole


def _fill(mrc: MrcInterpreter, image: np.ndarray, pixel_size_A: float, label: str) -> None:
    """Give a new MRC object its data, voxel size, statistics and only label."""
    mrc.set_data(np.ascontiguousarray(image, dtype=np.float32))
    mrc.voxel_size = float(pixel_size_A)
    mrc.update_header_stats()
    mrc.header.label[0] = label.encode("ascii", "replace")[:80]
    mrc.header.nlabl = 1 if label else 0


def mrc_bytes(image: np.ndarray, pixel_size_A: float, *, label: str = "") -> bytes:
    """The bytes of the MRC file :func:`write_mrc` writes (for a store written in one request)."""
    header, data = _header_and_data(np.asarray(image), pixel_size_A, label)
    return header + data.tobytes()


def _header_and_data(
    image: np.ndarray, pixel_size_A: float, label: str
) -> tuple[bytes, np.ndarray]:
    """The header mrcfile gives ``image`` (as float32, with its statistics) and the data.

    The header depends only on the shape, the pixel size and the label but for the four
    statistics, so mrcfile builds it once per kind (:func:`_header_template`, its slow part)
    and the statistics are set as mrcfile's ``update_header_stats`` sets them.
    """
    data = np.ascontiguousarray(image, dtype=np.float32)
    header = _header_template(data.shape, float(pixel_size_A), label).copy()
    header.dmin = np.float32(data.min())
    header.dmax = np.float32(data.max())
    header.dmean = data.mean(dtype=np.float32)
    header.rms = data.std(dtype=np.float32)
    return header.tobytes(), data


@functools.lru_cache(maxsize=64)
def _header_template(shape: tuple[int, ...], pixel_size_A: float, label: str) -> np.recarray:
    """mrcfile's header of a float32 image of ``shape``, voxel size and label (no extended
    header); mrcfile builds the header and writes header and data to a stream as to a file."""
    mrc = MrcInterpreter()
    mrc._create_default_attributes()  # mrcfile's documented way to make one without a stream
    mrc._iostream = io.BytesIO()
    _fill(mrc, np.zeros(shape, dtype=np.float32), pixel_size_A, label)
    if mrc.header.nsymbt != 0:
        raise ValueError("an MRC header template must have no extended header")
    header: np.recarray = mrc.header.copy()
    header.flags.writeable = False  # copied before use
    return header


def write_mrc(
    path: str | os.PathLike[str] | Location,
    image: np.ndarray,
    pixel_size_A: float,
    *,
    label: str = "",
) -> None:
    """Write one 2-D image as a float32 MRC file (mode 2) with its pixel size in the header.

    The file's bytes depend only on the image, the pixel size and the label: mrcfile's
    default label, which carries the creation time, is replaced, so a resumed run writes
    files identical to an uninterrupted one.

    Parameters
    ----------
    path : path-like or Location
        Destination; it appears only once completely written: locally through a temporary
        sibling renamed into place, on an object store as one whole object (one request).
    image : numpy.ndarray
        Two-dimensional image, rows = y.
    pixel_size_A : float
        Pixel size in ångström, stored as the voxel size.
    label : str, optional
        Text for the header's first label (at most 80 characters), e.g. what made the file.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"write_mrc expects a 2-D image, got shape {image.shape}")
    target = location(path)
    if not isinstance(target, Path):  # an object store: one request
        write_whole(target, mrc_bytes(image, pixel_size_A, label=label))
        return
    header, data = _header_and_data(image, pixel_size_A, label)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(header)
            handle.write(data.data)  # the buffer itself, no copy
