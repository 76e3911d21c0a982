"""The optics of a micrograph: given values, else its input optics group's, else defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from daskmic.errors import UsageError


@dataclass(frozen=True)
class Optics:
    """Microscope optics written to RELION's ``data_optics`` when the input carries none.

    Parameters
    ----------
    voltage_kV : float, optional
        Acceleration voltage in kV.
    spherical_aberration_mm : float, optional
        Spherical aberration in mm.
    amplitude_contrast : float, optional
        Amplitude contrast, 0–1.

    A value left as None is carried from the input table's optics, or takes RELION's import
    default (300 kV, 2.7 mm, 0.1) when the input has none.
    """

    voltage_kV: float | None = None
    spherical_aberration_mm: float | None = None
    amplitude_contrast: float | None = None

    def __post_init__(self) -> None:
        if self.voltage_kV is not None and not self.voltage_kV > 0:
            raise UsageError(f"voltage_kV must be > 0, got {self.voltage_kV}")
        if self.amplitude_contrast is not None and not 0 <= self.amplitude_contrast <= 1:
            raise UsageError(f"amplitude_contrast must be in [0, 1], got {self.amplitude_contrast}")


ANGLE_OPTICS_DEFAULTS = {
    "voltage_kV": 300.0,
    "spherical_aberration_mm": 2.7,
    "amplitude_contrast": 0.07,
}
"""Optics the tilt-angle fit assumes when neither the command line nor the input gives them."""

_RELION_OPTICS = {
    "voltage_kV": "rlnVoltage",
    "spherical_aberration_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}


class AngleOptics(TypedDict):
    """The optics the tilt-angle fit takes (keyword arguments of ``estimate_tilt``)."""

    voltage_kV: float
    spherical_aberration_mm: float
    amplitude_contrast: float


def optics_for(given: Optics, optics_group: Any, carried: list[dict[str, Any]]) -> AngleOptics:
    """The optics of one micrograph: given values, else its input optics group's, else defaults.

    Parameters
    ----------
    given : Optics
        Values from the command line or configuration (None where not given).
    optics_group : int or None
        The micrograph's ``rlnOpticsGroup`` in the input table.
    carried : list of dict
        The input table's ``data_optics`` rows.

    Returns
    -------
    AngleOptics
        ``voltage_kV``, ``spherical_aberration_mm``, ``amplitude_contrast``.
    """
    group = next((row for row in carried if row.get("rlnOpticsGroup") == optics_group), {})

    def value(name: str) -> float:
        chosen = getattr(given, name)
        if chosen is None:
            chosen = group.get(_RELION_OPTICS[name], ANGLE_OPTICS_DEFAULTS[name])
        return float(chosen)

    return AngleOptics(
        voltage_kV=value("voltage_kV"),
        spherical_aberration_mm=value("spherical_aberration_mm"),
        amplitude_contrast=value("amplitude_contrast"),
    )
