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

from daskmic.cluster import connect
from daskmic.config import RunConfig, read_run_config
from daskmic.demo import demo
from daskmic.io import open_micrographs
from daskmic.preprocess import preprocess
from daskmic.publish import select
from daskmic.run import run_batch
from daskmic.stream import watch
from daskmic.tilt.analysis import tilt_analysis
from daskmic.writer import write

__all__ = [
    "RunConfig",
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
