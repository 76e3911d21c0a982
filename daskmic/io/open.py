"""``open_micrographs``: headers now (in parallel), pixels later (lazily), as the data contract."""

from __future__ import annotations

import glob
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from upath import UPath

from daskmic.io.contract import DIMS, RESERVED, spatial_coords
from daskmic.io.errors import MicrographError
from daskmic.io.header import MicrographHeader
from daskmic.io.lazy import LazyMicrographStack
from daskmic.io.readers import read_header
from daskmic.io.sources import (
    MICROGRAPH_SUFFIXES,
    Listing,
    Source,
    list_source,
    names_table,
    unique_names,
)
from daskmic.io.storage import (
    Location,
    StorageOptions,
    absolute,
    file_stamp,
    is_local,
    location,
)

if TYPE_CHECKING:  # dask.array and xarray only when a stack is opened, not for a run's catalogue
    import pandas as pd
    import xarray as xr


HeaderReader = Callable[[list[Location]], list[MicrographHeader | MicrographError]]
"""What gives the headers of listed files (each, or the error that makes it unusable)."""


def read_headers(paths: list[Location]) -> list[MicrographHeader | MicrographError]:
    """Each file's header, or the error that makes it unusable, read by a thread pool."""
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(paths)))) as pool:
        return list(pool.map(_header_or_error, paths))


def _header_or_error(path: Location) -> MicrographHeader | MicrographError:
    try:
        return read_header(path)
    except MicrographError as error:
        return error


def _majority_shape(headers: list[MicrographHeader]) -> tuple[int, int] | None:
    """The most common (ny, nx); ties go to the smallest shape, so order does not matter."""
    counts = Counter(h.shape for h in headers)
    return min(counts, key=lambda shape: (-counts[shape], shape)) if counts else None


def _check_pixel_size(pixel_size_A: float | None) -> float | None:
    if pixel_size_A is None:
        return None
    value = float(pixel_size_A)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"pixel_size_A must be a finite number > 0 (Å), got {pixel_size_A!r}")
    return value


def _check_chunks(chunks: Mapping[str, int] | None, shape: tuple[int, int, int]) -> tuple:
    """Dask chunks from ``{"micrograph": m, "y": ny, "x": nx}`` (any subset; -1 = whole axis)."""
    wanted = {"micrograph": 1, "y": -1, "x": -1}
    if chunks is not None:
        if not isinstance(chunks, Mapping) or not set(chunks) <= set(DIMS):
            raise ValueError(f"chunks must be a dict with keys among {DIMS}, got {chunks!r}")
        for dim, size in chunks.items():
            if not isinstance(size, int | np.integer) or not (size > 0 or size == -1):
                raise ValueError(f"chunks[{dim!r}] must be an integer > 0 or -1, got {size!r}")
        wanted.update(chunks)
    return tuple(
        max(1, n) if wanted[d] == -1 else wanted[d] for d, n in zip(DIMS, shape, strict=True)
    )


def _column_values(series: pd.Series) -> np.ndarray:
    """A table column as a coordinate array: numbers stay numeric, the rest become str objects."""
    import pandas as pd  # a table's: a listing of files needs no pandas
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series):
        has_missing = bool(series.isna().any())
        return series.to_numpy(dtype=float if has_missing else None, na_value=np.nan)
    return np.array(["" if pd.isna(v) else str(v) for v in series], dtype=object)


def _carried_coords(table: pd.DataFrame, rows: list[int]) -> dict[str, tuple]:
    coords = {}
    for column in table.columns:
        name = f"input_{column}" if column in RESERVED else str(column)
        coords[name] = ("micrograph", _column_values(table[column].iloc[rows]))
    return coords


def _pixel_sizes(
    listing: Listing, headers: list, rows: list[int], given: float | None
) -> np.ndarray:
    """Per stacked micrograph: the argument, else the table, else the header, else NaN."""
    if given is not None:
        return np.full(len(rows), given)
    table = listing.table_pixel_size_A
    sizes = []
    for row in rows:
        from_table = np.nan if table is None else table[row]
        from_header = headers[row].pixel_size_A
        if np.isfinite(from_table) and from_table > 0:
            sizes.append(float(from_table))
        else:
            sizes.append(np.nan if from_header is None else float(from_header))
    return np.asarray(sizes, dtype=float)


def _jsonable(table: pd.DataFrame | None) -> list[dict]:
    return [] if table is None else json.loads(table.to_json(orient="records"))


def _problem(header: MicrographHeader | MicrographError, shape: tuple | None) -> str:
    """Why a file cannot join a stack of ``shape`` ("" if it can; any shape when None)."""
    if isinstance(header, MicrographError):
        return header.problem
    if shape is not None and header.shape != shape:
        return f"shape {header.shape} differs from the set's {shape}"
    return ""


