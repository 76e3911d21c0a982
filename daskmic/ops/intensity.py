"""Intensity maps: logarithm and contrast inversion (pointwise), normalisation (whole frame).

Spec A.2 #2, #4 and #10. The logarithm and the normalisation are evaluated in float64 (row
blocks, bounded memory) and stored as float32; inversion is exact in float32.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from daskmic.ops.kernel import FULL_FRAME, Kernel
from daskmic.ops.stats import map_float64, mean_std


def _require_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name}: expected a number, got {value!r}; valid range: finite reals")
    if not math.isfinite(value):
        raise ValueError(f"{name}: got {value}; valid range: finite reals")
    return float(value)


def _log_formula(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.log(x + c)


def _log(image: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    smallest = float(np.min(image)) if image.size else 0.0
    if smallest + c <= 0:
        count = int(np.count_nonzero(image.astype(np.float64) + c <= 0))
        raise ValueError(
            f"log: {count} pixel(s) have x + c <= 0 (smallest pixel value {smallest:g}, "
            f"c = {c:g}), where a - b*ln(x + c) is undefined; use c > {-smallest:g} "
            "or do not take the logarithm of this micrograph"
        )
    return map_float64(_log_formula, image, a, b, c)


def log_kernel(a: float, b: float, c: float) -> Kernel:
    """Kernel mapping each pixel ``x`` to ``a - b*ln(x + c)`` (natural logarithm).

    Parameters
    ----------
    a, b, c : float
        Coefficients; the protocol's defaults are 4.431, 0.402 and 336.6.

    Returns
    -------
    Kernel
        Pointwise kernel, float32 output computed in float64. A micrograph (or tile) containing a
        pixel with ``x + c <= 0`` raises ``ValueError`` saying how many pixels and the smallest
        value, instead of writing NaN/inf as Xmipp does.
    """
    a = _require_finite("log a", a)
    b = _require_finite("log b", b)
    c = _require_finite("log c", c)
    return Kernel(name="log", func=partial(_log, a=a, b=b, c=c), halo=0)


def _invert(image: np.ndarray) -> np.ndarray:
    return np.negative(image, dtype=np.float32)


def invert_kernel() -> Kernel:
    """Kernel multiplying every pixel by -1 (contrast inversion); pointwise, float32 output."""
    return Kernel(name="invert", func=_invert, halo=0)


def _standardise(x: np.ndarray, mean: float, scale: float) -> np.ndarray:
    return (x - mean) * scale


def _normalize(image: np.ndarray) -> np.ndarray:
    mean, std = mean_std(image)
    if not std > 0:
        raise ValueError(
            f"normalize: the image is constant (value {mean:g}, standard deviation 0), "
            "so it cannot be scaled to standard deviation 1"
        )
    return map_float64(_standardise, image, mean, 1.0 / std)


def normalize_kernel() -> Kernel:
    """Kernel scaling a micrograph to mean 0 and population standard deviation 1.

    Statistics are over the whole image (Xmipp's ``OldXmipp`` method, spec A.2 #10), in
    float64. A constant image raises ``ValueError``.

    Returns
    -------
    Kernel
        Full-frame kernel, float32 output.
    """
    return Kernel(name="normalize", func=_normalize, halo=FULL_FRAME)
