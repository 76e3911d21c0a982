"""Micrograph I/O: headers and lazy pixels, tables (STAR, xmd, CSV), MRC and zarr writers."""

from daskmic.io.atomic import atomic_path
from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader, require_pixel_size
from daskmic.io.mrc_write import write_mrc
from daskmic.io.open import CatalogueEntry, catalogue_micrographs, open_micrographs
from daskmic.io.optics import optics_table
from daskmic.io.readers import read_header, read_micrograph
from daskmic.io.tables import read_table, write_csv, write_star, write_xmd
from daskmic.io.thumbnails import make_thumbnail
from daskmic.io.zarr_store import add_pixels, open_pixels, open_results, write_results

__all__ = [
    "CatalogueEntry",
    "MicrographError",
    "MicrographHeader",
    "add_pixels",
    "atomic_path",
    "catalogue_micrographs",
    "make_thumbnail",
    "open_micrographs",
    "open_pixels",
    "open_results",
    "optics_table",
    "read_header",
    "read_micrograph",
    "read_table",
    "require_pixel_size",
    "write_csv",
    "write_mrc",
    "write_results",
    "write_star",
    "write_xmd",
]
