"""One micrograph's tilt screen: corner windows -> PSDs -> ten correlations -> decision.

Only the four corner windows are needed, so callers that read from disk can fetch just those:
:func:`corner_regions` says where they are, :func:`screen_windows` screens them.
:func:`screen_micrograph` does both on an in-memory (or lazily sliceable) image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskmic.tilt.correlate import correlation_stats, correlations, lowpass
from daskmic.tilt.decision import decide
from daskmic.tilt.params import TiltParams
from daskmic.tilt.psd import window_psd
from daskmic.tilt.rotate import rotated_region
from daskmic.tilt.summary import psd_summary
from daskmic.tilt.windows import (
    CORNER_LABELS,
    Region,
    band_limit_A,
    sub_window_px,
    sub_window_slices,
)
from daskmic.tilt.windows import corner_regions as _corner_regions


@dataclass(frozen=True)
class TiltResult:
    """The tilt screen of one micrograph.

    Attributes
    ----------
    correlations : numpy.ndarray
        The ten correlations (float64): six corner pairs 00-02, 00-20, 00-22, 02-20, 02-22,
        20-22, then each corner against its 90°-rotated self, 00, 02, 20, 22.
    mean, std, min, max : float
        Their mean, population standard deviation, minimum and maximum.
    accepted : bool
        ``mean > mean_threshold and std < std_threshold``.
    window_size_px : int
        Edge of the corner windows.
    sub_window_px : int
        Edge of the compared PSD sub-window, ``int(w * pixel_size_A / resolution_A)``.
    band_limit_A : float
        Finest resolution compared along the axes, ``2 w pixel_size_A / sub`` (≈ 2 × the
        objective resolution).
    psd_summary : numpy.ndarray
        The ``(2 sub - 1)²`` float32 montage of the four filtered sub-PSDs.
    """

    correlations: np.ndarray
    mean: float
    std: float
    min: float
    max: float
    accepted: bool
    window_size_px: int
    sub_window_px: int
    band_limit_A: float
    psd_summary: np.ndarray

    @property
    def status(self) -> str:
        """``"accepted"`` or ``"discarded"``."""
        return "accepted" if self.accepted else "discarded"

    def to_row(self) -> dict[str, Any]:
        """The scalar results as a table row (JSON-able values)."""
        return {
            "tilt_status": self.status,
            "accepted": self.accepted,
            "tilt_mean_corr": self.mean,
            "tilt_std_corr": self.std,
            "tilt_min_corr": self.min,
            "tilt_max_corr": self.max,
            "window_size_px": self.window_size_px,
            "sub_window_px": self.sub_window_px,
            "band_limit_A": self.band_limit_A,
        }


def corner_regions(shape: Sequence[int], params: TiltParams) -> list[Region]:
    """The four corner windows to read from a micrograph of ``shape``, in corner order.

    Raises
    ------
    ValueError
        If the micrograph is too small for a window.
    """
    window = params.window_size_px(shape)
    return _corner_regions(shape, window, xmipp_compat=params.xmipp_compat)


def _window_size(windows: Sequence[np.ndarray], xmipp_compat: bool) -> int:
    """Check the four windows' shapes against the mode and return ``w``."""
    shapes = [np.shape(window) for window in windows]
    if len(shapes) != 4 or any(len(shape) != 2 for shape in shapes):
        raise ValueError(f"expected four 2-D corner windows, got shapes {shapes}")
    w = shapes[0][0]
    extra = 1 if xmipp_compat else 0
    expected = [(w + extra * j, w + extra * i) for i in (0, 1) for j in (0, 1)]
    if shapes != expected:
        raise ValueError(f"corner windows of shapes {shapes} do not match {expected}")
    return int(w)


def screen_windows(
    windows: Sequence[np.ndarray], pixel_size_A: float, params: TiltParams
) -> TiltResult:
    """Screen a micrograph from its four corner windows (spec B.3, design.md).

    Parameters
    ----------
    windows : sequence of numpy.ndarray
        The windows :func:`corner_regions` names, in that order (any real dtype).
    pixel_size_A : float
        The micrograph's pixel size in Å.
    params : TiltParams
        Resolution, thresholds and mode.

    Returns
    -------
    TiltResult
        The ten correlations, their statistics, the decision and the PSD summary image.

    Raises
    ------
    ValueError
        With the reason, when a window holds NaN/Inf or is constant, or the pixel size cannot
        support the resolution.
    """
    compat = params.xmipp_compat
    w = _window_size(windows, compat)
    sub = sub_window_px(w, pixel_size_A, params.resolution_A)
    pieces = np.empty((8, sub, sub))
    for k, (label, window) in enumerate(zip(CORNER_LABELS, windows, strict=True)):
        try:
            psd = window_psd(window, xmipp_compat=compat)
        except ValueError as error:
            raise ValueError(f"corner window {label}: {error}") from None
        rows, cols = sub_window_slices(psd.shape, sub, xmipp_compat=compat)
        pieces[k] = psd.region(np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop))
        pieces[k + 4] = rotated_region(psd, rows, cols, xmipp_compat=compat)
    filtered = lowpass(pieces)
    values = correlations(filtered[:4], filtered[4:])
    stats = correlation_stats(values)
    accepted, _, _ = decide(
        stats["mean"],
        stats["std"],
        mean_threshold=params.mean_threshold,
        std_threshold=params.std_threshold,
    )
    return TiltResult(
        correlations=values,
        mean=stats["mean"],
        std=stats["std"],
        min=stats["min"],
        max=stats["max"],
        accepted=bool(accepted),
        window_size_px=w,
        sub_window_px=sub,
        band_limit_A=band_limit_A(w, sub, pixel_size_A),
        psd_summary=psd_summary(filtered[:4]),
    )


def screen_micrograph(image: Any, pixel_size_A: float, params: TiltParams) -> TiltResult:
    """Screen one micrograph, reading only its four corner windows.

    Parameters
    ----------
    image : array-like
        The 2-D micrograph: a numpy array, a memory map or anything sliceable with
        ``image[rows, cols]`` and a ``shape`` (only the corners are read).
    pixel_size_A : float
        Its pixel size in Å.
    params : TiltParams
        Window size, resolution, thresholds and mode.

    Returns
    -------
    TiltResult

    Raises
    ------
    ValueError
        With the reason: not 2-D, too small for a window, NaN/Inf or constant corner windows,
        or a pixel size that cannot support the resolution.
    """
    shape = tuple(np.shape(image))
    if len(shape) != 2:
        raise ValueError(f"a micrograph must be 2-D, got shape {shape}")
    windows = [np.asarray(image[region]) for region in corner_regions(shape, params)]
    return screen_windows(windows, pixel_size_A, params)
