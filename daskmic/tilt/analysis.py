"""``tilt_analysis``: the lazy tilt screen of a whole micrograph set (the notebook face).

One task per micrograph (per chunk of the ``micrograph`` axis) screens its four corner windows.
Each corner is a slice of the input stack; when the stack comes straight from a reader (its
graph holds only the reader, its chunks and selections), each corner is sliced from its own
clone of that graph so that dask's slice fusion reads only the corner regions from disk. A
micrograph that fails (NaN/Inf or constant corners, too small, a pixel size that cannot support
the resolution) gets status ``"failed"`` and its reason in ``error``; the others are unaffected.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.graph_manipulation import clone
from dask.highlevelgraph import HighLevelGraph

from daskmic.io.origin import origin_kind, record
from daskmic.tilt.angle import ANGLE_COLUMNS, estimate_tilt
from daskmic.tilt.correlate import PAIRS
from daskmic.tilt.decision import decide
from daskmic.tilt.optics import AngleOptics, GivenOptics, optics_for
from daskmic.tilt.params import TiltParams, WindowSize
from daskmic.tilt.screen import corner_regions, screen_windows
from daskmic.tilt.windows import CORNER_LABELS, sub_window_px

PAIR_LABELS = tuple(f"{CORNER_LABELS[a]}-{CORNER_LABELS[b]}" for a, b in PAIRS) + tuple(
    f"{label}-{label}rot" for label in CORNER_LABELS
)
"""Labels of the ten correlations: six corner pairs, then each corner against its rotation."""

_SCALARS = (
    ("tilt_mean_corr", np.float64),
    ("tilt_std_corr", np.float64),
    ("tilt_min_corr", np.float64),
    ("tilt_max_corr", np.float64),
    ("accepted", np.bool_),
    ("status", object),
    ("error", object),
    ("window_size_px", np.int64),
    ("sub_window_px", np.int64),
    ("band_limit_A", np.float64),
)
_SUMMARY = len(_SCALARS) + 1  # position of the PSD summary in a packed result


def _failed(error: str, window_px: int, summary_px: int) -> tuple[Any, ...]:
    """The packed result of a failed micrograph (see :func:`_screen_one`)."""
    nan = np.nan
    scalars = (nan, nan, nan, nan, False, "failed", error, window_px, 0, nan)
    summary = np.full((summary_px, summary_px), np.nan, dtype=np.float32)
    return (np.full(len(PAIR_LABELS), np.nan), *scalars, summary)


def _screen_one(
    windows: Sequence[np.ndarray], pixel_size_A: float, params: TiltParams, summary_px: int
) -> tuple[Any, ...]:
    """Screen one micrograph: ``(correlations, *scalars, NaN-padded summary)``; never raises."""
    window_px = int(np.shape(windows[0])[0])
    try:
        result = screen_windows(windows, pixel_size_A, params)
    except Exception as error:  # one micrograph fails alone, with its reason
        reason = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        return _failed(reason, window_px, summary_px)
    summary = np.full((summary_px, summary_px), np.nan, dtype=np.float32)
    edge = result.psd_summary.shape[0]
    summary[:edge, :edge] = result.psd_summary
    row = result.to_row()
    scalars = (
        *(row[name] for name, _ in _SCALARS[:5]),
        result.status,
        "",
        *(row[name] for name, _ in _SCALARS[7:]),
    )
    return (result.correlations, *scalars, summary)


def _screen_block(
    c00: np.ndarray,
    c02: np.ndarray,
    c20: np.ndarray,
    c22: np.ndarray,
    pixel_sizes_A: np.ndarray,
    *,
    params: TiltParams,
    summary_px: int,
) -> np.ndarray:
    """Screen each micrograph of a block; one packed tuple per micrograph (object array)."""
    out = np.empty(len(pixel_sizes_A), dtype=object)
    for m, pixel_size_A in enumerate(pixel_sizes_A):
        windows = [c00[m], c02[m], c20[m], c22[m]]
        out[m] = _screen_one(windows, float(pixel_size_A), params, summary_px)
    return out


def _fail_block(pixel_sizes_A: np.ndarray, *, error: str) -> np.ndarray:
    """Failed results for a block whose micrographs cannot hold a window."""
    out = np.empty(len(pixel_sizes_A), dtype=object)
    for m in range(len(pixel_sizes_A)):
        out[m] = _failed(error, 0, 0)
    return out


def _take(packed: np.ndarray, k: int, dtype: Any) -> np.ndarray:
    """Item ``k`` of each packed result, stacked along a leading micrograph axis."""
    return np.asarray([p[k] for p in packed], dtype=dtype)


def _reads_only(data: da.Array) -> bool:
    """Whether ``data``'s graph only reads (a source, its chunks and ``getitem`` selections)."""
    graph = data.__dask_graph__()
    if not isinstance(graph, HighLevelGraph):
        return False
    try:
        dependencies = graph.dependencies
        for name in graph.layers:
            if name.startswith("getitem-"):
                continue
            if any(dependencies[parent] for parent in dependencies[name]):
                return False
        return True
    except (KeyError, TypeError):
        return False


