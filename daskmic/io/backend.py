"""``xr.open_dataset("x.mrc", engine="daskmic")``: a thin xarray backend over the reader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from daskmic.io.lazy import LazyMicrographStack
from daskmic.io.readers import read_header

SUFFIXES = (".mrc", ".tif", ".tiff")


class _MicrographArray(BackendArray):
    """One micrograph as a lazily indexed 2-D array; holds its path, no open file."""

    def __init__(self, path: str, shape: tuple[int, int], dtype: np.dtype) -> None:
        self.stack = LazyMicrographStack([path], shape, dtype)
        self.shape = shape
        self.dtype = dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_getitem
        )

    def _raw_getitem(self, key: tuple) -> np.ndarray:
        return self.stack[(0, *key)]


class DaskmicBackendEntrypoint(BackendEntrypoint):
    """Open one MRC or TIFF micrograph as a Dataset with variable ``image`` (y, x), lazily.

    ``y``/``x`` are in ångström when the header gives the pixel size (attribute
    ``pixel_size_A``), else in pixels. With ``chunks={}`` the image is one dask chunk.
    """

    description = "Cryo-EM micrographs (MRC, TIFF) via daskmic's reader"
    open_dataset_parameters = ("filename_or_obj", "drop_variables")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        drop_variables: str | list[str] | None = None,
    ) -> xr.Dataset:
        """Read the header now and return the lazily indexed image."""
        header = read_header(filename_or_obj)
        (ny, nx), step = header.shape, header.pixel_size_A or 1.0
        units = "px" if header.pixel_size_A is None else "Å"
        array = indexing.LazilyIndexedArray(
            _MicrographArray(header.path, header.shape, header.dtype)
        )
        image = xr.Variable(("y", "x"), array, encoding={"preferred_chunks": {"y": ny, "x": nx}})
        coords = {
            d: xr.Variable(d, np.arange(n) * step, attrs={"units": units})
            for d, n in (("y", ny), ("x", nx))
        }
        attrs: dict[str, str | float] = {"path": header.path, "format": header.format}
        attrs["pixel_size_A"] = np.nan if header.pixel_size_A is None else header.pixel_size_A
        dataset = xr.Dataset({"image": image}, coords=coords, attrs=attrs)
        drop = [drop_variables] if isinstance(drop_variables, str) else drop_variables or []
        return dataset.drop_vars(drop, errors="ignore")

    def guess_can_open(self, filename_or_obj: object) -> bool:
        """MRC and TIFF files, by suffix."""
        if not isinstance(filename_or_obj, str | os.PathLike):
            return False
        return Path(filename_or_obj).suffix.lower() in SUFFIXES
