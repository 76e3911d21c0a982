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
from collections import Counter
from dataclasses import dataclass, field
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
from daskmic.io.thumbnails import THUMBNAIL_DTYPE, decode_thumbnails, encode_thumbnail

OME = "OME"
THUMBNAIL = "thumbnail"
"""The root's ``(micrograph, thumb_y, thumb_x)`` uint8 previews, one chunk (raw levels) each."""
THUMBNAIL_MAPPING = ("thumbnail_low", "thumbnail_high")
"""The root's columns giving each thumbnail's grey values of levels 0 and 255."""
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


@dataclass(frozen=True)
class Thumbnails:
    """The 8-bit thumbnails of a table's rows (:func:`daskmic.io.thumbnails.encode_thumbnail`).

    Parameters
    ----------
    edge_px : int
        Their side.
    low, high : numpy.ndarray
        Per row, the grey values of levels 0 and 255 (NaN: the row has no thumbnail).
    chunks : dict of int to pathlib.Path, bytes or None
        The rows whose stored thumbnail is new or changed: a file of raw levels to link into
        the store, the levels' bytes, or None (the row has none). The others are in the store
        already, at their row.
    """

    edge_px: int
    low: np.ndarray
    high: np.ndarray
    chunks: dict[int, Path | bytes | None]

    @classmethod
    def from_array(cls, thumbnails: Any) -> Thumbnails:
        """Encode a ``(micrograph, t, t)`` stack (numpy or dask, read one frame at a time)."""
        if getattr(thumbnails, "ndim", 0) != 3 or thumbnails.shape[1] != thumbnails.shape[2]:
            raise ValueError(
                "thumbnails must have shape (micrograph, t, t), got "
                f"{getattr(thumbnails, 'shape', None)}"
            )
        count = thumbnails.shape[0]
        low, high = np.full(count, np.nan), np.full(count, np.nan)
        chunks: dict[int, Path | bytes | None] = {}
        for index in range(count):
            with dask.config.set(scheduler="synchronous"):  # never a default cluster's
                frame = np.asarray(thumbnails[index])
            levels, low[index], high[index] = encode_thumbnail(frame)
            chunks[index] = levels.tobytes() if np.isfinite(low[index]) else None
        return cls(int(thumbnails.shape[1]), low, high, chunks)


def _thumbnail_array(store: Path, count: int, edge_px: int) -> zarr.Array:
    """The store's ``thumbnail`` array sized for ``count`` rows (kept chunks stay in place)."""
    shape = (count, edge_px, edge_px)
    if (store / THUMBNAIL / "zarr.json").is_file():
        array = zarr.open_array(str(store / THUMBNAIL), mode="r+", zarr_format=3)
        if array.shape[1:] == shape[1:] and array.dtype == THUMBNAIL_DTYPE:
            if array.shape != shape:
                array.resize(shape)
            return array
    return zarr.create_array(
        str(store),
        name=THUMBNAIL,
        shape=shape,
        chunks=(1, edge_px, edge_px),
        dtype=THUMBNAIL_DTYPE,
        compressors=None,
        fill_value=0,
        dimension_names=("micrograph", "thumb_y", "thumb_x"),
        overwrite=True,
    )


def _thumbnail_chunk(store: Path, index: int) -> Path:
    return store / THUMBNAIL / "c" / str(index) / "0" / "0"


def _write_thumbnails(store: Path, thumbnails: Thumbnails) -> None:
    """Size the ``thumbnail`` array and put the new or changed rows' chunks in place.

    A file of levels is hard-linked in (stored once; copied where the file system cannot link).
    Each chunk replaces the old one whole.
    """
    _thumbnail_array(store, len(thumbnails.low), thumbnails.edge_px)
    size = thumbnails.edge_px**2 * THUMBNAIL_DTYPE.itemsize
    made: set[Path] = set()
    for index, source in thumbnails.chunks.items():
        chunk = _thumbnail_chunk(store, index)
        if source is None:
            chunk.unlink(missing_ok=True)
            continue
        if chunk.parent not in made:
            chunk.parent.mkdir(parents=True, exist_ok=True)
            made.add(chunk.parent)
        if isinstance(source, bytes):
            if len(source) != size:
                raise ValueError(f"thumbnail {index}: {len(source)} bytes, not {size}")
            write_bytes_atomic(chunk, source)
            continue
        with atomic_path(chunk) as tmp:
            try:
                os.link(source, tmp)
            except OSError:  # no hard links here (or across devices): a copy
                shutil.copyfile(source, tmp)


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


def _swap_arrays(built: Path, store: Path, keep: set[str]) -> dict:
    """Move the arrays of the group at ``built`` into ``store``'s root, replacing the table's.

    Each array is renamed into place whole; root arrays of an earlier table that the new one
    lacks are removed, but for ``keep``. Returns the attributes of the built group.
    """
    fresh = _root_arrays(built)
    for name in fresh:
        with atomic_path(store / name) as tmp:
            (built / name).rename(tmp)
    for name in set(_root_arrays(store)) - set(fresh) - keep:
        shutil.rmtree(store / name, ignore_errors=True)
    return json.loads((built / "zarr.json").read_bytes()).get("attributes", {})


