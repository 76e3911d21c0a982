"""``daskmic.write``: turn the notebook face's lazy results into an output folder.

The lazy objects record what made them (the steps' parameters, the source files). Writing runs
the production unit, :func:`daskmic.run.unit.process_micrograph`, on those files with those
parameters, so a notebook's ``write`` and the command line give identical folders, resume the
same way, and a bad micrograph fails alone. Changes made to the arrays by other means than
daskmic's own steps are not written: save such arrays with xarray's own ``to_zarr``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client

from daskmic.errors import UsageError
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.driver import RunSummary, bind, execute, sources_from
from daskmic.run.unit import Row, Source
from daskmic.tilt.params import TiltParams


def _tilt_params(qc: xr.Dataset) -> TiltParams:
    values = {
        key.removeprefix("tilt_"): value
        for key, value in qc.attrs.items()
        if key.startswith("tilt_")
    }
    window = str(values.get("window_size", "auto"))
    values["window_size"] = window if window == "auto" else int(window)
    values["xmipp_compat"] = bool(values.get("xmipp_compat", False))
    values["estimate_angle"] = bool(values.get("estimate_angle", False))
    values["max_tilt_deg"] = values.get("max_tilt_deg") or None
    return TiltParams.from_dict(values)


def _sources(micrographs: xr.DataArray | None, qc: xr.Dataset | None) -> list[Source]:
    """The input files behind the lazy objects, with their input pixel sizes."""
    if qc is not None:
        sources = sources_from(qc)
        if micrographs is not None:
            sources += [s for s in sources_from(micrographs) if s.error]
        return sorted({s.micrograph: s for s in sources}.values(), key=lambda s: s.micrograph)
    assert micrographs is not None
    if "input_pixel_size_A" not in micrographs.coords:
        raise UsageError(
            "write: the micrographs carry no 'input_pixel_size_A'; pass the "
            "result of daskmic.preprocess"
        )
    inputs = micrographs.assign_coords(pixel_size_A=micrographs["input_pixel_size_A"])
    return [s for s in sources_from(inputs.drop_vars("input_pixel_size_A"))]


def write(
    micrographs: xr.DataArray | None,
    out_dir: str | os.PathLike[str],
    *,
    tilt: xr.Dataset | None = None,
    write_stack: bool = True,
    overwrite: bool = False,
    client: Client | None = None,
    batch_size: int | None = None,
    on_row: Callable[[Row], None] | None = None,
    cluster: str = "local",
    **cluster_options: Any,
) -> RunSummary:
    """Write preprocessed micrographs and/or a tilt screen to ``out_dir``.

    Parameters
    ----------
    micrographs : xarray.DataArray or None
        The result of :func:`daskmic.preprocess` (None to write only the screen).
    out_dir : path-like
        The output folder; rerunning resumes, other parameters are refused.
    tilt : xarray.Dataset, optional
        The result of :func:`daskmic.tilt_analysis` on the same micrographs.
    write_stack : bool
        Store the processed pixels in ``micrographs.zarr`` too.
    overwrite, client, batch_size, on_row, cluster, **cluster_options
        As in :func:`daskmic.run_batch`.

    Returns
    -------
    RunSummary
        Every micrograph's row.
    """
    if micrographs is None and tilt is None:
        raise UsageError("write: give preprocessed micrographs, a tilt screen, or both")
    preprocess = None
    if micrographs is not None:
        if "parameters" not in micrographs.attrs:
            raise UsageError(
                "write: the micrographs record no preprocessing parameters; "
                "pass the result of daskmic.preprocess"
            )
        preprocess = PreprocessParams.from_dict(micrographs.attrs["parameters"])
    config = RunConfig(
        preprocess=preprocess,
        tilt=None if tilt is None else _tilt_params(tilt),
        write_stack=write_stack,
    )
    sources = _sources(micrographs, tilt)
    if not all(np.isfinite(s.pixel_size_A) for s in sources if not s.error):
        raise UsageError(
            "write: some micrographs have no pixel size; open them with "
            "open_micrographs(..., pixel_size_A=...)"
        )
    optics = (micrographs if micrographs is not None else tilt).attrs.get("optics") or []
    digest = bind(out_dir, config, sources, optics, overwrite=overwrite)
    return execute(
        sources,
        out_dir,
        config,
        digest,
        client=client,
        batch_size=batch_size,
        on_row=on_row,
        cluster=cluster,
        **cluster_options,
    )
