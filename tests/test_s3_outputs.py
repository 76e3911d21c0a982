"""``-o`` on an object store: per-micrograph outputs, binding, resume and the report on S3.

Against a real S3 API (moto's server on 127.0.0.1, the ``s3`` fixture): every object a
micrograph leaves is written whole in one request and equals, byte for byte, what the same
run writes to a local folder; the done-record comes last; two runs with other parameters
cannot share a prefix; an interrupted run resumed on S3 equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
import zarr

from daskmic.datasets import synthesize_micrograph
from daskmic.errors import UsageError
from daskmic.io import write_csv
from daskmic.io.mrc_write import mrc_bytes, write_mrc
from daskmic.io.storage import list_files, location, write_whole, zarr_store
from daskmic.preprocessing.params import PreprocessParams
from daskmic.report.page import write_report
from daskmic.run.config import RunConfig
from daskmic.run.driver import bind, prepare, process_sources
from daskmic.run.layout import OutputLayout, overwritten_inputs
from daskmic.run.manifest import Manifest
from daskmic.run.sources import catalogue
from daskmic.run.unit import process_micrograph
from daskmic.tilt.params import TiltParams

PREPROCESS = PreprocessParams.from_options(crop=True, downsample=True)
ANGLE = RunConfig(preprocess=PREPROCESS, tilt=TiltParams(window_size=256, estimate_angle=True))
TILT = RunConfig(preprocess=PREPROCESS, tilt=TiltParams(window_size=256))


@pytest.fixture(autouse=True)
def _quiet_moto():
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("raw")
    paths = []
    for seed in range(4):
        image, _ = synthesize_micrograph((512, 512), pixel_size_A=1.0, phase_std=0.3, seed=seed)
        paths.append(folder / f"mic_{seed}.mrc")
        write_mrc(paths[-1], image, 1.0)
    return paths


def _with_s3(config: RunConfig, s3) -> RunConfig:
    return dataclasses.replace(config, storage_options=s3.storage_options)


def _objects(root) -> dict[str, bytes]:
    """Every file below ``root`` (local or S3) by its path relative to it, with its bytes."""
    if isinstance(root, Path):
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    fs, base = root.fs, root.path.rstrip("/")
    found = fs.find(base)
    data = fs.cat(found)
    return {key[len(base) + 1 :]: value for key, value in data.items()}


def _row(record: bytes, root: str) -> dict:
    """A record's row with the output folder's spelling taken out of its output paths."""
    row = json.loads(record)["row"]
    return {k: v.replace(root, "OUT") if k.endswith("_path") else v for k, v in row.items()}


def _comparable(files: dict[str, bytes], root: str) -> dict[str, object]:
    """What must be equal between two output folders: bytes, records' rows modulo OUT."""
    return {
        name: _row(data, root) if name.startswith(".daskmic/records/") else data
        for name, data in files.items()
        if not name.startswith("micrographs.zarr/")  # the images: compared as arrays
        and name != ".daskmic/parameters.json"
    }


def test_the_unit_on_s3_writes_what_it_writes_locally_each_object_in_one_request(
    raw, tmp_path, s3
):
    local = tmp_path / "out"
    remote = location(s3.bucket() + "/out", s3.storage_options)
    config = _with_s3(ANGLE, s3)
    sources, optics = catalogue([str(raw[0])], None)
    digest = bind(local, config, sources, optics)
    assert bind(str(remote), config, sources, optics) == digest
    process_micrograph(sources[0], config, str(local), digest)
    s3.traffic.clear()
    row = process_micrograph(sources[0], config, str(remote), digest)
    assert row["status"] != "failed", row["error"]

    ours, theirs = _objects(remote), _objects(local)
    assert _comparable(ours, str(remote)) == _comparable(theirs, str(local.resolve()))
    assert set(ours) == {name for name in theirs if ".tmp-" not in name}
    store_local, store_s3 = zarr.open_group(str(local / "micrographs.zarr"), mode="r"), (
        zarr.open_group(zarr_store(OutputLayout(remote).zarr, read_only=True), mode="r")
    )
    arrays = [name for name, _ in store_local.arrays()] + [
        name for name, node in store_local.members(max_depth=None) if isinstance(node, zarr.Array)
    ]
    assert {"micrographs/mic_0/0/image", "psd/mic_0/0/image"} <= set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(store_s3[name][...], store_local[name][...])
    for image in ("micrographs/mic_0", "psd/mic_0"):
        assert dict(store_s3[image].attrs) == dict(store_local[image].attrs)

    puts = [(m, path) for m, path, _, _ in s3.traffic.requests if m in ("PUT", "POST")]
    written = [path for _, path in puts]
    assert len(written) == len(set(written)), "each object is written once, in one request"
    assert not any(m == "POST" for m, _ in puts), "no multipart upload for these sizes"
    assert written[-1].endswith("/.daskmic/records/mic_0.json"), "the record is written last"
    name = "mrc/mic_0.mrc"
    assert ours[name] == mrc_bytes(
        *_mrc_image_and_pixel(theirs[name]), label=_label(theirs[name])
    )


