"""One micrograph's processed pixels into the results store: ``pixels/<micrograph>``.

What a worker writes (zarr and numpy only); reading the store back is
:mod:`daskmic.io.zarr_store`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from daskmic.io.atomic import atomic_path, write_bytes_atomic

PIXELS = "pixels"
_GROUP_JSON = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


def ensure_group(path: Path) -> None:
    """Create the zarr v3 group metadata at ``path`` if missing (atomic, race-safe)."""
    if not (path / "zarr.json").is_file():
        write_bytes_atomic(path / "zarr.json", _GROUP_JSON)


def _check_name(micrograph: str) -> None:
    if not micrograph or "/" in micrograph or micrograph.startswith((".", "__")):
        raise ValueError(
            "micrograph must be a non-empty name without '/' that does not start with "
            f"'.' or '__', got {micrograph!r}"
        )


def add_pixels(
    store: str | os.PathLike[str],
    micrograph: str,
    image: np.ndarray,
    *,
    pixel_size_A: float | None = None,
) -> None:
    """Store one micrograph's processed pixels as ``pixels/<micrograph>`` (float32).

    The array is written under a temporary name in ``pixels/`` and renamed into place
    (replacing an earlier version of the same micrograph); other arrays are not touched, so
    workers may add different micrographs concurrently.

    Parameters
    ----------
    store : path-like
        The store folder; created if missing.
    micrograph : str
        The micrograph's name (no ``/``).
    image : numpy.ndarray
        2-D pixels.
    pixel_size_A : float, optional
        Stored in the array's attributes.
    """
    _check_name(micrograph)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    store = Path(store)
    ensure_group(store)
    ensure_group(store / PIXELS)
    ny, nx = image.shape
    with atomic_path(store / PIXELS / micrograph) as tmp:
        array = zarr.create_array(
            store=str(tmp),
            shape=image.shape,
            dtype=np.float32,
            chunks=(min(ny, 1024) or 1, min(nx, 1024) or 1),
            dimension_names=("y", "x"),
            attributes={"micrograph": micrograph, "pixel_size_A": pixel_size_A},
            zarr_format=3,
            compressors=None,  # noise-like floats shrink ~10 % for 3x the write time
        )
        array[...] = image.astype(np.float32, copy=False)
