"""Data in object storage, as a user runs daskmic: the bar of #15, against S3 on 127.0.0.1.

A small held-out set (``daskmic.datasets``) is uploaded to moto's S3 server and kept as local
files too. ``daskmic preprocess`` and ``daskmic tilt`` run on it as subprocesses, as the
README's "Data in object storage" lines say (``--storage-options`` with the endpoint, the
credentials in the environment), and the same commands on the local copies: every MRC is the
same byte for byte and every table row the same (path columns aside, which name each run's own
places). The outputs on s3 open with ``xr.open_zarr(url, storage_options=...)`` and
``starfile`` (through ``fsspec``). A run killed by SIGKILL once its first micrograph is
recorded and started again ends as the uninterrupted one; ``watch`` on a prefix equals the
batch run; an HTTP set (a STAR table with relative names) works; a missing bucket, a denied
key and a vanished object each give one failed row, and an output location that cannot be
written is a usage error (exit 2) before any work.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import starfile
import xarray as xr
from mrcfile.mrcinterpreter import MrcInterpreter

pytestmark = pytest.mark.slow  # end to end, as a user runs daskmic (still in CI)

README = Path(__file__).resolve().parents[2] / "README.md"
N = 5
SMALL = {"tilt": ["--window-size", "256"]}
"""Added to the README's lines for the held-out set's 512² micrographs (as test_readme.py does
with its small inputs)."""
TABLES = ("micrographs.csv", "tilt.csv", "micrographs.star", "accepted.star", "discarded.star",
          "micrographs.xmd", "accepted.txt", "rejected.txt")  # fmt: skip


# --- the data, the bucket, the command --------------------------------------------------------


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``raw/mic_00N.mrc``: five micrographs of 512² at 1.5 Å/px, two of them tilted (the
    screen accepts some and discards others)."""
    from daskmic.datasets import make_dataset

    folder = tmp_path_factory.mktemp("held_out")
    make_dataset(
        folder / "raw",
        n=N,
        shape=(512, 512),
        pixel_size_A=1.5,
        tilt_angles_deg=(0.0, 35.0, 0.0, 50.0, 0.0),
        hot_pixels=3,
        phase_std=0.3,
        seed=151,
    )
    return folder


