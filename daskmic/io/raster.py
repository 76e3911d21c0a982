"""A region of an uncompressed 2-D raster (MRC data, a contiguous TIFF image) at a known offset.

Locally the file is memory-mapped, so only the pages holding the region are touched. At a URL
the rows holding the region are fetched in one ranged request (:func:`daskmic.io.storage.
read_range`), then cut to the region's columns: a band of rows costs its own bytes, not the
object's.
"""

from __future__ import annotations

import numpy as np

from daskmic.io.storage import Location, is_local, read_range

Region = tuple[slice, slice]


def read_raster(
    loc: Location, offset: int, shape: tuple[int, int], dtype: np.dtype, region: Region
) -> np.ndarray:
    """Pixels ``region`` of the ``shape`` raster of ``dtype`` starting ``offset`` bytes in.

    Returns
    -------
    numpy.ndarray
        The region in native byte order (a copy: no file stays open or mapped).
    """
    native = dtype.newbyteorder("=")
    if is_local(loc):
        mapped = np.memmap(loc, dtype=dtype, mode="r", offset=offset, shape=shape)
        try:
            return np.array(mapped[region], dtype=native)
        finally:
            del mapped
    ny, nx = shape
    rows = range(*region[0].indices(ny))
    if len(rows) == 0:
        return np.empty((0, len(range(*region[1].indices(nx)))), native)
    first, last = min(rows[0], rows[-1]), max(rows[0], rows[-1])
    row_bytes = nx * dtype.itemsize
    data = read_range(loc, offset + first * row_bytes, offset + (last + 1) * row_bytes)
    band = np.frombuffer(data, dtype=dtype).reshape(last + 1 - first, nx)
    return np.array(band[rows.start - first :: rows.step, region[1]], dtype=native)