def _corners(data: da.Array, params: TiltParams) -> list[da.Array]:
    """The four corner stacks ``(micrograph, w', w')``, cloned per corner for plain reads."""
    regions = corner_regions(data.shape[1:], params)
    independent = _reads_only(data)
    return [(clone(data) if independent else data)[(slice(None), *r)] for r in regions]


def tilt_analysis(
    mics: xr.DataArray,
    *,
    window_size: WindowSize = TiltParams.window_size,
    resolution_A: float = TiltParams.resolution_A,
    mean_threshold: float = TiltParams.mean_threshold,
    std_threshold: float = TiltParams.std_threshold,
    xmipp_compat: bool = TiltParams.xmipp_compat,
    estimate_angle: bool = TiltParams.estimate_angle,
    max_tilt_deg: float | None = TiltParams.max_tilt_deg,
    optics: GivenOptics | None = None,
    resolution: float | None = None,
) -> xr.Dataset:
    """Screen every micrograph of a set for tilt, lazily (Xmipp's *Tilt Analysis*).

    Parameters
    ----------
    mics : xarray.DataArray
        Dims ``(micrograph, y, x)`` with a ``pixel_size_A`` coordinate per micrograph (the data
        contract of :func:`daskmic.open_micrographs`); numpy- or dask-backed.
    window_size : int or "auto"
        Corner window edge in pixels (>= 256), or ``"auto"`` (per micrograph: the first of
        4096, 2048, 1024, 512, 256 strictly below ``int(min(ny, nx) / 2.5)``).
    resolution_A : float
        Objective resolution in Å; the compared band reaches ``1 / (2 * resolution_A)``.
    mean_threshold, std_threshold : float
        Accept iff the mean of the ten correlations is above ``mean_threshold`` and their
        population standard deviation below ``std_threshold`` (both strict).
    xmipp_compat : bool
        Reproduce the reference's quirks, to match xmippLib number for number.
    estimate_angle : bool
        Also estimate each micrograph's tilt angle and axis from its local defocus
        (:func:`daskmic.tilt.angle.estimate_tilt`; reads whole micrographs): adds the
        variables named in :data:`daskmic.tilt.angle.ANGLE_COLUMNS`.
    max_tilt_deg : float, optional
        With ``estimate_angle``: also discard micrographs tilted by more than this.
    optics : mapping, optional
        ``voltage_kV``, ``spherical_aberration_mm``, ``amplitude_contrast`` for the angle fit;
        values not given come from the input table's optics group, else the defaults of
        :class:`daskmic.tilt.ctf.Optics` (as in the STAR tables a run writes).
    resolution : float, optional
        Deprecated name of ``resolution_A``.

    Returns
    -------
    xarray.Dataset
        Lazy (dask-backed) variables over ``micrograph`` (its coordinates are carried over):
        ``tilt_correlations`` (micrograph, pair), ``tilt_mean_corr``, ``tilt_std_corr``,
        ``tilt_min_corr``, ``tilt_max_corr`` (float64), ``accepted`` (bool), ``status``
        (``"accepted"``, ``"discarded"`` or ``"failed"``), ``discard_reason`` (str: why a
        micrograph was discarded, see ``daskmic.tilt.decision``), ``error`` (str, empty
        unless failed), ``window_size_px``, ``sub_window_px`` (int; 0 when unknown),
        ``band_limit_A`` (float64) and ``psd_summary`` (micrograph, v, u; float32). Sub-window
        sizes differ between micrographs of different pixel sizes: every summary sits at the
        top-left of a ``(2 max(sub) - 1)²`` frame padded with NaN.

    Raises
    ------
    ValueError
        Before any work starts, on invalid parameters or parameters that no micrograph of the
        set can support.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> import daskmic as dm
    >>> from daskmic.datasets import synthesize_micrograph
    >>> images = [synthesize_micrograph((1024, 1024), pixel_size_A=2.0, phase_std=0.3,
    ...                                 tilt_angle_deg=tilt, seed=1)[0] for tilt in (0.0, 60.0)]
    >>> mics = xr.DataArray(np.stack(images), dims=("micrograph", "y", "x"),
    ...                     coords={"micrograph": ["flat", "tilted"],
    ...                             "pixel_size_A": ("micrograph", [2.0, 2.0])})
    >>> qc = dm.tilt_analysis(mics, resolution_A=3.0).compute()
    >>> qc["status"].values.tolist(), qc["window_size_px"].values.tolist()
    (['accepted', 'discarded'], [256, 256])
    >>> bool(qc["tilt_std_corr"][0] < qc["tilt_std_corr"][1])
    True
    """
    if resolution is not None:
        warnings.warn(
            "tilt_analysis: 'resolution' is now 'resolution_A'", DeprecationWarning, stacklevel=2
        )
        resolution_A = resolution
    params = TiltParams(
        window_size=window_size,
        resolution_A=resolution_A,
        mean_threshold=mean_threshold,
        std_threshold=std_threshold,
        xmipp_compat=xmipp_compat,
        estimate_angle=estimate_angle,
        max_tilt_deg=max_tilt_deg,
    )
    if mics.dims != ("micrograph", "y", "x"):
        raise ValueError(f"expected dims ('micrograph', 'y', 'x'), got {mics.dims}")
    if "pixel_size_A" not in mics.coords:
        raise ValueError("the micrographs need a 'pixel_size_A' coordinate")
    shape = (mics.sizes["y"], mics.sizes["x"])
    pixel_sizes = np.asarray(mics["pixel_size_A"].values, dtype=np.float64)
    params.validate_for_set([shape] * len(pixel_sizes), list(pixel_sizes))
    data = mics.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(1, -1, -1))
    packed, summary_px = _packed(data, pixel_sizes, params, shape)
    coords = {name: coord for name, coord in mics.coords.items() if coord.dims == ("micrograph",)}
    coords["pair"] = list(PAIR_LABELS)
    attrs = {f"tilt_{key}": value for key, value in params.to_dict().items()}
    attrs["tilt_window_size"] = str(params.window_size)
    attrs["tilt_xmipp_compat"] = int(params.xmipp_compat)
    attrs["tilt_estimate_angle"] = int(params.estimate_angle)
    attrs["tilt_max_tilt_deg"] = "" if max_tilt_deg is None else float(max_tilt_deg)
    screen = xr.Dataset(_variables(packed, summary_px), coords=coords, attrs=attrs)
    if params.estimate_angle:
        screen = _angles(screen, mics, data, pixel_sizes, optics)
    return record(_decided(screen, params), "tilt" if origin_kind(mics) == "files" else None)


