"""``daskmic.write``: turn the notebook face's lazy results into an output folder.

The lazy objects record what made them (the steps' parameters, the source files). Writing runs
the production unit, :func:`daskmic.run.unit.process_micrograph`, on those files with those
parameters, so a notebook's ``write`` and the command line give identical folders, resume the
same way, and a bad micrograph fails alone. That writes what the user holds only while it is
daskmic's own lazy result or one selection of its micrographs (see :mod:`daskmic.io.origin`):
a selection writes those micrographs; anything else (changed, computed into memory) is refused
before work, with what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client

from daskmic.errors import UsageError
from daskmic.io.origin import origin_kind
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.driver import RunSummary, bind, execute
from daskmic.run.sources import sources_from
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


def _check_held(held: xr.DataArray | xr.Dataset, kind: str, what: str, made_by: str) -> None:
    """Refuse what write cannot reproduce from the files: it would write something else."""
    if origin_kind(held) == kind:
        return
    raise UsageError(
        f"write: the {what} are not {made_by}'s lazy result on micrographs opened with "
        "daskmic.open_micrographs, nor one selection of its micrographs: they were changed, "
        "computed into memory (.compute(), .load(), .values), selected twice or made from "
        "changed pixels, and write, which reruns the steps on the files, would write "
        f"something else. Pass the lazy result of {made_by}, or one .isel/.sel of its "
        "micrographs (.persist() keeps it in memory); save arrays you changed with xarray "
        "(e.g. .to_zarr)"
    )


def _sources(
    micrographs: xr.DataArray | None, qc: xr.Dataset | None, storage_options: dict[str, Any]
) -> list[Source]:
    """The input files behind what the user holds, with their input pixel sizes."""
    if micrographs is None:
        assert qc is not None
        return sources_from(qc, storage_options)
    if qc is not None:
        ours, theirs = micrographs["micrograph"].values, qc["micrograph"].values
        if list(ours) != list(theirs):
            raise UsageError(
                f"write: the micrographs ({len(ours)}) and the tilt screen ({len(theirs)}) hold "
                "different micrographs; select the same ones from both"
            )
    inputs = micrographs.assign_coords(pixel_size_A=micrographs["input_pixel_size_A"])
    return sources_from(inputs.drop_vars("input_pixel_size_A"), storage_options)


def write(
    micrographs: xr.DataArray | None,
    out_dir: str | os.PathLike[str],
    *,
    tilt: xr.Dataset | None = None,
    write_stack: bool = True,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    client: Client | None = None,
    batch_size: int | None = None,
    on_row: Callable[[Row], None] | None = None,
    cluster: str = "local",
    **cluster_options: Any,
) -> RunSummary:
    """Write preprocessed micrographs and/or a tilt screen to ``out_dir``.

    Writes the micrographs the arrays hold: the whole result, or the micrographs of one
    selection of it (``out.isel(micrograph=[0, 2])``, ``out.sel(micrograph=names)``).

    Parameters
    ----------
    micrographs : xarray.DataArray or None
        The lazy result of :func:`daskmic.preprocess` on micrographs opened with
        :func:`daskmic.open_micrographs`, or one selection of its micrographs (None to write
        only the screen).
    out_dir : path-like
        The output folder; rerunning resumes, other parameters are refused.
    tilt : xarray.Dataset, optional
        The lazy result of :func:`daskmic.tilt_analysis` on micrographs so opened, or one
        selection of its micrographs; the same micrographs as ``micrographs``.
    write_stack : bool
        Store the processed pixels in ``micrographs.zarr`` too.
    storage_options : dict, optional
        For the URLs the workers read (and write): those the micrographs were opened with.
    overwrite, client, batch_size, on_row, cluster, **cluster_options
        As in :func:`daskmic.run_batch`.

    Returns
    -------
    RunSummary
        Every micrograph's row.

    Raises
    ------
    UsageError
        Before any work: arrays that are no longer daskmic's own lazy results (changed or
        computed into memory), micrographs and screen of different micrographs, or unknown
        pixel sizes.

    Examples
    --------
    >>> from pathlib import Path
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> truth = make_dataset("raw", n=2, shape=(256, 256), pixel_size_A=1.0)
    >>> out = dm.preprocess(dm.open_micrographs("raw/*.mrc"), crop=True, downsample=2.0)
    >>> summary = dm.write(out, "results", workers=1, dashboard=False, quiet=True)
    >>> summary.counts()
    {'done': 2}
    >>> sorted(p.name for p in Path("results/mrc").iterdir())
    ['mic_000.mrc', 'mic_001.mrc']
    """
    held = micrographs if micrographs is not None else tilt
    if held is None:
        raise UsageError("write: give preprocessed micrographs, a tilt screen, or both")
    preprocess = None
    if micrographs is not None:
        _check_held(micrographs, "preprocess", "micrographs", "daskmic.preprocess")
        preprocess = PreprocessParams.from_dict(micrographs.attrs["parameters"])
    if tilt is not None:
        _check_held(tilt, "tilt", "tilt screen", "daskmic.tilt_analysis")
    config = RunConfig(
        preprocess=preprocess,
        tilt=None if tilt is None else _tilt_params(tilt),
        write_stack=write_stack,
        storage_options=storage_options or {},
    )
    sources = _sources(micrographs, tilt, config.storage_options)
    if not all(np.isfinite(s.pixel_size_A) for s in sources if not s.error):
        raise UsageError(
            "write: some micrographs have no pixel size; open them with "
            "open_micrographs(..., pixel_size_A=...)"
        )
    optics = held.attrs.get("optics") or []
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
