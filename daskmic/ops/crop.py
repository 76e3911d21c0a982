"""Crop borders: remove the same number of pixels from each of the four borders (spec A.2 #1)."""

from __future__ import annotations

import operator
from functools import partial

import numpy as np

from daskmic.ops.kernel import FULL_FRAME, Kernel, Shape2D


def cropped_shape(shape: Shape2D, crop_px: int) -> Shape2D:
    """Shape ``(ny - 2·crop_px, nx - 2·crop_px)`` left after cropping ``crop_px`` per border.

    Raises
    ------
    ValueError
        If fewer than one pixel would remain along an axis.
    """
    ny, nx = (int(n) for n in shape)
    if 2 * crop_px >= min(ny, nx):
        raise ValueError(
            f"crop: {crop_px} px per border does not fit a {ny}×{nx} image; "
            f"valid range 0 ≤ crop < {(min(ny, nx) + 1) // 2} (less than half the image)"
        )
    return ny - 2 * crop_px, nx - 2 * crop_px


def _crop(image: np.ndarray, crop_px: int) -> np.ndarray:
    ny, nx = cropped_shape(image.shape, crop_px)
    window = image[crop_px : crop_px + ny, crop_px : crop_px + nx]
    return np.asarray(window, dtype=np.float32)  # a view of a float32 input: no copy


def crop_kernel(crop_px: int) -> Kernel:
    """Kernel removing ``crop_px`` pixels from each border of a micrograph.

    Parameters
    ----------
    crop_px : int
        Pixels removed from each of the four borders, ``>= 0``. The output is
        ``(ny - 2·crop_px, nx - 2·crop_px)``; pixel ``(i, j)`` of the output is pixel
        ``(i + crop_px, j + crop_px)`` of the input.

    Returns
    -------
    Kernel
        Full-frame kernel (it changes the shape), float32 output: a view of a float32 input
        (kernels never modify their input), a converted copy otherwise. Unlike Xmipp's
        ``transform_window`` it does not keep an integer input dtype: every daskmic op writes
        float32.
    """
    try:
        crop_px = operator.index(crop_px)
    except TypeError:
        raise ValueError(
            f"crop: expected a whole number of pixels, got {crop_px!r}; valid range: integers ≥ 0"
        ) from None
    if crop_px < 0:
        raise ValueError(f"crop: got {crop_px} px; valid range: integers ≥ 0")
    return Kernel(
        name="crop",
        func=partial(_crop, crop_px=crop_px),
        halo=FULL_FRAME,
        output_shape=partial(cropped_shape, crop_px=crop_px),
    )
