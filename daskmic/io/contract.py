"""The data contract every reader honours (see :func:`daskmic.open_micrographs`).

A stack is an ``xarray.DataArray`` with dims :data:`DIMS`, a unique ``micrograph`` name per
micrograph, its ``path`` and ``pixel_size_A`` along ``micrograph``, and ``y``/``x`` made by
:func:`spatial_coords`. :func:`daskmic.open_micrographs`, the xarray backend and the results
store's readers build their coordinates here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

DIMS: Final = ("micrograph", "y", "x")
RESULTS_STORE: Final = "micrographs.zarr"
"""The results store's name in an output folder (``OUT/micrographs.zarr``)."""
RESERVED: Final = {"micrograph", "path", "pixel_size_A", "y", "x"}
"""Coordinate names daskmic sets itself; table columns with these names get an ``input_`` prefix."""


def spatial_coords(ny: int, nx: int, pixel_sizes: np.ndarray) -> dict[str, xr.Variable]:
    """y/x in ångström when the set's pixel size is uniform and known, else in pixels."""
    import xarray as xr  # not for a run's catalogue: the command line starts without it
    uniform = pixel_sizes.size > 0 and np.all(pixel_sizes == pixel_sizes[0])
    if uniform and np.isfinite(pixel_sizes[0]):
        step, units = float(pixel_sizes[0]), "Å"
    else:
        step, units = 1.0, "px"
    return {
        dim: xr.Variable(dim, np.arange(n) * step, attrs={"units": units})
        for dim, n in (("y", ny), ("x", nx))
    }
