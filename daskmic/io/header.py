"""What daskmic knows about a micrograph before reading its pixels."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from daskmic.io.errors import MicrographError

MicrographFormat = Literal["mrc", "tiff"]


@dataclass(frozen=True)
class MicrographHeader:
    """Header facts of one 2-D micrograph file.

    Parameters
    ----------
    path : str
        Absolute path of the file.
    shape : tuple of int
        ``(ny, nx)``: rows, columns.
    dtype : numpy.dtype
        Pixel type as stored, in native byte order.
    pixel_size_A : float or None
        Pixel size in ångström from the header, ``None`` when the header does not say.
    format : {"mrc", "tiff"}
        File format.
    """

    path: str
    shape: tuple[int, int]
    dtype: np.dtype
    pixel_size_A: float | None
    format: MicrographFormat


def require_pixel_size(
    pixel_size_A: float | None, path: str | os.PathLike[str] = "<micrograph>"
) -> float:
    """Return ``pixel_size_A`` as a float, or raise when it is unknown or not positive.

    Parameters
    ----------
    pixel_size_A : float or None
        A pixel size in ångström; ``None`` or NaN mean unknown.
    path : path-like, optional
        The micrograph it belongs to, named in the error message.

    Returns
    -------
    float
        The pixel size.

    Raises
    ------
    MicrographError
        When the pixel size is unknown (``None``/NaN) or not a finite positive number.
    """
    if pixel_size_A is None or (isinstance(pixel_size_A, float) and math.isnan(pixel_size_A)):
        raise MicrographError(
            path,
            "pixel size unknown (not in the header or the input table); "
            "give it with pixel_size_A=... (command line: --pixel-size A)",
        )
    value = float(pixel_size_A)
    if not (math.isfinite(value) and value > 0):
        raise MicrographError(path, f"pixel size must be a finite number > 0 Å, got {value}")
    return value
