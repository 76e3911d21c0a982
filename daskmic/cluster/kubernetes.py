"""Kubernetes: a ``DaskCluster`` manifest for daskmic's workers, and dask-kubernetes' KubeCluster.

The manifest is built with dask-kubernetes' own :func:`make_cluster_spec`, then given daskmic's
worker sizing (threads, memory limit, the pod's memory limit with a margin above dask's, one
BLAS/FFT thread per dask thread) and the ``dask scheduler`` / ``dask worker`` commands that a
plain ``pip install`` of distributed provides. The operator (installed in the Kubernetes
cluster) turns the ``DaskCluster`` resource into scheduler and worker pods.

Data lives in a bucket: the workers read ``s3://`` (``gs://``, ``az://``) inputs and write the
outputs there, so the pods need no shared volume, only credentials. They come from a Secret
whose keys become the pods' environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL`` for an S3-compatible store), or from the cloud's workload identity
through the pods' service account. A shared volume (a PersistentVolumeClaim) stays an option
for clusters whose data is on a filesystem.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import dask.config
import yaml
from dask.utils import parse_bytes

import daskmic.cluster.defaults  # noqa: F401  (daskmic's defaults in dask.config)


def daskcluster_manifest(
    *,
    name: str | None = None,
    image: str | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int | None = None,
    memory_margin: float | None = None,
    scheduler_memory: str | int | None = None,
    service_type: str = "ClusterIP",
    storage_secret: str | None = "",
    service_account: str | None = "",
    volume_claim: str | None = None,
    mount_path: str = "/data",
) -> dict[str, Any]:
    """Build a ``kubernetes.dask.org/v1`` ``DaskCluster`` resource for daskmic.

    Parameters
    ----------
    name : str, optional
        The resource's name (default ``daskmic.kubernetes.name``).
    image : str, optional
        Container image with daskmic installed (default ``daskmic.kubernetes.image``).
    workers : int
        Worker pods.
    threads_per_worker : int
        Threads in each worker; also the pod's CPU request and limit.
    memory_limit : str or int, optional
        Dask's memory limit per worker (default ``daskmic.kubernetes.memory-limit``).
    memory_margin : float, optional
        The pod's memory limit is ``memory_limit * (1 + memory_margin)``, so Kubernetes never
        kills a worker before dask's own memory management acts (default
        ``daskmic.kubernetes.memory-margin``).
    scheduler_memory : str or int, optional
        The scheduler pod's memory (default ``daskmic.kubernetes.scheduler-memory``).
    service_type : str
        The scheduler service's type: ``ClusterIP`` (reach it through ``kubectl port-forward``
        or from inside the cluster), ``NodePort`` or ``LoadBalancer``.
    storage_secret : str or None, optional
        A Secret whose keys become environment variables of the scheduler and the workers
        (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` ...): how
        object-store credentials reach them. Optional in the pods, so they start without it.
        ``""`` (the default): ``daskmic.kubernetes.storage-secret``; None: no secret.
    service_account : str or None, optional
        The pods' service account, for the cloud's workload identity (IRSA on EKS, Workload
        Identity on GKE). ``""`` (the default): ``daskmic.kubernetes.service-account``;
        None: the namespace's default account.
    volume_claim : str, optional
        A PersistentVolumeClaim mounted at ``mount_path`` in the worker pods, for data on a
        shared filesystem (on premises). None (the default): no volume; data in a bucket.
    mount_path : str
        Where the claim is mounted (the same path as in daskmic's own process).

    Returns
    -------
    dict
        The manifest, ready for ``yaml.safe_dump`` and ``kubectl apply -f``.

    Raises
    ------
    ValueError
        On a non-positive size or a negative margin.
    """
    from dask_kubernetes.operator import make_cluster_spec

    config = dask.config.get("daskmic.kubernetes")
    name = name or config["name"]
    image = image or config["image"]
    memory_bytes = parse_bytes(memory_limit or config["memory-limit"])
    margin = float(config["memory-margin"] if memory_margin is None else memory_margin)
    scheduler_bytes = parse_bytes(scheduler_memory or config["scheduler-memory"])
    for label, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if int(value) != value or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    if margin < 0:
        raise ValueError(f"memory_margin must be >= 0, got {margin}")
    if memory_bytes <= 0 or scheduler_bytes <= 0:
        raise ValueError(f"memory_limit must be > 0, got {memory_limit!r}")
    if not mount_path.startswith("/"):
        raise ValueError(f"mount_path must be an absolute path, got {mount_path!r}")

    worker_command = ["dask", "worker", "--nthreads", str(threads_per_worker)]
    worker_command += ["--memory-limit", str(memory_bytes)]
    spec = make_cluster_spec(
        name,
        image=image,
        n_workers=workers,
        resources=_resources(str(threads_per_worker), math.ceil(memory_bytes * (1 + margin))),
        env=_thread_env(threads_per_worker),
        worker_command=worker_command,
        scheduler_service_type=service_type,
    )
    spec = copy.deepcopy(spec)  # the helper shares one resources dict between both pods
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    scheduler["args"] = ["dask", "scheduler", *scheduler["args"][1:]]
    scheduler["resources"] = _resources("1", scheduler_bytes)
    scheduler["env"] = _thread_env(1)
    secret = config["storage-secret"] if storage_secret == "" else storage_secret
    account = config["service-account"] if service_account == "" else service_account
    for role in ("scheduler", "worker"):
        _give_credentials(spec["spec"][role]["spec"], secret, account)
    if volume_claim is not None:
        _mount_claim(spec["spec"]["worker"]["spec"], volume_claim, mount_path)
    return spec


def manifest_yaml(manifest: dict[str, Any]) -> str:
    """The manifest as YAML text, with a header saying how it was made."""
    header = (
        "# Generated by deploy/kubernetes/make_daskcluster.py with dask-kubernetes'\n"
        "# make_cluster_spec; edit that script (or pass options) rather than this file.\n"
    )
    return header + yaml.safe_dump(manifest, sort_keys=False)


def start_kube_cluster(
    workers: int,
    threads_per_worker: int | None,
    memory_limit: str | int | None,
    options: dict[str, Any],
) -> Any:
    """Start a dask-kubernetes operator ``KubeCluster`` of ``workers`` worker pods.

    Uses ``daskmic.kubernetes.manifest`` when it names a manifest file, otherwise builds one
    with :func:`daskcluster_manifest`. ``options`` go to ``KubeCluster`` (``namespace``,
    ``custom_cluster_spec``, ``resource_timeout``...).

    Raises
    ------
    ImportError
        If dask-kubernetes is not installed.
    RuntimeError
        If no Kubernetes cluster is configured (no kubeconfig, no in-cluster account).
    """
    try:
        import kr8s
        from dask_kubernetes.operator import KubeCluster
    except ImportError as error:
        raise ImportError(
            "cluster 'kubernetes' needs dask-kubernetes, which is not installed: "
            "pip install daskmic[kubernetes]"
        ) from error
    try:
        kr8s.api()
    except Exception as error:  # kr8s raises ValueError without credentials
        raise RuntimeError(
            "cluster 'kubernetes': no Kubernetes cluster is configured "
            f"({error}); set KUBECONFIG or run inside a pod, and install the dask-kubernetes "
            "operator there (see deploy/kubernetes/README.md)"
        ) from error
    kwargs = dict(options)
    if "custom_cluster_spec" not in kwargs:
        manifest = dask.config.get("daskmic.kubernetes.manifest")
        kwargs["custom_cluster_spec"] = manifest or daskcluster_manifest(
            workers=workers,
            threads_per_worker=threads_per_worker or 1,
            memory_limit=memory_limit,
        )
    kwargs.setdefault("n_workers", workers)
    kwargs.setdefault("shutdown_on_close", True)
    return KubeCluster(**kwargs)


def _give_credentials(pod: dict[str, Any], secret: str | None, account: str | None) -> None:
    """Object-store credentials for a pod: a Secret as environment, a service account, both."""
    if secret:
        for container in pod["containers"]:
            container["envFrom"] = [{"secretRef": {"name": secret, "optional": True}}]
    if account:
        pod["serviceAccountName"] = account


def _mount_claim(pod: dict[str, Any], claim: str, mount_path: str) -> None:
    """Mount a PersistentVolumeClaim (a shared filesystem) at ``mount_path`` in the pod."""
    pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    for container in pod["containers"]:
        container["volumeMounts"] = [{"name": "data", "mountPath": mount_path}]


def _resources(cpu: str, memory_bytes: int) -> dict[str, dict[str, str]]:
    mebibytes = f"{math.ceil(memory_bytes / 2**20)}Mi"
    amounts = {"cpu": cpu, "memory": mebibytes}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _thread_env(threads: int) -> list[dict[str, str]]:
    # numpy/scipy's BLAS and FFT threads: one per dask thread, so pods do not oversubscribe.
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return [{"name": name, "value": str(threads)} for name in names]
