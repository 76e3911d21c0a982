"""Where the corner windows and the PSD sub-windows are, and how large.

Corner order is the reference's (spec B.3 #3): near-x/near-y, near-x/far-y, far-x/near-y,
far-x/far-y, labelled ``"00"``, ``"02"``, ``"20"``, ``"22"`` (first digit x, second y; 0 near
the array origin, 2 far from it).

The sub-window keeps the reference's size ``int(w * pixel_size_A / resolution_A)``. A centred
PSD of width ``w`` spans ±Nyquist, so a sub-window of ``sub`` pixels holds frequencies up to
``sub / (2 w pixel_size_A)`` Å⁻¹ along the axes: the finest compared resolution is
``band_limit_A = 2 w pixel_size_A / sub`` ≈ ``2 * resolution_A`` (6 Å for the default 3 Å).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

AUTO_WINDOW_SIZES_PX: Final = (4096, 2048, 1024, 512, 256)
"""Candidate sizes of the automatic window, largest first (spec B.2)."""

MIN_WINDOW_PX: Final = 256
"""Smallest window daskmic accepts (the protocol's form: ``GE(256)``)."""

MIN_SUB_WINDOW_PX: Final = 32
"""Smallest sub-window daskmic compares (the 0.1 c/px low pass leaves ~3 px of it below)."""

CORNER_LABELS: Final = ("00", "02", "20", "22")
"""Corner labels in processing order: x index then y index, 0 near and 2 far."""

Region = tuple[slice, slice]


def _plane_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"a micrograph needs two dimensions (ny, nx), got shape {tuple(shape)}")
    return int(shape[-2]), int(shape[-1])


def auto_window_size(shape: Sequence[int]) -> int:
    """The reference's automatic window size for a micrograph of ``shape``.

    The first of 4096, 2048, 1024, 512, 256 strictly below ``h = int(min(ny, nx) / 2.5)``,
    else ``h`` itself (which may be below 256; :func:`window_size_for` refuses that).

    Parameters
    ----------
    shape : sequence of int
        ``(..., ny, nx)``.

    Returns
    -------
    int
        Window edge in pixels.
    """
    ny, nx = _plane_shape(shape)
    limit = int(min(ny, nx) / 2.5)
    for size in AUTO_WINDOW_SIZES_PX:
        if size < limit:
            return size
    return limit


def window_size_for(shape: Sequence[int], window_size: int | str, *, xmipp_compat: bool) -> int:
    """The window size used on one micrograph, or a ``ValueError`` saying why there is none.

    Parameters
    ----------
    shape : sequence of int
        ``(..., ny, nx)``.
    window_size : int or "auto"
        The requested size.
    xmipp_compat : bool
        Compat mode needs ``w < min(ny, nx)`` (its far windows are ``w + 1`` wide); the
        default mode needs ``w <= min(ny, nx)``.

    Returns
    -------
    int
        Window edge in pixels, >= 256.
    """
    ny, nx = _plane_shape(shape)
    if window_size == "auto":
        size = auto_window_size((ny, nx))
        if size < MIN_WINDOW_PX:
            raise ValueError(
                f"micrograph of {ny}x{nx} px is too small for tilt analysis: the automatic "
                f"window would be {size} px, windows are at least {MIN_WINDOW_PX} px "
                f"(min(ny, nx) >= {int(MIN_WINDOW_PX * 2.5)} px needed)"
            )
        return size
    size = int(window_size)
    needed = size + 1 if xmipp_compat else size
    if min(ny, nx) < needed:
        raise ValueError(
            f"micrograph of {ny}x{nx} px is too small for a {size} px tilt window "
            f"(min(ny, nx) >= {needed} px needed)"
        )
    return size


def corner_regions(
    shape: Sequence[int], window_size_px: int, *, xmipp_compat: bool
) -> list[Region]:
    """The four corner windows of a micrograph, as ``(rows, cols)`` slices.

    Default mode: four equal ``w x w`` windows flush with the corners. Compat mode: the
    reference's inclusive coordinates ``[0, w-1]`` (near, w px) and ``[n-1-w, n-1]`` (far,
    ``w + 1`` px) per axis (spec B.3 #2-3).

    Parameters
    ----------
    shape : sequence of int
        ``(..., ny, nx)``.
    window_size_px : int
        Window edge ``w``.
    xmipp_compat : bool
        Use the reference's window coordinates.

    Returns
    -------
    list of (slice, slice)
        In :data:`CORNER_LABELS` order (x outer, y inner).
    """
    ny, nx = _plane_shape(shape)
    w = int(window_size_px)
    if w < 1 or w > min(ny, nx) or (xmipp_compat and w >= min(ny, nx)):
        raise ValueError(f"window_size_px={w} does not fit a {ny}x{nx} px micrograph")

    def spans(n: int) -> tuple[slice, slice]:
        far = slice(n - 1 - w, n) if xmipp_compat else slice(n - w, n)
        return slice(0, w), far

    rows, cols = spans(ny), spans(nx)
    return [(rows[j], cols[i]) for i in (0, 1) for j in (0, 1)]


def sub_window_px(window_size_px: int, pixel_size_A: float, resolution_A: float) -> int:
    """The compared sub-window, ``int(w * (pixel_size_A / resolution_A))`` pixels.

    Raises
    ------
    ValueError
        If the pixel size is not a finite positive number, or the sub-window falls outside
        [32, w] pixels (the resolution is beyond Nyquist, or too coarse to compare).
    """
    if not (math.isfinite(pixel_size_A) and pixel_size_A > 0):
        raise ValueError(f"pixel_size_A must be a finite number > 0 Å, got {pixel_size_A!r}")
    sub = int(window_size_px * (pixel_size_A / resolution_A))
    if sub > window_size_px:
        raise ValueError(
            f"resolution_A={resolution_A} is below the pixel size ({pixel_size_A} Å): the PSD "
            f"sub-window would be {sub} px, wider than the {window_size_px} px window "
            f"(resolution_A >= pixel_size_A needed)"
        )
    if sub < MIN_SUB_WINDOW_PX:
        raise ValueError(
            f"resolution_A={resolution_A} is too coarse for a {window_size_px} px window of "
            f"{pixel_size_A} Å pixels: the PSD sub-window would be {sub} px, at least "
            f"{MIN_SUB_WINDOW_PX} px are needed (resolution_A <= "
            f"{window_size_px * pixel_size_A / MIN_SUB_WINDOW_PX:.4g} Å)"
        )
    return sub


def band_limit_A(window_size_px: int, sub_px: int, pixel_size_A: float) -> float:
    """Finest resolution (Å) the sub-window compares along the axes: ``2 w p / sub``."""
    return 2.0 * window_size_px * pixel_size_A / sub_px


def sub_window_slices(
    shape: tuple[int, int], sub_px: int, *, xmipp_compat: bool
) -> tuple[slice, slice]:
    """Where the ``sub x sub`` sub-window lies in a centred PSD of ``shape``.

    Default mode: centred on the zero-frequency pixel ``(ny // 2, nx // 2)``, which lands at
    ``(sub // 2, sub // 2)`` of the sub-window. Compat mode: the reference's
    ``x0 = y0 = int(nx / 2 - sub / 2)`` (the column count for both axes; off by one from the
    centred window when ``nx`` is even and ``sub`` odd, or for the non-square windows).
    """
    ny, nx = shape
    if xmipp_compat:
        y0 = x0 = int(nx / 2 - sub_px / 2)
    else:
        y0, x0 = ny // 2 - sub_px // 2, nx // 2 - sub_px // 2
    return slice(y0, y0 + sub_px), slice(x0, x0 + sub_px)