@dataclass(frozen=True)
class CatalogueEntry:
    """One input micrograph, known from its header alone (no stacking rule applied)."""

    micrograph: str
    path: str
    shape: tuple[int, int] | None
    pixel_size_A: float
    columns: dict[str, Any]
    error: str


def catalogue_micrographs(
    source: Source,
    *,
    pixel_size_A: float | None = None,
    storage_options: StorageOptions | None = None,
    headers: HeaderReader = read_headers,
) -> tuple[list[CatalogueEntry], list[dict]]:
    """List every input micrograph with its header, pixel size and table columns.

    Unlike :func:`open_micrographs`, micrographs of different shapes are all kept (each is
    processed on its own by the production unit); unreadable files carry their ``error``.
    Names, pixel sizes and carried columns follow the same rules; ``storage_options`` too.
    ``headers`` gives the listed files' headers (by default each is read: a run passes one
    that knows those of files it has read before).

    Returns
    -------
    entries : list of CatalogueEntry
        In listing order.
    optics : list of dict
        The input table's ``data_optics`` rows (possibly empty).
    """
    given = _check_pixel_size(pixel_size_A)
    listing = list_source(source, storage_options)
    names = unique_names(listing.paths, listing.root)
    found = headers(listing.paths)
    rows = list(range(len(found)))
    readable = {r: h for r, h in enumerate(found) if isinstance(h, MicrographHeader)}
    sizes = dict(zip(readable, _pixel_sizes(listing, found, list(readable), given), strict=True))
    columns = carried_columns(listing, rows)
    entries = [
        CatalogueEntry(
            micrograph=names[r],
            path=absolute(listing.paths[r]),
            shape=readable[r].shape if r in readable else None,
            pixel_size_A=float(sizes.get(r, np.nan)),
            columns=columns[r],
            error=_problem(found[r], None),
        )
        for r in rows
    ]
    return entries, optics_rows(listing)


def carried_columns(listing: Listing, rows: list[int]) -> list[dict[str, Any]]:
    """Per listed row, its table columns as a run carries them (named as coordinates)."""
    if listing.table is None:
        return [{} for _ in rows]
    coords = _carried_coords(listing.table, rows)
    return [
        {name: _plain(values[i]) for name, (_, values) in coords.items()} for i in range(len(rows))
    ]


def optics_rows(listing: Listing) -> list[dict]:
    """The listing's input optics groups as JSON-ready rows (empty without a table)."""
    return _jsonable(listing.optics)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _zarr_store(source: Source, storage_options: StorageOptions | None) -> Location | None:
    """``source`` as a zarr store's location when it names one, else None.

    A store is a folder holding ``zarr.json``; at a URL, which may not list (HTTP), the object
    ``OUT/zarr.json`` alone says so, and it is asked for only when ``source`` is neither a
    glob, a micrograph file nor a table (no request more for those).
    """
    if not isinstance(source, str | os.PathLike | UPath) or glob.has_magic(str(source)):
        return None
    if names_table(source):
        return None
    where = location(source, storage_options)
    if is_local(where):
        return where if where.is_dir() and (where / "zarr.json").is_file() else None
    if where.suffix.lower() in MICROGRAPH_SUFFIXES:
        return None
    return where if (where / "zarr.json").is_file() else None


def _open_store(
    store: Location, pixel_size_A: float | None, chunks: Mapping[str, int] | None
) -> xr.DataArray:
    from daskmic.io.zarr_store import open_pixels

    stack = open_pixels(store)
    if pixel_size_A is not None:
        sizes = np.full(stack.sizes["micrograph"], pixel_size_A)
        _, ny, nx = stack.shape
        stack = stack.assign_coords(
            {"pixel_size_A": ("micrograph", sizes), **spatial_coords(ny, nx, sizes)}
        )
    if chunks is not None:
        count, ny, nx = stack.shape
        stack = stack.chunk(_check_chunks(chunks, (count, ny, nx)))
    return stack


