"""One image as an OME-NGFF 0.5 multiscale group on zarr v3: what a worker writes.

An image group ``<store>/<collection>/<name>`` holds a pyramid of 2x2 block means, one level
per child group, each level one array named ``image`` with dimensions ``(y, x)``::

    <name>/zarr.json     attributes["ome"]: version 0.5, multiscales (axes y, x in angstrom)
    <name>/0/image       full resolution, float32
    <name>/1/image       2x2 block means of level 0 (odd last row/column dropped)
    ...                  down to a longer side of at most PYRAMID_MIN_PX

Levels live in groups of their own so that every group is a valid xarray Dataset (one size per
dimension name): ``xr.open_datatree(store, engine="zarr")`` opens the whole store, while
OME-NGFF viewers (napari's OME reader) follow the ``multiscales`` paths ``0/image``, ...

Level ``k`` has scale ``pixel_size_A * 2**k`` and translation ``pixel_size_A * (2**k - 1) / 2``
(the centre of a block of ``2**k`` pixels of level 0), so all levels overlay in angstrom.
Each level is one shard (one object) of ``CHUNK_PX``-square inner chunks: a whole micrograph
is one read per level, a viewer's tile a ranged read.

Locally the group is written under a temporary name and renamed into place, so a reader never
sees a partial image and workers add different images concurrently. An object store has no
rename: there each object (a level's shard, a ``zarr.json``) is written whole in one request,
an earlier image of the name removed first; the store's consolidated metadata, rebuilt after
the micrographs' records, is what makes an image visible to readers that trust it. Imports
zarr and numpy only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from daskmic.io.atomic import atomic_path
from daskmic.io.storage import Location, location, write_whole, zarr_store

NGFF_VERSION = "0.5"
PYRAMID_MIN_PX = 512
"""The pyramid stops at the first level whose longer side is at most this."""
CHUNK_PX = 512
"""Edge of the inner chunks of every level (each level is one shard)."""
LEVEL_ARRAY = "image"
MICROGRAPHS = "micrographs"
"""Collection of the processed micrographs."""
PSD = "psd"
"""Collection of the tilt screen's PSD summary images."""
COLLECTIONS = (MICROGRAPHS, PSD)
_GROUP_JSON = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


def ensure_group(path: Location) -> None:
    """Create the zarr v3 group metadata at ``path`` if missing (whole, race-safe)."""
    if not (path / "zarr.json").is_file():
        write_whole(path / "zarr.json", _GROUP_JSON, sync=False)


def check_name(name: str) -> None:
    """Refuse a name that is not a valid zarr node name (no ``/``, no leading ``.``/``__``)."""
    if not name or "/" in name or name.startswith((".", "__")):
        raise ValueError(
            "micrograph must be a non-empty name without '/' that does not start with "
            f"'.' or '__', got {name!r}"
        )


def pyramid(image: np.ndarray, min_px: int = PYRAMID_MIN_PX) -> list[np.ndarray]:
    """Levels of 2x2 block means (float32), halving until the longer side is <= ``min_px``.

    Parameters
    ----------
    image : numpy.ndarray
        Full-resolution 2-D image.
    min_px : int
        Stop at the first level whose longer side is at most this.

    Returns
    -------
    list of numpy.ndarray
        Level 0 (the image as float32) first. The means are taken in float64; an odd last row
        or column is dropped, so level ``k + 1`` has ``floor(n / 2)`` pixels per axis.
    """
    levels = [np.asarray(image, dtype=np.float32)]
    while max(levels[-1].shape) > min_px and min(levels[-1].shape) >= 2:
        previous = levels[-1]
        ny, nx = previous.shape[0] // 2, previous.shape[1] // 2
        block = previous[: 2 * ny, : 2 * nx].astype(np.float64).reshape(ny, 2, nx, 2)
        levels.append(block.mean(axis=(1, 3)).astype(np.float32))
    return levels


