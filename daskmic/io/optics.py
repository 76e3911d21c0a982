"""RELION optics groups for an output table: carried from the input, or built by pixel size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from daskmic.io.tables import OPTICS_COLUMNS

DEFAULT_VOLTAGE_KV = 300.0
DEFAULT_SPHERICAL_ABERRATION_MM = 2.7
DEFAULT_AMPLITUDE_CONTRAST = 0.1
"""Defaults of RELION's and Scipion's import forms, used when neither input nor user says."""

_MISSING = -1.0


def _key(value: float) -> float:
    """A grouping key for a pixel size: rounded to 1e-6 Å, NaN mapped to a sentinel."""
    return _MISSING if not np.isfinite(value) else round(float(value), 6)


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def _carried_rows(carried: pd.DataFrame | Sequence[Mapping] | None) -> dict[int, dict]:
    if carried is None:
        return {}
    frame = carried if isinstance(carried, pd.DataFrame) else pd.DataFrame(list(carried))
    if "rlnOpticsGroup" not in frame.columns:
        return {}
    return {int(row["rlnOpticsGroup"]): dict(row) for row in frame.to_dict("records")}


def optics_table(
    pixel_size_A: Sequence[float] | np.ndarray,
    *,
    original_pixel_size_A: Sequence[float] | np.ndarray | None = None,
    optics_group: Sequence[int] | np.ndarray | None = None,
    carried_optics: pd.DataFrame | Sequence[Mapping] | None = None,
    voltage_kV: float | None = None,
    spherical_aberration_mm: float | None = None,
    amplitude_contrast: float | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Build the RELION ``data_optics`` table for a set of output micrographs.

    With carried optics (the input STAR's ``data_optics``, e.g. ``da.attrs["optics"]``) and each
    micrograph's input ``optics_group``, the groups, names and other columns are kept and
    ``rlnMicrographPixelSize`` becomes the output pixel size. Otherwise micrographs are grouped
    by (original, output) pixel size, groups numbered 1, 2, ... in increasing pixel size. A
    carried group whose micrographs end up with different pixel sizes is split; the new
    groups are numbered after the carried ones.

    Parameters
    ----------
    pixel_size_A : sequence of float
        Per micrograph, the output pixel size in ångström (``rlnMicrographPixelSize``).
    original_pixel_size_A : sequence of float, optional
        Per micrograph, the input pixel size (``rlnMicrographOriginalPixelSize`` unless the
        carried optics give one); defaults to ``pixel_size_A``.
    optics_group : sequence of int, optional
        Per micrograph, its carried ``rlnOpticsGroup``.
    carried_optics : DataFrame or list of dict, optional
        The input optics table.
    voltage_kV, spherical_aberration_mm, amplitude_contrast : float, optional
        Override the carried values; when neither is given, RELION's import defaults
        (300 kV, 2.7 mm, 0.1).

    Returns
    -------
    optics : pandas.DataFrame
        Columns :data:`daskmic.io.tables.OPTICS_COLUMNS` first, then carried extras.
    groups : numpy.ndarray
        Per micrograph, its ``rlnOpticsGroup`` in ``optics``.
    """
    output = np.asarray(pixel_size_A, dtype=float).ravel()
    original = output if original_pixel_size_A is None else np.asarray(original_pixel_size_A)
    original = np.asarray(original, dtype=float).ravel()
    carried = _carried_rows(carried_optics)
    carried_group = np.zeros(output.size, dtype=int)
    if carried and optics_group is not None:
        carried_group = np.asarray(optics_group, dtype=int).ravel()
    if not (original.size == output.size == carried_group.size):
        raise ValueError(
            "pixel_size_A, original_pixel_size_A and optics_group must have one value per "
            f"micrograph; got {output.size}, {original.size}, {carried_group.size}"
        )
    keys = [
        (int(g), _key(o), _key(p)) for g, o, p in zip(carried_group, original, output, strict=True)
    ]
    distinct = sorted(set(keys))
    splits = {g: sum(1 for k in distinct if k[0] == g) for g, _, _ in distinct}
    next_free = max(carried, default=0) + 1
    number: dict[tuple, int] = {}
    for key in distinct:
        if key[0] in carried and splits[key[0]] == 1:
            number[key] = key[0]
        else:
            number[key], next_free = next_free, next_free + 1
    rows = [_optics_row(number[k], k, carried.get(k[0], {}), splits[k[0]] == 1) for k in distinct]
    for row in rows:
        row["rlnVoltage"] = _choose(voltage_kV, row.get("rlnVoltage"), DEFAULT_VOLTAGE_KV)
        row["rlnSphericalAberration"] = _choose(
            spherical_aberration_mm,
            row.get("rlnSphericalAberration"),
            DEFAULT_SPHERICAL_ABERRATION_MM,
        )
        row["rlnAmplitudeContrast"] = _choose(
            amplitude_contrast, row.get("rlnAmplitudeContrast"), DEFAULT_AMPLITUDE_CONTRAST
        )
    optics = pd.DataFrame(rows)
    optics = optics[[*OPTICS_COLUMNS, *(c for c in optics.columns if c not in OPTICS_COLUMNS)]]
    optics = optics.sort_values("rlnOpticsGroup", ignore_index=True)
    return optics, np.array([number[k] for k in keys], dtype=int)


def _choose(given: float | None, carried: float | str | None, default: float) -> float:
    if given is not None:
        return float(given)
    return float(carried) if carried is not None and _known(carried) else default


def _optics_row(number: int, key: tuple, carried: dict, keep_name: bool) -> dict:
    _, original, output = key
    row = dict(carried)
    row["rlnOpticsGroup"] = number
    name = carried.get("rlnOpticsGroupName")
    row["rlnOpticsGroupName"] = name if keep_name and _known(name) else f"opticsGroup{number}"
    if not _known(carried.get("rlnMicrographOriginalPixelSize")):
        row["rlnMicrographOriginalPixelSize"] = np.nan if original == _MISSING else original
    row["rlnMicrographPixelSize"] = np.nan if output == _MISSING else output
    return row
