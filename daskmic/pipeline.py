"""The ordered pipeline of enabled preprocessing operations for one micrograph shape.

:func:`build_pipeline` turns :class:`~daskmic.preprocess_params.PreprocessParams` into the list
of kernels for one input shape and pixel size, adjacent Fourier steps fused into one pass. The
production face (:mod:`daskmic.unit`) applies the kernels eagerly, one micrograph at a time; the
lazy face (:func:`daskmic.preprocessing.preprocess`) lifts the same kernels onto a dask stack;
there is no second code path.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from daskmic.ops.bad_pixels import bad_pixels_kernel
from daskmic.ops.crop import crop_kernel, cropped_shape
from daskmic.ops.denoise import denoise_kernel
from daskmic.ops.fourier import (
    Downsample,
    FourierStep,
    Gaussian,
    Highpass,
    Invert,
    Lowpass,
    downsampled_shape,
    fourier_kernel,
)
from daskmic.ops.intensity import invert_kernel, log_kernel, normalize_kernel
from daskmic.ops.kernel import Kernel, Shape2D

if TYPE_CHECKING:
    from daskmic.preprocess_params import PreprocessParams

FOURIER_STEPS: Final = ("downsample", "gaussian", "highpass", "lowpass")
_T = TypeVar("_T")
"""Steps applied in Fourier space, fused into one pass when adjacent."""

ANISOTROPY_TOLERANCE: Final = 1e-4
"""Relative difference of the y and x downsampling ratios above which a warning is given."""


def below_nyquist(value: float) -> bool:
    """Whether a frequency in cycles/pixel lies in (0, 0.5)."""
    return 0 < value < 0.5


@dataclass(frozen=True)
class _Geometry:
    """Shapes and pixel sizes along the pipeline for one input."""

    cropped: Shape2D
    output: Shape2D
    pixel_size_A: float  # at the Fourier steps, i.e. of the output, as recorded
    highpass: tuple[float, float] | None  # in cycles/pixel at its step
    lowpass: tuple[float, float] | None


def _known(pixel_size_A: float | None) -> bool:
    return pixel_size_A is not None and math.isfinite(pixel_size_A) and pixel_size_A > 0


def _band(params: PreprocessParams, band: str, pixel_size_A: float) -> tuple[float, float] | None:
    in_A = getattr(params, f"{band}_A")
    if in_A is None:
        return getattr(params, band)
    cutoff_A, width = in_A
    if not _known(pixel_size_A):
        raise ValueError(f"{band}_A: the pixel size is unknown, so {cutoff_A} Å cannot be used")
    cutoff = pixel_size_A / cutoff_A
    if not below_nyquist(cutoff):
        raise ValueError(
            f"{band}_A: cutoff {cutoff_A} Å is {cutoff:.4g} cycles/pixel at a pixel size of "
            f"{pixel_size_A:.4g} Å; valid range: cutoff_A > {2 * pixel_size_A:.4g} Å (Nyquist)"
        )
    return cutoff, width


def pipeline_geometry(
    params: PreprocessParams, shape: Shape2D, pixel_size_A: float | None, *, warn: bool
) -> _Geometry:
    """Shapes, pixel size and band cutoffs along the pipeline (what validation checks)."""
    shape = (int(shape[0]), int(shape[1]))
    cropped = cropped_shape(shape, params.crop or 0)
    output = cropped
    size = float("nan") if pixel_size_A is None else float(pixel_size_A)
    if params.downsample is not None:
        try:
            output = downsampled_shape(cropped, params.downsample)
        except ValueError as error:
            raise ValueError(f"{error} (after cropping)") from None
        ratio_y, ratio_x = cropped[0] / output[0], cropped[1] / output[1]
        if warn and abs(ratio_y / ratio_x - 1) > ANISOTROPY_TOLERANCE:
            warnings.warn(
                f"downsample: {cropped[0]}×{cropped[1]} → {output[0]}×{output[1]} scales y by "
                f"{ratio_y:.6g} and x by {ratio_x:.6g}; the recorded pixel size uses x's",
                UserWarning,
                stacklevel=3,
            )
        size *= params.downsample if params.xmipp_compat else ratio_x
    return _Geometry(
        cropped, output, size, _band(params, "highpass", size), _band(params, "lowpass", size)
    )


@dataclass(frozen=True)
class Pipeline:
    """The kernels for one input shape and pixel size, and what they produce.

    Attributes
    ----------
    kernels : list of Kernel
        In the protocol's order, adjacent Fourier steps fused into one kernel.
    input_shape, output_shape : tuple of int
        ``(ny, nx)`` before and after.
    input_pixel_size_A, output_pixel_size_A : float
        Pixel sizes in ångström (NaN when unknown). The output's is isotropic: the input's ×
        ``N_x/floor(N_x/F)`` after a downsample (× ``F`` in ``xmipp_compat``).
    crop_px : int
        Pixels removed from each border: output pixel ``(i, j)`` sits at input pixel
        ``(crop_px + i·scale_yx[0], crop_px + j·scale_yx[1])``.
    scale_yx : tuple of float
        Input pixels per output pixel along y and x (1 without downsampling).
    """

    kernels: list[Kernel]
    input_shape: Shape2D
    output_shape: Shape2D
    input_pixel_size_A: float
    output_pixel_size_A: float
    crop_px: int
    scale_yx: tuple[float, float]


def _on(value: _T | None, name: str) -> _T:
    """An enabled step's value (steps are built only when enabled)."""
    if value is None:
        raise ValueError(f"{name} is not enabled")
    return value


