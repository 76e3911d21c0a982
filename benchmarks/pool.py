"""A warmed-up process pool: worker processes started and their imports done before timing."""

from __future__ import annotations

import importlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor


def _warm(modules: tuple[str, ...], hold_s: float) -> None:
    for name in modules:
        importlib.import_module(name)
    time.sleep(hold_s)  # keep this process busy so every worker receives one warm-up call


def warm_pool(processes: int, modules: tuple[str, ...]) -> ProcessPoolExecutor:
    """Start ``processes`` spawned workers and import ``modules`` in each."""
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    futures = [pool.submit(_warm, modules, 1.0) for _ in range(processes)]
    for future in futures:
        future.result()
    return pool