def open_micrographs(
    source: Source,
    *,
    pixel_size_A: float | None = None,
    chunks: Mapping[str, int] | None = None,
    storage_options: StorageOptions | None = None,
) -> xr.DataArray:
    """Open micrographs as a lazy ``(micrograph, y, x)`` DataArray (daskmic's data contract).

    Headers are read now, in parallel; pixels only when computed, and only the regions asked
    for. Files that cannot be read, or whose shape differs from the majority, are not in the
    stack: they are listed in ``attrs["failed"]``.

    Parameters
    ----------
    source : path-like, URL, or a sequence of them
        A file, a folder (its ``.mrc``/``.mrcs``/``.tif``/``.tiff`` files), a glob (``**``
        recurses, e.g. ``"GridSquare_*/Data/*.mrc"``), a list of those, or one table: a RELION
        ``.star`` (``data_optics`` + ``data_micrographs``; ``rlnMicrographName`` relative to the
        working directory), an Xmipp ``.xmd``, a ``.csv`` with a ``path``,
        ``rlnMicrographName`` or ``micrograph_path`` column, or a Scipion ``SetOfMicrographs``
        ``.sqlite`` (enabled items; paths relative to the project folder; sampling rate and
        acquisition as ``optics``; item attributes as coordinates, e.g. ``scipion_id``). Or a
        daskmic results store (``OUT/micrographs.zarr``): its processed micrographs, read from
        their OME-NGFF images (:func:`daskmic.io.open_images` gives every image whatever its
        shape). Any of them may be a URL of an fsspec filesystem (``"s3://bucket/raw/*.mrc"``,
        ``"https://host/set/micrographs.star"``; HTTP(S) lists nothing, so there files and
        tables only, whose relative names resolve against the table's URL): headers are read
        with two small requests each (size, first KiB), pixels later by byte range, on the
        workers.
    pixel_size_A : float, optional
        Pixel size in ångström for every micrograph; overrides tables and headers.
    chunks : dict, optional
        Dask chunk sizes by dimension, e.g. ``{"y": 512, "x": 512}``; by default one whole
        micrograph per chunk.
    storage_options : dict, optional
        For the URLs' filesystems (``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``,
        ``anon`` ...), as in dask, xarray and zarr; without them each backend finds its
        credentials itself (environment, config files).

    Returns
    -------
    xarray.DataArray
        Dims ``("micrograph", "y", "x")``, dtype as stored (the common type if files differ).
        Coordinates: ``micrograph`` (unique names: file stems, or root-relative paths when
        stems collide), ``path`` (absolute, or the URL), ``pixel_size_A`` (per micrograph; NaN
        if unknown), ``y``/``x`` (ångström when the pixel size is uniform and known, else
        pixels; see their ``units`` attribute) and every column of an input table (named as in
        the table; ``input_<name>`` for a column called ``micrograph``, ``path``,
        ``pixel_size_A``, ``y`` or ``x``). Attributes: ``source``, ``failed`` (list of
        ``{"micrograph", "path", "error"}``; ``error`` is the problem, without the path),
        ``optics`` (the input ``data_optics`` rows, possibly empty), ``daskmic_origin`` (see
        ``daskmic.io.origin``).

    Raises
    ------
    MicrographError
        Nothing found, or an unusable table.
    ValueError
        Invalid ``pixel_size_A`` or ``chunks``.

    Examples
    --------
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> truth = make_dataset("raw", n=2, shape=(256, 256), pixel_size_A=1.5)
    >>> mics = dm.open_micrographs("raw/*.mrc")   # headers now, pixels when computed
    >>> mics.dims, mics.sizes["micrograph"]
    (('micrograph', 'y', 'x'), 2)
    >>> list(mics["micrograph"].values), float(mics["pixel_size_A"][0])
    (['mic_000', 'mic_001'], 1.5)
    >>> mics.attrs["failed"]
    []
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize

    from daskmic.io.origin import record

    given = _check_pixel_size(pixel_size_A)
    store = _zarr_store(source, storage_options)
    if store is not None:
        return _open_store(store, given, chunks)
    listing = list_source(source, storage_options)
    names = unique_names(listing.paths, listing.root)
    headers = read_headers(listing.paths)
    shape = _majority_shape([h for h in headers if isinstance(h, MicrographHeader)])
    failed, rows = [], []
    for row, (name, header) in enumerate(zip(names, headers, strict=True)):
        problem = _problem(header, shape)
        if not problem:
            rows.append(row)
            continue
        failed.append({"micrograph": name, "path": absolute(listing.paths[row]), "error": problem})
    kept = [h for h in (headers[r] for r in rows) if isinstance(h, MicrographHeader)]
    ny, nx = shape or (0, 0)
    dtype = np.result_type(*(h.dtype for h in kept)) if kept else np.dtype(np.float32)
    paths = [absolute(listing.paths[r]) for r in rows]
    stamps = [file_stamp(listing.paths[r]) for r in rows]
    lazy = LazyMicrographStack(paths, (ny, nx), dtype, stamps, storage_options)
    dask_chunks = _check_chunks(chunks, lazy.shape)
    data = da.from_array(
        lazy,
        chunks=dask_chunks,
        asarray=False,
        meta=np.empty((0, 0, 0), dtype=dtype),
        name=f"micrographs-{tokenize(lazy, dask_chunks)}",
    )
    sizes = _pixel_sizes(listing, headers, rows, given)
    coords = {
        "micrograph": np.array([names[r] for r in rows], dtype=object),
        "path": ("micrograph", np.array(paths, dtype=object)),
        "pixel_size_A": ("micrograph", sizes),
        **spatial_coords(ny, nx, sizes),
    }
    if listing.table is not None:
        coords.update(_carried_coords(listing.table, rows))
    attrs = {
        "source": listing.description,
        "failed": failed,
        "optics": _jsonable(listing.optics),
    }
    opened = xr.DataArray(data, dims=DIMS, coords=coords, attrs=attrs, name="micrographs")
    return record(opened, "files")
