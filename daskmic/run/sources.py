"""From inputs to the sources a run processes, and the checks the run makes before any work.

A batch run and a stream list their inputs the same way (:func:`catalogue`: headers only, the
names, pixel sizes and table columns of :func:`daskmic.open_micrographs`; ``--pixel-size``
applied there, once). :func:`daskmic.write` takes them from an opened set's coordinates
(:func:`sources_from`), which :func:`daskmic.open_micrographs` filled by the same rules.
:func:`check_run` refuses parameters that the set cannot support, before any work.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from daskmic.errors import UsageError
from daskmic.io.open import catalogue_micrographs
from daskmic.io.storage import StorageOptions
from daskmic.run.config import RunConfig
from daskmic.run.unit import Source

if TYPE_CHECKING:
    import xarray as xr


def catalogue(
    inputs: str | os.PathLike[str] | list[str],
    pixel_size_A: float | None = None,
    storage_options: StorageOptions | None = None,
) -> tuple[list[Source], list[dict[str, Any]]]:
    """The micrographs of ``inputs``, sorted by name, and the input table's optics.

    Parameters
    ----------
    inputs : path, glob, folder, table or list of them
        As for :func:`daskmic.open_micrographs`: local paths or URLs. Each source's ``path``
        is then the absolute path or the URL (the workers read it, the driver never does).
    pixel_size_A : float, optional
        The pixel size of every micrograph, overriding tables and headers.
    storage_options : dict, optional
        For the URLs' filesystems (a run's :attr:`RunConfig.storage_options`).

    Raises
    ------
    UsageError
        Nothing found, or an unusable table: no run can start.
    """
    try:
        entries, optics = catalogue_micrographs(
            inputs, pixel_size_A=pixel_size_A, storage_options=storage_options
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    sources = [
        Source(e.micrograph, e.path, e.pixel_size_A, e.columns, e.error, e.shape)
        for e in entries
    ]
    return sorted(sources, key=lambda s: s.micrograph), optics


def sources_from(mics: xr.DataArray | xr.Dataset) -> list[Source]:
    """The micrographs of an opened set, error rows included, sorted by name."""
    carried = [
        name
        for name, coord in mics.coords.items()
        if coord.dims == ("micrograph",) and name not in ("micrograph", "path", "pixel_size_A")
    ]
    shape = (mics.sizes.get("y", 0), mics.sizes.get("x", 0))
    sources = [
        Source(
            micrograph=str(name),
            path=str(mics["path"].values[i]),
            pixel_size_A=float(mics["pixel_size_A"].values[i]),
            columns={str(c): _plain(mics[c].values[i]) for c in carried},
            shape=shape,
        )
        for i, name in enumerate(mics["micrograph"].values)
    ]
    sources += [
        Source(
            micrograph=bad["micrograph"],
            path=bad["path"],
            pixel_size_A=float("nan"),
            error=bad["error"],
        )
        for bad in mics.attrs.get("failed", [])
    ]
    return sorted(sources, key=lambda s: s.micrograph)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def check_run(config: RunConfig, sources: list[Source]) -> None:
    """Refuse, before any work, parameters that the micrographs of ``sources`` cannot support.

    Preprocessing must fit every shape of the set; the tilt screen must suit at least one
    micrograph (those it does not suit fail alone).

    Raises
    ------
    UsageError
        Naming the parameter, the value given and the valid range.
    """
    good = [(s.shape, s.pixel_size_A) for s in sources if not s.error and s.shape is not None]
    shapes = [shape for shape, _ in good]
    if config.preprocess is not None:
        for shape in sorted(set(shapes)):
            config.preprocess.validate(shape)
    if config.tilt is not None and good:
        config.tilt.validate_for_set(shapes, [pixel_size_A for _, pixel_size_A in good])