def write_results(
    store: str | os.PathLike[str],
    variables: xr.Dataset | pd.DataFrame,
    *,
    thumbnails: Thumbnails | np.ndarray | xr.DataArray | da.Array | None = None,
    parameters: dict | None = None,
    images: ImageIndex | None = None,
) -> None:
    """Write (or replace) the per-micrograph table at the store's root, then its metadata.

    Parameters
    ----------
    store : path-like
        The store folder (e.g. ``OUT/micrographs.zarr``); created if missing.
    variables : xarray.Dataset or pandas.DataFrame
        Variables along ``micrograph`` (a DataFrame needs a ``micrograph`` column).
    thumbnails : Thumbnails or array-like, optional
        The rows' previews: :class:`Thumbnails` (what changed since the store's last table),
        or a ``(micrograph, t, t)`` float stack in the order of ``variables`` (see
        :func:`daskmic.io.thumbnails.make_thumbnail`; a dask array is read frame by frame).
        Stored as uint8 ``thumbnail`` with ``thumbnail_low``/``thumbnail_high`` (its mapping);
        :func:`open_results` gives them back as float32 ``thumbnail``.
    parameters : dict, optional
        The run's parameters, stored as JSON in the provenance attributes.
    images : ImageIndex, optional
        What the caller knows of the store's images, kept up to date across calls so that the
        metadata costs only what changed (:func:`publish_metadata`).

    Notes
    -----
    Images already in the store are kept; the collection's series list and the consolidated
    metadata are rebuilt last (:func:`publish_metadata`), so they list exactly what is whole.
    """
    store = Path(store)
    ds = _storable(variables)
    if thumbnails is not None and not isinstance(thumbnails, Thumbnails):
        thumbnails = Thumbnails.from_array(thumbnails)
    if thumbnails is not None:
        count = ds.sizes.get("micrograph", 0)
        if len(thumbnails.low) != count:
            raise ValueError(
                f"thumbnails must have shape (micrograph={count}, t, t), got "
                f"{len(thumbnails.low)} thumbnails"
            )
        for name, values in zip(THUMBNAIL_MAPPING, (thumbnails.low, thumbnails.high), strict=True):
            ds[name] = ("micrograph", np.asarray(values, dtype=np.float64))
    encoding: dict = {
        name: {"chunks": ds[name].shape}
        for name in ds.variables
        if ds[name].ndim == 1 and ds[name].size
    }
    ds.attrs.update(provenance(parameters))
    ensure_group(store)
    built = store / f".table.tmp-{uuid.uuid4().hex[:8]}"
    try:
        # In this thread: never on a cluster the caller happens to have as dask's default.
        with dask.config.set(scheduler="synchronous"):
            ds.to_zarr(built, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        if thumbnails is not None:
            _write_thumbnails(store, thumbnails)
        attributes = _swap_arrays(built, store, {THUMBNAIL} if thumbnails is not None else set())
    finally:
        shutil.rmtree(built, ignore_errors=True)
    publish_metadata(store, attributes, images=images)


_EMPTY_CONSOLIDATED = {"kind": "inline", "must_understand": False, "metadata": {}}


def _node_metadata(folder: Path) -> dict[str, dict]:
    """Every node's metadata under ``folder`` (itself included), by path relative to it.

    Groups are walked; arrays' chunks are not. Writes still under a temporary name
    (``.<name>.tmp-…``) are left out: readers see only what is whole.
    """
    try:
        metadata = json.loads((folder / "zarr.json").read_bytes())
    except (OSError, ValueError):
        return {}
    nodes = {"": metadata}
    if metadata.get("node_type") == "group":
        metadata["consolidated_metadata"] = dict(_EMPTY_CONSOLIDATED)  # as zarr lists groups
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
        for name in names:
            for key, value in _node_metadata(folder / name).items():
                nodes[f"{name}/{key}" if key else name] = value
    return nodes


@dataclass
class ImageIndex:
    """The metadata of a store's complete images, kept across rebuilds of its root metadata.

    An image, once whole, is read once; later rebuilds read only the images that are new or
    named in :meth:`forget` (rewritten), so a rebuild costs what changed, not the set.
    """

    nodes: dict[str, str] = field(default_factory=dict)
    """Per image path (``micrographs/<name>``), its nodes' metadata as consolidated JSON
    members (``"micrographs/<name>": {…}, "micrographs/<name>/0": {…}, …``), serialised once."""

    def forget(self, names: list[str]) -> None:
        """Read these micrographs' images again at the next rebuild (they were rewritten)."""
        for collection in COLLECTIONS:
            for name in names:
                self.nodes.pop(f"{collection}/{name}", None)

    def refresh(self, store: Path) -> list[str]:
        """Bring the index up to the store's images; return their paths, sorted by collection."""
        paths = []
        for collection in COLLECTIONS:
            try:
                with os.scandir(store / collection) as entries:
                    names = sorted(e.name for e in entries if not e.name.startswith("."))
            except OSError:  # no such collection
                continue
            for name in names:
                path = f"{collection}/{name}"
                if path not in self.nodes:
                    nodes = _node_metadata(store / path)
                    if not nodes:
                        continue  # not an image (yet)
                    self.nodes[path] = _members_json(
                        {f"{path}/{key}" if key else path: v for key, v in nodes.items()}
                    )
                paths.append(path)
        for path in set(self.nodes) - set(paths):
            del self.nodes[path]
        return paths


def _ome_xml(series: list[str]) -> bytes:
    images = "".join(
        f"<Image ID={quoteattr('Image:' + path)} Name={quoteattr(path)}/>" for path in series
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{_OME_XML_NS}">{images}</OME>'
    ).encode()


def publish_metadata(
    store: str | os.PathLike[str],
    attributes: dict | None = None,
    *,
    images: ImageIndex | None = None,
) -> None:
    """Rebuild the collection's series list and then the root's consolidated metadata.

    Parameters
    ----------
    store : path-like
        The store folder.
    attributes : dict, optional
        The root's own attributes (the table's provenance); the current ones when omitted.
    images : ImageIndex, optional
        The images' metadata read by earlier rebuilds (updated here); without it every image
        is read.

    Notes
    -----
    The consolidated metadata lists every node as zarr's own consolidation does (each group
    with an empty ``consolidated_metadata`` of its own), images still under a temporary name
    left out. Zarr v3 does not specify consolidation yet; xarray, zarr-python and the NGFF
    tools read it.
    """
    store = Path(store)
    images = ImageIndex() if images is None else images
    if attributes is None:
        attributes = json.loads((store / "zarr.json").read_bytes()).get("attributes", {})
    attributes = {**attributes, "ome": {"version": NGFF_VERSION, "bioformats2raw.layout": 3}}
    series = images.refresh(store)
    ome = {"zarr_format": 3, "node_type": "group"}
    ome["attributes"] = {"ome": {"version": NGFF_VERSION, "series": series}}
    write_bytes_atomic(store / OME / "METADATA.ome.xml", _ome_xml(series))
    write_bytes_atomic(store / OME / "zarr.json", json.dumps(ome).encode())
    listed: dict[str, dict] = {}
    with os.scandir(store) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for name in names:
        if name in COLLECTIONS:
            group = _node_metadata_shallow(store / name)
            if group is not None:
                listed[name] = group
            continue
        listed.update(
            {f"{name}/{key}" if key else name: v for key, v in _node_metadata(store / name).items()}
        )
    members = [_members_json(listed), *(images.nodes[path] for path in series)]
    # The root's JSON is assembled from the images' members serialised once: at thousands of
    # images it is megabytes, and re-encoding it at every publish would cost the set's size.
    root = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes})
    consolidated = json.dumps({k: v for k, v in _EMPTY_CONSOLIDATED.items() if k != "metadata"})
    text = (
        f'{root[:-1]}, "consolidated_metadata": {consolidated[:-1]}, '
        f'"metadata": {{{", ".join(m for m in members if m)}}}}}}}'
    )
    write_bytes_atomic(store / "zarr.json", text.encode())


