"""The lazy face of preprocessing: :func:`preprocess` on a stack of micrographs.

The kernels are :func:`daskmic.preprocessing.pipeline.build_pipeline`'s, the same the
production face applies one micrograph at a time, lifted onto dask by
:func:`daskmic.ops.lift.lift`.
"""

from __future__ import annotations

import math
from typing import Any, Final

import dask.array as da
import numpy as np
import xarray as xr

from daskmic.io.origin import origin_kind, record
from daskmic.ops.kernel import Kernel
from daskmic.ops.lift import lift
from daskmic.preprocessing.params import ORDER, PreprocessParams
from daskmic.preprocessing.pipeline import Pipeline, build_pipeline

DIMS: Final = ("micrograph", "y", "x")


def _lazy_stack(mics: xr.DataArray) -> da.Array:
    if isinstance(mics.data, da.Array):
        return mics.data
    return da.from_array(np.asarray(mics.data), chunks=(1, -1, -1))


def _apply(kernels: list[Kernel], stack: da.Array) -> da.Array:
    for kernel in kernels:
        stack = lift(kernel, stack)
    return stack


def _apply_grouped(stack: da.Array, keys: list, pipelines: dict[Any, Pipeline]) -> da.Array:
    """Apply each pixel size's kernels to its micrographs, keeping the stack's order."""
    parts, positions = [], []
    for key, pipeline in pipelines.items():
        index = [i for i, k in enumerate(keys) if k == key]
        parts.append(_apply(pipeline.kernels, stack[index]))
        positions.extend(index)
    return da.concatenate(parts, axis=0)[np.argsort(positions)]


def _pixel_sizes(mics: xr.DataArray) -> list[float | None]:
    """Per-micrograph pixel sizes; None where unknown (NaN or no coordinate)."""
    count = mics.sizes["micrograph"]
    if "pixel_size_A" not in mics.coords:
        return [None] * count
    values = np.broadcast_to(np.asarray(mics["pixel_size_A"].values, dtype=float), (count,))
    return [float(v) if math.isfinite(v) else None for v in values]


def _spatial(coord: xr.DataArray, crop_px: int, scale: float, size: int) -> xr.Variable:
    """Coordinates of the output samples, in the input coordinate's units."""
    values = np.asarray(coord.values, dtype=float)
    spacing = (values[-1] - values[0]) / (values.size - 1) if values.size > 1 else 1.0
    start = values[0] if values.size else 0.0
    return xr.Variable(
        coord.dims, start + (crop_px + np.arange(size) * scale) * spacing, attrs=coord.attrs
    )


