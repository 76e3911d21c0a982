"""A small set's runner: the per-micrograph unit on threads of the command's own process.

Starting a local cluster costs its worker processes each an interpreter and the imports of
distributed and the unit (about 2 s of two cores), more than a few micrographs' compute: one
1024² micrograph takes 0.2 s. :class:`InProcess` offers the part of a ``distributed.Client``
that :class:`daskmic.run.feeder.Feeder` uses (``submit``, ``gather``, ``nthreads``), so a small
set runs the same unit through the same feeder, records and tables, only without the cluster.
numpy and scipy release the GIL in their kernels, so threads share the cores on frames of a
megapixel and more; sets of many small frames, whose Python parts hold the GIL, go to a cluster
of processes (see :func:`daskmic.run.driver.runs_in_process`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class InProcess:
    """Threads of this process with the ``submit``/``gather`` face of a ``distributed.Client``.

    Parameters
    ----------
    threads : int, optional
        Worker threads (default: one per core).

    Examples
    --------
    >>> with InProcess(2) as runner:
    ...     futures = [runner.submit(pow, 2, n, key=f"pow-{n}", pure=False) for n in range(3)]
    ...     runner.gather(futures)
    [1, 2, 4]
    """

    cluster = None
    """No cluster: :func:`daskmic.cluster.threads.worker_threads` counts :meth:`nthreads`."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="daskmic-unit")

    def submit(self, function: Callable[..., Any], *args: Any, **_: Any) -> Future[Any]:
        """Run ``function(*args)`` on a thread (``key``, ``pure`` and the like are ignored)."""
        return self._pool.submit(function, *args)

    def gather(self, futures: Iterable[Future[Any]]) -> list[Any]:
        """The results of ``futures``, in order; re-raises the first error, as distributed."""
        return [future.result() for future in futures]

    def nthreads(self) -> dict[str, int]:
        """Threads per "worker": this process's."""
        return {"in-process": self.threads}

    def close(self) -> None:
        """Wait for the running tasks and stop the threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
