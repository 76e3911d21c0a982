"""The results store (zarr v3): the per-micrograph table at the root, images as OME-NGFF.

Layout of ``<store>`` (a folder)::

    zarr.json              root group: the table's attributes (provenance), the OME-NGFF
                           collection marker, and the consolidated metadata of the whole store
    micrograph, status, …  the per-micrograph table: one 1-D array per column along
                           ``micrograph`` (one chunk each); ``thumbnail`` (micrograph, thumb_y,
                           thumb_x) float32 previews
    micrographs/<name>     the processed micrograph, an OME-NGFF 0.5 multiscale image
                           (:mod:`daskmic.io.ngff`)
    psd/<name>             the PSD summary image of the tilt screen, likewise
    OME/                   the collection's series list (``bioformats2raw.layout``) and its
                           ``METADATA.ome.xml``, which napari's OME reader follows

So ``xr.open_zarr(store)`` is the table, ``xr.open_datatree(store, engine="zarr")`` the whole
store (every group one size per dimension name), and an OME-NGFF viewer opens the collection or
any one image with its pixel size.

Workers add images (each renamed into place whole); the driver rebuilds the table and then,
last, the root metadata. The root's consolidated metadata is what a reader sees: it lists only
what was complete at the last rebuild, so a store opened over HTTP (one request) or read while a
run goes on never shows a half-written state as complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from daskmic.io.atomic import atomic_path, write_bytes_atomic
from daskmic.io.contract import spatial_coords
from daskmic.io.ngff import (
    COLLECTIONS,
    MICROGRAPHS,
    NGFF_VERSION,
    ensure_group,
    image_scale_A,
)

OME = "OME"
THUMBNAILS_PER_CHUNK = 16
"""Thumbnails per zarr chunk of ``thumbnail`` (4 MiB of 256² float32 previews)."""
_OME_XML_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


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


def _with_thumbnails(ds: xr.Dataset, thumbnails, encoding: dict) -> xr.Dataset:
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
    return ds


def _node_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "zarr.json").read_bytes()).get("node_type")
    except (OSError, ValueError):
        return None


def _root_arrays(store: Path) -> list[str]:
    return sorted(
        entry.name
        for entry in (store.iterdir() if store.is_dir() else ())
        if not entry.name.startswith(".") and _node_type(entry) == "array"
    )


def _swap_arrays(built: Path, store: Path) -> dict:
    """Move the arrays of the group at ``built`` into ``store``'s root, replacing the table's.

    Each array is renamed into place whole; root arrays of an earlier table that the new one
    lacks are removed. Returns the attributes of the built group.
    """
    fresh = _root_arrays(built)
    for name in fresh:
        with atomic_path(store / name) as tmp:
            (built / name).rename(tmp)
    for name in set(_root_arrays(store)) - set(fresh):
        shutil.rmtree(store / name, ignore_errors=True)
    return json.loads((built / "zarr.json").read_bytes()).get("attributes", {})


def write_results(
    store: str | os.PathLike[str],
    variables: xr.Dataset | pd.DataFrame,
    *,
    thumbnails: np.ndarray | xr.DataArray | da.Array | None = None,
    parameters: dict | None = None,
) -> None:
    """Write (or replace) the per-micrograph table at the store's root, then its metadata.

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

    Notes
    -----
    Images already in the store are kept; the collection's series list and the consolidated
    metadata are rebuilt last (:func:`publish_metadata`), so they list exactly what is whole.
    """
    store = Path(store)
    ds = _storable(variables)
    encoding: dict = {
        name: {"chunks": ds[name].shape}
        for name in ds.variables
        if ds[name].ndim == 1 and ds[name].size
    }
    if thumbnails is not None:
        ds = _with_thumbnails(ds, thumbnails, encoding)
    ds.attrs.update(provenance(parameters))
    ensure_group(store)
    built = store / f".table.tmp-{uuid.uuid4().hex[:8]}"
    try:
        # In this thread, chunk after chunk: never on a cluster the caller happens to have as
        # dask's default (its workers may not see these files, and have micrographs to
        # process), nor in a thread pool (CPython 3.11's ast, which np.load uses, is not
        # thread-safe).
        with dask.config.set(scheduler="synchronous"):
            ds.to_zarr(built, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        attributes = _swap_arrays(built, store)
    finally:
        shutil.rmtree(built, ignore_errors=True)
    publish_metadata(store, attributes)


def _series(store: Path) -> list[str]:
    """Paths of the complete images, collection by collection, sorted by name."""
    paths = []
    for collection in COLLECTIONS:
        folder = store / collection
        if folder.is_dir():
            paths += [
                f"{collection}/{entry.name}"
                for entry in sorted(folder.iterdir())
                if not entry.name.startswith(".") and (entry / "zarr.json").is_file()
            ]
    return paths


def _ome_xml(series: list[str]) -> bytes:
    images = "".join(
        f"<Image ID={quoteattr('Image:' + path)} Name={quoteattr(path)}/>" for path in series
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{_OME_XML_NS}">{images}</OME>'
    ).encode()


def publish_metadata(store: str | os.PathLike[str], attributes: dict | None = None) -> None:
    """Rebuild the collection's series list and then the root's consolidated metadata.

    Parameters
    ----------
    store : path-like
        The store folder.
    attributes : dict, optional
        The root's own attributes (the table's provenance); the current ones when omitted.
    """
    store = Path(store)
    root = json.loads((store / "zarr.json").read_bytes()) if (store / "zarr.json").is_file() else {}
    attributes = dict(root.get("attributes", {}) if attributes is None else attributes)
    attributes["ome"] = {"version": NGFF_VERSION, "bioformats2raw.layout": 3}
    series = _series(store)
    ome = {"zarr_format": 3, "node_type": "group"}
    ome["attributes"] = {"ome": {"version": NGFF_VERSION, "series": series}}
    write_bytes_atomic(store / OME / "METADATA.ome.xml", _ome_xml(series))
    write_bytes_atomic(store / OME / "zarr.json", json.dumps(ome).encode())
    write_bytes_atomic(
        store / "zarr.json",
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}).encode(),
    )
    # Consolidation reads every node's metadata and writes the root's zarr.json (atomically:
    # zarr's local store writes under a temporary name and renames). It warns that v3 does not
    # specify consolidation yet (xarray, zarr-python and the NGFF tools read it) and about the
    # OME-XML beside the OME group, which the collection layout requires.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", "Object at METADATA.ome.xml is not recognized")
        zarr.consolidate_metadata(str(store), zarr_format=3)
    _drop_partial_nodes(store)


def _drop_partial_nodes(store: Path) -> None:
    """Keep writes still under a temporary name (``.<name>.tmp-…``) out of what readers see.

    zarr consolidates every node it finds, so an image a worker was writing when the table was
    rebuilt (or was killed writing) would be listed; readers must see only what is whole.
    """
    root = json.loads((store / "zarr.json").read_bytes())
    listed = root.get("consolidated_metadata", {}).get("metadata", {})
    whole = {k: v for k, v in listed.items() if not any(p.startswith(".") for p in k.split("/"))}
    if len(whole) != len(listed):
        root["consolidated_metadata"]["metadata"] = whole
        write_bytes_atomic(store / "zarr.json", json.dumps(root).encode())


def _open_root(store: Path) -> zarr.Group:
    return zarr.open_group(str(store), mode="r", zarr_format=3, use_consolidated=True)


def open_results(store: str | os.PathLike[str]) -> xr.Dataset:
    """Read a store's table back as a (lazy) Dataset; strings come back as Python objects.

    The same as ``xr.open_zarr(store)``, with the strings as objects.
    """
    store = Path(store)
    if "micrograph" not in _root_arrays(store):
        raise FileNotFoundError(f"{store}: not a daskmic results store (no table at its root)")
    ds = xr.open_zarr(store, zarr_format=3, consolidated=True)
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "UST":
            ds[name] = variable.copy(data=_strings_as_objects(np.asarray(variable.values)))
    return ds


def open_images(
    store: str | os.PathLike[str], collection: str = MICROGRAPHS, *, level: int = 0
) -> dict[str, xr.DataArray]:
    """Every published image of a collection as a lazy ``(y, x)`` DataArray, by name.

    Parameters
    ----------
    store : path-like
        The store folder.
    collection : str
        ``"micrographs"`` (processed micrographs) or ``"psd"`` (PSD summary images).
    level : int
        Pyramid level (0 = full resolution); images with fewer levels give their last.

    Returns
    -------
    dict of str to xarray.DataArray
        Sorted by name; each with ``y``/``x`` coordinates in angstrom and ``pixel_size_A``.
    """
    root = _open_root(Path(store))
    if collection not in root:
        return {}
    members = root[collection]
    if not isinstance(members, zarr.Group):
        raise ValueError(f"{store}: {collection!r} is an array, not a group of images")
    images = {}
    for name, group in sorted(members.groups()):
        attributes: dict[str, Any] = dict(group.attrs)  # OME-NGFF metadata, parsed JSON
        datasets = attributes["ome"]["multiscales"][0]["datasets"]
        chosen = datasets[min(level, len(datasets) - 1)]
        array = group[chosen["path"]]
        if not isinstance(array, zarr.Array):
            raise ValueError(f"{store}: {collection}/{name}/{chosen['path']} is not an array")
        transforms = {t["type"]: t for t in chosen["coordinateTransformations"]}
        step = float(transforms["scale"]["scale"][-1])
        shift = transforms.get("translation", {"translation": [0.0, 0.0]})["translation"]
        offset = float(shift[-1])
        ny, nx = array.shape
        images[name] = xr.DataArray(
            da.from_zarr(array),
            dims=("y", "x"),
            coords={
                "y": ("y", offset + np.arange(ny) * step, {"units": "Å"}),
                "x": ("x", offset + np.arange(nx) * step, {"units": "Å"}),
                "pixel_size_A": image_scale_A(attributes),
            },
            name=name,
        )
    return images


def open_pixels(store: str | os.PathLike[str]) -> xr.DataArray:
    """The stored micrographs as a lazy ``(micrograph, y, x)`` stack (the data contract).

    Images whose shape differs from the majority are left out and listed in
    ``attrs["failed"]``, as :func:`daskmic.io.open_micrographs` does; :func:`open_images` gives
    every image whatever its shape.
    """
    folder = Path(os.path.abspath(store))
    images = open_images(folder)
    counts = Counter(image.shape for image in images.values())
    shape = min(counts, key=lambda s: (-counts[s], s)) if counts else (0, 0)
    kept = [name for name, image in images.items() if image.shape == shape]
    failed = [
        {
            "micrograph": name,
            "path": str(folder / MICROGRAPHS / name),
            "error": f"shape {image.shape} != {shape}",
        }
        for name, image in images.items()
        if image.shape != shape
    ]
    stack = (
        da.stack([images[name].data for name in kept]).rechunk((1, *shape))
        if kept
        else da.zeros((0, *shape), dtype=np.float32)
    )
    sizes = np.array([float(images[name].pixel_size_A) for name in kept], dtype=float)
    coords = {
        "micrograph": np.array(kept, dtype=object),
        "path": ("micrograph", np.array([str(folder / MICROGRAPHS / n) for n in kept], object)),
        "pixel_size_A": ("micrograph", sizes),
        **spatial_coords(shape[0], shape[1], sizes),
    }
    attrs = {"source": f"zarr store {store}", "failed": failed, "optics": []}
    return xr.DataArray(
        stack, dims=("micrograph", "y", "x"), coords=coords, attrs=attrs, name="pixels"
    )

