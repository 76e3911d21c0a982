"""One kernel type and one lifter: how every operation reaches dask.

A kernel is a pure ``ndarray -> ndarray`` function on one 2-D micrograph that knows nothing
of dask. It declares its *halo*: ``0`` (pointwise), a number of pixels (local), or
:data:`FULL_FRAME` (Fourier operations, global statistics, shape changes). :func:`lift` applies
any kernel to a chunked ``(micrograph, y, x)`` dask array; nothing else in daskmic calls
``map_blocks`` or ``map_overlap`` for an operation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import dask.array as da
import numpy as np

FULL_FRAME: Final = -1
"""Halo value of a kernel that needs the whole frame at once."""

Shape2D = tuple[int, int]


def _same_shape(shape: Shape2D) -> Shape2D:
    return shape


@dataclass(frozen=True)
class Kernel:
    """A pure per-micrograph operation and the rule for lifting it onto chunks.

    Parameters
    ----------
    name : str
        Short name of the operation (``"crop"``, ``"fourier"``, ...), used in task names.
    func : callable
        ``func(image) -> image`` on one 2-D float array. It must not modify its input.
    halo : int
        ``0`` for a pointwise operation, ``n > 0`` for an operation whose output pixel depends
        on input pixels at most ``n`` away, or :data:`FULL_FRAME`.
    output_shape : callable
        Maps the input ``(ny, nx)`` to the output ``(ny, nx)``; only full-frame kernels may
        change the shape.
    """

    name: str
    func: Callable[[np.ndarray], np.ndarray]
    halo: int = FULL_FRAME
    output_shape: Callable[[Shape2D], Shape2D] = field(default=_same_shape)

    def __post_init__(self) -> None:
        if self.halo < FULL_FRAME:
            raise ValueError(f"halo must be >= 0 or FULL_FRAME, got {self.halo}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Apply the kernel to one whole 2-D micrograph."""
        return self.func(image)


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
        return stack.map_blocks(_apply_stack, kernel, dtype=np.float32, token=kernel.name)
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


def compose(kernels: list[Kernel]) -> Callable[[np.ndarray], np.ndarray]:
    """Return the eager function that applies ``kernels`` in order to one micrograph."""

    def apply(image: np.ndarray) -> np.ndarray:
        for kernel in kernels:
            image = kernel.func(image)
        return image

    return apply
