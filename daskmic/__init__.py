"""daskmic: preprocess and screen cryo-EM micrographs at dataset scale on dask.

The same code runs in a notebook, on a laptop, on SLURM or on Kubernetes, in batch or
streaming, and gives what Xmipp/Scipion's *Preprocess Micrographs* and *Tilt Analysis*
protocols give.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("daskmic")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

import lazy_loader

# The public API, imported on first use: ``import daskmic`` (and the command line, and every
# worker process, which imports the entry point's module) stays light.
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "cluster.client": ["connect"],
        "errors": ["UsageError"],
        "io": ["open_micrographs"],
        "preprocessing.lazy": ["preprocess"],
        "run.config": ["RunConfig", "read_run_config"],
        "run.demo": ["demo"],
        "run.driver": ["run_batch"],
        "run.publish": ["select"],
        "run.stream": ["watch"],
        "run.write": ["write"],
        "tilt.analysis": ["tilt_analysis"],
    },
)

__all__ = [
    "RunConfig",
    "UsageError",
    "__version__",
    "connect",
    "demo",
    "open_micrographs",
    "preprocess",
    "read_run_config",
    "run_batch",
    "select",
    "tilt_analysis",
    "watch",
    "write",
]
