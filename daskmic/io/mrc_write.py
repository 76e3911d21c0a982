"""Writing float32 MRC files with their voxel size, atomically."""

from __future__ import annotations

import os

import mrcfile
import numpy as np

from daskmic.io.atomic import atomic_path


def write_mrc(path: str | os.PathLike[str], image: np.ndarray, pixel_size_A: float) -> None:
    """Write one 2-D image as a float32 MRC file (mode 2) with its pixel size in the header.

    Parameters
    ----------
    path : path-like
        Destination; it appears only once completely written.
    image : numpy.ndarray
        Two-dimensional image, rows = y.
    pixel_size_A : float
        Pixel size in ångström, stored as the voxel size.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"write_mrc expects a 2-D image, got shape {image.shape}")
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(image, dtype=np.float32))
            mrc.voxel_size = float(pixel_size_A)
            mrc.update_header_stats()
