"""The tilt-analysis parameters, validated before any work starts."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from daskmic.errors import UsageError
from daskmic.tilt.windows import (
    MIN_SUB_WINDOW_PX,
    MIN_WINDOW_PX,
    sub_window_px,
    window_size_for,
)

WindowSize = int | Literal["auto"]


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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
    if not (_is_real(mean_threshold) and 0.0 <= mean_threshold <= 1.0):
        raise UsageError(f"mean_threshold must be in [0, 1], got {mean_threshold!r}")
    if not (_is_real(std_threshold) and math.isfinite(std_threshold) and std_threshold > 0):
        raise UsageError(f"std_threshold must be a finite number > 0, got {std_threshold!r}")


def check_max_tilt(max_tilt_deg: float | None, estimate_angle: bool) -> None:
    """Refuse a maximum tilt outside (0, 90) degrees, or one without angle estimation.

    Raises
    ------
    ValueError
        Naming the parameter, the value given and the valid range.
    """
    if max_tilt_deg is None:
        return
    if not (_is_real(max_tilt_deg) and 0.0 < max_tilt_deg < 90.0):
        raise UsageError(f"max_tilt_deg must be in (0, 90) degrees, got {max_tilt_deg!r}")
    if not estimate_angle:
        raise UsageError("max_tilt_deg needs estimate_angle=True (--angle)")


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
    estimate_angle : bool
        Also estimate the specimen tilt angle and axis from the local defocus
        (:func:`daskmic.tilt.angle.estimate_tilt`; reads the whole micrograph).
    max_tilt_deg : float or None
        With ``estimate_angle``, also discard micrographs whose estimated tilt angle is above
        this many degrees, in (0, 90).
    """

    window_size: WindowSize = "auto"
    resolution_A: float = 3.0
    mean_threshold: float = 0.5
    std_threshold: float = 0.1
    xmipp_compat: bool = False
    estimate_angle: bool = False
    max_tilt_deg: float | None = None

    def __post_init__(self) -> None:
        size = self.window_size
        if size != "auto":
            if not (
                isinstance(size, numbers.Integral)
                and not isinstance(size, bool)
                and size >= MIN_WINDOW_PX
            ):
                raise UsageError(
                    f"window_size must be 'auto' or an integer >= {MIN_WINDOW_PX}, got {size!r}"
                )
            object.__setattr__(self, "window_size", int(size))
        resolution = self.resolution_A
        if not (_is_real(resolution) and math.isfinite(resolution) and resolution > 0):
            raise UsageError(f"resolution_A must be a finite number > 0 Å, got {resolution!r}")
        check_thresholds(self.mean_threshold, self.std_threshold)
        if not isinstance(self.xmipp_compat, bool):
            raise UsageError(f"xmipp_compat must be True or False, got {self.xmipp_compat!r}")
        if not isinstance(self.estimate_angle, bool):
            raise UsageError(f"estimate_angle must be True or False, got {self.estimate_angle!r}")
        check_max_tilt(self.max_tilt_deg, self.estimate_angle)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-able dict (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TiltParams:
        """Build parameters from :meth:`to_dict`'s form; unknown keys are refused."""
        unknown = set(values) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise UsageError(f"unknown tilt parameters: {sorted(unknown)}")
        return cls(**values)

    def window_size_px(self, shape: Sequence[int]) -> int:
        """The window size used on a micrograph of ``shape`` (``ValueError`` if too small)."""
        return window_size_for(shape, self.window_size, xmipp_compat=self.xmipp_compat)

    def validate_for_set(
        self, shapes: Sequence[Sequence[int]], pixel_sizes_A: Sequence[float]
    ) -> None:
        """Refuse parameters that no micrograph of the set can support, before any work.

        A micrograph supports the parameters when it holds a window and its sub-window
        ``int(w * pixel_size_A / resolution_A)`` lies in [32, w] pixels. Micrographs that do
        not fail alone; if none does, the parameters are a usage error, except when every
        micrograph is too small for the automatic window (then they all fail alone).

        Parameters
        ----------
        shapes : sequence of (ny, nx)
            Shapes of the set's micrographs.
        pixel_sizes_A : sequence of float
            Their pixel sizes in Å, in the same order.

        Raises
        ------
        ValueError
            If a given window size fits no micrograph, or the resolution suits none.
        """
        if len(shapes) != len(pixel_sizes_A):
            raise UsageError(f"got {len(shapes)} shapes but {len(pixel_sizes_A)} pixel sizes")
        windows = []
        for shape, pixel_size_A in zip(shapes, pixel_sizes_A, strict=True):
            try:
                windows.append((self.window_size_px(shape), pixel_size_A))
            except ValueError:
                continue
        if not windows:
            if self.window_size == "auto" or not shapes:
                return
            raise UsageError(
                f"window_size={self.window_size} px fits no micrograph of the set "
                f"(smallest edge {min(min(s[-2:]) for s in shapes)} px)"
            )
        reasons = set()
        for window, pixel_size_A in windows:
            try:
                sub_window_px(window, pixel_size_A, self.resolution_A)
            except ValueError as error:
                reasons.add(str(error))
                continue
            return
        raise UsageError(
            f"resolution_A={self.resolution_A!r} suits no micrograph of the set (the PSD "
            f"sub-window must hold {MIN_SUB_WINDOW_PX} px to w px): " + "; ".join(sorted(reasons))
        )
