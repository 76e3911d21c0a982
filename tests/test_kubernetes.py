"""The Kubernetes recipe: the DaskCluster manifest against the operator's own CRD schema.

No Kubernetes cluster runs here. The schema is the resolved ``openAPIV3Schema`` of the
``DaskCluster`` CustomResourceDefinition that ships inside the dask_kubernetes package (the
Helm chart's CRD, the one ``kubectl`` would validate against).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import runpy
from pathlib import Path

import jsonschema
import pytest
import yaml
from dask.utils import parse_bytes

from daskmic.cluster.client import connect
from daskmic.cluster.kubernetes import daskcluster_manifest, manifest_yaml

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"


@functools.cache
def _raw_crd_schema() -> dict:
    package = Path(importlib.util.find_spec("dask_kubernetes").origin).parent
    crds = sorted(package.glob("operator/deployment/helm/*/crds/daskcluster.yaml"))
    assert crds, f"no DaskCluster CRD found under {package}"
    crd = yaml.load(crds[0].read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["spec"]["names"]["kind"] == "DaskCluster"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def _crd_schema() -> dict:
    return _openapi_to_jsonschema(copy.deepcopy(_raw_crd_schema()))


def _pruned_fields(schema: dict, value: object, path: str = "") -> list[str]:
    """Fields the API server would silently drop: not in a structural schema's properties."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                found += _pruned_fields(properties[key], item, where)
            elif isinstance(extra, dict):
                found += _pruned_fields(extra, item, where)
            elif properties is not None and path:  # apiVersion/kind/metadata are the server's
                found.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += _pruned_fields(schema["items"], item, f"{path}[{index}]")
    return found


def _openapi_to_jsonschema(node: object) -> object:
    """Turn Kubernetes' OpenAPI v3 extensions into plain JSON Schema.

    ``x-kubernetes-int-or-string`` fields (CPU "1" or 1, ports 8786 or "tcp-comm") accept
    both; ``nullable`` adds null. Other ``x-kubernetes-*`` keys do not constrain values.
    """
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _openapi_to_jsonschema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = _crd_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, manifest: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]


def test_default_manifest_is_valid(validator: jsonschema.Draft7Validator) -> None:
    manifest = daskcluster_manifest()
    assert manifest["apiVersion"] == "kubernetes.dask.org/v1"
    assert manifest["kind"] == "DaskCluster"
    assert _errors(validator, manifest) == []
    assert _pruned_fields(_raw_crd_schema(), manifest) == []


def test_unknown_fields_are_found() -> None:
    manifest = daskcluster_manifest()
    manifest["spec"]["worker"]["replica"] = 3  # misspelt: Kubernetes would drop it
    manifest["spec"]["worker"]["spec"]["containers"][0]["memoryLimit"] = "4Gi"
    assert _pruned_fields(_raw_crd_schema(), manifest) == [
        "spec.worker.spec.containers[0].memoryLimit",
        "spec.worker.replica",
    ]


def test_sized_manifest_is_valid_and_sized(validator: jsonschema.Draft7Validator) -> None:
    manifest = daskcluster_manifest(
        name="screen",
        image="registry.example.org/daskmic:0.1.0",
        workers=5,
        threads_per_worker=3,
        memory_limit="8GiB",
        memory_margin=0.25,
        service_type="LoadBalancer",
    )
    assert _errors(validator, manifest) == []
    worker = manifest["spec"]["worker"]
    assert worker["replicas"] == 5
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example.org/daskmic:0.1.0"
    args = container["args"]
    assert args[:2] == ["dask", "worker"]
    assert args[args.index("--nthreads") + 1] == "3"
    assert int(args[args.index("--memory-limit") + 1]) == 8 * 2**30
    limits = container["resources"]["limits"]
    assert limits["cpu"] == "3"
    assert parse_bytes(limits["memory"].replace("Mi", "MiB")) >= 8 * 2**30 * 1.25  # margin
    assert {"name": "OMP_NUM_THREADS", "value": "3"} in container["env"]
    scheduler = manifest["spec"]["scheduler"]
    assert scheduler["spec"]["containers"][0]["args"][:2] == ["dask", "scheduler"]
    assert scheduler["service"]["type"] == "LoadBalancer"
    assert scheduler["service"]["selector"]["dask.org/cluster-name"] == "screen"


