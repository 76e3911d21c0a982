"""Whether a lazy array still holds what daskmic computed from the files.

:func:`daskmic.write` reruns the per-micrograph unit on the files behind a lazy result, so it
writes what the user holds only while the user holds that result unchanged, or one selection of
its micrographs. :func:`daskmic.open_micrographs`, :func:`daskmic.preprocess` and
:func:`daskmic.tilt_analysis` record in ``attrs["daskmic_origin"]`` what made their result
(``kind``), its micrographs and the dask name of each variable; :func:`origin_kind` tells
whether an array is still such a result.

Dask names identify a computation: any change (``out * 2``, ``out.where(...)``, a flip) gives a
new name, and one selection of micrographs, by position (``isel``), label (``sel``), mask or
slice, gives the name that the same selection of the recorded array gives. A computed copy
(``.compute()``, ``.load()``) holds numpy arrays whose history is lost; ``.persist()`` keeps
the names.
"""

from __future__ import annotations

from typing import TypeVar

import dask.array as da
import numpy as np
import xarray as xr
from dask.highlevelgraph import HighLevelGraph

ORIGIN = "daskmic_origin"
"""The attribute holding the record."""

_Result = TypeVar("_Result", xr.DataArray, xr.Dataset)


def _variables(obj: xr.DataArray | xr.Dataset) -> dict[str, xr.Variable]:
    if isinstance(obj, xr.Dataset):
        return {str(name): var.variable for name, var in obj.data_vars.items()}
    return {"": obj.variable}


def record(obj: _Result, kind: str | None) -> _Result:
    """``obj`` with its origin recorded as ``kind``, or with no record when ``kind`` is None.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        A fresh, dask-backed result over a ``micrograph`` dimension.
    kind : str or None
        What made it (``"files"``, ``"preprocess"``, ``"tilt"``); None when its input was not
        itself a recorded result, so it cannot be reproduced from the files.
    """
    attrs = {k: v for k, v in obj.attrs.items() if k != ORIGIN}
    if kind is not None:
        attrs[ORIGIN] = {
            "kind": kind,
            "micrographs": [str(name) for name in obj["micrograph"].values],
            "dask_names": {key: var.data.name for key, var in _variables(obj).items()},
        }
    out = obj.copy(deep=False)
    out.attrs = attrs
    return out


def _selection_names(var: xr.Variable, name: str, count: int, positions: list[int]) -> set[str]:
    """The dask names that selecting ``positions`` of the recorded array gives."""
    graph = var.data.__dask_graph__()
    if not isinstance(graph, HighLevelGraph) or name not in graph.layers:
        return set()
    shape = (count, *var.shape[1:])
    recorded = xr.Variable(
        var.dims, da.Array(graph, name, chunks=tuple((s,) for s in shape), dtype=var.dtype)
    )
    dim = var.dims[0]
    names = {recorded.isel({dim: np.asarray(positions, dtype=int)}).data.name}
    steps = set(np.diff(positions).tolist())
    if positions and len(steps) <= 1 and 0 not in steps:  # also as the slices it may have been
        step = steps.pop() if steps else 1
        for start in (positions[0], None):
            for stop in (positions[-1] + (1 if step > 0 else -1), positions[-1] + step, None):
                key = slice(start, stop if stop is None or stop >= 0 else None, step)
                if list(range(count))[key] == positions:
                    names.add(recorded.isel({dim: key}).data.name)
    return names


def origin_kind(obj: xr.DataArray | xr.Dataset) -> str | None:
    """The recorded ``kind`` if ``obj`` is a recorded result or one selection of its micrographs.

    Returns
    -------
    str or None
        None for an array that was changed, computed into memory, selected twice, lost its
        ``micrograph`` dimension, or never recorded.
    """
    origin = obj.attrs.get(ORIGIN)
    if not isinstance(origin, dict) or "micrograph" not in obj.dims:
        return None
    index = {name: i for i, name in enumerate(origin["micrographs"])}
    held = [str(name) for name in obj["micrograph"].values]
    if any(name not in index for name in held):
        return None
    positions = [index[name] for name in held]
    variables = _variables(obj)
    for key, name in origin["dask_names"].items():
        var = variables.get(key)
        if var is None:
            continue
        if not isinstance(var.data, da.Array) or var.dims[0] != "micrograph":
            return None
        if var.data.name != name or positions != list(range(len(index))):
            if var.data.name not in _selection_names(var, name, len(index), positions):
                return None
    return str(origin["kind"])
