"""What one run does (the steps' parameters, the optics, the output options) and how a stream
follows a folder: the one place of their defaults and checks."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from daskmic.errors import UsageError
from daskmic.preprocessing.params import PreprocessParams
from daskmic.tilt.optics import check_given
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
    optics : dict
        Optics given by the user (``voltage_kV``, ``spherical_aberration_mm``,
        ``amplitude_contrast``): they override the input table's; what neither gives takes the
        defaults of :class:`daskmic.tilt.ctf.Optics`. Used by the STAR tables and the tilt-angle
        fit alike.
    write_stack : bool
        Store the processed pixels in ``micrographs.zarr`` too (doubles disk use).
    thumbnail_px : int
        Edge of the thumbnails stored in the zarr store and shown in the report.
    storage_options : dict
        For every URL the run reads or writes (``s3://``, ``gs://``, ``https://`` …): passed to
        its fsspec filesystem (``key``, ``secret``, ``client_kwargs={"endpoint_url": …}``,
        ``anon`` …); see :func:`daskmic.io.storage.location`. Empty: each backend finds its
        credentials itself (environment, config files, workload identity). They never change
        the results, so they are neither hashed nor written anywhere (they may hold secrets).

    Examples
    --------
    >>> import daskmic as dm
    >>> config = dm.RunConfig(preprocess=dm.PreprocessParams.from_options(crop=True, downsample=2),
    ...                       tilt=dm.TiltParams(resolution_A=4.0))
    >>> config.to_dict()["preprocess"]["crop"], config.to_dict()["tilt"]["resolution_A"]
    (10, 4.0)
    """

    preprocess: PreprocessParams | None = None
    tilt: TiltParams | None = None
    pixel_size_A: float | None = None
    optics: dict[str, float] = field(default_factory=dict)
    write_stack: bool = True
    thumbnail_px: int = 256
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.preprocess is None and self.tilt is None:
            raise UsageError("a run needs at least one step: preprocess and/or tilt")
        if self.pixel_size_A is not None and not self.pixel_size_A > 0:
            raise UsageError(f"pixel_size_A must be > 0, got {self.pixel_size_A}")
        object.__setattr__(self, "optics", check_given(self.optics))
        if self.thumbnail_px < 16:
            raise UsageError(f"thumbnail_px must be >= 16, got {self.thumbnail_px}")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able parameters (what the manifest hashes; no storage options)."""
        return {
            "preprocess": None if self.preprocess is None else self.preprocess.to_dict(),
            "tilt": None if self.tilt is None else self.tilt.to_dict(),
            "pixel_size_A": self.pixel_size_A,
            "optics": dict(self.optics),
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
            "storage_options",
        }
        if unknown:
            raise UsageError(f"unknown configuration keys: {sorted(unknown)}")
        preprocess = values.pop("preprocess", None)
        tilt = values.pop("tilt", None)
        return cls(
            preprocess=None if preprocess is None else PreprocessParams.from_dict(preprocess),
            tilt=None if tilt is None else TiltParams.from_dict(tilt),
            optics=values.pop("optics", None) or {},
            storage_options=values.pop("storage_options", None) or {},
            **values,
        )


@dataclass(frozen=True)
class StreamOptions:
    """How :func:`daskmic.watch` follows a folder (they do not change the results).

    Parameters
    ----------
    pattern : str
        Glob of the micrographs relative to the folder; ``**`` recurses.
    batch_size : int
        Micrographs per batch: the tables and the zarr store are rebuilt after each.
    settle_seconds : float
        A file is complete once its size and modification time have not changed for this
        long (and its header matches its size). On an object store a listed key is complete
        at once (an object is written in one request).
    poll_seconds : float
        Time between two looks at the folder.
    close_marker : str
        The stream closes once a file of this name exists in the folder and all is done.
    idle_timeout : float or None
        Also close once nothing has arrived or changed for this many seconds.
    """

    pattern: str = "*.mrc"
    batch_size: int = 8
    settle_seconds: float = 10.0
    poll_seconds: float = 2.0
    close_marker: str = "CLOSED"
    idle_timeout: float | None = None

    def __post_init__(self) -> None:
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UsageError(f"batch_size must be an integer >= 1, got {size!r}")
        settle, poll = self.settle_seconds, self.poll_seconds
        if not (math.isfinite(settle) and settle >= 0):
            raise UsageError(f"settle_seconds must be a finite number >= 0, got {settle!r}")
        if not (math.isfinite(poll) and poll > 0):
            raise UsageError(f"poll_seconds must be a finite number > 0, got {poll!r}")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise UsageError(
                f"idle_timeout must be > 0 seconds or None, got {self.idle_timeout!r}"
            )
        if not self.close_marker or os.sep in self.close_marker:
            raise UsageError(f"close_marker must be a file name, got {self.close_marker!r}")


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
