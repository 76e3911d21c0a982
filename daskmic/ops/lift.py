"""One lifter: how every kernel reaches dask.

:func:`lift` applies any :class:`~daskmic.ops.kernel.Kernel` to a chunked
``(micrograph, y, x)`` dask array, honouring its halo; nothing else in daskmic calls
``map_blocks`` or ``map_overlap`` for an operation.
"""

from __future__ import annotations

import functools

import dask.array as da
import numpy as np

from daskmic.ops.kernel import Kernel


def _apply_stack(block: np.ndarray, kernel: Kernel) -> np.ndarray:
    """Apply a 2-D kernel to each micrograph of a ``(m, y, x)`` block."""
    return np.stack([kernel.func(frame) for frame in block]) if len(block) else block


def lift(kernel: Kernel, stack: da.Array) -> da.Array:
    """Apply ``kernel`` lazily to every micrograph of a ``(micrograph, y, x)`` dask array.

    Pointwise kernels run block by block on any chunking; local kernels run with
    ``map_overlap(depth=halo, boundary="none")`` so that tiled equals whole frame; full-frame
    kernels first rechunk to whole frames (one micrograph per chunk), then run block by block.

    Parameters
    ----------
    kernel : Kernel
        The operation to apply.
    stack : dask.array.Array
        Three-dimensional array, dims ``(micrograph, y, x)``.

    Returns
    -------
    dask.array.Array
        The lazily transformed stack, float32, chunked like the input (whole frames for
        full-frame kernels).
    """
    if stack.ndim != 3:
        raise ValueError(f"expected a (micrograph, y, x) stack, got {stack.ndim} dimensions")
    if kernel.halo == 0:
        return da.map_blocks(_apply_stack, stack, kernel, dtype=np.float32, token=kernel.name)
    if kernel.halo > 0:
        return stack.map_overlap(
            functools.partial(_apply_stack, kernel=kernel),
            depth={0: 0, 1: kernel.halo, 2: kernel.halo},
            boundary="none",
            dtype=np.float32,
            token=kernel.name,
        )
    whole = stack.rechunk({0: 1, 1: -1, 2: -1})
    ny, nx = kernel.output_shape(whole.shape[1:])
    return whole.map_blocks(
        _apply_stack, kernel, dtype=np.float32, chunks=(1, ny, nx), token=kernel.name
    )
