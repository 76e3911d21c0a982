"""Every option at once, with the output folder in a bucket (S3 on 127.0.0.1, moto's server).

``daskmic preprocess`` and ``daskmic tilt --angle`` with every option (the lists of
test_every_option.py, plus the optics, the pixel size, ``--overwrite`` and
``--storage-options``) write to ``-o s3://…``; ``daskmic select`` re-splits that folder with
new thresholds and ``daskmic report`` redraws its page. The same commands on a local folder
give the same outputs: every MRC and zarr chunk byte for byte, every table line for line once
the folder's own place is named the same. A user opens the bucket's outputs with xarray,
starfile and mrcfile (through fsspec) and with daskmic's readers, and a copy of the folder
served over plain HTTP (no listing) opens with its data. A second run resumes without writing a
micrograph's output again, and the storage options (credentials, endpoint) are in no object.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fsspec
import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import xarray as xr
import yaml
from mrcfile.mrcinterpreter import MrcInterpreter

import daskmic as dm
from daskmic.io import open_images, open_results

pytestmark = pytest.mark.slow  # end to end, as a user runs daskmic (still in CI)

KEY, SECRET = "every-option-key-7f3a", "every-option-secret-c91d"
"""Credentials of this test's storage options (moto takes any): found in no object written."""
OPTICS = ["--pixel-size", "1.5", "--voltage", "200", "--cs", "2.7", "--amplitude-contrast",
          "0.07", "--overwrite"]  # fmt: skip
"""Options both commands take, beyond their steps (``--overwrite`` resumes a folder bound to
the same parameters)."""
TILT = ["--window-size", "256", "--resolution", "4"]
"""The screen's window and band for 512² micrographs."""
SELECT = ["--mean-threshold", "0.6", "--std-threshold", "0.08", "--max-tilt-deg", "20"]
TEXT_SUFFIXES = (".csv", ".star", ".xmd", ".txt")
IMAGES = ("micrographs.zarr/micrographs/", "micrographs.zarr/psd/")
"""The store's OME-NGFF images: metadata and chunks."""


