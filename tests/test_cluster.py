"""daskmic.cluster: real schedulers and worker processes on loopback, and the configuration.

Tasks sent to workers are builtins (``pow``): with ``--import-mode=importlib`` a function defined
here would not unpickle on a worker.
"""

from __future__ import annotations

import gc
import io
import os
import re
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster, as_completed

from daskmic.cluster.client import KINDS, QuickExit, connect, local_cluster_size, worker_threads
from daskmic.cluster.defaults import CONFIG_PATH, load_config
from daskmic.cluster.jobqueue import (
    check_lifetime,
    jobqueue_options,
    slurm_memory_bytes,
    walltime_seconds,
)
from daskmic.cluster.progress import track

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _dotted(tree: dict, prefix: str = "") -> dict:
    """A YAML configuration as dotted keys, so ``dask.config.set`` merges it as a file would."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# --- real clusters -------------------------------------------------------------------------


def test_local_cluster_computes_on_two_worker_processes() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((400, 300))
    with connect("local", workers=2, dashboard_address=":0", quiet=True) as client:
        client.wait_for_workers(2, timeout=60)
        info = client.scheduler_info()["workers"]
        pids = set(client.run(os.getpid).values())
        total = da.from_array(values, chunks=(100, 100)).sum().compute()
        cluster = client.cluster
    assert len(info) == 2
    assert [w["nthreads"] for w in info.values()] == [1, 1]
    expected_memory = local_cluster_size(workers=2)["memory_limit"]
    assert [w["memory_limit"] for w in info.values()] == [expected_memory] * 2
    assert len(pids) == 2 and os.getpid() not in pids  # separate worker processes
    assert total == pytest.approx(float(np.sum(values, dtype=np.float64)), rel=1e-12)
    assert cluster.status.name == "closed"  # the started cluster is stopped on exit


def test_local_cluster_without_waiting_takes_tasks_before_its_workers_join() -> None:
    with connect("local", workers=2, dashboard=False, quiet=True, wait=False) as client:
        assert worker_threads(client) == 2  # known from the spec, whether or not they joined
        squares = client.gather(client.map(pow, range(8), [2] * 8, pure=False))
        client.wait_for_workers(2, timeout=60)
        pids = set(client.run(os.getpid).values())
        specs = client.cluster.worker_spec.values()
        sampling = client.run(dask.config.get, "distributed.worker.profile.interval")
    assert squares == [x * x for x in range(8)]
    assert len(pids) == 2 and os.getpid() not in pids
    assert set(sampling.values()) == {dask.config.get("distributed.worker.profile.interval")}
    assert all(any(isinstance(p, QuickExit) for p in spec["options"]["plugins"]) for spec in specs)


def test_worker_threads_counts_connected_workers_of_an_existing_scheduler(
    client: Client,
) -> None:
    assert worker_threads(client) == sum(client.nthreads().values()) > 0


def test_quick_exit_freezes_the_worker_objects_at_teardown() -> None:
    assert gc.get_freeze_count() == 0
    try:
        QuickExit().teardown(worker=None)  # type: ignore[arg-type]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_existing_scheduler_address_is_used_and_left_running(client: Client) -> None:
    address = client.scheduler.address
    with connect(address, quiet=True) as connected:
        assert connected.scheduler.address == address
        assert connected.cluster is None
        result = connected.gather(connected.map(pow, range(10), [2] * 10))
    assert result == [x * x for x in range(10)]
    assert client.submit(pow, 7, 2).result(timeout=30) == 49  # still running


def test_scheduler_file_is_accepted(tmp_path: Path) -> None:
    scheduler_file = tmp_path / "scheduler.json"
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"scheduler_file": str(scheduler_file)},
    ):
        with connect(str(scheduler_file), quiet=True) as connected:
            assert connected.submit(pow, 12, 2).result(timeout=30) == 144


def test_dashboard_link_is_printed(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    with connect(client.scheduler.address):
        pass
    err = capsys.readouterr().err
    assert client.scheduler.address in err
    assert "dashboard" in err


def test_dashboard_can_be_left_off(capsys: pytest.CaptureFixture[str]) -> None:
    with connect("local", workers=1, dashboard=False) as client:
        assert client.submit(pow, 3, 2).result(timeout=60) == 9
        status = urllib.request.urlopen(client.dashboard_link.replace("/status", "/health"))
        assert status.read() == b"ok", "the scheduler's HTTP server still answers"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(client.dashboard_link)  # but there is no dashboard
    assert "dashboard off" in capsys.readouterr().err


def test_dashboard_off_reaches_the_jobqueue_scheduler_but_not_a_users_choice() -> None:
    from daskmic.cluster.client import _without_dashboard

    routes = {"dashboard_address": "127.0.0.1:0"}  # the HTTP routes on a free port
    assert _without_dashboard("local", {}) == {
        "dashboard_address": None,
        "scheduler_kwargs": routes,
    }
    assert _without_dashboard("local", {"dashboard_address": ":0"}) == {"dashboard_address": ":0"}
    assert _without_dashboard("local", {"scheduler_kwargs": {"dashboard_address": ":9"}}) == {
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard_address": ":9"},
    }
    kept = {"scheduler_options": {"interface": "ib0"}, "queue": "gpu"}
    assert _without_dashboard("slurm", kept) == {
        "scheduler_options": {"dashboard": False, "dashboard_address": ":0", "interface": "ib0"},
        "queue": "gpu",
    }
    assert kept == {"scheduler_options": {"interface": "ib0"}, "queue": "gpu"}, "not modified"
    chosen = {"scheduler_options": {"dashboard_address": ":8788"}}
    assert _without_dashboard("pbs", chosen) == chosen


def test_a_second_cluster_without_dashboard_does_not_warn_about_port_8787() -> None:
    """With the dashboard off, the scheduler's routes take a free port, not 8787."""
    import socket
    import warnings

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:
        pass  # another cluster of this machine holds 8787 already: the same situation
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with connect("local", workers=1, dashboard=False, quiet=True) as client:
                assert client.submit(pow, 2, 5).result(timeout=60) == 32
                health = client.dashboard_link.replace("/status", "/health")
                assert urllib.request.urlopen(health).read() == b"ok"
                assert ":8787/" not in client.dashboard_link
        assert not [w for w in caught if "8787" in str(w.message)]
    finally:
        holder.close()


