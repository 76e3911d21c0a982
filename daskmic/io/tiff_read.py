"""TIFF headers (pixel size from the resolution tags) and region reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader

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


def _check_page(path: Path, tif: tifffile.TiffFile) -> tifffile.TiffPage:
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
    size = os.path.getsize(path)
    if end > size:
        raise MicrographError(
            path, f"truncated: image data end at byte {end} but the file has {size} bytes"
        )
    return page


def tiff_header(path: Path) -> MicrographHeader:
    """Read and validate the first image of a TIFF file."""
    with tifffile.TiffFile(path) as tif:
        page = _check_page(path, tif)
        return MicrographHeader(
            path=os.path.abspath(path),
            shape=(int(page.shape[0]), int(page.shape[1])),
            dtype=np.dtype(page.dtype).newbyteorder("="),
            pixel_size_A=_pixel_size_A(tif, page),
            format="tiff",
        )


def read_tiff(path: Path, region: tuple[slice, slice]) -> np.ndarray:
    """Read ``region`` of a TIFF micrograph.

    Uncompressed contiguous images are memory-mapped, so only ``region`` is touched;
    compressed ones are decoded whole, then cut.
    """
    with tifffile.TiffFile(path) as tif:
        page = _check_page(path, tif)
        dtype = np.dtype(page.dtype).newbyteorder(tif.byteorder)
        if page.is_contiguous:
            offset = page.dataoffsets[0]
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=page.shape)
            try:
                return np.array(mapped[region], dtype=dtype.newbyteorder("="))
            finally:
                del mapped
        return np.array(page.asarray()[region], dtype=dtype.newbyteorder("="))