def _fourier_step(params: PreprocessParams, name: str, geometry: _Geometry) -> FourierStep:
    if name == "downsample":
        return Downsample(_on(params.downsample, name))
    if name == "gaussian":
        return Gaussian(_on(params.gaussian, name), params.xmipp_compat)
    if name == "highpass":
        return Highpass(*_on(geometry.highpass, name))
    return Lowpass(*_on(geometry.lowpass, name))


def _single_kernel(params: PreprocessParams, name: str) -> Kernel:
    if name == "crop":
        return crop_kernel(_on(params.crop, name))
    if name == "log":
        return log_kernel(*_on(params.log, name))
    if name == "bad_pixels":
        return bad_pixels_kernel(_on(params.bad_pixels, name))
    if name == "invert":
        return invert_kernel()
    if name == "denoise":
        return denoise_kernel(_on(params.denoise, name), xmipp_compat=params.xmipp_compat)
    return normalize_kernel()


def build_pipeline(
    params: PreprocessParams, shape: Shape2D, pixel_size_A: float | None
) -> Pipeline:
    """The kernels that preprocess one micrograph of ``shape`` and ``pixel_size_A``.

    Parameters
    ----------
    params : PreprocessParams
        The enabled steps.
    shape : tuple of int
        Input ``(ny, nx)``.
    pixel_size_A : float or None
        Input pixel size in ångström; None or NaN when unknown (then ``*_A`` options fail).

    Returns
    -------
    Pipeline
        Empty ``kernels`` when no step is enabled.

    Raises
    ------
    ValueError
        If the parameters do not fit this shape or pixel size (before any work).

    Warns
    -----
    UserWarning
        When downsampling scales y and x by ratios differing by more than 1e-4.
    """
    geometry = pipeline_geometry(params, shape, pixel_size_A, warn=True)
    precision = "float64" if params.xmipp_compat else "float32"
    kernels: list[Kernel] = []
    fused: list[FourierStep] = []
    enabled = params.enabled()
    for name, following in zip(enabled, [*enabled[1:], None], strict=False):
        if name in FOURIER_STEPS:
            fused.append(_fourier_step(params, name, geometry))
            continue
        if name == "invert" and following in FOURIER_STEPS:
            fused.append(Invert())  # linear: folded into the Fourier pass, one frame pass fewer
            continue
        if fused:
            kernels.append(fourier_kernel(fused, precision=precision))
            fused = []
        if name != "crop" or params.crop:
            kernels.append(_single_kernel(params, name))
    if fused:
        kernels.append(fourier_kernel(fused, precision=precision))
    cropped, output = geometry.cropped, geometry.output
    return Pipeline(
        kernels=kernels,
        input_shape=(int(shape[0]), int(shape[1])),
        output_shape=output,
        input_pixel_size_A=float("nan") if pixel_size_A is None else float(pixel_size_A),
        output_pixel_size_A=geometry.pixel_size_A,
        crop_px=params.crop or 0,
        scale_yx=(cropped[0] / output[0], cropped[1] / output[1]),
    )
