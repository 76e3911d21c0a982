"""daskmic's defaults in dask's own configuration system (``daskmic/cluster/daskmic.yaml``).

Importing this module merges the defaults into ``dask.config`` once; every cluster module
imports it, so ``dask.config.get("daskmic.cluster.jobs")`` and daskmic's ``jobqueue.*``
values are there whenever a cluster is started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.config
import yaml

CONFIG_PATH = Path(__file__).with_name("daskmic.yaml")
"""daskmic's dask configuration defaults."""


def load_config() -> dict[str, Any]:
    """Merge daskmic's defaults (:data:`CONFIG_PATH`) into ``dask.config``.

    The user's own dask configuration keeps priority. dask-jobqueue, when installed, registers
    its defaults first, so daskmic's ``jobqueue.*`` values replace dask-jobqueue's defaults but
    never the user's settings. Calling it again is harmless.

    Returns
    -------
    dict
        The defaults as read from the YAML file.
    """
    try:
        import dask_jobqueue  # noqa: F401  (registers jobqueue.* defaults before ours)
    except ImportError:
        pass
    with open(CONFIG_PATH, encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    dask.config.update_defaults(defaults)
    return defaults


load_config()
