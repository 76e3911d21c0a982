"""Where the graph runs: a ``distributed.Client`` for the user's choice of cluster.

One entry point, :func:`connect`, for every place daskmic runs:

- ``"local"`` (default): an embedded ``LocalCluster`` of worker processes sized to the machine;
- ``"tcp://host:port"``, ``"tls://host:port"`` (any scheduler address) or the path of a
  scheduler file: an existing scheduler, whose workers are already there;
- ``"slurm"`` / ``"pbs"``: dask-jobqueue's ``SLURMCluster`` / ``PBSCluster``;
- ``"kubernetes"``: dask-kubernetes' operator ``KubeCluster``.

Everything not given as an argument comes from dask's own configuration: daskmic's defaults
(``daskmic/cluster/daskmic.yaml``, merged into ``dask.config`` on import under ``daskmic.*`` and
``jobqueue.*``) unless the user's dask configuration says otherwise.
"""

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Integral
from typing import Any, TextIO

import dask.config
from distributed import Client, LocalCluster, Worker, WorkerPlugin

import daskmic.cluster.defaults  # noqa: F401  (daskmic's defaults in dask.config)
from daskmic.cluster.threads import worker_threads as worker_threads  # re-exported
from daskmic.errors import UsageError

KINDS = ("local", "slurm", "pbs", "kubernetes")
"""Cluster kinds :func:`connect` starts itself; anything else must be a scheduler address."""

_ADDRESS = re.compile(r"^[a-z][a-z0-9+]*://\S+$")


class QuickExit(WorkerPlugin):
    """Let a local worker process exit without the interpreter's final garbage collections.

    At teardown the worker's objects are frozen (:func:`gc.freeze`), so its process ends
    without collecting distributed's, numpy's and scipy's objects one by one: closing an
    embedded cluster of two workers took 0.35 s, most of it the workers' interpreter
    teardown, and takes 0.05-0.08 s with this plugin.
    """

    name = "daskmic-quick-exit"

    def teardown(self, worker: Worker) -> None:
        gc.freeze()


@contextmanager
def connect(
    cluster: str = "local",
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
    quiet: bool = False,
    dashboard: bool = True,
    wait: bool = True,
    **options: Any,
) -> Iterator[Client]:
    """Give a ``distributed.Client`` on the chosen cluster; close what was started on exit.

    Parameters
    ----------
    cluster : str
        ``"local"``, ``"slurm"``, ``"pbs"``, ``"kubernetes"``, a scheduler address
        (``"tcp://host:8786"``, ``"tls://host:8786"``) or the path of a scheduler file.
    workers : int, optional
        Local: worker processes (default: one per core / ``threads_per_worker``). SLURM/PBS:
        jobs, kept at that number as jobs reach their walltime (default
        ``daskmic.cluster.jobs``). Kubernetes: worker pods.
    threads_per_worker : int, optional
        Threads in each worker (default ``daskmic.cluster.threads-per-worker``; for SLURM/PBS,
        ``jobqueue.<kind>.cores`` / ``processes``).
    memory_limit : str or int, optional
        Memory limit of each worker, e.g. ``"4GiB"`` (default: local,
        ``daskmic.cluster.memory-fraction`` of the machine split across the workers;
        SLURM/PBS, ``jobqueue.<kind>.memory``; Kubernetes, ``daskmic.kubernetes.memory-limit``).
    quiet : bool
        Do not print the dashboard link.
    dashboard : bool
        Serve the scheduler's dashboard (local, SLURM and PBS clusters daskmic starts). Off
        saves the scheduler about 0.7 s of start-up (bokeh).
    wait : bool
        Local: return once the workers are up. ``False`` returns as soon as the scheduler is,
        and the worker processes join as they start (tasks wait for them), so whatever the
        caller does next (imports, reading headers) runs while they start.
    **options
        Passed on to ``LocalCluster``, ``SLURMCluster``/``PBSCluster``, ``KubeCluster`` or
        ``Client`` (for an address).

    Yields
    ------
    distributed.Client
        Connected to the cluster.

    Raises
    ------
    UsageError
        For an unknown cluster kind or an invalid sizing option.
    ImportError
        When the package for ``"slurm"``/``"pbs"`` or ``"kubernetes"`` is not installed.

    Examples
    --------
    >>> import daskmic as dm
    >>> with dm.connect("local", workers=1, dashboard=False, quiet=True) as client:
    ...     print(len(client.nthreads()), "worker")
    1 worker
    """
    client = start_client(
        cluster,
        workers=workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
        quiet=quiet,
        dashboard=dashboard,
        wait=wait,
        **options,
    )
    try:
        yield client
    finally:
        close_client(client)


def start_client(
    cluster: str = "local",
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
    quiet: bool = False,
    dashboard: bool = True,
    wait: bool = True,
    **options: Any,
) -> Client:
    """Like :func:`connect`, without the ``with`` block (for notebooks).

    Close it with :func:`close_client`, which also stops the cluster if one was started.

    Returns
    -------
    distributed.Client
        Connected to the cluster; ``client.cluster`` is the started cluster, if any.
    """
    _check_sizing(workers, threads_per_worker)
    kind = cluster.strip()
    if kind in KINDS:
        if not dashboard:
            options = _without_dashboard(kind, options)
        started, pending = _start_cluster(
            kind, workers, threads_per_worker, memory_limit, options, wait
        )
        try:
            client = Client(started)  # before the scale: a client waits for the cluster's workers
            if pending:
                started.scale(pending)  # returns at once; the workers join as they start
        except BaseException:
            started.close()
            raise
    elif _ADDRESS.match(kind) or kind.endswith(".json"):
        client = _connect_existing(kind, workers, threads_per_worker, memory_limit, options)
    else:
        raise UsageError(
            f"cluster must be one of {', '.join(KINDS)} or a scheduler address "
            f"(tcp://host:port, tls://host:port) or a scheduler file (*.json), got {cluster!r}"
        )
    if not quiet:
        print_dashboard_link(client, dashboard=dashboard or kind not in KINDS)
    return client


