"""What one run does: the steps' parameters, the optics, and the output options."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from daskmic.errors import UsageError
from daskmic.preprocessing.params import PreprocessParams
from daskmic.tilt.optics import Optics
from daskmic.tilt.params import TiltParams


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

    Examples
    --------
    >>> import daskmic as dm
    >>> from daskmic.preprocessing.params import PreprocessParams
    >>> from daskmic.tilt.params import TiltParams
    >>> config = dm.RunConfig(preprocess=PreprocessParams.from_options(crop=True, downsample=2.0),
    ...                       tilt=TiltParams(resolution_A=4.0))
    >>> config.to_dict()["preprocess"]["crop"], config.to_dict()["tilt"]["resolution_A"]
    (10, 4.0)
    """

    preprocess: PreprocessParams | None = None
    tilt: TiltParams | None = None
    pixel_size_A: float | None = None
    optics: Optics = field(default_factory=Optics)
    write_stack: bool = True
    thumbnail_px: int = 256

    def __post_init__(self) -> None:
        if self.preprocess is None and self.tilt is None:
            raise UsageError("a run needs at least one step: preprocess and/or tilt")
        if self.pixel_size_A is not None and not self.pixel_size_A > 0:
            raise UsageError(f"pixel_size_A must be > 0, got {self.pixel_size_A}")
        if self.thumbnail_px < 16:
            raise UsageError(f"thumbnail_px must be >= 16, got {self.thumbnail_px}")

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
            raise UsageError(f"unknown configuration keys: {sorted(unknown)}")
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

    Examples
    --------
    >>> from pathlib import Path
    >>> import daskmic as dm
    >>> lines = ["inputs: raw/*.mrc", "output: results", "preprocess:", "  crop: 10",
    ...          "  invert: true"]
    >>> _ = Path("run.yaml").write_text("\\n".join(lines))
    >>> inputs, output, config = dm.read_run_config("run.yaml")
    >>> inputs, output, config.preprocess.enabled()
    (['raw/*.mrc'], 'results', ['crop', 'invert'])
    """
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such configuration file")
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise UsageError(f"{path}: a configuration file must hold a mapping")
    inputs = values.pop("inputs", None)
    if isinstance(inputs, str):
        inputs = [inputs]
    output = values.pop("output", None)
    return inputs, output, RunConfig.from_dict(values)
