"""Fourier-domain operations, fused: downsample, Gaussian, high-pass, low-pass (spec A.2 #5, #7–#9).

Any run of adjacent Fourier steps is one full-frame kernel (:func:`fourier_kernel`): one
``rfft2`` of the exact input shape (no padding: the filters are periodic, as in Xmipp), a crop
of the spectrum if downsampling, one multiplication by the product of the masks (each built on
the grid of its step, i.e. the downsampled grid after a downsample, and cached per shape), and
one ``irfft2`` at the output shape. This equals applying the steps one by one, because every
mask is real and symmetric in ``±f``.

Precision: by default the transforms run in float32 on the image minus its float64 mean, which
is added back times the filters' gain at zero frequency, so the rounding error scales with the
image's standard deviation, not its mean. Against float64 transforms, the largest error
measured is 2.3e-6 of the output's standard deviation on white noise up to 1024² (prime sizes
included) and 7.3e-6 for a strong low-pass (cutoff 0.05) of white noise at 4096², half of it
the float32 rounding of the output itself: inside design.md's 1e-5 tolerance, for about half
the time. ``precision="float64"`` gives double-precision transforms (used by
``xmipp_compat``, as Xmipp works in double).

Threads: ``scipy.fft`` uses all cores when called from the main thread (one micrograph at a
time, eagerly) and one core inside dask's worker threads, where micrographs already run in
parallel. Pass ``workers`` to override.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from types import ModuleType

import numpy as np

from daskmic.ops.fourier_masks import (
    build_gaussian,
    build_highpass,
    build_lowpass,
    gaussian_mask,
    half_plane_shape,
    highpass_mask,
    lowpass_mask,
)
from daskmic.ops.kernel import FULL_FRAME, Kernel, Shape2D

_BLOCK_PIXELS = 1 << 20
"""Pixels centred and row-transformed at a time (a 4 MB float32 block)."""

__all__ = [
    "Downsample",
    "Invert",
    "FourierStep",
    "Gaussian",
    "Highpass",
    "Lowpass",
    "downsampled_shape",
    "fourier_kernel",
    "gaussian_mask",
    "highpass_mask",
    "lowpass_mask",
]


def _positive(name: str, value: float, *, above: float = 0.0, below: float = math.inf) -> None:
    valid = f"{above} < value < {below}" if math.isfinite(below) else f"value > {above}"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name}: expected a number, got {value!r}; valid range: {valid}")
    if not (above < value < below):
        raise ValueError(f"{name}: got {value}; valid range: {valid}")


@dataclass(frozen=True)
class Downsample:
    """Fourier crop to ``floor(N/factor)`` pixels per axis; mean preserved, no taper."""

    factor: float

    def __post_init__(self) -> None:
        _positive("downsample factor", self.factor, above=1.0)


@dataclass(frozen=True)
class Gaussian:
    """Gaussian blur of real-space standard deviation ``sigma_px`` (see ``gaussian_mask``)."""

    sigma_px: float
    xmipp_compat: bool = False

    def __post_init__(self) -> None:
        _positive("gaussian sigma_px", self.sigma_px)


@dataclass(frozen=True)
class Highpass:
    """Raised-cosine high-pass, passband edge ``cutoff``, transition ``width`` below it."""

    cutoff: float
    width: float

    def __post_init__(self) -> None:
        _positive("highpass cutoff", self.cutoff, below=0.5)
        _positive("highpass width", self.width)


@dataclass(frozen=True)
class Lowpass:
    """Raised-cosine low-pass, passband edge ``cutoff``, transition ``width`` above it."""

    cutoff: float
    width: float

    def __post_init__(self) -> None:
        _positive("lowpass cutoff", self.cutoff, below=0.5)
        _positive("lowpass width", self.width)


@dataclass(frozen=True)
class Invert:
    """Contrast inversion (× -1) folded into the pass: it is linear, so it commutes with the
    masks, and negating the centred rows as they are transformed saves a whole-frame pass.
    The result is bit-identical to inverting first (IEEE negation is exact)."""


FourierStep = Invert | Downsample | Gaussian | Highpass | Lowpass


def _fft() -> ModuleType:
    """``scipy.fft``, imported on the first transform: parsing options and checking shapes
    (:mod:`daskmic.preprocessing.params`) need this module, not its transforms."""
    import scipy.fft

    return scipy.fft


def downsampled_shape(shape: Shape2D, factor: float) -> Shape2D:
    """Output shape ``(floor(ny/factor), floor(nx/factor))`` of a Fourier downsample.

    Raises
    ------
    ValueError
        If an axis would keep no pixel.
    """
    ny, nx = (int(n) for n in shape)
    out = int(ny / factor), int(nx / factor)
    if min(out) < 1:
        raise ValueError(
            f"downsample: factor {factor} leaves no pixel of a {ny}×{nx} image; "
            f"valid range: 1 < factor ≤ {min(ny, nx)}"
        )
    return out


def _mask(step: Gaussian | Highpass | Lowpass, shape: Shape2D) -> np.ndarray:
    if isinstance(step, Gaussian):
        return build_gaussian(shape, step.sigma_px, step.xmipp_compat)
    if isinstance(step, Highpass):
        return build_highpass(shape, step.cutoff, step.width)
    return build_lowpass(shape, step.cutoff, step.width)


@dataclass(frozen=True)
class _Plan:
    """What one fused pass needs for one input shape."""

    output_shape: Shape2D
    mask: np.ndarray  # on the output half-plane, includes the 1/N scale of the transforms
    dc_gain: float  # gain of the masks at zero frequency


@lru_cache(maxsize=4)
def _plan(steps: tuple[FourierStep, ...], shape: Shape2D, precision: str) -> _Plan:
    output_shape = shape
    if steps and isinstance(steps[0], Downsample):
        output_shape = downsampled_shape(shape, steps[0].factor)
    mask = np.full(half_plane_shape(output_shape), 1.0 / (shape[0] * shape[1]))
    for step in steps:
        if isinstance(step, Gaussian | Highpass | Lowpass):  # an Invert comes first, stripped
            mask *= _mask(step, output_shape)
    dc_gain = float(mask[0, 0] * shape[0] * shape[1])
    mask = mask.astype(precision)
    mask.flags.writeable = False
    return _Plan(output_shape, mask, dc_gain)


def _forward(
    image: np.ndarray,
    shift: np.floating,
    columns: int,
    precision: str,
    threads: int,
    *,
    negate: bool = False,
) -> np.ndarray:
    """``rfft2(image - shift)`` (``rfft2(shift - image)`` if ``negate``), first ``columns`` columns.

    The rows are centred and transformed block by block, so the image is never copied whole,
    and the column transforms run only on the columns kept (about half when downsampling by 2).
    """
    ny, nx = image.shape
    half = np.empty((ny, columns), dtype=np.result_type(precision, np.complex64))
    step = max(1, _BLOCK_PIXELS // nx)
    for start in range(0, ny, step):
        block = image[start : start + step]
        rows = (
            np.subtract(shift, block, dtype=precision)
            if negate
            else np.subtract(block, shift, dtype=precision)
        )
        spectrum = _fft().rfft(rows, axis=1, workers=threads, overwrite_x=True)
        half[start : start + step] = spectrum[:, :columns]
    return _fft().fft(half, axis=0, workers=threads, overwrite_x=True)


def _crop_rows(spectrum: np.ndarray, ny: int) -> np.ndarray:
    """Keep the rows of an ``ny``-row grid: frequencies ``0..ny//2`` and the most negative ones.

    That is rows ``0..ny//2`` and the last ``ny - ny//2 - 1`` rows; for an even ``ny`` the
    Nyquist row is taken from the positive side, as Xmipp does (spec A.2 #5). No taper.
    """
    top = ny // 2 + 1
    out = np.empty((ny, spectrum.shape[1]), dtype=spectrum.dtype)
    out[:top] = spectrum[:top]
    if ny > top:
        out[top:] = spectrum[spectrum.shape[0] - (ny - top) :]
    return out


def _fft_workers(workers: int | None) -> int:
    if workers is not None:
        return workers
    return -1 if threading.current_thread() is threading.main_thread() else 1


def _fused(
    image: np.ndarray, steps: tuple[FourierStep, ...], workers: int | None, precision: str
) -> np.ndarray:
    shape = (int(image.shape[0]), int(image.shape[1]))
    negate = isinstance(steps[0], Invert)
    plan = _plan(steps[1:] if negate else steps, shape, precision)
    threads = _fft_workers(workers)
    shift = np.dtype(precision).type(np.mean(image, dtype=np.float64))
    spectrum = _forward(image, shift, plan.mask.shape[1], precision, threads, negate=negate)
    if plan.output_shape[0] != shape[0]:
        spectrum = _crop_rows(spectrum, plan.output_shape[0])
    spectrum *= plan.mask
    out = _fft().irfft2(
        spectrum, s=plan.output_shape, norm="forward", workers=threads, overwrite_x=True
    )
    out += out.dtype.type(float(-shift if negate else shift) * plan.dc_gain)
    return out.astype(np.float32, copy=False)


def fourier_output_shape(shape: Shape2D, steps: tuple[FourierStep, ...]) -> Shape2D:
    """Output shape of the fused pass over ``steps`` for an input of ``shape``."""
    for step in steps[:2]:
        if isinstance(step, Downsample):
            return downsampled_shape(shape, step.factor)
    return (int(shape[0]), int(shape[1]))


def fourier_kernel(
    steps: Sequence[FourierStep], *, precision: str = "float32", workers: int | None = None
) -> Kernel:
    """One kernel applying adjacent Fourier steps with one forward and one inverse transform.

    Parameters
    ----------
    steps : sequence of Invert, Downsample, Gaussian, Highpass, Lowpass
        Applied in the given order (the protocol's: invert, downsample, Gaussian, high-pass,
        low-pass). An :class:`Invert` may only come first, a :class:`Downsample` only first or
        right after it; masks after a downsample are built on the downsampled grid, in
        cycles/pixel of that grid.
    precision : {"float32", "float64"}, optional
        Working precision of the transforms (the output is float32 either way).
    workers : int, optional
        Threads for ``scipy.fft``; by default all cores from the main thread, one elsewhere.

    Returns
    -------
    Kernel
        Full-frame kernel, float32 output of shape ``floor(N/factor)`` per axis when
        downsampling, else the input's.

    Raises
    ------
    ValueError
        If ``steps`` is empty, holds something else, or has a downsample after the first step,
        or if ``precision`` is not one of the two.
    """
    if precision not in ("float32", "float64"):
        raise ValueError(
            f"fourier_kernel: precision {precision!r}; valid values: 'float32', 'float64'"
        )
    steps = tuple(steps)
    if not steps:
        raise ValueError("fourier_kernel: steps is empty; give at least one Fourier step")
    inverted = isinstance(steps[0], Invert)
    for position, step in enumerate(steps):
        if not isinstance(step, Invert | Downsample | Gaussian | Highpass | Lowpass):
            raise ValueError(f"fourier_kernel: {step!r} is not a Fourier step")
        if isinstance(step, Invert) and position > 0:
            raise ValueError(
                "fourier_kernel: an invert must be the first step of a fused pass "
                f"(found at position {position})"
            )
        if isinstance(step, Downsample) and position > int(inverted):
            raise ValueError(
                "fourier_kernel: a downsample must be the first step of a fused pass, or the "
                f"second after an invert (found at position {position})"
            )
    return Kernel(
        name="fourier",
        func=partial(_fused, steps=steps, workers=workers, precision=precision),
        halo=FULL_FRAME,
        output_shape=partial(fourier_output_shape, steps=steps),
    )