def multiscales(
    name: str, pixel_size_A: float, count: int, unit: str | None = "angstrom"
) -> dict[str, Any]:
    """The ``ome`` attributes of an image group with ``count`` levels (OME-NGFF 0.5)."""
    datasets = []
    for level in range(count):
        factor = 2**level
        transforms = [{"type": "scale", "scale": [pixel_size_A * factor] * 2}]
        if level:
            shift = pixel_size_A * (factor - 1) / 2
            transforms.append({"type": "translation", "translation": [shift, shift]})
        datasets.append({"path": f"{level}/{LEVEL_ARRAY}", "coordinateTransformations": transforms})
    axes: list[dict[str, str]] = [{"name": axis, "type": "space"} for axis in ("y", "x")]
    if unit is not None:
        for axis in axes:
            axis["unit"] = unit
    return {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": axes,
                "datasets": datasets,
                "type": "mean",
                "metadata": {"description": "2x2 block mean, odd last row/column dropped"},
            }
        ],
    }


def _write_level(group: Location, level: np.ndarray) -> None:
    ny, nx = level.shape
    chunks = (min(ny, CHUNK_PX), min(nx, CHUNK_PX))
    shards = (-(-ny // chunks[0]) * chunks[0], -(-nx // chunks[1]) * chunks[1])
    import zarr

    array = zarr.create_array(
        store=zarr_store(group / LEVEL_ARRAY),
        shape=level.shape,
        dtype=np.float32,
        chunks=chunks,
        shards=shards,
        dimension_names=("y", "x"),
        zarr_format=3,
        compressors=None,  # noise-like floats shrink ~10 % for 3x the write time
        fill_value=np.nan,
    )
    array[...] = level


def _write_group(
    group: Location, name: str, levels: list[np.ndarray], scale: float, unit: str | None
) -> None:
    """The image group at ``group``: its ``ome`` attributes, then one child group per level.

    Opening the group with ``mode="w"`` removes whatever was under it (an earlier image).
    """
    import zarr  # only where images are written: a store's table is written without it

    ome = multiscales(name, scale, len(levels), unit)
    zarr.open_group(zarr_store(group), mode="w", zarr_format=3, attributes={"ome": ome})
    for index, level in enumerate(levels):
        write_whole(group / str(index) / "zarr.json", _GROUP_JSON)
        _write_level(group / str(index), level)


def write_image(
    store: str | os.PathLike[str] | Location,
    collection: str,
    name: str,
    image: np.ndarray,
    *,
    pixel_size_A: float | None,
    unit: str = "angstrom",
) -> Location:
    """Write ``image`` as the OME-NGFF image ``<store>/<collection>/<name>``, atomically.

    Parameters
    ----------
    store : path-like or Location
        The zarr store folder (local, or a URL as a Location carrying its options); created
        if missing.
    collection : str
        The group holding images of one kind (``"micrographs"``, ``"psd"``).
    name : str
        The image's name (the micrograph's; no ``/``).
    image : numpy.ndarray
        2-D pixels, stored as float32.
    pixel_size_A : float or None
        Pixel size in angstrom (the NGFF scale). None (unknown, or pixels that are not lengths:
        a PSD's are frequencies) stores a scale of 1 pixel and axes without a unit.
    unit : str or None
        The axes' unit when ``pixel_size_A`` is given.

    Returns
    -------
    Location
        The image group's folder. An earlier image of the same name is replaced; other images
        are not touched.
    """
    check_name(name)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    root = location(store)
    ensure_group(root)
    ensure_group(root / collection)
    levels = pyramid(image)
    final = root / collection / name
    known = pixel_size_A is not None and bool(np.isfinite(pixel_size_A))
    scale, axes_unit = (float(pixel_size_A or 1.0), unit) if known else (1.0, None)
    if not isinstance(final, Path):  # no rename on an object store: each object is whole
        _write_group(final, name, levels, scale, axes_unit)
        return final
    with atomic_path(final) as tmp:
        _write_group(tmp, name, levels, scale, axes_unit)
    return final


def image_scale_A(attributes: dict[str, Any]) -> float:
    """The level-0 pixel size (angstrom) of an image group's ``ome`` attributes; NaN if none."""
    image = attributes["ome"]["multiscales"][0]
    if image["axes"][-1].get("unit") != "angstrom":
        return float("nan")
    return float(image["datasets"][0]["coordinateTransformations"][0]["scale"][-1])
