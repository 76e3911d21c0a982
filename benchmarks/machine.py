"""A description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform

import numpy as np
import scipy


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (TypeError, KeyError):
        return "unknown"
    config = blas.get("openblas configuration", "")
    return f"{blas.get('name')} {blas.get('version')} {config}".strip()


def describe() -> list[str]:
    """Lines describing cores, RAM, CPU, Python, numpy/scipy and the BLAS thread pools."""
    threads = {
        name: os.environ[name]
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        if name in os.environ
    }
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return [
        f"CPU: {_cpu_model()}; {os.cpu_count()} cores; RAM {_ram_gib():.1f} GiB",
        f"OS: {platform.platform()}; Python {platform.python_version()}",
        f"numpy {np.__version__}; scipy {scipy.__version__}; BLAS: {_blas()}",
        f"thread variables: {threads or 'none set'}; load average at start: {load}",
    ]
