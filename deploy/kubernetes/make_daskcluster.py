"""Write deploy/kubernetes/daskcluster.yaml: daskmic's DaskCluster, from dask-kubernetes' helpers.

Usage (from the repository root)::

    python deploy/kubernetes/make_daskcluster.py                       # the committed defaults
    python deploy/kubernetes/make_daskcluster.py --workers 8 --memory-limit 8GiB \\
        --image registry.example.org/daskmic:0.1.0 -o my-daskcluster.yaml
    python deploy/kubernetes/make_daskcluster.py --service-account daskmic \\
        --storage-secret none -o irsa-daskcluster.yaml                # workload identity
    python deploy/kubernetes/make_daskcluster.py --volume-claim cryoem-data \\
        --mount-path /data -o nfs-daskcluster.yaml                    # a shared filesystem
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from daskmic.cluster.kubernetes import daskcluster_manifest, manifest_yaml

DEFAULT_OUTPUT = Path(__file__).with_name("daskcluster.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, build the manifest and write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="DaskCluster name (default daskmic)")
    parser.add_argument("--image", help="container image with daskmic (default daskmic:0.1.0)")
    parser.add_argument("--workers", type=int, default=2, help="worker pods (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--memory-limit", help="dask's limit per worker (default 4GiB)")
    parser.add_argument(
        "--service-type", default="ClusterIP", choices=["ClusterIP", "NodePort", "LoadBalancer"]
    )
    parser.add_argument(
        "--storage-secret",
        default="",
        metavar="NAME",
        help="Secret whose keys (AWS_ACCESS_KEY_ID, ...) become the pods' environment "
        "(default daskmic-storage; 'none': no secret)",
    )
    parser.add_argument(
        "--service-account", default="", metavar="NAME", help="the pods' service account "
        "(workload identity: IRSA on EKS, Workload Identity on GKE)"
    )
    parser.add_argument(
        "--volume-claim", metavar="CLAIM", help="mount this PersistentVolumeClaim in the workers "
        "(data on a shared filesystem; default: none, data in a bucket)"
    )
    parser.add_argument("--mount-path", default="/data", help="where (default /data)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    manifest = daskcluster_manifest(
        name=args.name,
        image=args.image,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        memory_limit=args.memory_limit,
        service_type=args.service_type,
        storage_secret=None if args.storage_secret == "none" else args.storage_secret,
        service_account=args.service_account,
        volume_claim=args.volume_claim,
        mount_path=args.mount_path,
    )
    args.output.write_text(manifest_yaml(manifest), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