def test_schema_rejects_a_broken_manifest(validator: jsonschema.Draft7Validator) -> None:
    manifest = daskcluster_manifest()
    broken = copy.deepcopy(manifest)
    broken["spec"]["worker"]["replicas"] = "two"
    assert any("replicas" in error for error in _errors(validator, broken))
    broken = copy.deepcopy(manifest)
    del broken["spec"]["worker"]["spec"]["containers"]
    assert _errors(validator, broken)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("workers", 0, "workers must be an integer >= 1, got 0"),
        ("threads_per_worker", 1.5, "threads_per_worker must be an integer >= 1, got 1.5"),
        ("memory_margin", -0.1, "memory_margin must be >= 0, got -0.1"),
    ],
)
def test_bad_manifest_options_are_refused(option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        daskcluster_manifest(**{option: value})


def test_committed_manifest_is_the_generated_one(
    validator: jsonschema.Draft7Validator, tmp_path: Path
) -> None:
    out = tmp_path / "daskcluster.yaml"
    script = runpy.run_path(str(KUBERNETES / "make_daskcluster.py"), run_name="make_daskcluster")
    assert script["main"](["-o", str(out)]) == 0
    committed = (KUBERNETES / "daskcluster.yaml").read_text()
    assert committed == out.read_text() == manifest_yaml(daskcluster_manifest())
    assert _errors(validator, yaml.safe_load(committed)) == []


def test_dockerfile_installs_daskmic_from_the_repository() -> None:
    lines = [
        line.strip()
        for line in (KUBERNETES / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0].startswith("FROM python:3.1")
    copy_line = next(line for line in lines if line.startswith("COPY "))
    assert copy_line.split()[1:] == [".", "/src"]
    run = " ".join(lines[lines.index(copy_line) + 1 :])
    installed = re.search(r"\bpip install '?/src(\[[a-z0-9,]+\])?'?(\s|$)", run)
    assert installed, run
    assert "s3" in (installed.group(1) or ""), "the pods reach a bucket: s3fs is in the image"
    # the build context is the repository root, which has what pip needs to install daskmic
    assert (REPO / "pyproject.toml").is_file() and (REPO / "daskmic" / "__init__.py").is_file()
    # the manifest's image runs the commands a plain install of distributed provides
    manifest = yaml.safe_load((KUBERNETES / "daskcluster.yaml").read_text())
    for role in ("worker", "scheduler"):
        assert manifest["spec"][role]["spec"]["containers"][0]["args"][0] == "dask"
    ignored = (KUBERNETES / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_kubernetes_without_a_cluster_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(RuntimeError, match="no Kubernetes cluster is configured"):
        with connect("kubernetes"):
            pass


# --- data in a bucket: no shared volume, credentials from a Secret or workload identity -------


def _containers(manifest: dict) -> dict[str, dict]:
    return {
        role: manifest["spec"][role]["spec"]["containers"][0] for role in ("scheduler", "worker")
    }


def test_the_committed_recipe_needs_a_bucket_and_no_volume(
    validator: jsonschema.Draft7Validator,
) -> None:
    manifest = yaml.safe_load((KUBERNETES / "daskcluster.yaml").read_text())
    secret = yaml.safe_load((KUBERNETES / "storage-secret.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["apiVersion"] == "v1"
    for role, container in _containers(manifest).items():
        pod = manifest["spec"][role]["spec"]
        assert "volumes" not in pod and "volumeMounts" not in container, role
        reference = {"secretRef": {"name": secret["metadata"]["name"], "optional": True}}
        assert container["envFrom"] == [reference], role
    assert _errors(validator, manifest) == []
    assert _pruned_fields(_raw_crd_schema(), manifest) == []


def test_the_secret_s_keys_are_what_s3_clients_read(s3, tmp_path: Path) -> None:
    """The Secret's keys, as the pods' environment, reach a bucket with no storage options."""
    import json
    import os
    import subprocess
    import sys

    secret = yaml.safe_load((KUBERNETES / "storage-secret.yaml").read_text())
    names = set(secret["stringData"])
    assert names == set(s3.env), "the Secret holds exactly what an S3 client needs"
    bucket = s3.bucket()
    s3.filesystem().pipe_file(f"{bucket.removeprefix('s3://')}/raw/key.bin", b"in the bucket")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"HOME": str(tmp_path), **{name: s3.env[name] for name in names}}  # the pod's env
    code = (
        "import json, sys; from daskmic.io.storage import location; "
        "print(json.dumps(location(sys.argv[1]).read_bytes().decode()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"{bucket}/raw/key.bin"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == "in the bucket"


def test_workload_identity_and_a_shared_volume_are_options(
    validator: jsonschema.Draft7Validator,
) -> None:
    identity = daskcluster_manifest(service_account="daskmic-s3", storage_secret=None)
    for role, container in _containers(identity).items():
        assert identity["spec"][role]["spec"]["serviceAccountName"] == "daskmic-s3"
        assert "envFrom" not in container
    assert _errors(validator, identity) == []
    onprem = daskcluster_manifest(volume_claim="cryoem-data", mount_path="/data")
    worker = onprem["spec"]["worker"]["spec"]
    assert worker["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "cryoem-data"}}
    ]
    assert worker["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert "volumes" not in onprem["spec"]["scheduler"]["spec"]
    assert _errors(validator, onprem) == []
    assert _pruned_fields(_raw_crd_schema(), onprem) == []
    with pytest.raises(ValueError, match="mount_path must be an absolute path, got 'data'"):
        daskcluster_manifest(volume_claim="x", mount_path="data")


@pytest.mark.parametrize(
    ("options", "worker_has", "worker_lacks"),
    [
        (["--service-account", "daskmic-s3", "--storage-secret", "none"],
         {"serviceAccountName": "daskmic-s3"}, "envFrom"),
        (["--volume-claim", "cryoem-data", "--mount-path", "/data"],
         {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "cryoem-data"}}]},
         "serviceAccountName"),
    ],
)  # fmt: skip
def test_the_generator_script_makes_the_other_recipes(
    validator: jsonschema.Draft7Validator, tmp_path: Path, options, worker_has, worker_lacks
) -> None:
    out = tmp_path / "site.yaml"
    script = runpy.run_path(str(KUBERNETES / "make_daskcluster.py"), run_name="make_daskcluster")
    assert script["main"]([*options, "-o", str(out)]) == 0
    manifest = yaml.safe_load(out.read_text())
    worker = manifest["spec"]["worker"]["spec"]
    assert worker.items() >= worker_has.items()
    assert worker_lacks not in worker and worker_lacks not in worker["containers"][0]
    assert _errors(validator, manifest) == []
