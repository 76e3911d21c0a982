"""The tilt-analysis parameters, validated before any work starts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from daskmic.tilt.windows import (
    MIN_SUB_WINDOW_PX,
    MIN_WINDOW_PX,
    sub_window_px,
    window_size_for,
)

WindowSize = int | Literal["auto"]


def check_thresholds(mean_threshold: float, std_threshold: float) -> None:
    """Refuse acceptance thresholds outside the protocol's ranges.

    Parameters
    ----------
    mean_threshold : float
        Must lie in [0, 1] (the protocol's ``Range(0, 1)``).
    std_threshold : float
        Must be finite and > 0.

    Raises
    ------
    ValueError
        Naming the parameter, the value given and the valid range.
    """
    if not (isinstance(mean_threshold, int | float) and 0.0 <= mean_threshold <= 1.0):
        raise ValueError(f"mean_threshold must be in [0, 1], got {mean_threshold!r}")
    if not (
        isinstance(std_threshold, int | float)
        and math.isfinite(std_threshold)
        and std_threshold > 0
    ):
        raise ValueError(f"std_threshold must be a finite number > 0, got {std_threshold!r}")


@dataclass(frozen=True)
class TiltParams:
    """Parameters of the tilt-analysis screen (the protocol's form, spec B.1).

    Parameters
    ----------
    window_size : int or "auto"
        Edge of the four corner windows in pixels. ``"auto"`` picks, per micrograph, the first
        of 4096, 2048, 1024, 512, 256 strictly below ``int(min(ny, nx) / 2.5)``; a given size
        must be an integer >= 256.
    resolution_A : float
        Objective resolution in Å, > 0. The compared sub-window of each PSD is
        ``int(window_size * pixel_size_A / resolution_A)`` pixels wide, i.e. it holds
        frequencies up to ``1 / (2 * resolution_A)`` (see ``band_limit_A``).
    mean_threshold : float
        Accept when the mean of the ten correlations is strictly above it; in [0, 1].
    std_threshold : float
        ... and their (population) standard deviation strictly below it; > 0.
    xmipp_compat : bool
        Reproduce the reference's quirks (w+1 far windows, interpolated rotation of non-square
        PSDs, sub-window offset, taper built from the row count) so results match xmippLib.
    """

    window_size: WindowSize = "auto"
    resolution_A: float = 3.0
    mean_threshold: float = 0.5
    std_threshold: float = 0.1
    xmipp_compat: bool = False

    def __post_init__(self) -> None:
        size = self.window_size
        if size != "auto" and (
            isinstance(size, bool) or not isinstance(size, int) or size < MIN_WINDOW_PX
        ):
            raise ValueError(
                f"window_size must be 'auto' or an integer >= {MIN_WINDOW_PX}, got {size!r}"
            )
        resolution = self.resolution_A
        if not (
            isinstance(resolution, int | float)
            and not isinstance(resolution, bool)
            and math.isfinite(resolution)
            and resolution > 0
        ):
            raise ValueError(f"resolution_A must be a finite number > 0 Å, got {resolution!r}")
        check_thresholds(self.mean_threshold, self.std_threshold)
        if not isinstance(self.xmipp_compat, bool):
            raise ValueError(f"xmipp_compat must be True or False, got {self.xmipp_compat!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-able dict (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TiltParams:
        """Build parameters from :meth:`to_dict`'s form; unknown keys are refused."""
        unknown = set(values) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown tilt parameters: {sorted(unknown)}")
        return cls(**values)

    def window_size_px(self, shape: Sequence[int]) -> int:
        """The window size used on a micrograph of ``shape`` (``ValueError`` if too small)."""
        return window_size_for(shape, self.window_size, xmipp_compat=self.xmipp_compat)

    def validate_for_set(
        self, shapes: Sequence[Sequence[int]], pixel_sizes_A: Sequence[float]
    ) -> None:
        """Refuse a resolution that no micrograph of the set can support.

        A micrograph supports the resolution when it is large enough for a window and its
        sub-window ``int(w * pixel_size_A / resolution_A)`` lies in [32, w] pixels. Micrographs
        that do not will fail alone; if none does, the parameters are a usage error.

        Parameters
        ----------
        shapes : sequence of (ny, nx)
            Shapes of the set's micrographs.
        pixel_sizes_A : sequence of float
            Their pixel sizes in Å, in the same order.

        Raises
        ------
        ValueError
            If the set is empty or no micrograph supports the parameters.
        """
        if len(shapes) != len(pixel_sizes_A):
            raise ValueError(f"got {len(shapes)} shapes but {len(pixel_sizes_A)} pixel sizes")
        if not shapes:
            raise ValueError("the set holds no micrograph to screen")
        reasons = set()
        for shape, pixel_size_A in zip(shapes, pixel_sizes_A, strict=True):
            try:
                window = self.window_size_px(shape)
                sub_window_px(window, pixel_size_A, self.resolution_A)
            except ValueError as error:
                reasons.add(str(error))
                continue
            return
        raise ValueError(
            f"resolution_A={self.resolution_A!r} with window_size={self.window_size!r} suits no "
            f"micrograph of the set (the sub-window must hold {MIN_SUB_WINDOW_PX} px to w px): "
            + "; ".join(sorted(reasons))
        )
