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
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from upath import UPath

import daskmic
from daskmic.io.atomic import atomic_path
from daskmic.io.contract import RESULTS_STORE, spatial_coords
from daskmic.io.ngff import (
    COLLECTIONS,
    MICROGRAPHS,
    NGFF_VERSION,
    ensure_group,
    image_scale_A,
)
from daskmic.io.storage import (
    Location,
    StorageOptions,
    absolute,
    is_local,
    location,
    remove,
    write_whole,
    zarr_store,
)
from daskmic.io.thumbnails import THUMBNAIL_DTYPE, decode_thumbnails, encode_thumbnail
from daskmic.io.zarr_table import array_metadata, strings_as_objects, table

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr
    import zarr

OME = "OME"
THUMBNAIL = "thumbnail"
"""The root's ``(micrograph, thumb_y, thumb_x)`` uint8 previews, one chunk (raw levels) each."""
THUMBNAIL_MAPPING = ("thumbnail_low", "thumbnail_high")
"""The root's columns giving each thumbnail's grey values of levels 0 and 255."""
_OME_XML_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def provenance(parameters: dict | None) -> dict[str, str]:
    """``parameters`` (as sorted JSON), the daskmic version and the creation time (UTC, ISO)."""
    return {
        "parameters": json.dumps(parameters or {}, sort_keys=True, default=str),
        "daskmic_version": daskmic.__version__,  # asked of the installed metadata once
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class Thumbnails:
    """The 8-bit thumbnails of a table's rows (:func:`daskmic.io.thumbnails.encode_thumbnail`).

    Parameters
    ----------
    edge_px : int
        Their side.
    low, high : numpy.ndarray
        Per row, the grey values of levels 0 and 255 (NaN: the row has no thumbnail).
    chunks : dict of int to Location, bytes or None
        The rows whose stored thumbnail is new or changed: a file of raw levels to link into
        the store, the levels' bytes, or None (the row has none). The others are in the store
        already, at their row.
    """

    edge_px: int
    low: np.ndarray
    high: np.ndarray
    chunks: dict[int, Location | bytes | None]

    @classmethod
    def from_array(cls, thumbnails: Any) -> Thumbnails:
        """Encode a ``(micrograph, t, t)`` stack (numpy or dask, read one frame at a time)."""
        if getattr(thumbnails, "ndim", 0) != 3 or thumbnails.shape[1] != thumbnails.shape[2]:
            raise ValueError(
                "thumbnails must have shape (micrograph, t, t), got "
                f"{getattr(thumbnails, 'shape', None)}"
            )
        import dask

        count = thumbnails.shape[0]
        low, high = np.full(count, np.nan), np.full(count, np.nan)
        chunks: dict[int, Location | bytes | None] = {}
        for index in range(count):
            with dask.config.set(scheduler="synchronous"):  # never a default cluster's
                frame = np.asarray(thumbnails[index])
            levels, low[index], high[index] = encode_thumbnail(frame)
            chunks[index] = levels.tobytes() if np.isfinite(low[index]) else None
        return cls(int(thumbnails.shape[1]), low, high, chunks)


def _folders(loc: Location) -> list[str]:
    """Names of the folders (prefixes) right under ``loc``, sorted; hidden ones left out."""
    if is_local(loc):
        try:
            with os.scandir(loc) as entries:
                names = [e.name for e in entries if e.is_dir()]
        except OSError:  # not there (yet)
            return []
    else:
        loc.fs.invalidate_cache(loc.path)  # a listing from an earlier publish is stale
        try:
            entries = loc.fs.ls(loc.path, detail=True)
        except FileNotFoundError:
            return []
        names = [PurePosixPath(e["name"]).name for e in entries if e["type"] == "directory"]
    return sorted(name for name in names if not name.startswith("."))


def _key(loc: Location) -> str:
    """``loc``'s path as its filesystem names it."""
    return loc.path if isinstance(loc, UPath) else str(loc)


def _thumbnail_metadata(count: int, edge_px: int) -> bytes:
    """The ``thumbnail`` array's metadata: ``count`` rows, one uncompressed chunk each."""
    return array_metadata(
        (count, edge_px, edge_px),
        THUMBNAIL_DTYPE,
        chunk_shape=(1, edge_px, edge_px),
        dimension_names=("micrograph", "thumb_y", "thumb_x"),
        compressed=False,
    )


def _thumbnail_array(store: Location, count: int, edge_px: int) -> None:
    """Size the store's ``thumbnail`` array for ``count`` rows (kept chunks stay in place).

    An array of this layout is resized (the chunks of rows past ``count`` removed), any other
    replaced by an empty one.
    """
    folder = store / THUMBNAIL
    found = _read_json(folder / "zarr.json") or {}
    rows = found.get("shape", [-1])[0] if found.get("node_type") == "array" else -1
    if rows < 0 or json.loads(_thumbnail_metadata(rows, edge_px)) != found:
        remove(folder)
        rows = 0
    elif rows == count:
        return
    for row in range(count, rows):
        remove(thumbnail_chunk(store, row))
    write_whole(folder / "zarr.json", _thumbnail_metadata(count, edge_px), sync=False)


def thumbnail_chunk(store: Location, index: int) -> Location:
    """Where row ``index``'s thumbnail is (raw levels: one chunk, uncompressed)."""
    return store / THUMBNAIL / "c" / str(index) / "0" / "0"


def _write_thumbnails(store: Location, thumbnails: Thumbnails) -> None:
    """Size the ``thumbnail`` array and put the new or changed rows' chunks in place.

    A file of levels is hard-linked in (stored once; copied where the file system cannot link;
    on an object store, copied by the store itself). Each chunk replaces the old one whole.
    """
    _thumbnail_array(store, len(thumbnails.low), thumbnails.edge_px)
    size = thumbnails.edge_px**2 * THUMBNAIL_DTYPE.itemsize
    for index, source in thumbnails.chunks.items():
        chunk = thumbnail_chunk(store, index)
        if source is None:
            chunk.unlink(missing_ok=True)
        elif isinstance(source, bytes):
            if len(source) != size:
                raise ValueError(f"thumbnail {index}: {len(source)} bytes, not {size}")
            write_whole(chunk, source)
        elif isinstance(chunk, Path) and isinstance(source, Path):
            _link(source, chunk)
        elif isinstance(chunk, UPath) and isinstance(source, UPath) and source.fs is chunk.fs:
            chunk.fs.copy(source.path, chunk.path)  # one server-side copy
        else:
            write_whole(chunk, source.read_bytes())


def _link(source: Path, chunk: Path) -> None:
    """Put ``source`` at ``chunk`` by a hard link (a copy where none can be made), whole."""
    chunk.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(chunk) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (or across devices)
            shutil.copyfile(source, tmp)


def _read_json(loc: Location) -> dict | None:
    try:
        found = json.loads(loc.read_bytes())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _node_type(folder: Location) -> str | None:
    return (_read_json(folder / "zarr.json") or {}).get("node_type")


def _root_arrays(store: Location) -> list[str]:
    return [name for name in _folders(store) if _node_type(store / name) == "array"]


def _swap_arrays(built: Location, store: Location, keep: set[str]) -> None:
    """Move the arrays of the group at ``built`` into ``store``'s root, replacing the table's.

    Locally each array is renamed into place whole; on an object store each object is copied
    over the old one by the store (whole; readers go by the consolidated metadata, rebuilt
    after). Root arrays of an earlier table that the new one lacks are removed, but for
    ``keep``.
    """
    fresh = _root_arrays(built)
    for name in fresh:
        if isinstance(store, Path):
            with atomic_path(store / name) as tmp:
                (built / name).rename(tmp)
        else:
            source, target = _key(built / name), _key(store / name)
            objects = store.fs.find(source)  # one to one: a folder copy would nest in target
            store.fs.copy(objects, [target + key[len(source) :] for key in objects])
    for name in set(_root_arrays(store)) - set(fresh) - keep:
        remove(store / name)


def write_results(
    store: str | os.PathLike[str] | Location,
    variables: xr.Dataset | pd.DataFrame,
    *,
    thumbnails: Thumbnails | np.ndarray | xr.DataArray | da.Array | None = None,
    parameters: dict | None = None,
    images: ImageIndex | None = None,
) -> None:
    """Write (or replace) the per-micrograph table at the store's root, then its metadata.

    Parameters
    ----------
    store : path-like, URL or Location
        The store folder (e.g. ``OUT/micrographs.zarr``), or a URL as a Location carrying its
        storage options; created if missing.
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
    store = location(store)
    stored = table(variables)
    if thumbnails is not None and not isinstance(thumbnails, Thumbnails):
        thumbnails = Thumbnails.from_array(thumbnails)
    if thumbnails is not None:
        if len(thumbnails.low) != stored.count():
            raise ValueError(
                f"thumbnails must have shape (micrograph={stored.count()}, t, t), got "
                f"{len(thumbnails.low)} thumbnails"
            )
        for name, values in zip(THUMBNAIL_MAPPING, (thumbnails.low, thumbnails.high), strict=True):
            stored.add(name, np.asarray(values, dtype=np.float64))
    attributes = {**stored.attributes, **provenance(parameters)}
    ensure_group(store)
    built = store / f".table.tmp-{uuid.uuid4().hex[:8]}"
    try:
        stored.write(built)
        if thumbnails is not None:
            _write_thumbnails(store, thumbnails)
        _swap_arrays(built, store, {THUMBNAIL} if thumbnails is not None else set())
    finally:
        remove(built)
    publish_metadata(store, attributes, images=images)


_EMPTY_CONSOLIDATED = {"kind": "inline", "must_understand": False, "metadata": {}}


def _node_metadata(folder: Location) -> dict[str, dict]:
    """Every node's metadata under ``folder`` (itself included), by path relative to it.

    Groups are walked; arrays' chunks are not. Writes still under a temporary name
    (``.<name>.tmp-…``) are left out: readers see only what is whole.
    """
    metadata = _read_json(folder / "zarr.json")
    if metadata is None:
        return {}
    nodes = {"": metadata}
    if metadata.get("node_type") == "group":
        metadata["consolidated_metadata"] = dict(_EMPTY_CONSOLIDATED)  # as zarr lists groups
        for name in _folders(folder):
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

    def adopt(self, store: Path) -> dict[str, np.ndarray]:
        """Take the images' metadata from the store's root (what the last rebuild listed).

        Returns the root's table as it was published: ``micrograph`` and, when stored, the
        thumbnails' mapping (:data:`THUMBNAIL_MAPPING`), as numpy arrays; empty when the
        store has no consolidated table.
        """
        root = _read_json(store / "zarr.json") or {}
        listed = (root.get("consolidated_metadata") or {}).get("metadata") or {}
        if listed.get("micrograph", {}).get("node_type") != "array":
            return {}
        images: dict[str, dict[str, dict]] = {}
        for key, metadata in listed.items():
            parts = key.split("/")
            if len(parts) >= 2 and parts[0] in COLLECTIONS:
                path = "/".join(parts[:2])
                images.setdefault(path, {})[key] = metadata
        self.nodes = {path: _members_json(nodes) for path, nodes in images.items()}
        import zarr

        names = ["micrograph", *THUMBNAIL_MAPPING]
        return {
            name: np.asarray(zarr.open_array(str(store / name), mode="r", zarr_format=3)[...])
            for name in names
            if name in listed
        }

    def refresh(self, store: Location) -> list[str]:
        """Bring the index up to the store's images; return their paths, sorted by collection."""
        paths = []
        for collection in COLLECTIONS:
            for name in _folders(store / collection):
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
    images = ""
    if series:  # xml.sax.saxutils imports urllib and http.client: only for a store with images
        from xml.sax.saxutils import quoteattr

        images = "".join(
            f"<Image ID={quoteattr('Image:' + path)} Name={quoteattr(path)}/>" for path in series
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{_OME_XML_NS}">{images}</OME>'
    ).encode()


def publish_metadata(
    store: str | os.PathLike[str] | Location,
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
    tools read it. Like the table, it is derived (rebuilt by the next publish): written whole,
    without an fsync.
    """
    store = location(store)
    images = ImageIndex() if images is None else images
    if attributes is None:
        attributes = (_read_json(store / "zarr.json") or {}).get("attributes", {})
    attributes = {**attributes, "ome": {"version": NGFF_VERSION, "bioformats2raw.layout": 3}}
    series = images.refresh(store)
    ome = {"zarr_format": 3, "node_type": "group"}
    ome["attributes"] = {"ome": {"version": NGFF_VERSION, "series": series}}
    write_whole(store / OME / "METADATA.ome.xml", _ome_xml(series), sync=False)
    write_whole(store / OME / "zarr.json", json.dumps(ome).encode(), sync=False)
    listed: dict[str, dict] = {}
    for name in _folders(store):
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
    write_whole(store / "zarr.json", text.encode(), sync=False)


def _members_json(nodes: dict[str, dict]) -> str:
    """``nodes`` as the members of a JSON object (no braces)."""
    return json.dumps(nodes)[1:-1]


def _node_metadata_shallow(folder: Location) -> dict | None:
    """A group's own metadata, as consolidation lists it (its members not walked)."""
    metadata = _read_json(folder / "zarr.json")
    if metadata is not None and metadata.get("node_type") == "group":
        metadata["consolidated_metadata"] = dict(_EMPTY_CONSOLIDATED)
    return metadata


def _is_output_folder(folder: Location) -> bool:
    """Whether ``folder`` holds a results store (``OUT/micrographs.zarr``)."""
    return _node_type(folder / RESULTS_STORE / "micrograph") == "array"


def _open_root(store: Location) -> zarr.Group:
    import zarr

    return zarr.open_group(zarr_store(store), mode="r", zarr_format=3, use_consolidated=True)


def open_results(
    store: str | os.PathLike[str] | Location, storage_options: StorageOptions | None = None
) -> xr.Dataset:
    """Read a store's table back as a (lazy) Dataset; strings come back as Python objects.

    The same as ``xr.open_zarr(store)``, with the strings as objects and ``thumbnail`` as
    float32 grey values (:func:`daskmic.io.thumbnails.decode_thumbnails`, lazily).

    Parameters
    ----------
    store : path-like, URL or Location
        The store folder, or its URL (``s3://bucket/run/micrographs.zarr``), or the output
        folder that holds it (``OUT``: its ``OUT/micrographs.zarr``).
    storage_options : dict, optional
        For a URL: its filesystem's options (credentials, endpoint).
    """
    import xarray as xr

    store = location(store, storage_options)
    if _node_type(store / "micrograph") != "array" and _is_output_folder(store):
        store = store / RESULTS_STORE
    if _node_type(store / "micrograph") != "array":
        raise FileNotFoundError(f"{store}: not a daskmic results store (no table at its root)")
    ds = xr.open_zarr(zarr_store(store), zarr_format=3, consolidated=True)
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "UST":
            ds[name] = variable.copy(data=strings_as_objects(np.asarray(variable.values)))
    if THUMBNAIL in ds and all(name in ds for name in THUMBNAIL_MAPPING):
        low, high = (ds[name] for name in THUMBNAIL_MAPPING)
        levels = ds[THUMBNAIL]
        values = decode_thumbnails(levels.astype(np.float64), low, high)
        ds[THUMBNAIL] = values.astype(np.float32).transpose(*levels.dims)
    return ds


def open_images(
    store: str | os.PathLike[str] | Location,
    collection: str = MICROGRAPHS,
    *,
    level: int = 0,
    storage_options: StorageOptions | None = None,
) -> dict[str, xr.DataArray]:
    """Every published image of a collection as a lazy ``(y, x)`` DataArray, by name.

    Parameters
    ----------
    store : path-like, URL or Location
        The store folder, or its URL.
    collection : str
        ``"micrographs"`` (processed micrographs) or ``"psd"`` (PSD summary images).
    level : int
        Pyramid level (0 = full resolution); images with fewer levels give their last.
    storage_options : dict, optional
        For a URL: its filesystem's options (credentials, endpoint).

    Returns
    -------
    dict of str to xarray.DataArray
        Sorted by name; each with ``y``/``x`` coordinates in angstrom and ``pixel_size_A``.
    """
    import dask.array as da
    import xarray as xr
    import zarr

    root = _open_root(location(store, storage_options))
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


def open_pixels(
    store: str | os.PathLike[str] | Location, storage_options: StorageOptions | None = None
) -> xr.DataArray:
    """The stored micrographs as a lazy ``(micrograph, y, x)`` stack (the data contract).

    Images whose shape differs from the majority are left out and listed in
    ``attrs["failed"]``, as :func:`daskmic.io.open_micrographs` does; :func:`open_images` gives
    every image whatever its shape. ``store`` and ``storage_options`` as for
    :func:`open_images`; ``path`` holds each image's absolute path or URL.
    """
    import dask.array as da
    import xarray as xr

    folder = location(store, storage_options)
    images = open_images(folder)
    paths = {name: absolute(folder / MICROGRAPHS / name) for name in images}
    counts = Counter(image.shape for image in images.values())
    shape = min(counts, key=lambda s: (-counts[s], s)) if counts else (0, 0)
    kept = [name for name, image in images.items() if image.shape == shape]
    failed = [
        {
            "micrograph": name,
            "path": paths[name],
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
        "path": ("micrograph", np.array([paths[name] for name in kept], dtype=object)),
        "pixel_size_A": ("micrograph", sizes),
        **spatial_coords(shape[0], shape[1], sizes),
    }
    attrs = {"source": f"zarr store {store}", "failed": failed, "optics": []}
    return xr.DataArray(
        stack, dims=("micrograph", "y", "x"), coords=coords, attrs=attrs, name="pixels"
    )

