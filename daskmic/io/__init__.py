"""Micrograph I/O: headers and lazy pixels, tables (STAR, xmd, CSV), MRC and zarr writers."""

import lazy_loader

# Imported on first use, so a worker reading one micrograph does not import xarray, pandas or
# zarr through this package.
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "atomic": ["atomic_path"],
        "errors": ["MicrographError"],
        "header": ["MicrographHeader", "require_pixel_size"],
        "mrc_write": ["write_mrc"],
        "open": ["CatalogueEntry", "catalogue_micrographs", "open_micrographs"],
        "optics": ["optics_table"],
        "readers": ["read_header", "read_micrograph"],
        "tables": ["read_table", "write_csv", "write_star", "write_xmd"],
        "thumbnails": ["make_thumbnail"],
        "ngff": ["write_image"],
        "zarr_store": ["open_images", "open_pixels", "open_results", "write_results"],
    },
)

__all__ = [
    "CatalogueEntry",
    "MicrographError",
    "MicrographHeader",
    "atomic_path",
    "catalogue_micrographs",
    "make_thumbnail",
    "open_images",
    "open_micrographs",
    "open_pixels",
    "open_results",
    "optics_table",
    "read_header",
    "read_micrograph",
    "read_table",
    "require_pixel_size",
    "write_csv",
    "write_image",
    "write_mrc",
    "write_results",
    "write_star",
    "write_xmd",
]
