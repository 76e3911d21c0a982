"""daskmic: preprocess and screen cryo-EM micrographs at dataset scale on dask.

The same code runs in a notebook, on a laptop, on SLURM or on Kubernetes, in batch or
streaming, and gives what Xmipp/Scipion's *Preprocess Micrographs* and *Tilt Analysis*
protocols give.
"""

from typing import Any

import lazy_loader

# The public API, imported on first use: ``import daskmic`` (and the command line, and every
# worker process, which imports the entry point's module) stays light.
_lazy_getattr, __dir__, _ = lazy_loader.attach(
    __name__,
    # ``dm.io.open_results``, ``dm.datasets.realistic_frame`` …: the packages load on first use
    submodules=[
        "cluster", "datasets", "datasets_realistic", "io", "ops", "preprocessing", "report",
        "run", "tilt",
    ],
    submod_attrs={
        "cluster.client": ["connect"],
        "errors": ["UsageError"],
        "io": ["open_micrographs"],
        "preprocessing.lazy": ["preprocess"],
        "preprocessing.params": ["PreprocessParams"],
        "report.page": ["write_report"],
        "run.config": ["RunConfig", "read_run_config"],
        "run.demo": ["demo"],
        "run.driver": ["run_batch"],
        "run.publish": ["select"],
        "run.stream": ["watch"],
        "run.write": ["write"],
        "tilt.analysis": ["tilt_analysis"],
        "tilt.params": ["TiltParams"],
    },
)


def __getattr__(name: str) -> Any:
    """The public API on first use; ``__version__`` from the installed metadata, asked once
    (``importlib.metadata`` costs a command's start 40 ms)."""
    if name != "__version__":
        return _lazy_getattr(name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("daskmic")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        found = "0+unknown"
    globals()["__version__"] = found
    return found


__all__ = [
    "PreprocessParams",
    "RunConfig",
    "TiltParams",
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
    "write_report",
]
