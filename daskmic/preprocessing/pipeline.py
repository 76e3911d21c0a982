"""The ordered pipeline of enabled preprocessing operations for one micrograph shape.

:func:`build_pipeline` turns :class:`~daskmic.preprocessing.params.PreprocessParams` into the list
of kernels for one input shape and pixel size, adjacent Fourier steps fused into one pass. The
production face (:mod:`daskmic.run.unit`) applies the kernels eagerly, one micrograph at a time; the
lazy face (:func:`daskmic.preprocessing.lazy.preprocess`) lifts the same kernels onto a dask stack;
there is no second code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

from daskmic.ops.bad_pixels import bad_pixels_kernel
from daskmic.ops.crop import crop_kernel
from daskmic.ops.denoise import denoise_kernel
from daskmic.ops.fourier import (
    Downsample,
    FourierStep,
    Gaussian,
    Highpass,
    Invert,
    Lowpass,
    fourier_kernel,
)
from daskmic.ops.intensity import invert_kernel, log_kernel, normalize_kernel
from daskmic.ops.kernel import Kernel, Shape2D
from daskmic.preprocessing.params import PipelineGeometry, PreprocessParams, pipeline_geometry

FOURIER_STEPS: Final = ("downsample", "gaussian", "highpass", "lowpass")
"""Steps applied in Fourier space, fused into one pass when adjacent."""

_T = TypeVar("_T")

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


def _fourier_step(params: PreprocessParams, name: str, geometry: PipelineGeometry) -> FourierStep:
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
