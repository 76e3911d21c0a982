"""The results table's columns as zarr v3 arrays, written without xarray, dask or zarr.

Each column is a 1-D array along ``micrograph`` in one chunk, written with the metadata and the
chunk bytes that ``xarray.Dataset.to_zarr`` (through zarr-python 3) gives it: text as
``vlen-utf8``, numbers and booleans little-endian, each chunk compressed with zstd (level 0, no
checksum); floats with xarray's ``_FillValue`` (NaN); a chunk equal to the fill value everywhere
is not written, as zarr leaves it out. The publish at the end of every run so costs no import of
xarray, dask or zarr (about 0.35 s of CPU, most of a one-micrograph run's fixed start), and the
store reads back the same with ``xr.open_zarr`` and :func:`daskmic.io.zarr_store.open_results`.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

import numpy as np
from numcodecs.zstd import Zstd  # zarr's own zstd (numcodecs, 20 ms to import; zarr is 0.1 s)

from daskmic.io.storage import Location, write_whole

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
