"""What one run does: the steps' parameters, the optics, and the output options."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import yaml

from daskmic.preprocess_params import PreprocessParams
from daskmic.tilt.params import TiltParams


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
            raise ValueError(f"voltage_kV must be > 0, got {self.voltage_kV}")
        if self.amplitude_contrast is not None and not 0 <= self.amplitude_contrast <= 1:
            raise ValueError(f"amplitude_contrast must be in [0, 1], got {self.amplitude_contrast}")


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


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run's outputs (and so its parameter hash).

    Parameters
    ----------
    preprocess : PreprocessParams or None
        Preprocessing steps, or None to skip preprocessing.
    tilt : TiltParams or None
        Tilt-analysis screen, or None to skip it.
    pixel_size_A : float or None
        Pixel size in Å overriding headers and tables.
    optics : Optics
        Optics used for the STAR tables when the input table has none.
    write_stack : bool
        Store the processed pixels in ``micrographs.zarr`` too (doubles disk use).
    thumbnail_px : int
        Edge of the thumbnails stored in the zarr store and shown in the report.
    """

    preprocess: PreprocessParams | None = None
    tilt: TiltParams | None = None
    pixel_size_A: float | None = None
    optics: Optics = field(default_factory=Optics)
    write_stack: bool = True
    thumbnail_px: int = 256

    def __post_init__(self) -> None:
        if self.preprocess is None and self.tilt is None:
            raise ValueError("a run needs at least one step: preprocess and/or tilt")
        if self.pixel_size_A is not None and not self.pixel_size_A > 0:
            raise ValueError(f"pixel_size_A must be > 0, got {self.pixel_size_A}")
        if self.thumbnail_px < 16:
            raise ValueError(f"thumbnail_px must be >= 16, got {self.thumbnail_px}")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able parameters (what the manifest hashes)."""
        return {
            "preprocess": None if self.preprocess is None else self.preprocess.to_dict(),
            "tilt": None if self.tilt is None else self.tilt.to_dict(),
            "pixel_size_A": self.pixel_size_A,
            "optics": asdict(self.optics),
            "write_stack": self.write_stack,
            "thumbnail_px": self.thumbnail_px,
        }

    def hashed_parameters(self) -> dict[str, Any]:
        """The parameters that change computed results (what a folder is bound to).

        The tilt thresholds (and the maximum tilt angle) are left out: they only split
        recorded statistics, so :func:`daskmic.select` can change them without recomputing.
        """
        values = self.to_dict()
        if values["tilt"] is not None:
            values["tilt"] = {
                k: v
                for k, v in values["tilt"].items()
                if k not in ("mean_threshold", "std_threshold", "max_tilt_deg")
            }
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build a configuration from :meth:`to_dict`'s form or a YAML config file's."""
        values = dict(values)
        unknown = set(values) - {
            "preprocess",
            "tilt",
            "pixel_size_A",
            "optics",
            "write_stack",
            "thumbnail_px",
        }
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        preprocess = values.pop("preprocess", None)
        tilt = values.pop("tilt", None)
        optics = values.pop("optics", None) or {}
        return cls(
            preprocess=None if preprocess is None else PreprocessParams.from_dict(preprocess),
            tilt=None if tilt is None else TiltParams.from_dict(tilt),
            optics=Optics(**optics),
            **values,
        )


def read_run_config(path: str | Path) -> tuple[list[str] | None, str | None, RunConfig]:
    """Read a ``daskmic run`` file: optional ``inputs`` and ``output`` plus the run's keys.

    Returns
    -------
    inputs : list of str or None
        Input files, globs, folders or tables.
    output : str or None
        The output folder.
    config : RunConfig
        The steps and options.
    """
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a configuration file must hold a mapping")
    inputs = values.pop("inputs", None)
    if isinstance(inputs, str):
        inputs = [inputs]
    output = values.pop("output", None)
    return inputs, output, RunConfig.from_dict(values)