def _angles(
    screen: xr.Dataset,
    mics: xr.DataArray,
    data: da.Array,
    pixel_sizes: np.ndarray,
    optics: GivenOptics | None,
) -> xr.Dataset:
    """The screen with the angle variables, each micrograph fitted with its optics group's."""
    groups = mics.coords.get("rlnOpticsGroup")
    per_micrograph = [
        optics_for(
            optics,
            None if groups is None else groups.values[i],
            mics.attrs.get("optics") or [],
        )
        for i in range(len(pixel_sizes))
    ]
    return _with_angles(screen, data, pixel_sizes, per_micrograph)


def _packed(
    data: da.Array, pixel_sizes_A: np.ndarray, params: TiltParams, shape: tuple[int, int]
) -> tuple[da.Array, int]:
    """One object per micrograph holding its packed result, and the summary frame's edge."""
    sizes = da.from_array(pixel_sizes_A, chunks=(data.chunks[0],))
    try:
        window = params.window_size_px(shape)
    except ValueError as error:
        return sizes.map_blocks(_fail_block, error=str(error), dtype=object), 0
    subs = []
    for pixel_size_A in pixel_sizes_A:
        try:
            subs.append(sub_window_px(window, float(pixel_size_A), params.resolution_A))
        except ValueError:
            continue
    summary_px = max([2 * sub - 1 for sub in subs] or [0])
    corners = _corners(data, params)
    packed = da.blockwise(
        _screen_block,
        "m",
        *(
            arg
            for corner, index in zip(corners, ("mab", "mcd", "mef", "mgh"), strict=True)
            for arg in (corner, index)
        ),
        sizes,
        "m",
        params=params,
        summary_px=summary_px,
        dtype=object,
        concatenate=True,
        meta=np.empty((0,), dtype=object),
    )
    return packed, summary_px