class Bucket:
    """A fresh bucket holding ``raw/`` (the held-out set), and the S3 endpoint's options."""

    def __init__(self, s3, held_out: Path) -> None:
        self.url = s3.bucket()
        self.name = self.url.removeprefix("s3://")
        self.fs = s3.filesystem()
        self.storage_options = s3.storage_options
        self.options_json = json.dumps({"client_kwargs": {"endpoint_url": s3.url}})
        for path in sorted((held_out / "raw").glob("*.mrc")):
            self.fs.pipe_file(f"{self.name}/raw/{path.name}", path.read_bytes())

    def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (relative to it), sorted; a fresh listing."""
        self.fs.invalidate_cache()  # s3fs answers reads of unknown keys from its listings
        found = self.fs.find(f"{self.name}/{prefix}", refresh=True)
        return sorted(k.removeprefix(f"{self.name}/{prefix}/") for k in found)


@pytest.fixture(scope="module")
def bucket(s3, held_out: Path) -> Bucket:
    return Bucket(s3, held_out)


@pytest.fixture(scope="module")
def run(s3, daskmic_command, cluster_options) -> Callable[..., subprocess.CompletedProcess]:
    """``daskmic ARGS`` as a subprocess on the session's cluster, credentials in its
    environment (the endpoint comes with ``--storage-options``, as the user gives it)."""
    command, env = daskmic_command
    env = {**env, **{k: v for k, v in s3.env.items() if k != "AWS_ENDPOINT_URL"}}

    def daskmic(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, *args, *cluster_options],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    return daskmic


def _ok(done: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    assert done.returncode == code, (done.args, done.stdout[-3000:], done.stderr[-5000:])
    assert "Traceback" not in done.stderr, done.stderr[-5000:]
    return done


# --- what a run left: MRC bytes and table rows, on s3 or local ---------------------------------


def _files(read: Callable[[str], bytes], keys: list[str]) -> dict[str, bytes]:
    return {key: read(key) for key in keys if key.endswith(".mrc")}


def _s3_outputs(bucket: Bucket, prefix: str) -> tuple[dict[str, bytes], list[str]]:
    keys = bucket.keys(prefix)
    return _files(lambda k: bucket.fs.cat_file(f"{bucket.name}/{prefix}/{k}"), keys), keys


def _local_outputs(out: Path) -> tuple[dict[str, bytes], list[str]]:
    keys = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return _files(lambda k: (out / k).read_bytes(), keys), keys


def _rows(text: str, name: str, places: list[str]) -> pd.DataFrame | list[str]:
    """A table's rows with each run's own places (its output, its inputs) named alike.

    ``places``: the output and input locations as the run wrote them (absolute; then, for a
    local run, relative to its working directory, RELION's convention).
    """
    for place, alias in zip(places, ("OUT", "IN", "OUT", "IN"), strict=False):
        text = re.sub(rf"(?<![\w/.:-]){re.escape(place)}/", f"{alias}/", text)
    if name.endswith(".csv"):
        return pd.read_csv(io.StringIO(text))
    blocks = re.split(r"^(data_\S*)\s*$", text, flags=re.M)
    return [block.strip() for block in blocks if block.strip()]


def _same_outputs(
    one: tuple[dict[str, bytes], list[str]],
    other: tuple[dict[str, bytes], list[str]],
    tables: dict[str, tuple[str, str]],
    places: tuple[list[str], list[str]],
) -> None:
    (mrc_one, _), (mrc_other, _) = one, other
    assert mrc_one.keys() == mrc_other.keys() and mrc_one, (sorted(mrc_one), sorted(mrc_other))
    for key, data in mrc_one.items():
        assert data == mrc_other[key], f"{key} differs"
    for name, (text_one, text_other) in tables.items():
        rows, expected = _rows(text_one, name, places[0]), _rows(text_other, name, places[1])
        if isinstance(rows, pd.DataFrame):
            pd.testing.assert_frame_equal(rows, expected, obj=name)
        else:
            assert rows == expected, name


def _tables_s3(bucket: Bucket, prefix: str, names: list[str]) -> list[str]:
    return [bucket.fs.cat_file(f"{bucket.name}/{prefix}/{name}").decode() for name in names]


def _compare_s3_to_s3(bucket: Bucket, prefix: str, reference: str, inputs: str = "raw") -> None:
    outputs = _s3_outputs(bucket, prefix), _s3_outputs(bucket, reference)
    names = [n for n in TABLES if n in outputs[1][1]]
    assert names and names == [n for n in TABLES if n in outputs[0][1]]
    texts = zip(_tables_s3(bucket, prefix, names), _tables_s3(bucket, reference, names),
                strict=True)  # fmt: skip
    here = [f"{bucket.url}/{prefix}", f"{bucket.url}/{inputs}"]
    there = [f"{bucket.url}/{reference}", f"{bucket.url}/raw"]
    _same_outputs(*outputs, dict(zip(names, texts, strict=True)), (here, there))


# --- the bar: the README's lines on s3 == on local files; the outputs open from s3 -------------


def _readme_lines() -> dict[str, list[str]]:
    """The ``daskmic`` lines of the README's "Data in object storage" section, by command."""
    text = README.read_text()
    section = text.split("## Data in object storage", 1)[1].split("\n## ", 1)[0]
    lines = {}
    for block in re.findall(r"^```bash\n(.*?)^```", section, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "daskmic":
                lines[words[1]] = words[1:]
    assert set(lines) >= {"preprocess", "tilt"}, "the README shows both commands on s3"
    return lines


README_LINES = _readme_lines()
OUT = {command: args[args.index("-o") + 1].rsplit("/", 1)[1] for command, args in
       README_LINES.items()}  # fmt: skip
"""Each command's output, named as in the README (``results``, ``screen``)."""


def _options(command: str) -> list[str]:
    """The README line's step options: its words after ``-o OUT``, storage options aside."""
    args = README_LINES[command]
    options = args[args.index("-o") + 2 :]
    if "--storage-options" in options:
        at = options.index("--storage-options")
        del options[at : at + 2]
    return [*options, *SMALL.get(command, [])]


PREPROCESS = _options("preprocess")


@pytest.fixture(scope="module")
def local_runs(held_out: Path, run) -> None:
    """The README's ``preprocess`` and ``tilt`` on the local copies (``raw/*.mrc``)."""
    for command in ("preprocess", "tilt"):
        _ok(run([command, "raw/*.mrc", "-o", OUT[command], *_options(command)], held_out))


@pytest.fixture(scope="module")
def batch_runs(bucket: Bucket, held_out: Path, run, s3, local_runs) -> None:
    """The README's lines as written, on the bucket and its endpoint."""
    for command in ("preprocess", "tilt"):
        args = [word.replace("s3://my-lab/session1", bucket.url).replace(
            "https://s3.example.org", s3.url) for word in README_LINES[command]]  # fmt: skip
        _ok(run([*args, *SMALL.get(command, [])], held_out))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["preprocess", "tilt"])
def test_a_run_on_s3_equals_the_run_on_local_files(bucket, held_out, batch_runs, command):
    out = OUT[command]
    on_s3 = _s3_outputs(bucket, out)
    local = _local_outputs(held_out / out)
    assert len([k for k in on_s3[0] if k.startswith(("mrc/", "psd/"))]) == N
    names = [n for n in TABLES if n in local[1]]
    assert names == [n for n in TABLES if n in on_s3[1]] and "micrographs.csv" in names
    texts = {n: (t, (held_out / out / n).read_text()) for n, t in
             zip(names, _tables_s3(bucket, out, names), strict=True)}  # fmt: skip
    s3_places = [f"{bucket.url}/{out}", f"{bucket.url}/raw"]
    local_places = [str(held_out / out), str(held_out / "raw"), out, "raw"]
    _same_outputs(on_s3, local, texts, (s3_places, local_places))
    assert "report.html" in on_s3[1]


@pytest.mark.timeout(120)
def test_xarray_and_starfile_read_the_outputs_from_s3(bucket, held_out, batch_runs):
    results, screen = (f"{bucket.url}/{OUT[command]}" for command in ("preprocess", "tilt"))
    options = bucket.storage_options
    store = xr.open_zarr(f"{results}/micrographs.zarr", storage_options=options)
    local = xr.open_zarr(held_out / OUT["preprocess"] / "micrographs.zarr")
    assert store["micrograph"].values.tolist() == [f"mic_{i:03d}" for i in range(N)]
    for name, variable in local.data_vars.items():
        if np.issubdtype(variable.dtype, np.number):
            np.testing.assert_array_equal(store[name].values, variable.values, err_msg=name)
    assert len(pd.read_csv(fsspec.open_local(f"simplecache::{screen}/tilt.csv", s3=options))) == N
    star = fsspec.open_local(f"simplecache::{results}/micrographs.star", s3=options)
    blocks = starfile.read(star, always_dict=True)
    assert len(blocks["micrographs"]) == N
    assert blocks["micrographs"]["rlnMicrographName"].str.startswith(f"{results}/mrc/").all()
    with fsspec.open(f"{results}/mrc/mic_000.mrc", **options) as handle:
        mrc = MrcInterpreter(iostream=io.BytesIO(handle.read()))
    assert mrc.data.shape == ((512 - 20) // 2, (512 - 20) // 2)  # cropped 10 px, binned 2


# --- killed and run again; watch; HTTP ----------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_run_killed_midway_and_rerun_equals_an_uninterrupted_one(
    bucket, held_out, batch_runs, daskmic_command, cluster_options, s3
):
    command, env = daskmic_command
    env = {**env, **{k: v for k, v in s3.env.items() if k != "AWS_ENDPOINT_URL"}}
    args = ["preprocess", f"{bucket.url}/raw/*.mrc", "-o", f"{bucket.url}/killed", *PREPROCESS,
            "--storage-options", bucket.options_json, *cluster_options]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with subprocess.Popen([*command, *args], cwd=held_out, env=env, **quiet) as first:
        deadline = time.monotonic() + 180
        while not any("records/" in k for k in bucket.keys("killed")):
            assert first.poll() is None, "the run ended before any record was seen"
            assert time.monotonic() < deadline, "no done-record appeared"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        assert first.wait(60) == -signal.SIGKILL
    recorded = [k for k in bucket.keys("killed") if "records/" in k]
    assert 1 <= len(recorded) < N, "killed midway"
    _ok(subprocess.run([*command, *args], cwd=held_out, env=env, capture_output=True,
                       text=True, timeout=240, check=False))  # fmt: skip
    _compare_s3_to_s3(bucket, "killed", OUT["preprocess"])


def _upload_over_time(bucket: Bucket, held_out: Path, prefix: str) -> None:
    for path in sorted((held_out / "raw").glob("*.mrc")):
        bucket.fs.pipe_file(f"{bucket.name}/{prefix}/{path.name}", path.read_bytes())
        time.sleep(0.5)
    bucket.fs.pipe_file(f"{bucket.name}/{prefix}/CLOSED", b"")


@pytest.mark.timeout(300)
def test_watching_a_prefix_equals_the_batch_run(bucket, held_out, batch_runs, run):
    uploader = threading.Thread(target=_upload_over_time, args=(bucket, held_out, "incoming"))
    uploader.start()
    try:
        done = run(["watch", f"{bucket.url}/incoming", "-o", f"{bucket.url}/live", *PREPROCESS,
                    "--poll", "0.2", "--batch-size", "2",
                    "--storage-options", bucket.options_json], held_out)  # fmt: skip
    finally:
        uploader.join()
    _ok(done)
    _compare_s3_to_s3(bucket, "live", OUT["preprocess"], inputs="incoming")


@pytest.mark.timeout(300)
def test_an_http_set_with_relative_names_works(held_out, local_runs, run, http_folder):
    for path in sorted((held_out / "raw").glob("*.mrc")):
        (http_folder.root / "set" / "frames").mkdir(parents=True, exist_ok=True)
        (http_folder.root / "set" / "frames" / path.name).write_bytes(path.read_bytes())
    names = [f"frames/mic_{i:03d}.mrc" for i in range(N)]
    starfile.write({"micrographs": pd.DataFrame({"rlnMicrographName": names})},
                   http_folder.root / "set" / "micrographs.star")  # fmt: skip
    table = f"{http_folder.url}/set/micrographs.star"
    _ok(run(["preprocess", table, "-o", "from_http", *PREPROCESS], held_out))
    from_http = _local_outputs(held_out / "from_http")
    reference = _local_outputs(held_out / OUT["preprocess"])
    assert from_http[0] == reference[0], "every MRC as the run on the local files"
    assert http_folder.traffic.count("/set/frames/", "GET") >= N


# --- what goes wrong: one failed row each, or a usage error before work -------------------------


@pytest.mark.timeout(180)
def test_a_missing_bucket_a_denied_key_and_a_vanished_object_fail_alone(bucket, held_out, run):
    data = (held_out / "raw" / "mic_000.mrc").read_bytes()
    # an archived object: S3 answers 403 to a GET (moto as AWS), the key is listed and HEAD works
    bucket.fs.pipe_file(f"{bucket.name}/bad/denied.mrc", data, StorageClass="GLACIER")
    bucket.fs.pipe_file(f"{bucket.name}/bad/vanished.mrc", data)
    bucket.fs.rm(f"{bucket.name}/bad/vanished.mrc")
    inputs = [f"{bucket.url}/raw/mic_000.mrc", "s3://daskmic-no-such-bucket/raw/lost.mrc",
              f"{bucket.url}/bad/denied.mrc", f"{bucket.url}/bad/vanished.mrc"]  # fmt: skip
    done = _ok(run(["preprocess", *inputs, "-o", "failing", *PREPROCESS,
                    "--storage-options", bucket.options_json], held_out), code=1)  # fmt: skip
    table = pd.read_csv(held_out / "failing" / "micrographs.csv").set_index("micrograph")
    assert table["status"].to_dict() == {
        "mic_000": "done", "lost": "failed", "denied": "failed", "vanished": "failed"
    }, done.stdout  # fmt: skip
    errors = table["error"]
    assert "bucket does not exist" in errors["lost"]
    assert "denied" in errors["denied"] and "no such" in errors["vanished"]


@pytest.mark.timeout(120)
def test_an_unwritable_output_location_is_a_usage_error_before_work(bucket, held_out, run):
    done = run(["preprocess", f"{bucket.url}/raw/*.mrc", "-o", "s3://daskmic-no-such-bucket/out",
                *PREPROCESS, "--storage-options", bucket.options_json], held_out)  # fmt: skip
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr and "daskmic-no-such-bucket" in done.stderr
