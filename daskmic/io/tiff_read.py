"""TIFF headers (pixel size from the resolution tags) and region reads.

At a URL tifffile reads through an fsspec file with a block cache of :data:`TIFF_BLOCK_BYTES`:
a header costs the blocks holding the image file directory (usually one), an uncompressed
image's region its rows (one ranged request), a compressed one its strips or tiles.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import tifffile

from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader
from daskmic.io.raster import Region, read_raster
from daskmic.io.storage import Location, absolute, is_local

TIFF_BLOCK_BYTES = 2**15
"""Bytes per request when tifffile reads a TIFF at a URL (it reads small pieces at offsets)."""

_A_PER_UNIT = {2: 2.54e8, 3: 1.0e8}  # TIFF ResolutionUnit: 2 inch, 3 centimetre
_A_PER_IMAGEJ_UNIT = {"micron": 1e4, "um": 1e4, "\u00b5m": 1e4, "nm": 10.0, "A": 1.0}


def _pixel_size_A(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> float | None:
    """Pixel size along x from XResolution/ResolutionUnit (or ImageJ's unit), else ``None``."""
    tags = page.tags
    if "XResolution" not in tags:
        return None
    numerator, denominator = tags["XResolution"].value
    if numerator <= 0 or denominator <= 0:
        return None
    pixels_per_unit = numerator / denominator
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    if unit in _A_PER_UNIT:
        return round(_A_PER_UNIT[unit] / pixels_per_unit, 9)
    imagej_unit = (tif.imagej_metadata or {}).get("unit")
    if imagej_unit in _A_PER_IMAGEJ_UNIT:
        return round(_A_PER_IMAGEJ_UNIT[imagej_unit] / pixels_per_unit, 9)
    return None


@contextmanager
def _opened(path: Location, size: int) -> Iterator[tifffile.TiffFile]:
    """The TIFF file, local or at a URL (read through a block cache; its size already known)."""
    if is_local(path):
        with tifffile.TiffFile(path) as tif:
            yield tif
        return
    with path.fs.open(
        path.path, "rb", block_size=TIFF_BLOCK_BYTES, cache_type="blockcache", size=size
    ) as handle, tifffile.TiffFile(handle, name=path.name) as tif:
        yield tif


def _check_page(path: Location, tif: tifffile.TiffFile, size: int) -> tifffile.TiffPage:
    """Return the micrograph page, refusing stacks, colour images and truncated files."""
    series = tif.series[0]
    if len(series.shape) != 2:
        if "S" in series.axes:
            raise MicrographError(path, f"multi-sample (colour) TIFF of shape {series.shape}")
        raise MicrographError(
            path, f"3-D stack of shape {series.shape}; a single 2-D micrograph is expected"
        )
    page = tif.pages.first
    end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True))
    if end > size:
        raise MicrographError(
            path, f"truncated: image data end at byte {end} but the file has {size} bytes"
        )
    return page


def tiff_header(path: Location, size: int) -> MicrographHeader:
    """Read and validate the first image of a TIFF file of ``size`` bytes."""
    with _opened(path, size) as tif:
        page = _check_page(path, tif, size)
        return MicrographHeader(
            path=absolute(path),
            shape=(int(page.shape[0]), int(page.shape[1])),
            dtype=np.dtype(page.dtype).newbyteorder("="),
            pixel_size_A=_pixel_size_A(tif, page),
            format="tiff",
        )


def read_tiff(path: Location, size: int, region: Region) -> np.ndarray:
    """Read ``region`` of a TIFF micrograph of ``size`` bytes.

    Uncompressed contiguous images are read as a raster (only the rows holding ``region``);
    compressed ones are decoded whole, then cut.
    """
    with _opened(path, size) as tif:
        page = _check_page(path, tif, size)
        dtype = np.dtype(page.dtype).newbyteorder(tif.byteorder)
        if page.is_contiguous:
            offset, shape = page.dataoffsets[0], (int(page.shape[0]), int(page.shape[1]))
        else:
            return np.array(page.asarray()[region], dtype=dtype.newbyteorder("="))
    return read_raster(path, offset, shape, dtype, region)
