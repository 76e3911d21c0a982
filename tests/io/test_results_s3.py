"""The tables and the results store written to S3 (moto on 127.0.0.1) equal the local ones, are
read back with the ecosystem's own calls, and each table is one request."""

from __future__ import annotations

import sqlite3

import fsspec
import numpy as np
import pandas as pd
import pytest
import starfile
import xarray as xr

from daskmic.io import open_results, write_csv, write_results, write_star, write_xmd
from daskmic.io.scipion_write import write_set
from daskmic.io.storage import location
from daskmic.io.thumbnails import encode_thumbnail
from daskmic.io.zarr_store import Thumbnails


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "micrograph": [f"mic_{i:03d}" for i in range(n)],
            "status": ["done"] * (n - 1) + ["failed"],
            "error": [""] * (n - 1) + ["truncated"],
            "mean": np.linspace(0.0, 1.0, n),
            "crop_px": np.arange(n, dtype=np.int64),
        }
    )


def _thumbs(n: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 16, 16)).astype(np.float32)


def _write_tables(root, table: pd.DataFrame) -> None:
    write_csv(root / "micrographs.csv", table)
    star = pd.DataFrame({"rlnMicrographName": table["micrograph"] + ".mrc", "rlnOpticsGroup": 1})
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnMicrographOriginalPixelSize": [1.0],
            "rlnMicrographPixelSize": [1.0],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
        }
    )
    write_star(root / "micrographs.star", star, optics)
    write_xmd(root / "micrographs.xmd", pd.DataFrame({"micrograph": star["rlnMicrographName"]}))
    items = pd.DataFrame(
        {"id": np.arange(1, len(table) + 1), "_filename": star["rlnMicrographName"]}
    )
    creation = ["2026-01-01 00:00:00"] * len(table)
    write_set(root / "micrographs.sqlite", items, stream_open=False, creation=creation)


def _same_store(a: xr.Dataset, b: xr.Dataset) -> None:
    a, b = a.load(), b.load()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert {k: v for k, v in a.attrs.items() if k != "created"} == {
        k: v for k, v in b.attrs.items() if k != "created"
    }


def test_tables_and_store_on_s3_equal_the_local_ones(s3, tmp_path):
    url = f"{s3.bucket()}/run"
    options = s3.storage_options
    remote = location(url, options)
    table, thumbs = _table(5), _thumbs(5)
    _write_tables(tmp_path, table)
    write_results(tmp_path / "micrographs.zarr", table, thumbnails=thumbs, parameters={"a": 1})
    s3.traffic.clear()
    _write_tables(remote, table)
    for name in ("micrographs.csv", "micrographs.star", "micrographs.xmd", "micrographs.sqlite"):
        assert s3.traffic.count(f"/run/{name}", "PUT") == 1, f"{name} is one request"
        assert (remote / name).read_bytes() == (tmp_path / name).read_bytes()
    write_results(remote / "micrographs.zarr", table, thumbnails=thumbs, parameters={"a": 1})
    puts = [path for method, path, _, _ in s3.traffic.requests if method == "PUT"]
    assert puts[-1].endswith("/run/micrographs.zarr/zarr.json"), "the root's metadata last"
    assert not any(".table.tmp-" in p for p in remote.fs.find(remote.path)), "no leftovers"

    plain = xr.open_zarr(f"{url}/micrographs.zarr", storage_options=options)
    _same_store(plain, xr.open_zarr(tmp_path / "micrographs.zarr"))
    local = open_results(tmp_path / "micrographs.zarr")
    _same_store(open_results(f"{url}/micrographs.zarr", options), local)
    np.testing.assert_array_equal(
        open_results(remote / "micrographs.zarr").thumbnail.values, local.thumbnail.values
    )
    cached = fsspec.open_local(f"simplecache::{url}/micrographs.star", s3=options)
    read = starfile.read(cached)
    expected = starfile.read(tmp_path / "micrographs.star")
    for block in ("optics", "micrographs"):
        pd.testing.assert_frame_equal(read[block], expected[block])
    downloaded = fsspec.open_local(f"simplecache::{url}/micrographs.sqlite", s3=options)
    with sqlite3.connect(downloaded) as db:
        rows = db.execute("SELECT id, c01 FROM Objects ORDER BY id").fetchall()
    assert [name for _, name in rows] == [f"mic_{i:03d}.mrc" for i in range(5)]


def test_rows_added_on_s3_equal_one_write(s3):
    options = s3.storage_options
    stepwise = location(f"{s3.bucket()}/step.zarr", options)
    whole = location(f"{s3.bucket()}/whole.zarr", options)
    table, thumbs = _table(4), _thumbs(4)
    encoded = [encode_thumbnail(t) for t in thumbs]
    low = np.array([e[1] for e in encoded])
    high = np.array([e[2] for e in encoded])
    first = Thumbnails(16, low[:3], high[:3], {i: encoded[i][0].tobytes() for i in range(3)})
    write_results(stepwise, table.iloc[:3], thumbnails=first)
    s3.traffic.clear()
    added = Thumbnails(16, low, high, {3: encoded[3][0].tobytes()})
    write_results(stepwise, table, thumbnails=added)
    assert s3.traffic.count("/step.zarr/thumbnail/c/", "PUT") == 1, "only the new thumbnail"
    write_results(whole, table, thumbnails=thumbs)
    _same_store(open_results(stepwise), open_results(whole))


@pytest.mark.parametrize("missing", ["bucket", "store"])
def test_opening_what_is_not_a_store_on_s3_says_so(s3, missing):
    url = "s3://no-such-bucket-here/x.zarr" if missing == "bucket" else f"{s3.bucket()}/x.zarr"
    with pytest.raises(FileNotFoundError, match="not a daskmic results store"):
        open_results(url, s3.storage_options)
