"""The zarr v3 results store and thumbnails."""

from __future__ import annotations

import json
from datetime import datetime

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from distributed import Client, get_task_stream

from daskmic.io import make_thumbnail, open_pixels, open_results, write_image, write_results


def _variables():
    return xr.Dataset(
        {
            "status": ("micrograph", np.array(["done", "failed", "done"], dtype=object)),
            "error": ("micrograph", np.array(["", "truncated", ""], dtype=object)),
            "mean": ("micrograph", [0.5, np.nan, 2.0]),
            "crop_px": ("micrograph", np.array([10, 10, 10], dtype=np.int64)),
            "accepted": ("micrograph", [True, False, True]),
        },
        coords={"micrograph": np.array(["a", "b", "c"], dtype=object)},
    )


def test_results_round_trip_with_thumbnails_and_provenance(tmp_path, rng):
    store = tmp_path / "micrographs.zarr"
    thumbs = rng.normal(size=(3, 16, 16)).astype(np.float32)
    write_results(store, _variables(), thumbnails=thumbs, parameters={"crop": 10, "log": None})
    ds = open_results(store)
    stored = ds[list(_variables().data_vars)].load()
    xr.testing.assert_identical(stored.drop_attrs(), _variables())
    assert {v.dtype for v in (stored.status, stored.micrograph)} == {np.dtype(object)}
    _assert_quantized(ds.thumbnail.values, thumbs)
    assert ds.thumbnail.dims == ("micrograph", "thumb_y", "thumb_x")
    assert ds.thumbnail.dtype == np.float32
    assert json.loads(ds.attrs["parameters"]) == {"crop": 10, "log": None}
    assert ds.attrs["daskmic_version"] == "0.1.0"
    assert datetime.fromisoformat(ds.attrs["created"]).tzinfo is not None
    group = zarr.open_group(store, mode="r")
    assert group.metadata.zarr_format == 3
    assert group["thumbnail"].chunks == (1, 16, 16), "one chunk per thumbnail"
    assert group["thumbnail"].dtype == np.uint8, "stored as 8-bit levels"
    assert group["status"].chunks == (3,), "one chunk per column"
    plain = xr.open_zarr(store)  # what a user types: the table is the store's root
    assert plain["micrograph"].values.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(plain["mean"].values, _variables()["mean"].values)
    assert plain["error"].values.tolist() == ["", "truncated", ""]
    assert plain["thumbnail"].dtype == np.uint8, "levels; thumbnail_low/_high map them"
    low, high = plain["thumbnail_low"].values, plain["thumbnail_high"].values
    step = (high - low)[:, None, None] / 255
    levels = plain["thumbnail"].values.astype(float)
    np.testing.assert_allclose(low[:, None, None] + levels * step, ds.thumbnail.values, atol=1e-5)


def _assert_quantized(stored, thumbs):
    """``stored`` is ``thumbs`` clipped to their 0.1–99.9 % range, within half an 8-bit level."""
    for got, thumb in zip(stored, thumbs, strict=True):
        low, high = np.percentile(thumb.astype(float), [0.1, 99.9])
        expected = np.clip(thumb, low, high)
        assert np.abs(got - expected).max() <= (high - low) / 255 / 2 * 1.001


def test_lazy_thumbnails_never_reach_a_default_cluster(tmp_path, rng, client):
    thumbs = rng.normal(size=(70, 8, 8)).astype(np.float32)
    lazy = da.from_array(thumbs, chunks=(1, 8, 8))
    variables = xr.Dataset(coords={"micrograph": [f"m{i:02d}" for i in range(70)]})
    with Client(client.scheduler.address, set_as_default=True) as default:
        with get_task_stream(default) as tasks:
            write_results(tmp_path / "s.zarr", variables, thumbnails=lazy)
    assert tasks.data == [], "the driver writes its own results"
    _assert_quantized(open_results(tmp_path / "s.zarr").thumbnail.values, thumbs)
    chunks = zarr.open_group(tmp_path / "s.zarr", mode="r")["thumbnail"].chunks
    assert chunks == (1, 8, 8)


def test_results_from_a_dataframe(tmp_path):
    frame = pd.DataFrame({"micrograph": ["b", "a"], "status": ["done", "failed"], "x": [1, 2]})
    write_results(tmp_path / "s.zarr", frame)
    ds = open_results(tmp_path / "s.zarr").load()
    assert ds.micrograph.values.tolist() == ["b", "a"]
    assert ds.status.values.tolist() == ["done", "failed"]
    with pytest.raises(ValueError, match="micrograph"):
        write_results(tmp_path / "s.zarr", frame.drop(columns="micrograph"))


def test_thumbnails_shape_is_checked(tmp_path):
    with pytest.raises(ValueError, match="thumbnails must have shape"):
        write_results(tmp_path / "s.zarr", _variables(), thumbnails=np.zeros((2, 8, 8)))
    assert not (tmp_path / "s.zarr" / "micrograph").exists()


