"""One kernel type: how every operation is written.

A kernel is a pure ``ndarray -> ndarray`` function on one 2-D micrograph that knows nothing
of dask. It declares its *halo*: ``0`` (pointwise), a number of pixels (local), or
:data:`FULL_FRAME` (Fourier operations, global statistics, shape changes).
:func:`daskmic.ops.lift.lift` applies any kernel to a chunked dask array; :func:`compose`
applies a list of them to one in-memory micrograph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

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


def compose(kernels: list[Kernel]) -> Callable[[np.ndarray], np.ndarray]:
    """Return the eager function that applies ``kernels`` in order to one micrograph."""

    def apply(image: np.ndarray) -> np.ndarray:
        for kernel in kernels:
            image = kernel.func(image)
        return image

    return apply