def test_progress_bar_counts_completed_futures(client: Client) -> None:
    futures = client.map(pow, range(6), [2] * 6, pure=False)
    stream = io.StringIO()
    seen = [
        f.result()
        for f in track(
            as_completed(futures, loop=client.loop), total=6, stream=stream, enabled=True
        )
    ]
    assert sorted(seen) == [x * x for x in range(6)]
    assert "6/6" in stream.getvalue()
    assert "micrographs" in stream.getvalue()


def test_progress_bar_off_when_not_a_terminal() -> None:
    stream = io.StringIO()
    assert list(track(iter([3, 1, 2]), total=3, stream=stream)) == [3, 1, 2]
    assert stream.getvalue() == ""
    with pytest.raises(ValueError, match="total must be >= 0, got -1"):
        list(track([], total=-1))


# --- choices and errors --------------------------------------------------------------------


def test_unknown_cluster_kind_is_a_value_error_naming_value_and_choices() -> None:
    with pytest.raises(ValueError) as error:
        with connect("slrum"):
            pass
    message = str(error.value)
    assert "'slrum'" in message
    for kind in KINDS:
        assert kind in message
    assert "tcp://" in message


@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_invalid_worker_count_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=f"workers must be an integer >= 1, got {value!r}"):
        with connect("local", workers=value):  # type: ignore[arg-type]
            pass


def test_sizing_an_existing_scheduler_is_refused() -> None:
    with pytest.raises(ValueError, match="workers cannot be set for an existing scheduler"):
        with connect("tcp://127.0.0.1:1", workers=2):
            pass


@pytest.mark.parametrize(
    ("kind", "module", "extra"),
    [
        ("slurm", "dask_jobqueue", "slurm"),
        ("pbs", "dask_jobqueue", "slurm"),
        ("kubernetes", "dask_kubernetes.operator", "kubernetes"),
    ],
)
def test_missing_optional_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, kind: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=rf"pip install daskmic\[{extra}\]"):
        with connect(kind):
            pass