@pytest.fixture(autouse=True, scope="module")
def _quiet_moto():
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``raw/mic_00N.mrc``: three 512² micrographs at 1.5 Å/px (one tilted 40°), and
    ``micrographs.star`` naming them relative to the folder."""
    from daskmic.datasets import make_dataset

    folder = tmp_path_factory.mktemp("small")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        make_dataset("raw", n=3, shape=(512, 512), pixel_size_A=1.5,
                     tilt_angles_deg=(0.0, 40.0, 0.0), phase_std=0.3, hot_pixels=3,
                     dead_pixels=3, seed=15, make_star=True)  # fmt: skip
    (folder / "raw" / "micrographs.star").rename(folder / "micrographs.star")
    return folder


@pytest.fixture(scope="module")
def runs(small, tmp_path_factory, s3, daskmic, cluster_options, every_option):
    """Each command run on the bucket and on a local folder; ``select`` and ``report`` after.

    Returns the working folder, the bucket's URL, the storage options and the commands' output
    lines, by ``(command, where)``.
    """
    work = tmp_path_factory.mktemp("every_option_s3") / "work"
    shutil.copytree(small, work)
    bucket = s3.bucket("every-option")
    options = {**s3.storage_options, "key": KEY, "secret": SECRET}
    commands = {
        "preprocess": ["preprocess", "raw/*.mrc", *every_option["preprocess"], *OPTICS],
        "tilt": ["tilt", "micrographs.star", *every_option["tilt"], *TILT, *OPTICS],
    }
    places = {"s3": (bucket, ["--storage-options", json.dumps(options)]), "local": ("local", [])}
    printed = {}

    def run(args: list[str], key: tuple[str, str]) -> None:
        computes = args[0] in commands  # select and report read the records: no cluster
        result = daskmic([*args, *(cluster_options if computes else [])], cwd=work)
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-4000:])
        printed[key] = result.stdout

    for where, (root, extra) in places.items():
        for command, args in commands.items():
            run([*args, "-o", f"{root}/{command}", *extra], (command, where))
        run(["select", f"{root}/tilt", *SELECT, *extra[:2]], ("select", where))
    s3.traffic.clear()
    run(["report", f"{bucket}/tilt", "--storage-options", json.dumps(options)], ("report", "s3"))
    assert s3.traffic.count("/tilt/report.html", "PUT") == 1
    return work, bucket, options, printed


def _objects(url: str, options: dict) -> dict[str, bytes]:
    """Every object under ``url``, by its key relative to ``url``."""
    fs, root = fsspec.core.url_to_fs(url, **options)
    fs.invalidate_cache()
    return {key[len(root) + 1 :]: fs.cat_file(key) for key in fs.find(root)}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _located(text: str, local: Path, url: str) -> str:
    """A local output's text with the folder's place written as the bucket's URL: its absolute
    path, and its path relative to the working folder as the command line gave it (Xmipp's
    tables name files so)."""
    return text.replace(str(local), url).replace(f"{local.parent.name}/{local.name}/", f"{url}/")


@pytest.mark.parametrize("command", ["preprocess", "tilt"])
def test_the_bucket_holds_what_the_local_folder_holds(runs, command):
    work, bucket, options, printed = runs
    remote, local = _objects(f"{bucket}/{command}", options), _files(work / "local" / command)
    # the live Scipion sets are a local working database: on a bucket they live in memory
    local = {key: data for key, data in local.items() if not key.startswith(".daskmic/sets/")}
    assert sorted(remote) == sorted(local)
    url, folder = f"{bucket}/{command}", work / "local" / command
    for key, data in local.items():
        if key.endswith(TEXT_SUFFIXES):  # tables: path columns name each folder's own place
            assert remote[key].decode() == _located(data.decode(), folder, url), key
        elif key.endswith((".mrc", ".png")) or key.startswith(IMAGES):
            assert remote[key] == data, key  # the table's arrays: by xarray, below
    assert printed["select", "s3"] == printed["select", "local"]
    assert printed["select", "s3"].strip()


def test_xarray_starfile_mrcfile_and_daskmic_read_the_bucket(runs):
    work, bucket, options, _ = runs
    for command in ("preprocess", "tilt"):
        url, folder = f"{bucket}/{command}", work / "local" / command
        store = xr.open_zarr(f"{url}/micrographs.zarr", storage_options=options)
        local = xr.open_zarr(folder / "micrographs.zarr")
        _assert_same_table(store, local, folder, url)
        _assert_same_table(
            open_results(f"{url}/micrographs.zarr", storage_options=options),
            open_results(folder / "micrographs.zarr"),
            folder,
            url,
        )
        tree = xr.open_datatree(f"{url}/micrographs.zarr", engine="zarr",
                                storage_options=options)  # fmt: skip
        local_tree = xr.open_datatree(folder / "micrographs.zarr", engine="zarr")
        for collection in ("micrographs", "psd"):
            names = set(local_tree[collection].children) if collection in local_tree else set()
            assert set(tree[collection].children if collection in tree else ()) == names
            images = open_images(f"{url}/micrographs.zarr", collection, storage_options=options)
            assert set(images) == names
            for name in names:
                expected = local_tree[f"{collection}/{name}/0"]["image"].values
                np.testing.assert_array_equal(tree[f"{collection}/{name}/0"]["image"], expected)
                np.testing.assert_array_equal(images[name].values, expected)
        for table in ("micrographs.star", "accepted.star", "discarded.star"):
            if (folder / table).exists():
                star = fsspec.open_local(f"simplecache::{url}/{table}", s3=options)
                remote, expected = (starfile.read(p, always_dict=True) for p in (star,
                                                                                  folder / table))
                assert remote.keys() == expected.keys()
        for mrc in sorted(folder.rglob("*.mrc")):
            with fsspec.open(f"{url}/{mrc.relative_to(folder)}", "rb", **options) as handle:
                remote_mrc = MrcInterpreter(iostream=handle, permissive=False)
                with mrcfile.open(mrc) as expected_mrc:
                    np.testing.assert_array_equal(remote_mrc.data, expected_mrc.data)
                    assert remote_mrc.voxel_size == expected_mrc.voxel_size
    url, folder = f"{bucket}/preprocess", work / "local" / "preprocess"
    stack = dm.open_micrographs(f"{url}/micrographs.zarr", storage_options=options)
    expected = dm.open_micrographs(folder / "micrographs.zarr")
    np.testing.assert_array_equal(stack.values, expected.values)
    assert stack["micrograph"].values.tolist() == expected["micrograph"].values.tolist()
    assert stack["path"].values.tolist() == [
        _located(p, folder, url) for p in expected["path"].values
    ]
    assert stack.attrs["failed"] == [] and stack.sizes["micrograph"] == 3


def _texts(ds: xr.Dataset, rewrite=str) -> xr.Dataset:
    """``ds`` with its string variables as Python strings, each passed through ``rewrite``."""
    out = ds.copy()
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "OUST":
            values = [rewrite(str(v)) for v in np.asarray(variable.values).ravel()]
            out[name] = variable.copy(data=np.array(values, dtype=object).reshape(variable.shape))
    return out


def _assert_same_table(remote: xr.Dataset, local: xr.Dataset, folder: Path, url: str) -> None:
    """The results' tables equal, strings naming the local folder read as the bucket's URL."""
    assert remote["micrograph"].size == 3
    located = _texts(local, lambda text: _located(text, folder, url))
    xr.testing.assert_equal(_texts(remote).drop_attrs(), located.drop_attrs())
    remote_attrs = {k: v for k, v in remote.attrs.items() if k != "created"}
    assert remote_attrs == {k: _located(v, folder, url) if isinstance(v, str) else v
                            for k, v in local.attrs.items() if k != "created"}  # fmt: skip


def test_a_copy_served_over_http_opens_with_its_data(runs, http_folder):
    """No listing over HTTP: the consolidated metadata says what the store holds."""
    work, _, _, _ = runs
    folder = work / "local" / "preprocess"
    shutil.copytree(folder, http_folder.root / "out")
    url = f"{http_folder.url}/out/micrographs.zarr"
    served, local = xr.open_zarr(url), xr.open_zarr(folder / "micrographs.zarr")
    assert served["micrograph"].values.tolist() == local["micrograph"].values.tolist()
    assert set(served.data_vars) == set(local.data_vars) and len(served.data_vars) > 0
    xr.testing.assert_equal(served.drop_attrs(), local.drop_attrs())
    results = open_results(url)
    assert results.sizes["micrograph"] == 3
    stack = dm.open_micrographs(url)
    np.testing.assert_array_equal(stack.values, dm.open_micrographs(folder / "micrographs.zarr"))


def test_a_second_run_on_the_bucket_writes_no_micrograph_output_again(
    runs, s3, daskmic, cluster_options, every_option
):
    work, bucket, options, _ = runs
    before = _objects(f"{bucket}/preprocess", options)
    s3.traffic.clear()
    args = ["preprocess", "raw/*.mrc", *every_option["preprocess"], *OPTICS, "-o",
            f"{bucket}/preprocess", "--storage-options", json.dumps(options)]  # fmt: skip
    again = daskmic([*args, *cluster_options], cwd=work)
    assert again.returncode == 0, (again.stdout[-2000:], again.stderr[-4000:])
    written = [path for method, path, _, _ in s3.traffic.requests if method in ("PUT", "POST")]
    assert written == [], "a finished set: nothing processed, no table or page rebuilt"
    after = _objects(f"{bucket}/preprocess", options)
    assert sorted(after) == sorted(before)
    assert {k: v for k, v in after.items() if k.endswith(".mrc")} == {
        k: v for k, v in before.items() if k.endswith(".mrc")
    }


def test_run_with_the_storage_options_in_its_file_and_write_to_a_url(
    runs, s3, daskmic, cluster_options, client
):
    """``daskmic run config.yaml`` takes ``storage_options:`` from the file; ``dm.write`` takes
    a URL; what both write names neither the credentials nor the endpoint."""
    work, bucket, options, _ = runs
    config = {"inputs": ["raw/*.mrc"], "output": f"{bucket}/run",
              "tilt": {"window_size": 256}, "storage_options": options}  # fmt: skip
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    result = daskmic(["run", "config.yaml", *cluster_options], cwd=work)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    mics = dm.open_micrographs(str(work / "raw" / "*.mrc"))
    qc = dm.tilt_analysis(mics, window_size=256)
    summary = dm.write(None, f"{bucket}/write", tilt=qc, client=client, storage_options=options)
    assert summary.failed == [] and len(summary.rows) == 3
    for name in ("run", "write"):
        screen = pd.read_csv(fsspec.open_local(f"simplecache::{bucket}/{name}/tilt.csv",
                                               s3=options))  # fmt: skip
        assert sorted(screen["micrograph"]) == ["mic_000", "mic_001", "mic_002"]
    everything = _objects(bucket, options)
    endpoint = options["client_kwargs"]["endpoint_url"].removeprefix("http://")
    for key, data in everything.items():
        for secret in (KEY, SECRET, endpoint):
            assert secret.encode() not in data, (key, secret)
    assert len(everything) > 100  # every command's outputs, not an empty bucket
