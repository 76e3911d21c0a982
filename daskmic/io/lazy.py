"""A picklable, lazy ``(micrograph, y, x)`` array-like over a list of micrograph files.

It holds paths or URLs (with the storage options that reach them), never open files or pixels,
so it pickles to dask workers and is thread-safe; the workers read. Indexing
reads only the requested region of each requested micrograph; wrapped with
``dask.array.from_array(..., asarray=False)``, dask's slice fusion hands the region of a sliced
chunk straight to :meth:`LazyMicrographStack.__getitem__`, so a corner of one micrograph costs
one small read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import cast

import numpy as np

from daskmic.io import readers
from daskmic.io.storage import StorageOptions

AxisKey = int | np.integer | slice | np.ndarray | list[int]
"""An index along one axis: an integer, a slice, or integer or boolean positions."""


def _axis_plan(key: AxisKey, size: int) -> tuple[slice, AxisKey]:
    """Split an index along one axis into a contiguous read and an index into what was read."""
    if isinstance(key, slice):
        return key, slice(None)
    if isinstance(key, int | np.integer):
        index = int(key) + size if key < 0 else int(key)
        if not 0 <= index < size:
            raise IndexError(f"index {key} is out of bounds for an axis of size {size}")
        return slice(index, index + 1), 0
    indices = np.arange(size)[np.asarray(key)]
    if indices.size == 0:
        return slice(0, 0), slice(None)
    low = int(indices.min())
    return slice(low, int(indices.max()) + 1), indices - low


def _expand_key(key: object) -> tuple[AxisKey, AxisKey, AxisKey]:
    """Normalise an index into one entry per axis (``...`` and missing axes become ``:``)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is None for k in key):
        raise IndexError("new axes (None) are not supported")
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
    if ellipses:
        at = ellipses[0]
        fill = (slice(None),) * (3 - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    if len(key) > 3:
        raise IndexError(f"too many indices for a 3-D stack: {len(key)}")
    return cast(tuple[AxisKey, AxisKey, AxisKey], key + (slice(None),) * (3 - len(key)))


class LazyMicrographStack:
    """Lazy stack of same-shape 2-D micrographs read on indexing.

    Parameters
    ----------
    paths : sequence of path-like
        One file per micrograph, all of shape ``shape_yx``.
    shape_yx : tuple of int
        ``(ny, nx)`` shared by every file.
    dtype : numpy.dtype
        Dtype of the stack; each file's pixels are cast to it (a no-op when all files share it).
    stamps : sequence of tuple, optional
        Per-file ``(size, mtime_ns)`` (at a URL ``(size, version)``), part of the dask token
        so rewritten files get new keys.
    storage_options : dict, optional
        For the URLs among ``paths`` (see :func:`daskmic.io.storage.location`); not part of
        the token.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        shape_yx: tuple[int, int],
        dtype: np.dtype,
        stamps: Sequence[tuple[int, int | str]] = (),
        storage_options: StorageOptions | None = None,
    ) -> None:
        self.paths = tuple(str(p) for p in paths)
        self.shape = (len(self.paths), int(shape_yx[0]), int(shape_yx[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 3
        self.stamps = tuple(tuple(s) for s in stamps)
        self.storage_options = dict(storage_options or {})

    def __dask_tokenize__(self) -> tuple:
        return ("daskmic.LazyMicrographStack", self.paths, self.shape, self.dtype.str, self.stamps)

    def __repr__(self) -> str:
        return f"LazyMicrographStack(shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: object) -> np.ndarray:
        """Read the indexed micrographs and region; integers drop their axis, as in numpy."""
        m_key, y_key, x_key = _expand_key(key)
        _, ny, nx = self.shape
        y_read, y_post = _axis_plan(y_key, ny)
        x_read, x_post = _axis_plan(x_key, nx)
        selected = np.arange(self.shape[0])[m_key]
        frames = [
            self._read(int(i), (y_read, x_read), y_post, x_post) for i in np.atleast_1d(selected)
        ]
        if not frames:
            frame_shape = np.broadcast_to(np.zeros((), self.dtype), (ny, nx))[y_key][..., x_key]
            return np.empty((0, *frame_shape.shape), self.dtype)
        return frames[0] if np.ndim(selected) == 0 else np.stack(frames)

    def _read(
        self, index: int, region: tuple[slice, slice], y_post: AxisKey, x_post: AxisKey
    ) -> np.ndarray:
        frame = readers.read_micrograph(self.paths[index], region, self.storage_options)
        return frame[y_post][..., x_post].astype(self.dtype, copy=False)