# --- local sizing --------------------------------------------------------------------------


def test_local_cluster_is_sized_to_the_machine() -> None:
    from dask.system import CPU_COUNT
    from distributed.system import MEMORY_LIMIT

    fraction = dask.config.get("daskmic.cluster.memory-fraction")
    size = local_cluster_size()
    assert size["n_workers"] == CPU_COUNT
    assert size["threads_per_worker"] == 1
    assert size["memory_limit"] == int(MEMORY_LIMIT * fraction) // CPU_COUNT
    assert local_cluster_size(3, 2, "1GiB") == {
        "n_workers": 3,
        "threads_per_worker": 2,
        "memory_limit": 2**30,
    }
    with dask.config.set({"daskmic.cluster.memory-fraction": 1.5}):
        with pytest.raises(ValueError, match=r"memory-fraction must be in \(0, 1\], got 1.5"):
            local_cluster_size()


# --- configuration -------------------------------------------------------------------------


def test_daskmic_defaults_are_in_dask_config() -> None:
    shipped = yaml.safe_load(CONFIG_PATH.read_text())
    for key in ("threads-per-worker", "memory-fraction", "jobs"):
        assert dask.config.get(f"daskmic.cluster.{key}") == shipped["daskmic"]["cluster"][key]
    for kind in ("slurm", "pbs"):
        for key, value in shipped["jobqueue"][kind].items():
            assert dask.config.get(f"jobqueue.{kind}.{key}") == value
    distributed = shipped["distributed"]
    assert (
        dask.config.get("distributed.admin.tick.interval")
        == (distributed["admin"]["tick"]["interval"])
    )
    assert (
        dask.config.get("distributed.worker.profile.interval")
        == (distributed["worker"]["profile"]["interval"])
    )
    # dask-jobqueue's own defaults for keys daskmic does not set are still there
    assert dask.config.get("jobqueue.slurm.death-timeout") == 60


def test_user_configuration_wins_over_daskmic_defaults() -> None:
    with dask.config.set({"jobqueue.slurm.walltime": "02:00:00", "daskmic.cluster.jobs": 7}):
        load_config()
        assert dask.config.get("jobqueue.slurm.walltime") == "02:00:00"
        assert dask.config.get("daskmic.cluster.jobs") == 7
    assert dask.config.get("daskmic.cluster.jobs") == 1


def test_defaults_are_shipped_in_the_package() -> None:
    import tomllib

    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    package_data = pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {})
    patterns = package_data.get("daskmic", []) + package_data.get("*", [])
    assert any(Path(CONFIG_PATH.name).match(p) for p in patterns), (
        "daskmic/daskmic.yaml must be listed in [tool.setuptools.package-data] "
        "or a `pip install` (the container image) lacks daskmic's defaults"
    )


# --- SLURM / PBS options (no queue needed: nothing is submitted) -----------------------------


def test_slurm_memory_request_adds_the_margin() -> None:
    margin = dask.config.get("daskmic.jobqueue.memory-margin")
    kwargs = jobqueue_options("slurm", 2, "2GiB", {})
    assert kwargs["cores"] == 2 and kwargs["processes"] == 1
    assert kwargs["memory"] == f"{2 * 2**30}B"
    requested_gib = float(kwargs["job_mem"].rstrip("G"))
    assert requested_gib * 2**30 >= 2 * 2**30 * (1 + margin)
    assert (requested_gib - 1) * 2**30 < 2 * 2**30 * (1 + margin)  # rounded up, not more


def test_pbs_resource_spec_adds_the_margin() -> None:
    kwargs = jobqueue_options("pbs", None, None, {})
    assert kwargs["resource_spec"].startswith("select=1:ncpus=1:mem=")


