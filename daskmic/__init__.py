"""daskmic: preprocess and screen cryo-EM micrographs at dataset scale on dask.

The same code runs in a notebook, on a laptop, on SLURM or on Kubernetes, in batch or
streaming, and gives what Xmipp/Scipion's *Preprocess Micrographs* and *Tilt Analysis*
protocols give. Names are imported on first use, so ``import daskmic`` stays light.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("daskmic")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_PUBLIC = {
    "open_micrographs": "daskmic.io",
    "preprocess": "daskmic.preprocess",
    "tilt_analysis": "daskmic.tilt.analysis",
    "write": "daskmic.run",
    "run_batch": "daskmic.run",
    "select": "daskmic.publish",
    "RunConfig": "daskmic.config",
    "read_run_config": "daskmic.config",
    "connect": "daskmic.cluster",
    "watch": "daskmic.stream",
    "demo": "daskmic.demo",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'daskmic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
