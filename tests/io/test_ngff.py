"""Micrographs and PSDs as OME-NGFF 0.5 images, checked by the ecosystem's own readers."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from daskmic.io import open_images, open_micrographs, write_image, write_results
from daskmic.io.ngff import pyramid

NGFF_TOOLS = ["ome-zarr-models==1.7", "napari-ome-zarr==0.10.0"]
"""Validator and viewer reader; they pin pydantic < 2.13, which dask-kubernetes' client cannot
share, so they run in an environment of their own."""


def _block_means(image: np.ndarray, factor: int) -> np.ndarray:
    ny, nx = image.shape[0] // factor, image.shape[1] // factor
    return image[: ny * factor, : nx * factor].reshape(ny, factor, nx, factor).mean(axis=(1, 3))


def test_pyramid_levels_are_block_means_down_to_512(rng):
    image = rng.normal(size=(1100, 1301))
    levels = pyramid(image)
    assert [level.shape for level in levels] == [(1100, 1301), (550, 650), (275, 325)]
    for k, level in enumerate(levels):
        # Halving with the odd row/column dropped equals one block mean over 2**k pixels of
        # the part of level 0 that those halvings kept.
        kept = image[: level.shape[0] * 2**k, : level.shape[1] * 2**k]
        np.testing.assert_allclose(level, _block_means(kept, 2**k), rtol=0, atol=1e-5)
        assert level.dtype == np.float32
    assert len(pyramid(np.ones((512, 300)))) == 1


def test_image_metadata_places_every_level_in_angstrom(tmp_path, rng):
    store = tmp_path / "s.zarr"
    write_image(store, "micrographs", "m", rng.normal(size=(1030, 1030)), pixel_size_A=1.25)
    group = zarr.open_group(store / "micrographs" / "m", mode="r")
    (image,) = group.attrs["ome"]["multiscales"]
    assert group.attrs["ome"]["version"] == "0.5"
    assert image["axes"] == [
        {"name": "y", "type": "space", "unit": "angstrom"},
        {"name": "x", "type": "space", "unit": "angstrom"},
    ]
    for k, dataset in enumerate(image["datasets"]):
        transforms = {t["type"]: t for t in dataset["coordinateTransformations"]}
        assert transforms["scale"]["scale"] == [1.25 * 2**k] * 2
        # The centre of level k's first pixel is the centre of the first 2**k x 2**k block.
        expected = 1.25 * (2**k - 1) / 2
        assert transforms.get("translation", {"translation": [0, 0]})["translation"] == [
            expected
        ] * 2
        array = group[dataset["path"]]
        assert array.metadata.dimension_names == ("y", "x")
        chunks = tuple(min(n, 512) for n in array.shape)
        assert array.chunks == chunks
        shards = tuple(-(-n // c) * c for n, c in zip(array.shape, chunks, strict=True))
        assert array.shards == shards, "each level is one shard"
    assert [group[d["path"]].shape[0] for d in image["datasets"]] == [1030, 515, 257]


def _published(tmp_path, rng, shapes):
    store = tmp_path / "micrographs.zarr"
    images = {}
    for i, shape in enumerate(shapes):
        name = f"mic_{i}"
        images[name] = rng.normal(size=shape).astype(np.float32)
        write_image(store, "micrographs", name, images[name], pixel_size_A=1.5)
        write_image(store, "psd", name, rng.random((64, 64)), pixel_size_A=None)
    table = pd.DataFrame({"micrograph": list(images), "status": "done", "mean": 0.5})
    write_results(store, table, thumbnails=np.zeros((len(images), 8, 8)), parameters={"a": 1})
    return store, images


def test_the_store_opens_with_plain_xarray_calls(tmp_path, rng):
    store, images = _published(tmp_path, rng, [(600, 700), (600, 700), (520, 900)])
    table = xr.open_zarr(store)
    assert table["micrograph"].values.tolist() == list(images)
    mapping = {"thumbnail_low", "thumbnail_high"}
    assert set(table.data_vars) == {"status", "mean", "thumbnail", *mapping}
    assert json.loads(table.attrs["parameters"]) == {"a": 1}
    tree = xr.open_datatree(store, engine="zarr")
    level0 = tree["micrographs/mic_2/0"].to_dataset()
    np.testing.assert_array_equal(level0["image"].values, images["mic_2"])
    assert tree["micrographs/mic_2/1"]["image"].shape == (260, 450)
    stack = open_micrographs(store)
    assert stack.micrograph.values.tolist() == ["mic_0", "mic_1"]
    assert stack.attrs["failed"][0]["micrograph"] == "mic_2"
    np.testing.assert_array_equal(stack.pixel_size_A.values, [1.5, 1.5])
    np.testing.assert_allclose(stack.x.values, np.arange(700) * 1.5)
    every = open_images(store)
    assert {name: image.shape for name, image in every.items()} == {
        name: image.shape for name, image in images.items()
    }
    assert float(open_images(store, "psd")["mic_0"].pixel_size_A) != 1.0  # NaN: not a length


def test_consolidated_metadata_lists_only_what_was_published(tmp_path, rng):
    store, images = _published(tmp_path, rng, [(64, 64)])
    write_image(store, "micrographs", "late", rng.normal(size=(64, 64)), pixel_size_A=1.5)
    assert list(open_images(store)) == ["mic_0"], "not listed before the next publish"
    root = json.loads((store / "zarr.json").read_text())
    assert "micrographs/late" not in root["consolidated_metadata"]["metadata"]
    series = zarr.open_group(store / "OME", mode="r").attrs["ome"]["series"]
    assert series == ["micrographs/mic_0", "psd/mic_0"]
    # a worker killed while writing leaves a group under a temporary name: never listed
    partial = store / "micrographs" / ".late2.tmp-0123abcd"
    zarr.open_group(str(partial), mode="w", zarr_format=3)
    write_results(store, pd.DataFrame({"micrograph": ["mic_0", "late"]}))
    listed = json.loads((store / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert "micrographs/late" in listed
    assert not [key for key in listed if ".tmp-" in key]
    assert list(open_images(store)) == ["late", "mic_0"]


@pytest.fixture
def http_root(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_store_opens_over_http(tmp_path, rng, http_root):
    _, images = _published(tmp_path, rng, [(96, 80), (96, 80)])
    url = f"{http_root}/micrographs.zarr"
    table = xr.open_zarr(url)
    assert table["micrograph"].values.tolist() == list(images)
    tree = xr.open_datatree(url, engine="zarr")
    np.testing.assert_array_equal(tree["micrographs/mic_1/0"]["image"].values, images["mic_1"])


VALIDATE = textwrap.dedent(
    """
    import json, pathlib, subprocess, sys
    import zarr
    from ome_zarr_models.v05 import BioFormats2Raw
    from ome_zarr_models.v05.image import Image
    from napari_ome_zarr import napari_get_reader

    store = sys.argv[1]
    root = zarr.open_group(store, mode="r")
    BioFormats2Raw.from_zarr(root)  # the collection's attributes
    series = root["OME"].attrs["ome"]["series"]
    for path in series:
        Image.from_zarr(root[path])
        cli = subprocess.run(
            [pathlib.Path(sys.executable).parent / "ome-zarr-models", "validate",
             f"{store}/{path}"],
            capture_output=True, text=True,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
    layers = napari_get_reader(store)(store)
    one = napari_get_reader(f"{store}/{series[0]}")(f"{store}/{series[0]}")
    shapes = [[list(a.shape) for a in data] for data, _, _ in layers]
    scales = [meta.get("scale") for _, meta, _ in layers]
    print(json.dumps({
        "series": series,
        "layers": [list(pair) for pair in zip(shapes, scales)],
        "one": [list(a.shape) for a in one[0][0]],
    }))
    """
)


def validate_with_ngff_tools(python, store) -> dict:
    """Run ome-zarr-models (every image, and the collection) and napari's OME reader."""
    done = subprocess.run(
        [str(python), "-c", VALIDATE, str(store)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_validators_and_napari_reader_accept_the_store(tmp_path, rng, side_venv):
    python = side_venv("ngff", [NGFF_TOOLS])
    store, images = _published(tmp_path, rng, [(1100, 1300), (600, 700)])
    found = validate_with_ngff_tools(python, store)
    assert found["series"] == [*(f"micrographs/{n}" for n in images), *(f"psd/{n}" for n in images)]
    shapes, scale = found["layers"][0]
    assert shapes == [[1100, 1300], [550, 650], [275, 325]]
    assert scale == [1.5, 1.5], "napari opens the micrograph at the output pixel size"
    assert found["layers"][1] == [[[600, 700], [300, 350]], [1.5, 1.5]]
    assert found["one"] == [[1100, 1300], [550, 650], [275, 325]]


def test_a_run_on_two_frame_sizes_gives_a_store_every_tool_opens(
    write_micrographs, tmp_path, side_venv, monkeypatch
):
    """The issue's bar, through the command line: one table row per input, a datatree, valid
    NGFF images that napari opens at the output pixel size."""
    from daskmic.cli import main

    python = side_venv("ngff", [NGFF_TOOLS])
    monkeypatch.chdir(tmp_path)
    (large,) = write_micrographs(n=1, shape=(1100, 1200), pixel_size_A=1.2, folder="raw", seed=7)
    large.rename(large.with_name("wide.mrc"))
    write_micrographs(n=2, shape=(600, 640), pixel_size_A=1.2, folder="raw")
    code = main(
        ["preprocess", "raw/*.mrc", "-o", "out", "--crop", "--downsample", "1.5",
         "--normalize", "--workers", "1", "--no-dashboard", "--no-report"]
    )
    assert code == 0
    store = tmp_path / "out" / "micrographs.zarr"
    table = xr.open_zarr(store)
    assert table.sizes["micrograph"] == 3
    assert table["micrograph"].values.tolist() == ["mic_000", "mic_001", "wide"]
    assert set(pd.read_csv(tmp_path / "out" / "micrographs.csv").columns) <= {
        *table.variables, "micrograph"
    }
    tree = xr.open_datatree(store, engine="zarr")
    output_pixel_size = float(table["output_pixel_size_A"].values[2])
    assert tree["micrographs/wide/0"]["image"].shape == (
        int(table["output_ny"].values[2]),
        int(table["output_nx"].values[2]),
    )
    found = validate_with_ngff_tools(python, store)
    shapes, scale = found["layers"][2]
    assert len(shapes) == 2 and scale == pytest.approx([output_pixel_size] * 2)
