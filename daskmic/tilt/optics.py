"""Which optics a micrograph has: the values given, else its input optics group's, else defaults.

The optics themselves and their defaults are :class:`daskmic.tilt.ctf.Optics`. The same rule
gives the values of the tilt-angle fit (per micrograph, :func:`optics_for`) and of the STAR
tables' ``data_optics`` (per optics group, :func:`daskmic.run.optics_groups.optics_table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

from daskmic.errors import UsageError
from daskmic.tilt.ctf import Optics

RELION_LABELS: Final = {
    "voltage_kV": "rlnVoltage",
    "spherical_aberration_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}
"""The optics a run can be given, and their RELION ``data_optics`` labels."""

GivenOptics = Mapping[str, float | None]
"""Optics values given by the user, by name (a missing or None value is not given)."""


class AngleOptics(TypedDict):
    """The optics the tilt-angle fit takes (keyword arguments of ``estimate_tilt``)."""

    voltage_kV: float
    spherical_aberration_mm: float
    amplitude_contrast: float


def _given(given: GivenOptics | None) -> dict[str, float]:
    return {k: float(v) for k, v in (given or {}).items() if v is not None}


def check_given(given: GivenOptics | None) -> dict[str, float]:
    """The given values, checked (before any work) and without the ones not given.

    Raises
    ------
    UsageError
        For an unknown name or a value out of range, naming it.
    """
    values = _given(given)
    unknown = sorted(set(values) - set(RELION_LABELS))
    if unknown:
        raise UsageError(f"unknown optics {unknown}; known: {sorted(RELION_LABELS)}")
    try:
        Optics(**values)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return values


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def resolve_optics(given: GivenOptics | None, carried: Mapping[str, Any] | None = None) -> Optics:
    """The optics: each value given, else the carried RELION row's, else the default.

    Parameters
    ----------
    given : mapping, optional
        ``voltage_kV``, ``spherical_aberration_mm``, ``amplitude_contrast`` given by the user.
    carried : mapping, optional
        The input table's ``data_optics`` row of the micrograph's optics group.
    """
    values = _given(given)
    for name, label in RELION_LABELS.items():
        if name not in values and carried is not None and _known(carried.get(label)):
            values[name] = float(carried[label])
    return Optics(**values)


def optics_for(
    given: GivenOptics | None, optics_group: Any, carried: Sequence[Mapping[str, Any]]
) -> AngleOptics:
    """The optics of one micrograph, as the tilt-angle fit takes them.

    Parameters
    ----------
    given : mapping, optional
        Values from the command line or configuration.
    optics_group : int or None
        The micrograph's ``rlnOpticsGroup`` in the input table.
    carried : sequence of mapping
        The input table's ``data_optics`` rows.

    Returns
    -------
    dict
        ``voltage_kV``, ``spherical_aberration_mm``, ``amplitude_contrast``.
    """
    group = next((row for row in carried if row.get("rlnOpticsGroup") == optics_group), None)
    optics = resolve_optics(given, group)
    return AngleOptics(
        voltage_kV=optics.voltage_kV,
        spherical_aberration_mm=optics.spherical_aberration_mm,
        amplitude_contrast=optics.amplitude_contrast,
    )