def _variables(packed: da.Array, summary_px: int) -> dict[str, tuple[tuple[str, ...], da.Array]]:
    """Turn the packed results into lazy variables (one small task each per chunk)."""
    rows = packed.chunks[0]
    n_pairs = len(PAIR_LABELS)
    correlations = da.map_blocks(
        _take, packed, 0, np.float64, dtype=np.float64, new_axis=1, chunks=(rows, (n_pairs,))
    )
    variables: dict[str, tuple[tuple[str, ...], da.Array]] = {
        "tilt_correlations": (("micrograph", "pair"), correlations)
    }
    for k, (name, dtype) in enumerate(_SCALARS, start=1):
        variables[name] = (("micrograph",), da.map_blocks(_take, packed, k, dtype, dtype=dtype))
    variables["psd_summary"] = (
        ("micrograph", "v", "u"),
        da.map_blocks(
            _take,
            packed,
            _SUMMARY,
            np.float32,
            dtype=np.float32,
            new_axis=[1, 2],
            chunks=(rows, (summary_px,), (summary_px,)),
        ),
    )
    return variables


def _angle_block(frames: np.ndarray, pixel_sizes_A: np.ndarray, optics: np.ndarray) -> np.ndarray:
    """Estimate the tilt of each whole micrograph of a block; a row dict each, never raises."""
    out = np.empty(len(frames), dtype=object)
    for m, frame in enumerate(frames):
        try:
            out[m] = estimate_tilt(frame, float(pixel_sizes_A[m]), **optics[m]).as_row()
        except Exception as error:  # one micrograph fails alone, with its reason
            out[m] = {name: np.nan for name in ANGLE_COLUMNS}
            out[m].update(patch_notes="", angle_status="failed", angle_message=str(error))
    return out


def _field(rows: np.ndarray, name: str, dtype: Any) -> np.ndarray:
    return np.asarray([row[name] for row in rows], dtype=dtype)


def _with_angles(
    screen: xr.Dataset,
    data: da.Array,
    pixel_sizes_A: np.ndarray,
    optics: list[AngleOptics],
) -> xr.Dataset:
    """Add the lazy tilt-angle variables to a screen."""
    frames = data.rechunk({0: 1, 1: -1, 2: -1})
    chunks = (frames.chunks[0],)
    sizes = da.from_array(pixel_sizes_A, chunks=chunks)
    optics_array = np.empty(len(optics), dtype=object)
    optics_array[:] = optics
    rows = da.blockwise(
        _angle_block,
        "m",
        frames,
        "myx",
        sizes,
        "m",
        da.from_array(optics_array, chunks=chunks),
        "m",
        dtype=object,
        concatenate=True,
        meta=np.empty((0,), dtype=object),
    )
    for name in ANGLE_COLUMNS:
        dtype = object if name in ("patch_notes", "angle_status", "angle_message") else np.float64
        screen[name] = ("micrograph", rows.map_blocks(_field, name, dtype, dtype=dtype))
    return screen


def _decide_block(
    mean: np.ndarray, std: np.ndarray, failed: np.ndarray, *angle: np.ndarray, params: TiltParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return decide(
        mean,
        std,
        mean_threshold=params.mean_threshold,
        std_threshold=params.std_threshold,
        max_tilt_deg=params.max_tilt_deg,
        angle_deg=angle[0] if angle else None,
        failed=failed,
    )


def _decided(screen: xr.Dataset, params: TiltParams) -> xr.Dataset:
    """Accept or discard each micrograph by the one rule, lazily; adds ``discard_reason``."""
    inputs = [screen["tilt_mean_corr"], screen["tilt_std_corr"], screen["status"] == "failed"]
    if params.max_tilt_deg is not None:
        inputs.append(screen["tilt_angle_deg"])
    accepted, status, reason = xr.apply_ufunc(
        _decide_block,
        *inputs,
        kwargs={"params": params},
        output_core_dims=[[], [], []],
        dask="parallelized",
        output_dtypes=[np.bool_, object, object],
    )
    return screen.assign(accepted=accepted, status=status, discard_reason=reason)
