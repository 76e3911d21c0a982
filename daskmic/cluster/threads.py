"""How many tasks a client's workers run at once, without importing distributed."""

from __future__ import annotations

from typing import Any


def worker_threads(client: Any) -> int:
    """Threads of the workers on ``client``'s cluster, counting those still starting.

    A local cluster started with ``wait=False`` has no worker yet; its spec already says how
    many threads it will have, so a driver can size its queue before they connect. Works for
    a ``distributed.Client`` and for :class:`daskmic.cluster.inprocess.InProcess`.
    """
    connected = sum(client.nthreads().values())
    spec = getattr(client.cluster, "worker_spec", None) or {}  # distributed's SpecCluster
    planned = sum(int(worker.get("options", {}).get("nthreads", 1)) for worker in spec.values())
    return max(connected, planned)
