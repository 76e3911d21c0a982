"""Writing float32 MRC files with their voxel size, atomically."""

from __future__ import annotations

import os

import mrcfile
import numpy as np

from daskmic.io.atomic import atomic_path


def write_mrc(
    path: str | os.PathLike[str], image: np.ndarray, pixel_size_A: float, *, label: str = ""
) -> None:
    """Write one 2-D image as a float32 MRC file (mode 2) with its pixel size in the header.

    The file's bytes depend only on the image, the pixel size and the label: mrcfile's
    default label, which carries the creation time, is replaced, so a resumed run writes
    files identical to an uninterrupted one.

    Parameters
    ----------
    path : path-like
        Destination; it appears only once completely written.
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
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(image, dtype=np.float32))
            mrc.voxel_size = float(pixel_size_A)
            mrc.update_header_stats()
            mrc.header.label[0] = label.encode("ascii", "replace")[:80]
            mrc.header.nlabl = 1 if label else 0