def close_client(client: Client) -> None:
    """Close ``client`` and the cluster it started (an existing scheduler is left running)."""
    started = client.cluster
    client.close()
    if started is not None:
        started.close()


def print_dashboard_link(
    client: Client, stream: TextIO | None = None, *, dashboard: bool = True
) -> None:
    """Print where the scheduler's dashboard is (to stderr by default), or that it is off."""
    stream = sys.stderr if stream is None else stream
    link = client.dashboard_link if dashboard else "off"
    where = client.scheduler.address if client.scheduler is not None else "?"
    print(f"daskmic: scheduler {where}, dashboard {link}", file=stream, flush=True)


def local_cluster_size(
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = None,
) -> dict[str, Any]:
    """Size an embedded ``LocalCluster`` to this machine.

    Parameters
    ----------
    workers, threads_per_worker, memory_limit
        As for :func:`connect`; ``None`` takes the machine-sized default.

    Returns
    -------
    dict
        ``n_workers``, ``threads_per_worker`` and ``memory_limit`` (bytes per worker).
    """
    from dask.system import CPU_COUNT
    from dask.utils import parse_bytes
    from distributed.system import MEMORY_LIMIT

    _check_sizing(workers, threads_per_worker)
    threads = threads_per_worker or int(dask.config.get("daskmic.cluster.threads-per-worker"))
    n_workers = workers or max(CPU_COUNT // threads, 1)
    if memory_limit is None:
        fraction = float(dask.config.get("daskmic.cluster.memory-fraction"))
        if not 0 < fraction <= 1:
            raise UsageError(f"daskmic.cluster.memory-fraction must be in (0, 1], got {fraction}")
        memory_bytes = int(MEMORY_LIMIT * fraction) // n_workers
    else:
        memory_bytes = parse_bytes(memory_limit)
    return {"n_workers": n_workers, "threads_per_worker": threads, "memory_limit": memory_bytes}


def _check_sizing(workers: int | None, threads_per_worker: int | None) -> None:
    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, Integral) or value < 1
        ):
            raise UsageError(f"{name} must be an integer >= 1, got {value!r}")


def _without_dashboard(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the scheduler's dashboard turned off, unless they set it.

    The scheduler still serves its HTTP routes (``/health``, ``/metrics``); without an
    address for them it tries port 8787 and warns "Port 8787 is already in use" when
    another cluster holds it, so they get a free port of their own (on the local
    scheduler's host; on all interfaces for a batch system's, as its dashboard would be).
    """
    if kind == "local":
        if "dashboard_address" in options or "interface" in options:
            return {"dashboard_address": None, **options}
        routes = {"dashboard_address": f"{options.get('host') or '127.0.0.1'}:0"}
        scheduler = {**routes, **options.get("scheduler_kwargs", {})}
        return {"dashboard_address": None, **options, "scheduler_kwargs": scheduler}
    if kind in ("slurm", "pbs"):
        given = options.get("scheduler_options", {})
        off = {"dashboard": False, "dashboard_address": ":0"}
        if "dashboard_address" in given:
            off = {}
        return {**options, "scheduler_options": {**off, **given}}
    return options  # kubernetes: the dashboard is part of the scheduler pod's service


def _start_cluster(
    kind: str,
    workers: int | None,
    threads_per_worker: int | None,
    memory_limit: str | int | None,
    options: dict[str, Any],
    wait: bool,
) -> tuple[Any, int]:
    """Start a cluster of ``kind``; return it and the local workers it has yet to start."""
    if kind == "local":
        spec = {**local_cluster_size(workers, threads_per_worker, memory_limit), **options}
        n_workers = spec.pop("n_workers")
        spec["plugins"] = [QuickExit(), *spec.get("plugins", ())]
        started = LocalCluster(processes=True, n_workers=n_workers if wait else 0, **spec)
        return started, 0 if wait else n_workers
    jobs = workers or int(dask.config.get("daskmic.cluster.jobs"))
    if kind in ("slurm", "pbs"):
        from daskmic.cluster.jobqueue import start_jobqueue_cluster

        return start_jobqueue_cluster(kind, jobs, threads_per_worker, memory_limit, options), 0
    from daskmic.cluster.kubernetes import start_kube_cluster

    return start_kube_cluster(jobs, threads_per_worker, memory_limit, options), 0


def _connect_existing(
    address: str,
    workers: int | None,
    threads_per_worker: int | None,
    memory_limit: str | int | None,
    options: dict[str, Any],
) -> Client:
    sizing = {"workers": workers, "threads_per_worker": threads_per_worker}
    for name, value in {**sizing, "memory_limit": memory_limit}.items():
        if value is not None:
            raise UsageError(
                f"{name} cannot be set for an existing scheduler ({address}), got {value!r}: "
                "its workers are already running"
            )
    if address.endswith(".json"):
        return Client(scheduler_file=address, **options)
    return Client(address, **options)