def _members_json(nodes: dict[str, dict]) -> str:
    """``nodes`` as the members of a JSON object (no braces)."""
    return json.dumps(nodes)[1:-1]


def _node_metadata_shallow(folder: Path) -> dict | None:
    """A group's own metadata, as consolidation lists it (its members not walked)."""
    try:
        metadata = json.loads((folder / "zarr.json").read_bytes())
    except (OSError, ValueError):
        return None
    if metadata.get("node_type") == "group":
        metadata["consolidated_metadata"] = dict(_EMPTY_CONSOLIDATED)
    return metadata


def _open_root(store: Path) -> zarr.Group:
    return zarr.open_group(str(store), mode="r", zarr_format=3, use_consolidated=True)


def open_results(store: str | os.PathLike[str]) -> xr.Dataset:
    """Read a store's table back as a (lazy) Dataset; strings come back as Python objects.

    The same as ``xr.open_zarr(store)``, with the strings as objects and ``thumbnail`` as
    float32 grey values (:func:`daskmic.io.thumbnails.decode_thumbnails`, lazily).
    """
    store = Path(store)
    if "micrograph" not in _root_arrays(store):
        raise FileNotFoundError(f"{store}: not a daskmic results store (no table at its root)")
    ds = xr.open_zarr(store, zarr_format=3, consolidated=True)
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "UST":
            ds[name] = variable.copy(data=_strings_as_objects(np.asarray(variable.values)))
    if THUMBNAIL in ds and all(name in ds for name in THUMBNAIL_MAPPING):
        low, high = (ds[name] for name in THUMBNAIL_MAPPING)
        levels = ds[THUMBNAIL]
        values = decode_thumbnails(levels.astype(np.float64), low, high)
        ds[THUMBNAIL] = values.astype(np.float32).transpose(*levels.dims)
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

