"""The results table at a store's root: a DataFrame or Dataset as zarr v3 arrays, written
without xarray, dask or zarr where it can be (:func:`table`).

Each column is a 1-D array along ``micrograph`` in one chunk, written with the metadata and the
chunk bytes that ``xarray.Dataset.to_zarr`` (through zarr-python 3) gives it: text as
``vlen-utf8``, numbers and booleans little-endian, each chunk compressed with zstd (level 0, no
checksum); floats with xarray's ``_FillValue`` (NaN); a chunk equal to the fill value everywhere
is not written, as zarr leaves it out. The publish at the end of every run so costs no import of
xarray, dask or zarr (about 0.35 s of CPU, most of a one-micrograph run's fixed start), and the
store reads back the same with ``xr.open_zarr`` and :func:`daskmic.io.zarr_store.open_results`.
A table only xarray can write (no rows, pandas extension types, other dimensions, encodings) is
written by xarray.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
from numcodecs.zstd import Zstd  # zarr's own zstd (numcodecs, 20 ms to import; zarr is 0.1 s)

from daskmic.io.storage import Location, write_whole, zarr_store

if TYPE_CHECKING:
    import xarray as xr

DIMENSION: Final = "micrograph"
KINDS: Final = "biufO"
"""The dtype kinds written here (booleans, integers, floats, text as ``str`` objects)."""

_ZSTD: Final = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}
_KEY_ENCODING: Final = {"name": "default", "configuration": {"separator": "/"}}


def writable(columns: dict[str, np.ndarray]) -> bool:
    """Whether :func:`write_columns` writes ``columns`` as xarray would: 1-D numpy arrays of
    one length (not zero), of the kinds in :data:`KINDS` (text only as Python ``str``)."""
    lengths = {len(values) for values in columns.values() if isinstance(values, np.ndarray)}
    return len(lengths) == 1 and 0 not in lengths and all(
        isinstance(values, np.ndarray)
        and values.ndim == 1
        and values.dtype.kind in KINDS
        and (values.dtype.kind != "O" or all(type(v) is str for v in values))
        for values in columns.values()
    )


def array_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    chunk_shape: tuple[int, ...],
    dimension_names: tuple[str, ...],
    compressed: bool = True,
    attributes: dict[str, Any] | None = None,
) -> bytes:
    """A zarr v3 array's ``zarr.json`` as zarr-python writes it (indented by 2).

    Text (``O``) is ``string`` with the ``vlen-utf8`` codec; other dtypes are stored by the
    ``bytes`` codec, little-endian; ``compressed`` adds zstd (level 0). The fill value is NaN
    for floats, else zero, ``False`` or the empty string.
    """
    fill: str | bool | int
    if dtype.kind == "O":
        data_type, fill, codecs = "string", "", [{"name": "vlen-utf8", "configuration": {}}]
    else:
        data_type = "bool" if dtype.kind == "b" else dtype.name
        fill = "NaN" if dtype.kind == "f" else False if dtype.kind == "b" else 0
        bytes_codec: dict[str, Any] = {"name": "bytes"}
        if dtype.itemsize > 1:
            bytes_codec["configuration"] = {"endian": "little"}
        codecs = [bytes_codec]
    metadata = {
        "shape": list(shape),
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk_shape)}},
        "chunk_key_encoding": _KEY_ENCODING,
        "fill_value": fill,
        "codecs": [*codecs, _ZSTD] if compressed else codecs,
        "attributes": attributes or {},
        "dimension_names": list(dimension_names),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    return json.dumps(metadata, indent=2).encode()


def _chunk(values: np.ndarray) -> bytes | None:
    """The column's one chunk, encoded and compressed; None when all of it is the fill value."""
    if values.dtype.kind == "O":
        if all(value == "" for value in values):
            return None
        texts = [value.encode() for value in values]
        sizes = np.array([len(values), *map(len, texts)], "<u4").tobytes()
        parts = [sizes[:4]]
        for index, text in enumerate(texts, 1):
            parts += [sizes[4 * index : 4 * index + 4], text]
        raw = b"".join(parts)
    else:
        filled = np.isnan(values).all() if values.dtype.kind == "f" else not values.any()
        if filled:
            return None
        raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    return bytes(Zstd(level=0, checksum=False).encode(raw))


def _fill_attribute(dtype: np.dtype) -> dict[str, str]:
    """xarray's ``_FillValue`` attribute of a column (floats: NaN, as 8 bytes in base64)."""
    if dtype.kind != "f":
        return {}
    return {"_FillValue": base64.standard_b64encode(np.float64(np.nan).tobytes()).decode()}


