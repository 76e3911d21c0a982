"""The results store (zarr v3): per-micrograph variables, thumbnails, provenance, pixels.

Layout of ``<store>`` (a folder)::

    zarr.json              root group
    results/               xarray Dataset along ``micrograph``: variables, ``thumbnail``
                           (micrograph, thumb_y, thumb_x) float32; provenance in its attrs
    pixels/<micrograph>    one float32 (y, x) array per processed micrograph

``results/`` is rebuilt whole and swapped in atomically; each ``pixels/<micrograph>`` array is
written under a temporary name and renamed into place, so adding one never touches the others
and a rebuild of ``results/`` never touches pixels being written.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from daskmic.io.atomic import atomic_path
from daskmic.io.zarr_pixels import PIXELS, ensure_group

RESULTS = "results"
THUMBNAILS_PER_CHUNK = 16
"""Thumbnails per zarr chunk of ``results/thumbnail`` (4 MiB of 256² float32 previews)."""


def _daskmic_version() -> str:
    try:
        return version("daskmic")
    except PackageNotFoundError:
        return "unknown"


def provenance(parameters: dict | None) -> dict[str, str]:
    """``parameters`` (as sorted JSON), the daskmic version and the creation time (UTC, ISO)."""
    return {
        "parameters": json.dumps(parameters or {}, sort_keys=True, default=str),
        "daskmic_version": _daskmic_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _strings_as_objects(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "USOT":
        return np.array(["" if pd.isna(v) else str(v) for v in values.ravel()], object).reshape(
            values.shape
        )
    return values


def _storable(variables: xr.Dataset | pd.DataFrame) -> xr.Dataset:
    """A copy with string data as objects (zarr's spec'd v3 string type) and JSON attrs."""
    if isinstance(variables, pd.DataFrame):
        if "micrograph" not in variables.columns:
            raise ValueError(f"variables needs a 'micrograph' column, has {list(variables)}")
        variables = xr.Dataset.from_dataframe(variables.set_index("micrograph"))
    ds = variables.copy()
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "USOT":
            ds[name] = variable.copy(data=_strings_as_objects(np.asarray(variable.values)))
    ds.attrs = json.loads(json.dumps(ds.attrs, default=str))
    for variable in ds.variables.values():
        variable.attrs = json.loads(json.dumps(variable.attrs, default=str))
    return ds


def write_results(
    store: str | os.PathLike[str],
    variables: xr.Dataset | pd.DataFrame,
    *,
    thumbnails: np.ndarray | xr.DataArray | None = None,
    parameters: dict | None = None,
) -> None:
    """Write (or replace) the per-micrograph results of a store, atomically.

    Parameters
    ----------
    store : path-like
        The store folder (e.g. ``OUT/micrographs.zarr``); created if missing.
    variables : xarray.Dataset or pandas.DataFrame
        Variables along ``micrograph`` (a DataFrame needs a ``micrograph`` column).
    thumbnails : array-like, optional
        ``(micrograph, t, t)`` previews in the order of ``variables`` (see
        :func:`daskmic.io.thumbnails.make_thumbnail`), stored as float32 ``thumbnail``. A dask
        array is written chunk by chunk, so a large set's previews never sit in memory whole.
    parameters : dict, optional
        The run's parameters, stored as JSON in the provenance attributes.
    """
    store = Path(store)
    ds = _storable(variables)
    encoding = {}
    if thumbnails is not None:
        thumbs = thumbnails if isinstance(thumbnails, da.Array) else np.asarray(thumbnails)
        thumbs = thumbs.astype(np.float32)
        count = ds.sizes.get("micrograph", 0)
        if thumbs.ndim != 3 or thumbs.shape[0] != count:
            raise ValueError(
                f"thumbnails must have shape (micrograph={count}, t, t), got {thumbs.shape}"
            )
        chunks = (min(count, THUMBNAILS_PER_CHUNK) or 1, *thumbs.shape[1:])
        if isinstance(thumbs, da.Array):
            thumbs = thumbs.rechunk(chunks)
        ds["thumbnail"] = (("micrograph", "thumb_y", "thumb_x"), thumbs)
        encoding["thumbnail"] = {"chunks": chunks} if count else {}
    ds.attrs.update(provenance(parameters))
    ensure_group(store)
    # In this thread, chunk after chunk: never on a cluster the caller happens to have as
    # dask's default (its workers may not see these files, and have micrographs to process),
    # nor in a thread pool (CPython 3.11's ast, which np.load uses, is not thread-safe).
    with dask.config.set(scheduler="synchronous"), atomic_path(store / RESULTS) as tmp:
        ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding)


def open_results(store: str | os.PathLike[str]) -> xr.Dataset:
    """Read a store's results back as a (lazy) Dataset; strings come back as Python objects."""
    store = Path(store)
    if not (store / RESULTS / "zarr.json").is_file():
        raise FileNotFoundError(f"{store}: not a daskmic results store (no {RESULTS}/ group)")
    ds = xr.open_zarr(store, group=RESULTS, zarr_format=3, consolidated=False)
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "UST":
            ds[name] = variable.copy(data=_strings_as_objects(np.asarray(variable.values)))
    return ds


def open_pixels(store: str | os.PathLike[str]) -> xr.DataArray:
    """The stored pixels as a lazy ``(micrograph, y, x)`` stack, sorted by name.

    Arrays whose shape differs from the majority are left out and listed in
    ``attrs["failed"]``, as :func:`daskmic.io.open_micrographs` does.
    """
    folder = Path(os.path.abspath(store)) / PIXELS
    names = sorted(
        p.name
        for p in (folder.iterdir() if folder.is_dir() else ())
        if not p.name.startswith(".") and (p / "zarr.json").is_file()
    )
    arrays = {n: zarr.open_array(str(folder / n), mode="r", zarr_format=3) for n in names}
    counts = Counter(a.shape for a in arrays.values())
    shape = min(counts, key=lambda s: (-counts[s], s)) if counts else (0, 0)
    kept = [n for n in names if arrays[n].shape == shape]
    failed = [
        {"micrograph": n, "path": str(folder / n), "error": f"shape {arrays[n].shape} != {shape}"}
        for n in names
        if n not in kept
    ]
    stack = (
        da.stack([da.from_zarr(arrays[n]) for n in kept]).rechunk((1, *shape))
        if kept
        else da.zeros((0, *shape), dtype=np.float32)
    )
    sizes = np.array([arrays[n].attrs.get("pixel_size_A") or np.nan for n in kept], dtype=float)
    uniform = sizes.size > 0 and np.all(sizes == sizes[0])
    step, units = (float(sizes[0]), "Å") if uniform else (1.0, "px")
    coords = {
        "micrograph": np.array(kept, dtype=object),
        "path": ("micrograph", np.array([str(folder / n) for n in kept], dtype=object)),
        "pixel_size_A": ("micrograph", sizes),
        "y": ("y", np.arange(shape[0]) * step, {"units": units}),
        "x": ("x", np.arange(shape[1]) * step, {"units": units}),
    }
    attrs = {"source": f"zarr store {store}", "failed": failed, "optics": []}
    return xr.DataArray(
        stack, dims=("micrograph", "y", "x"), coords=coords, attrs=attrs, name="pixels"
    )
