"""SLURM and PBS clusters through dask-jobqueue, configured from ``jobqueue.<kind>.*``.

daskmic adds two things to dask-jobqueue's own behaviour:

- the queue's memory request is the dask worker memory plus a margin
  (``daskmic.jobqueue.memory-margin``), unless ``job-mem`` / ``resource-spec`` is configured;
- the number of jobs is held constant with ``adapt(minimum_jobs=n, maximum_jobs=n)``, so a job
  whose workers retired at their ``--lifetime`` (before the walltime) is replaced by a new one,
  and the worker lifetime (plus stagger) is checked to end before the walltime.
"""

from __future__ import annotations

import math
from typing import Any

import dask.config
from dask.utils import parse_bytes, parse_timedelta

import daskmic.cluster.defaults  # noqa: F401  (daskmic's defaults in dask.config)


def start_jobqueue_cluster(
    kind: str,
    jobs: int,
    threads_per_worker: int | None,
    memory_limit: str | int | None,
    options: dict[str, Any],
) -> Any:
    """Start a ``SLURMCluster`` (``kind="slurm"``) or ``PBSCluster`` (``"pbs"``) of ``jobs`` jobs.

    Parameters
    ----------
    kind : {"slurm", "pbs"}
        The queueing system.
    jobs : int
        Number of jobs to keep running.
    threads_per_worker : int, optional
        Threads per worker; the job's cores are this times the processes per job.
    memory_limit : str or int, optional
        Memory per worker; the job's memory is this times the processes per job.
    options : dict
        Passed to the cluster class (``queue``, ``account``, ``walltime``, ``log_directory``...).

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        Started, with its jobs submitted.
    """
    cluster_class = _cluster_class(kind)
    kwargs = jobqueue_options(kind, threads_per_worker, memory_limit, options)
    cluster = cluster_class(**kwargs)
    try:
        cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)
    except BaseException:
        cluster.close()
        raise
    return cluster


