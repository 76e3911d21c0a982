"""Runners without a cluster: the per-micrograph unit on this machine's threads or processes.

Starting a local cluster costs a scheduler, and two processes per worker (a nanny and the
worker) each an interpreter with the imports of distributed and the unit: about 4.5 s of CPU
on two cores, more than the compute of a few thousand small micrographs. The runners here offer
the part of a ``distributed.Client`` that :class:`daskmic.run.feeder.Feeder` uses (``submit``,
``gather``, ``nthreads``), so a set runs the same unit through the same feeder, records and
tables, only without the cluster:

- :class:`InProcess`: threads of the command's own process, nothing to start. numpy and scipy
  release the GIL in their kernels, so threads share the cores on frames of a megapixel and
  more.
- :class:`LocalProcesses`: a pool of worker processes forked from a server that imported the
  unit once (about 0.5 s of CPU in all). For many small frames, whose Python parts hold the
  GIL and would make threads take turns.

:func:`daskmic.run.driver.runner` chooses between them and a cluster.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any, Final

PRELOAD: Final = ("daskmic.run.unit",)
"""What :class:`LocalProcesses`' server imports once, before it forks the workers."""


class _Runner:
    """An executor's ``workers`` with the ``submit``/``gather`` face of a ``distributed.Client``."""

    cluster = None
    """No cluster: :func:`daskmic.cluster.threads.worker_threads` counts :meth:`nthreads`."""

    name = ""
    """What :meth:`nthreads` calls the workers."""

    def __init__(self, executor: Executor, workers: int) -> None:
        self.threads = workers
        self._executor = executor

    def submit(self, function: Callable[..., Any], *args: Any, **_: Any) -> Future[Any]:
        """Run ``function(*args)`` on a worker (``key``, ``pure`` and the like are ignored)."""
        return self._executor.submit(function, *args)

    def gather(self, futures: Iterable[Future[Any]]) -> list[Any]:
        """The results of ``futures``, in order; re-raises the first error, as distributed."""
        return [future.result() for future in futures]

    def nthreads(self) -> dict[str, int]:
        """Tasks the workers run at once."""
        return {self.name: self.threads}

    def start(self) -> None:
        """Start the workers now, without waiting for them (threads: nothing to start)."""

    def close(self) -> None:
        """Wait for the running tasks and stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcess(_Runner):
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

    name = "in-process"

    def __init__(self, threads: int | None = None) -> None:
        threads = threads or os.cpu_count() or 1
        pool = ThreadPoolExecutor(threads, thread_name_prefix="daskmic-unit")
        super().__init__(pool, threads)


class LocalProcesses(_Runner):
    """Worker processes of this machine with the face of a ``distributed.Client``.

    The workers are forked, as they are first needed, from a server process that imported
    :data:`PRELOAD` once (``multiprocessing``'s ``forkserver``; ``spawn`` where there is none),
    never from this process, whose threads a fork would copy mid-flight. Functions and
    arguments travel pickled, as to a cluster's workers. A worker that dies breaks the pool:
    the tasks in it fail with ``BrokenProcessPool`` (the feeder runs their micrographs again)
    and the next :meth:`submit` starts a new pool. The workers end soon after the command if
    it is killed.

    Parameters
    ----------
    processes : int, optional
        Worker processes (default: one per core).

    Examples
    --------
    >>> with LocalProcesses(2) as runner:
    ...     runner.gather([runner.submit(pow, 2, n) for n in range(3)])
    [1, 2, 4]
    """

    name = "local-processes"

    def __init__(self, processes: int | None = None) -> None:
        processes = processes or os.cpu_count() or 1
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(list(PRELOAD))
        # the workers read the lifeline; its end here closes when this process ends, however
        self._lifeline_r, self._lifeline_w = context.Pipe(duplex=False)
        self._context = context
        super().__init__(self._pool(processes), processes)

    def _pool(self, processes: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            processes, mp_context=self._context, initializer=_end_with,
            initargs=(self._lifeline_r,)
        )

    def submit(self, function: Callable[..., Any], *args: Any, **_: Any) -> Future[Any]:
        """Run ``function(*args)`` on a worker; in a new pool if a worker died in the last."""
        try:
            return self._executor.submit(function, *args)
        except BrokenProcessPool:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._pool(self.threads)
            return self._executor.submit(function, *args)

    def start(self) -> None:
        """Start the worker processes in the background (the first waits for the server's
        imports); tasks submitted meanwhile wait for them."""
        threading.Thread(target=self._spawn, name="daskmic-start-workers", daemon=True).start()

    def _spawn(self) -> None:
        try:
            for _ in range(self.threads):  # the pool starts a worker per task while none is idle
                self._executor.submit(int)
        except RuntimeError:  # closed meanwhile (the run stopped before its work)
            pass

    def close(self) -> None:
        """Wait for the running tasks and stop the workers."""
        super().close()
        self._lifeline_w.close()
        self._lifeline_r.close()


def _end_with(command: Connection) -> None:
    """In a worker process: exit as soon as the command that started it is gone (killed).

    A worker waits on its task queue, which would never tell it, and the fork server lives as
    long as its workers: nothing is ever sent on ``command``, so a read ends only when the
    command's end of the pipe closes with it.
    """

    def watch() -> None:
        try:
            command.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="daskmic-command-watch", daemon=True).start()