def _mrc_image_and_pixel(data: bytes) -> tuple[np.ndarray, float]:
    import io

    import mrcfile

    with mrcfile.mrcinterpreter.MrcInterpreter(iostream=io.BytesIO(data)) as mrc:
        return np.array(mrc.data), float(mrc.voxel_size.x)


def _label(data: bytes) -> str:
    import io

    import mrcfile

    with mrcfile.mrcinterpreter.MrcInterpreter(iostream=io.BytesIO(data)) as mrc:
        return mrc.header.label[0].decode().rstrip()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_runs_racing_into_one_folder_with_other_parameters_one_is_refused(
    where, tmp_path, s3
):
    root = tmp_path / "out" if where == "local" else location(s3.bucket(), s3.storage_options)
    manifest = Manifest(root)
    outcomes: list[object] = []
    gate = threading.Barrier(2)

    def run(sigma: float) -> None:
        parameters = {"tilt": {"sigma": sigma}}
        gate.wait()
        try:
            outcomes.append(manifest.bind(parameters, parameters))
        except UsageError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=run, args=(s,)) for s in (1.0, 2.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [o for o in outcomes if isinstance(o, UsageError)]
    bound = [o for o in outcomes if isinstance(o, str)]
    assert len(refused) == 1 and len(bound) == 1
    assert "other parameters" in str(refused[0])
    assert json.loads(manifest.layout.parameters.read_bytes())["hash"] == bound[0]


def test_an_output_location_that_cannot_be_written_is_a_usage_error_before_work(
    raw, s3, monkeypatch
):
    config = _with_s3(TILT, s3)
    with pytest.raises(UsageError, match="does not exist"):
        prepare([str(raw[0])], "s3://no-such-bucket-daskmic/out", config)
    bucket = s3.bucket()
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # unknown keys: denied
    with pytest.raises(UsageError, match="PermissionError"):
        prepare([str(raw[0])], f"{bucket}/out", config)
    monkeypatch.undo()
    assert s3.filesystem().find(bucket) == [], "nothing was written"


def test_an_interrupted_run_resumed_on_s3_equals_an_uninterrupted_one(raw, s3, client):
    config = _with_s3(TILT, s3)
    whole, resumed = s3.bucket() + "/out", s3.bucket() + "/out"
    sources, digest = prepare([str(p) for p in raw], whole, config)
    process_sources(client, sources, whole, config, digest, batch_size=100)

    sources, digest = prepare([str(p) for p in raw], resumed, config)
    process_sources(client, sources[:2], resumed, config, digest, batch_size=100)
    layout = OutputLayout(resumed, s3.storage_options)
    write_whole(layout.micrograph(sources[2].micrograph), b"a killed write: no record")
    assert set(Manifest(layout.root).done(digest)) == {s.micrograph for s in sources[:2]}
    write_whole(layout.record(sources[3].micrograph), b'{"truncated')

    with pytest.warns(UserWarning, match="unreadable done-record"):
        sources, digest = prepare([str(p) for p in raw], resumed, config)
    s3.traffic.clear()
    process_sources(client, sources, resumed, config, digest, batch_size=100)
    assert s3.traffic.count(f"/mrc/{sources[0].micrograph}.mrc", "PUT") == 0, "done stays done"
    assert s3.traffic.count(f"/mrc/{sources[2].micrograph}.mrc", "PUT") == 1

    ours = _objects(location(resumed, s3.storage_options))
    theirs = _objects(location(whole, s3.storage_options))
    assert _comparable(ours, resumed) == _comparable(theirs, whole)
    assert set(ours) == set(theirs)
    assert set(Manifest(layout.root).done(digest)) == {s.micrograph for s in sources}


def test_outputs_on_s3_never_land_on_s3_inputs(s3):
    out = "s3://bucket/run/"
    inputs = ["s3a://bucket//run/mrc/a.mrc", "s3://bucket/run/.daskmic/x.mrc", "s3://bucket/a.mrc"]
    found = overwritten_inputs(out, TILT, ["a"], [*inputs, "/local/run/mrc/a.mrc"])
    assert found == [
        ("s3://bucket/run/.daskmic/x.mrc", "s3://bucket/run/.daskmic"),
        ("s3a://bucket//run/mrc/a.mrc", "s3://bucket/run/mrc/a.mrc"),
    ]


def test_the_report_of_an_s3_folder_is_one_object_without_the_storage_options(raw, s3, client):
    config = dataclasses.replace(_with_s3(TILT, s3), write_stack=False)
    out = s3.bucket() + "/out"
    sources, digest = prepare([str(p) for p in raw[:2]], out, config)
    process_sources(client, sources, out, config, digest, batch_size=100)
    layout = OutputLayout(out, s3.storage_options)
    import pandas as pd

    write_csv(layout.micrographs_csv, pd.DataFrame(Manifest(layout.root).rows()))
    s3.traffic.clear()
    page = write_report(out, storage_options=s3.storage_options)
    assert str(page) == f"{out}/report.html"
    assert s3.traffic.count("/report.html", "PUT") == 1
    text = page.read_text()
    assert all(s.micrograph in text for s in sources)
    assert text.count("data:image/png;base64") >= 2, "the PSD images, read from S3"
    for data in _objects(layout.root).values():
        assert s3.url.encode() not in data and b'"secret"' not in data


@pytest.mark.slow
def test_a_cli_run_killed_midway_on_s3_and_resumed_equals_an_uninterrupted_one(
    tmp_path, s3, client
):
    """SIGKILL a ``daskmic run -o s3://…`` (its config holds the endpoint) once records appear."""
    raw = tmp_path / "raw"
    for seed in range(8):
        image, _ = synthesize_micrograph((512, 512), pixel_size_A=1.0, seed=seed, hot_pixels=3)
        write_mrc(raw / f"mic_{seed}.mrc", image, 1.0)
    values = {**TILT.to_dict(), "storage_options": s3.storage_options}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(values))
    out = s3.bucket() + "/out"
    command = [sys.executable, "-m", "daskmic.cli", "run", str(tmp_path / "run.yaml"),
               str(raw / "*.mrc"), "-o", out, "--no-report", "--workers", "1",
               "--threads-per-worker", "1"]
    records = location(out, s3.storage_options) / ".daskmic" / "records"
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        deadline = time.monotonic() + 120
        while not list_files(records):
            assert time.monotonic() < deadline and run.poll() is None, "no record appeared"
            time.sleep(0.05)
        children = psutil.Process(run.pid).children(recursive=True)
        run.send_signal(signal.SIGKILL)
        run.wait(60)
        psutil.wait_procs(children, timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    config = _with_s3(TILT, s3)
    at_kill = set(Manifest(location(out, s3.storage_options)).done(
        prepare(str(raw / "*.mrc"), out, config)[1]))
    assert 1 <= len(at_kill) < 8, "the kill came in the middle"

    sources, digest = prepare(str(raw / "*.mrc"), out, config)
    process_sources(client, sources, out, config, digest, batch_size=100)
    whole = s3.bucket() + "/out"
    sources, digest = prepare(str(raw / "*.mrc"), whole, config)
    process_sources(client, sources, whole, config, digest, batch_size=100)
    ours = _objects(location(out, s3.storage_options))
    theirs = _objects(location(whole, s3.storage_options))
    assert set(ours) == set(theirs)
    assert _comparable(ours, out) == _comparable(theirs, whole)
    zarr_objects = [name for name in ours if name.startswith("micrographs.zarr/")]
    assert zarr_objects and all(ours[name] == theirs[name] for name in zarr_objects)