def jobqueue_options(
    kind: str,
    threads_per_worker: int | None,
    memory_limit: str | int | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The keyword arguments daskmic gives the dask-jobqueue cluster class.

    Values in ``options`` win; the sizing arguments come next; the rest is left to
    ``jobqueue.<kind>.*`` in dask's configuration, except the memory request with its margin.

    Raises
    ------
    ValueError
        If the worker lifetime plus its stagger does not end before the walltime, or the
        memory margin is negative.
    """
    section = f"jobqueue.{kind}"
    kwargs = dict(options)
    processes = int(kwargs.get("processes") or dask.config.get(f"{section}.processes") or 1)
    kwargs["processes"] = processes
    if threads_per_worker is not None:
        kwargs.setdefault("cores", threads_per_worker * processes)
    if memory_limit is not None:
        kwargs.setdefault("memory", f"{parse_bytes(memory_limit) * processes}B")
    memory = kwargs.get("memory") or dask.config.get(f"{section}.memory")
    cores = kwargs.get("cores") or dask.config.get(f"{section}.cores")
    if memory is not None and cores is not None:
        _add_memory_request(kind, kwargs, int(cores), parse_bytes(memory))
    walltime = kwargs.get("walltime") or dask.config.get(f"{section}.walltime")
    extra = kwargs.get("worker_extra_args") or dask.config.get(f"{section}.worker-extra-args")
    check_lifetime(walltime, list(extra or []))
    return kwargs


def _add_memory_request(kind: str, kwargs: dict[str, Any], cores: int, memory: int) -> None:
    margin = float(dask.config.get("daskmic.jobqueue.memory-margin"))
    if margin < 0:
        raise ValueError(f"daskmic.jobqueue.memory-margin must be >= 0, got {margin}")
    request = math.ceil(memory * (1 + margin))
    if kind == "slurm":
        from dask_jobqueue.slurm import slurm_format_bytes_ceil

        job_mem = kwargs.get("job_mem") or dask.config.get("jobqueue.slurm.job-mem")
        if job_mem is None:
            kwargs["job_mem"] = slurm_format_bytes_ceil(request)
        elif slurm_memory_bytes(job_mem) < memory:
            raise ValueError(
                f"jobqueue.slurm.job-mem ({job_mem}) must be at least the workers' memory "
                f"({memory} bytes), or Slurm kills jobs before dask manages their memory"
            )
    else:
        from dask_jobqueue.pbs import pbs_format_bytes_ceil

        if (
            kwargs.get("resource_spec") is None
            and dask.config.get("jobqueue.pbs.resource-spec") is None
        ):
            kwargs["resource_spec"] = f"select=1:ncpus={cores}:mem={pbs_format_bytes_ceil(request)}"


def slurm_memory_bytes(text: str | int) -> int:
    """Bytes in a Slurm memory size (``--mem``): a number in MiB, or with a K/M/G/T suffix.

    Raises
    ------
    ValueError
        If ``text`` is not a Slurm memory size.
    """
    value = str(text).strip().upper()
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    unit = units.get(value[-1:], None)
    number = value[:-1] if unit else value
    if not number.isdigit():
        raise ValueError(
            f"job-mem must be a Slurm memory size like 4096, 4000M or 4G, got {text!r}"
        )
    return int(number) * (unit or 2**20)


def check_lifetime(walltime: str | None, worker_extra_args: list[str]) -> None:
    """Check that a worker's ``--lifetime`` plus ``--lifetime-stagger`` ends before the walltime.

    Parameters
    ----------
    walltime : str or None
        The job's walltime, ``[D-]HH:MM:SS``, ``MM:SS`` or minutes.
    worker_extra_args : list of str
        The worker's extra command-line arguments.

    Raises
    ------
    ValueError
        If the worker could still be running when the queue kills the job.
    """
    lifetime = _option_value(worker_extra_args, "--lifetime")
    if walltime is None or lifetime is None:
        return
    stagger = _option_value(worker_extra_args, "--lifetime-stagger") or "0s"
    latest_s = parse_timedelta(lifetime) + parse_timedelta(stagger)
    walltime_s = walltime_seconds(walltime)
    if latest_s >= walltime_s:
        raise ValueError(
            f"worker --lifetime {lifetime} + --lifetime-stagger {stagger} must end before the "
            f"walltime {walltime} ({latest_s:.0f} s >= {walltime_s:.0f} s): shorten the lifetime "
            "in jobqueue worker-extra-args or lengthen the walltime"
        )


def walltime_seconds(walltime: str) -> float:
    """Seconds in a walltime written as Slurm does: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``,
    ``D-HH:MM`` or ``D-HH:MM:SS`` (PBS's ``HH:MM:SS`` is the same).

    Raises
    ------
    ValueError
        If ``walltime`` is not in one of these forms.
    """
    text = str(walltime).strip()
    days, dash, clock = text.partition("-") if "-" in text else ("0", "", text)
    try:
        numbers = [float(days)] + [float(part) for part in clock.split(":")]
    except ValueError:
        numbers = []
    if len(numbers) < 2 or len(numbers) > 4 or min(numbers) < 0:
        raise ValueError(f"walltime must be [D-]HH:MM:SS, MM:SS or MM, got {walltime!r}")
    if dash:  # D-HH[:MM[:SS]]
        scales = [86400.0, 3600.0, 60.0, 1.0]
    else:  # MM, MM:SS or HH:MM:SS
        scales = [86400.0] + {2: [60.0], 3: [60.0, 1.0], 4: [3600.0, 60.0, 1.0]}[len(numbers)]
    return sum(n * s for n, s in zip(numbers, scales, strict=False))


def _option_value(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return str(args[index + 1])
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _cluster_class(kind: str) -> Any:
    try:
        import dask_jobqueue
    except ImportError as error:
        raise ImportError(
            f"cluster {kind!r} needs dask-jobqueue, which is not installed: "
            "pip install daskmic[slurm]"
        ) from error
    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