def test_configured_job_memory_is_kept_and_checked() -> None:
    with dask.config.set({"jobqueue.slurm.job-mem": "9G"}):
        assert "job_mem" not in jobqueue_options("slurm", None, None, {})
    assert jobqueue_options("slurm", None, None, {"job_mem": "8G"})["job_mem"] == "8G"
    with pytest.raises(ValueError, match=r"job-mem \(3000\) must be at least the workers'"):
        jobqueue_options("slurm", None, None, {"job_mem": "3000"})  # MiB < 3.5 GiB


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096 * 2**20), ("4000M", 4000 * 2**20), ("4G", 4 * 2**30), ("512k", 512 * 2**10)],
)
def test_slurm_memory_sizes(text: str, expected: int) -> None:
    assert slurm_memory_bytes(text) == expected


def test_bad_slurm_memory_size_is_refused() -> None:
    with pytest.raises(ValueError, match="job-mem must be a Slurm memory size .* got '4GB'"):
        slurm_memory_bytes("4GB")


def test_slurm_job_script_has_lifetime_and_memory_margin(tmp_path: Path) -> None:
    from dask_jobqueue import SLURMCluster

    kwargs = jobqueue_options("slurm", None, None, {"log_directory": str(tmp_path)})
    with SLURMCluster(scheduler_options={"dashboard_address": None}, **kwargs) as cluster:
        script = cluster.job_script()
    assert "--lifetime 55m" in script and "--lifetime-stagger 4m" in script
    assert "#SBATCH -t 01:00:00" in script
    assert f"#SBATCH --mem={kwargs['job_mem']}" in script
    assert "--memory-limit 3.50GiB" in script
    assert sys.executable in script  # workers run this same Python


def test_lifetime_must_end_before_the_walltime() -> None:
    with pytest.raises(ValueError, match=r"--lifetime 55m \+ --lifetime-stagger 4m .* 00:30:00"):
        jobqueue_options("slurm", None, None, {"walltime": "00:30:00"})
    check_lifetime("01:00:00", ["--lifetime=50m", "--lifetime-stagger=9m"])
    with pytest.raises(ValueError, match="walltime 01:00:00"):
        check_lifetime("01:00:00", ["--lifetime=50m", "--lifetime-stagger=10m"])
    check_lifetime(None, ["--lifetime", "99h"])  # no walltime: nothing to check
    check_lifetime("00:10:00", [])  # no lifetime: nothing to check


@pytest.mark.parametrize(
    ("walltime", "seconds"),
    [
        ("01:00:00", 3600),
        ("30", 30 * 60),
        ("30:15", 30 * 60 + 15),
        ("2-12", 2 * 86400 + 12 * 3600),
        ("1-00:30", 86400 + 30 * 60),
        ("1-02:03:04", 86400 + 2 * 3600 + 3 * 60 + 4),
    ],
)
def test_walltime_forms(walltime: str, seconds: int) -> None:
    assert walltime_seconds(walltime) == seconds


@pytest.mark.parametrize("walltime", ["", "x", "1:2:3:4", "-5", "01:-1:00"])
def test_bad_walltime_is_refused(walltime: str) -> None:
    with pytest.raises(ValueError, match=f"walltime must be .* got {walltime!r}"):
        walltime_seconds(walltime)


def test_deploy_slurm_jobqueue_sample_is_consistent(tmp_path: Path) -> None:
    from dask.utils import parse_bytes
    from dask_jobqueue import SLURMCluster

    sample = yaml.safe_load((DEPLOY / "slurm" / "jobqueue.yaml").read_text())
    slurm = sample["jobqueue"]["slurm"]
    assert parse_bytes(slurm["job-mem"]) > parse_bytes(slurm["memory"])  # the memory margin
    with dask.config.set(_dotted(sample)):
        kwargs = jobqueue_options("slurm", None, None, {"log_directory": str(tmp_path)})
        with SLURMCluster(scheduler_options={"dashboard_address": None}, **kwargs) as cluster:
            script = cluster.job_script()
    assert "#SBATCH --mem=16G" in script and "#SBATCH -t 04:00:00" in script
    assert "--lifetime 230m --lifetime-stagger 5m" in script
    assert walltime_seconds(slurm["walltime"]) > (230 + 5) * 60


# --- TLS: the sample configuration secures a real cluster ----------------------------------