def write_columns(
    group: Location,
    columns: dict[str, np.ndarray],
    attrs: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write ``columns`` (:func:`writable`) as arrays under ``group``, one folder each.

    ``attrs`` gives columns their own attributes (JSON-ready). The files are derived from the
    records (rebuilt by the next publish), so they are renamed into place without an fsync.
    """
    for name, values in columns.items():
        folder = group / name
        metadata = array_metadata(
            values.shape,
            values.dtype,
            chunk_shape=values.shape,
            dimension_names=(DIMENSION,),
            attributes={**(attrs or {}).get(name, {}), **_fill_attribute(values.dtype)},
        )
        write_whole(folder / "zarr.json", metadata, sync=False)
        chunk = _chunk(values)
        if chunk is not None:
            write_whole(folder / "c" / "0", chunk, sync=False)


def _only_str(values: np.ndarray) -> bool:
    """Whether ``values`` are Python ``str`` objects only (as :func:`strings_as_objects`
    makes them)."""
    return values.dtype == object and all(type(v) is str for v in values.ravel())


def strings_as_objects(values: np.ndarray) -> np.ndarray:
    """Text as Python ``str`` objects (a missing value as ``""``); other values as they are."""
    if values.dtype.kind in "USOT":
        return np.array(["" if pd.isna(v) else str(v) for v in values.ravel()], object).reshape(
            values.shape
        )
    return values


def _storable(variables: xr.Dataset | pd.DataFrame) -> xr.Dataset:
    """A copy with string data as objects (zarr's spec'd v3 string type) and JSON attrs."""
    import xarray as xr

    if isinstance(variables, pd.DataFrame):
        variables = xr.Dataset.from_dataframe(variables.set_index("micrograph"))
    ds = variables.copy()
    for name, variable in ds.variables.items():
        if variable.dtype.kind not in "USOT":
            continue
        values = np.asarray(variable.values)
        # text already as str objects (the index from a table) is kept: replacing the index
        # makes xarray probe for pint, an import of 0.1 s at every run's end
        if not _only_str(values):
            ds[name] = variable.copy(data=strings_as_objects(values))
    ds.attrs = _as_json(ds.attrs)
    for variable in ds.variables.values():
        variable.attrs = _as_json(variable.attrs)
    return ds


def _as_json(attrs: dict) -> dict:
    """``attrs`` as JSON gives them back (what is not JSON as text)."""
    return json.loads(json.dumps(attrs, default=str))


@dataclass
class StoredTable:
    """A results table to store: its columns as :func:`write_columns` writes them
    (``micrograph`` first, each column's own ``attrs``), or, where only xarray writes it, the
    Dataset :func:`_storable` makes; and the root's ``attributes``."""

    columns: dict[str, np.ndarray]
    attrs: dict[str, dict[str, Any]]
    attributes: dict[str, Any]
    dataset: xr.Dataset | None = None

    def count(self) -> int:
        """The number of rows."""
        if self.dataset is not None:
            return int(self.dataset.sizes.get("micrograph", 0))
        return len(self.columns["micrograph"])

    def add(self, name: str, values: np.ndarray) -> None:
        """Add (or replace) a column along ``micrograph``."""
        if self.dataset is not None:
            self.dataset[name] = ("micrograph", values)
        else:
            self.columns[name] = values

    def write(self, group: Location) -> None:
        """Write the columns as the arrays of ``group`` (xarray's metadata and chunks)."""
        if self.dataset is None:
            write_columns(group, self.columns, self.attrs)
            return
        import dask

        ds = self.dataset
        encoding = {
            name: {"chunks": ds[name].shape}
            for name in ds.variables
            if ds[name].ndim == 1 and ds[name].size
        }
        with dask.config.set(scheduler="synchronous"):  # never a cluster that is dask's default
            ds.to_zarr(
                zarr_store(group), mode="w", zarr_format=3, consolidated=False, encoding=encoding
            )


def table(variables: xr.Dataset | pd.DataFrame) -> StoredTable:
    """``variables`` as :func:`_storable` makes them, as plain columns where they can be
    written directly (:func:`writable`).

    A DataFrame of numpy or text (``str``) columns can, and a Dataset of in-memory variables along
    ``micrograph`` only, with no coordinate but ``micrograph`` and no encoding; others go
    through xarray.
    """
    if isinstance(variables, pd.DataFrame):
        if "micrograph" not in variables.columns:
            raise ValueError(f"variables needs a 'micrograph' column, has {list(variables)}")
        names = list(variables.columns)
        if variables.attrs or len(set(names)) != len(names) or not all(
            isinstance(name, str) and isinstance(dtype, np.dtype | pd.StringDtype)
            for name, dtype in variables.dtypes.items()
        ):
            return _through_xarray(variables)
        order = ["micrograph", *(name for name in names if name != "micrograph")]
        found = {name: variables[name].to_numpy() for name in order}
        attrs: dict[str, dict[str, Any]] = {}
        table_attrs: dict[str, Any] = {}
    else:
        every = variables.variables
        if list(variables.coords) != ["micrograph"] or "micrograph" not in every or any(
            v.dims != ("micrograph",) or v.chunks is not None or v.encoding for v in every.values()
        ):
            return _through_xarray(variables)
        order = ["micrograph", *(str(name) for name in every if name != "micrograph")]
        found = {name: np.asarray(every[name].values) for name in order}
        attrs = {name: _as_json(every[name].attrs) for name in order if every[name].attrs}
        table_attrs = _as_json(variables.attrs)
    columns = {
        name: strings_as_objects(values)
        if values.dtype.kind in "USOT" and not _only_str(values)
        else values
        for name, values in found.items()
    }
    if not writable(columns):
        return _through_xarray(variables)
    return StoredTable(columns, attrs, table_attrs)


def _through_xarray(variables: xr.Dataset | pd.DataFrame) -> StoredTable:
    """The table as xarray writes it (:func:`_storable`)."""
    ds = _storable(variables)
    return StoredTable({}, {}, ds.attrs, ds)
