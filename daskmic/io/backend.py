"""``xr.open_dataset("x.mrc", engine="daskmic")``: a thin xarray backend over the reader."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from daskmic.io.contract import spatial_coords
from daskmic.io.lazy import LazyMicrographStack
from daskmic.io.readers import read_header
from daskmic.io.storage import StorageOptions

SUFFIXES = (".mrc", ".tif", ".tiff")


class _MicrographArray(BackendArray):
    """One micrograph as a lazily indexed 2-D array; holds its path or URL, no open file."""

    def __init__(
        self,
        path: str,
        shape: tuple[int, int],
        dtype: np.dtype,
        storage_options: StorageOptions | None,
    ) -> None:
        self.stack = LazyMicrographStack([path], shape, dtype, storage_options=storage_options)
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

    The coordinates follow the data contract of :func:`daskmic.open_micrographs`, for one
    micrograph: ``micrograph`` (its name, the file stem), ``path``, ``pixel_size_A`` (NaN when
    the header has none; also the attribute of that name) and ``y``/``x`` (ångström when the
    pixel size is known, else pixels), made by the same function. ``ds.image.expand_dims(
    "micrograph")`` is the one-micrograph stack. With ``chunks={}`` the image is one chunk.
    The file may be a URL (``xr.open_dataset("s3://bucket/a.mrc", engine="daskmic",
    storage_options={...})``): its header costs two small requests, a region its rows.
    """

    description = "Cryo-EM micrographs (MRC, TIFF) via daskmic's reader"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "storage_options")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str],
        *,
        drop_variables: str | list[str] | None = None,
        storage_options: StorageOptions | None = None,
    ) -> xr.Dataset:
        """Read the header now and return the lazily indexed image."""
        header = read_header(filename_or_obj, storage_options)
        ny, nx = header.shape
        pixel_size_A = np.nan if header.pixel_size_A is None else float(header.pixel_size_A)
        array = indexing.LazilyIndexedArray(
            _MicrographArray(header.path, header.shape, header.dtype, storage_options)
        )
        image = xr.Variable(("y", "x"), array, encoding={"preferred_chunks": {"y": ny, "x": nx}})
        coords = {
            "micrograph": PurePosixPath(header.path).stem,
            "path": header.path,
            "pixel_size_A": pixel_size_A,
            **spatial_coords(ny, nx, np.array([pixel_size_A])),
        }
        attrs: dict[str, str | float] = {"format": header.format, "pixel_size_A": pixel_size_A}
        dataset = xr.Dataset({"image": image}, coords=coords, attrs=attrs)
        drop = [drop_variables] if isinstance(drop_variables, str) else drop_variables or []
        return dataset.drop_vars(drop, errors="ignore")

    def guess_can_open(self, filename_or_obj: object) -> bool:
        """MRC and TIFF files (paths or URLs), by suffix."""
        if not isinstance(filename_or_obj, str | os.PathLike):
            return False
        return PurePosixPath(os.fspath(filename_or_obj)).suffix.lower() in SUFFIXES