def preprocess(
    mics: xr.DataArray,
    *,
    crop: int | bool | None = None,
    log: tuple[float, float, float] | bool | None = None,
    bad_pixels: float | bool | None = None,
    invert: bool = False,
    downsample: float | bool | None = None,
    denoise: int | bool | None = None,
    gaussian: float | bool | None = None,
    highpass: tuple[float, float] | float | bool | None = None,
    lowpass: tuple[float, float] | float | bool | None = None,
    normalize: bool = False,
    xmipp_compat: bool = False,
    highpass_A: tuple[float, float] | float | None = None,
    lowpass_A: tuple[float, float] | float | None = None,
) -> xr.DataArray:
    """Preprocess a stack of micrographs lazily, in the protocol's order.

    Each option is off when ``None``/``False``, takes the protocol's default when ``True``,
    and otherwise its value (see :class:`~daskmic.preprocessing.params.PreprocessParams`).
    Parameters are checked against the stack's shape and pixel sizes before anything runs.

    Parameters
    ----------
    mics : xarray.DataArray
        Dims ``("micrograph", "y", "x")``, as :func:`daskmic.open_micrographs` returns, with a
        per-micrograph ``pixel_size_A`` coordinate (NaN where unknown).
    crop, log, bad_pixels, invert, downsample, denoise, gaussian, highpass, lowpass, normalize
        The protocol's steps; see :class:`~daskmic.preprocessing.params.PreprocessParams`.
    xmipp_compat : bool
        Reproduce the reference's quirks.
    highpass_A, lowpass_A : tuple of float or float, optional
        ``(cutoff_A, width)``: cutoff as a resolution in ångström instead of cycles/pixel.

    Returns
    -------
    xarray.DataArray
        Lazy float32 stack (whole frames per chunk after any full-frame step) with the input's
        per-micrograph coordinates, ``pixel_size_A`` updated, ``y``/``x`` giving each output
        sample's position in the input's units, and attrs ``parameters`` (JSON-able),
        ``crop_px``, ``xmipp_compat`` and, when ``mics`` holds files as opened by
        :func:`daskmic.open_micrographs` (or a selection of them), ``daskmic_origin``, which
        :func:`daskmic.write` needs (see ``daskmic.io.origin``).

    Raises
    ------
    ValueError
        For invalid parameters, parameters that do not fit the stack, no enabled step, or an
        empty stack.

    Examples
    --------
    A stack in memory works as well as one opened from files:

    >>> import numpy as np
    >>> import xarray as xr
    >>> import daskmic as dm
    >>> counts = np.random.default_rng(0).poisson(100.0, (2, 256, 256)).astype(np.float32)
    >>> coords = {"micrograph": ["a", "b"], "pixel_size_A": ("micrograph", [1.0, 1.0])}
    >>> mics = xr.DataArray(counts, dims=("micrograph", "y", "x"), coords=coords)
    >>> out = dm.preprocess(mics, crop=True, downsample=2.0, normalize=True)   # lazy
    >>> out.shape, float(out["pixel_size_A"][0]), out.attrs["crop_px"]
    ((2, 118, 118), 2.0, 10)
    >>> first = out[0].compute()
    >>> abs(float(first.mean())) < 1e-6, round(float(first.std()), 6)
    (True, 1.0)
    """
    params = PreprocessParams.from_options(
        crop=crop,
        log=log,
        bad_pixels=bad_pixels,
        invert=invert,
        downsample=downsample,
        denoise=denoise,
        gaussian=gaussian,
        highpass=highpass,
        lowpass=lowpass,
        normalize=normalize,
        xmipp_compat=xmipp_compat,
        highpass_A=highpass_A,
        lowpass_A=lowpass_A,
    )
    if not params.enabled():
        raise ValueError(f"preprocess: no step enabled; enable at least one of {list(ORDER)}")
    if tuple(mics.dims) != DIMS:
        raise ValueError(f"preprocess: expected dims {DIMS}, got {tuple(mics.dims)}")
    if mics.sizes["micrograph"] == 0:
        raise ValueError("preprocess: the stack holds no micrograph")
    shape = (mics.sizes["y"], mics.sizes["x"])
    keys = _pixel_sizes(mics)
    pipelines = {key: build_pipeline(params, shape, key) for key in dict.fromkeys(keys)}
    first = next(iter(pipelines.values()))
    stack = _lazy_stack(mics)
    by_pixel_size = params.highpass_A is not None or params.lowpass_A is not None
    if by_pixel_size and len(pipelines) > 1:
        data = _apply_grouped(stack, keys, pipelines)
    else:
        data = _apply(first.kernels, stack)
    coords: dict[str, Any] = {
        str(name): coord for name, coord in mics.coords.items() if set(coord.dims) <= {"micrograph"}
    }
    coords["pixel_size_A"] = ("micrograph", [pipelines[k].output_pixel_size_A for k in keys])
    coords["input_pixel_size_A"] = ("micrograph", np.asarray(mics["pixel_size_A"].values, float))
    for axis, dim in enumerate(("y", "x")):
        if dim in mics.coords:
            coords[dim] = _spatial(
                mics[dim], first.crop_px, first.scale_yx[axis], first.output_shape[axis]
            )
    attrs = {
        **mics.attrs,
        "parameters": params.to_dict(),
        "crop_px": first.crop_px,
        "xmipp_compat": params.xmipp_compat,
    }
    result = xr.DataArray(data, dims=DIMS, coords=coords, attrs=attrs, name=mics.name)
    return record(result, "preprocess" if origin_kind(mics) == "files" else None)