def test_rebuilding_results_keeps_pixels_and_is_atomic(tmp_path, rng):
    store = tmp_path / "s.zarr"
    images = {n: rng.normal(size=(24, 40)) for n in ("a", "b", "c")}
    write_image(store, "micrographs", "a", images["a"], pixel_size_A=2.0)
    write_results(store, _variables().isel(micrograph=[0]).assign(extra=("micrograph", [1])))
    write_image(store, "micrographs", "b", images["b"], pixel_size_A=2.0)
    write_image(store, "micrographs", "c", images["c"], pixel_size_A=2.0)
    write_results(store, _variables())
    assert "extra" not in xr.open_zarr(store), "a column of an earlier table is gone"
    assert open_results(store).micrograph.values.tolist() == ["a", "b", "c"]
    pixels = open_pixels(store)
    assert pixels.dims == ("micrograph", "y", "x")
    assert pixels.micrograph.values.tolist() == ["a", "b", "c"]
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels.values, np.stack(list(images.values())).astype("f4"))
    np.testing.assert_array_equal(pixels.pixel_size_A.values, [2.0] * 3)
    np.testing.assert_allclose(pixels.x.values, np.arange(40) * 2.0)
    assert pixels.chunks == ((1, 1, 1), (24,), (40,))
    leftovers = [p.name for p in store.rglob(".*")]
    assert leftovers == []


def _add(store, name, image):
    write_image(store, "micrographs", name, image, pixel_size_A=None)
    write_results(store, pd.DataFrame({"micrograph": [name]}))  # publishes the image


def test_adding_pixels_replaces_only_that_micrograph(tmp_path):
    store = tmp_path / "s.zarr"
    _add(store, "a", np.ones((8, 8)))
    _add(store, "b", np.ones((8, 8)))
    chunk = next((store / "micrographs" / "b").rglob("c/*/*"))
    before = chunk.stat().st_mtime_ns
    _add(store, "a", np.full((8, 8), 5.0))
    assert chunk.stat().st_mtime_ns == before
    np.testing.assert_array_equal(open_pixels(store).sel(micrograph="a").values, 5.0)
    _add(store, "odd", np.ones((4, 8)))
    pixels = open_pixels(store)
    assert pixels.micrograph.values.tolist() == ["a", "b"]
    assert pixels.attrs["failed"][0]["micrograph"] == "odd"
    assert pixels.x.attrs["units"] == "px"
    with pytest.raises(ValueError, match="micrograph must be"):
        write_image(store, "micrographs", "../x", np.ones((8, 8)), pixel_size_A=None)
    with pytest.raises(ValueError, match="2-D"):
        write_image(store, "micrographs", "x", np.ones(8), pixel_size_A=None)


def test_open_results_of_a_missing_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a daskmic results store"):
        open_results(tmp_path / "nothing.zarr")
    with pytest.raises(FileNotFoundError, match="not a daskmic results store"):
        open_results(tmp_path)  # a folder that is no output folder either


def test_open_results_of_an_output_folder_opens_its_store(tmp_path):
    """``open_results(OUT)`` as ``open_results(OUT / "micrographs.zarr")``: users name the
    folder they gave ``-o``."""
    store = tmp_path / "out" / "micrographs.zarr"
    write_results(store, _variables())
    by_folder, by_store = open_results(tmp_path / "out"), open_results(store)
    xr.testing.assert_identical(by_folder.load(), by_store.load())


def test_thumbnail_is_the_block_mean_when_size_divides(rng):
    image = rng.normal(size=(64, 96)).astype(np.float16)
    reference = image.astype(np.float64).reshape(16, 4, 16, 6).mean(axis=(1, 3))
    thumb = make_thumbnail(image, 16)
    assert thumb.dtype == np.float32 and thumb.shape == (16, 16)
    np.testing.assert_allclose(thumb, reference, rtol=0, atol=1e-5 * reference.std())


def test_thumbnail_resamples_a_band_limited_image_exactly():
    ny, nx, size = 300, 408, 64
    y, x = np.mgrid[0:ny, 0:nx]
    image = 3.0 + np.cos(2 * np.pi * (2 * y / ny + 3 * x / nx))
    thumb = make_thumbnail(image, size)
    # Blocks of 300 // 64 = 4 by 408 // 64 = 6 give a 75 x 68 image: the same periodic cosine
    # sampled at the block centres, scaled by the mean of a cosine over a block (a Dirichlet
    # kernel). Fourier resampling a band-limited periodic image to 64 x 64 is then exact.
    fy, fx = 4, 6
    dy, dx = 2 * np.pi * 2 / ny, 2 * np.pi * 3 / nx
    gain = np.sin(fy * dy / 2) / (fy * np.sin(dy / 2)) * np.sin(fx * dx / 2) / (fx * np.sin(dx / 2))
    ty, tx = np.mgrid[0:size, 0:size]
    centre_y = ty * (ny / fy) / size * fy + (fy - 1) / 2
    centre_x = tx * (nx / fx) / size * fx + (fx - 1) / 2
    expected = 3.0 + gain * np.cos(2 * np.pi * (2 * centre_y / ny + 3 * centre_x / nx))
    np.testing.assert_allclose(thumb, expected, rtol=0, atol=1e-5)


def test_thumbnail_parameters():
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        make_thumbnail(np.ones((8, 8)), 0)
    with pytest.raises(ValueError, match="2-D"):
        make_thumbnail(np.ones((2, 8, 8)), 4)
    np.testing.assert_array_equal(make_thumbnail(np.full((10, 10), 7.0), 32), 7.0)