def _write_test_certificates(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "daskmic-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_sample_secures_a_real_cluster(tmp_path: Path) -> None:
    from distributed.security import Security

    sample = yaml.safe_load((DEPLOY / "tls.yaml").read_text())
    tls = sample["distributed"]["comm"]["tls"]
    cert, key = _write_test_certificates(tmp_path)
    tls["ca-file"] = str(cert)
    for role in ("scheduler", "worker", "client"):
        tls[role] = {"cert": str(cert), "key": str(key)}
    with dask.config.set(_dotted(sample)):
        security = Security()
        assert security.require_encryption
        with LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            protocol="tls://",
            security=security,
            dashboard_address=None,
        ) as cluster:
            assert cluster.scheduler_address.startswith("tls://")
            with connect(cluster.scheduler_address, quiet=True) as connected:
                assert connected.submit(pow, 9, 2).result(timeout=30) == 81
                workers = connected.scheduler_info()["workers"]
    assert workers and all(address.startswith("tls://") for address in workers)


# --- fault tolerance: a worker killed mid-run ----------------------------------------------

_MRC_TIMESTAMP = re.compile(rb"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def _mrc_bytes(path: Path) -> bytes:
    """The file's bytes without the timestamp mrcfile writes into the first header label."""
    raw = path.read_bytes()
    return raw[:224] + _MRC_TIMESTAMP.sub(b"", raw[224:1024]) + raw[1024:]


def _rows(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "micrographs.csv")
    return table.replace(re.escape(str(out.resolve())), "OUT", regex=True)


def _zarr_arrays(out: Path) -> dict[str, np.ndarray]:
    import zarr

    found: dict[str, np.ndarray] = {}

    def walk(group, prefix: str) -> None:
        for name, array in group.arrays():
            found[prefix + name] = array[...]
        for name, subgroup in group.groups():
            walk(subgroup, f"{prefix}{name}/")

    walk(zarr.open_group(out / "micrographs.zarr", mode="r"), "")
    return found


@pytest.mark.slow
def test_killed_worker_mid_run_loses_and_corrupts_nothing(
    write_micrographs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daskmic.preprocessing.params import PreprocessParams
    from daskmic.run.config import RunConfig
    from daskmic.run.driver import run_batch

    monkeypatch.chdir(tmp_path)
    paths = [str(p) for p in write_micrographs(n=8, shape=(384, 384))]
    steps = PreprocessParams.from_options(crop=True, invert=True, downsample=True, denoise=20)
    config = RunConfig(preprocess=steps)
    killed: list[int] = []

    with connect("local", workers=2, dashboard_address=None, quiet=True) as client:

        def kill_a_busy_worker(row: dict) -> None:
            busy = [address for address, keys in client.processing().items() if keys]
            if killed or not busy:
                return
            pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker process
            killed.append(pid)

        run_batch(paths, tmp_path / "killed", config, client=client, on_row=kill_a_busy_worker)
        restarted = set(client.run(os.getpid).values())
        run_batch(paths, tmp_path / "clean", config, client=client)

    assert killed and killed[0] not in restarted  # a worker process died while busy
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    names = sorted(p.name for p in (clean_out / "mrc").glob("*.mrc"))
    assert names == [f"mic_{i:03d}.mrc" for i in range(8)]
    assert sorted(p.name for p in (killed_out / "mrc").glob("*.mrc")) == names
    for name in names:
        assert _mrc_bytes(killed_out / "mrc" / name) == _mrc_bytes(clean_out / "mrc" / name)
    rows = _rows(killed_out)
    assert list(rows["status"]) == ["done"] * 8
    pd.testing.assert_frame_equal(rows, _rows(clean_out))
    star = (killed_out / "micrographs.star").read_text().replace("killed/mrc/", "OUT/mrc/")
    assert star == (clean_out / "micrographs.star").read_text().replace("clean/mrc/", "OUT/mrc/")
    killed_arrays, clean_arrays = _zarr_arrays(killed_out), _zarr_arrays(clean_out)
    assert sorted(killed_arrays) == sorted(clean_arrays)
    assert {f"micrographs/{name[:-4]}/0/image" for name in names} <= set(clean_arrays)
    for key, values in clean_arrays.items():
        if "path" in key:  # absolute output paths differ by folder only (checked in the table)
            continue
        np.testing.assert_array_equal(killed_arrays[key], values, err_msg=key)
