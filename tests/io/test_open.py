"""open_micrographs: the data contract, laziness, names, error rows, pickling, a real cluster."""

from __future__ import annotations

import os
import pickle
import shutil

import dask
import numpy as np
import pytest
import tifffile
import xarray as xr

from daskmic.io import MicrographError, open_micrographs


@pytest.fixture
def folder(make_mrc, rng):
    """Three 40 x 56 int16 micrographs with pixel size 1.25 Å, and their pixels."""
    images = [rng.integers(-500, 500, size=(40, 56)).astype(np.int16) for _ in range(3)]
    paths = [make_mrc(f"raw/mic_{i}.mrc", im, voxel_size=1.25) for i, im in enumerate(images)]
    return paths[0].parent, images


def test_data_contract(folder):
    root, images = folder
    mics = open_micrographs(root)
    assert mics.dims == ("micrograph", "y", "x")
    assert mics.shape == (3, 40, 56)
    assert mics.dtype == np.int16
    assert mics.chunks == ((1, 1, 1), (40,), (56,))
    assert list(mics.micrograph.values) == ["mic_0", "mic_1", "mic_2"]
    assert list(mics.path.values) == [str(root / f"mic_{i}.mrc") for i in range(3)]
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.25] * 3)
    np.testing.assert_allclose(mics.y.values, np.arange(40) * 1.25)
    np.testing.assert_allclose(mics.x.values, np.arange(56) * 1.25)
    assert mics.x.attrs["units"] == "Å"
    assert mics.attrs["failed"] == [] and mics.attrs["optics"] == []
    assert "folder" in mics.attrs["source"]
    np.testing.assert_array_equal(mics.values, np.stack(images))


def test_no_pixel_read_before_compute(folder, count_reads):
    root, images = folder
    mics = open_micrographs(root)
    lazy = (mics.astype(np.float64) * 2).mean(dim=("y", "x"))
    assert count_reads == []
    np.testing.assert_allclose(lazy.values, [2 * im.astype(np.float64).mean() for im in images])
    assert len(count_reads) == 3


def test_corner_read_touches_only_the_corner(folder, count_reads):
    root, images = folder
    mics = open_micrographs(root)
    corner = mics.isel(micrograph=1, y=slice(0, 10), x=slice(-8, None)).values
    np.testing.assert_array_equal(corner, images[1][:10, -8:])
    assert count_reads == [(str(root / "mic_1.mrc"), (slice(0, 10), slice(48, 56)))]


def _corners(mics, w):
    return [mics[:, :w, :w], mics[:, :w, -w:], mics[:, -w:, :w], mics[:, -w:, -w:]]


def test_each_corner_computed_alone_reads_only_that_corner(folder, count_reads):
    root, images = folder
    mics = open_micrographs(root)
    w = 8
    for corner, expected in zip(_corners(mics, w), _corners(np.stack(images), w), strict=True):
        np.testing.assert_array_equal(corner.values, expected)
    assert len(count_reads) == 4 * 3
    for _, (ys, xs) in count_reads:
        assert (ys.stop - ys.start, xs.stop - xs.start) == (w, w)


def test_four_corners_in_one_graph_read_small_regions_with_window_chunks(folder, count_reads):
    """Slices of one chunk computed together share its read (dask fuses a getter only into a
    single consumer), so for several windows at once, chunk the stack by the window size."""
    root, images = folder
    w = 8
    mics = open_micrographs(root, chunks={"y": w, "x": w})
    values = dask.compute(*[c.data for c in _corners(mics, w)])
    for value, expected in zip(values, _corners(np.stack(images), w), strict=True):
        np.testing.assert_array_equal(value, expected)
    assert len(count_reads) == 4 * 3
    for _, (ys, xs) in count_reads:
        assert (ys.stop - ys.start, xs.stop - xs.start) == (w, w)


def test_chunks_tile_y_and_x(folder, count_reads):
    root, images = folder
    mics = open_micrographs(root, chunks={"y": 16, "x": 32})
    assert mics.chunks == ((1, 1, 1), (16, 16, 8), (32, 24))
    np.testing.assert_array_equal(mics.values, np.stack(images))
    assert len(count_reads) == 3 * 3 * 2


@pytest.mark.parametrize(
    "chunks", [{"z": 4}, {"y": 0}, {"x": 2.5}, [1, 2, 3]], ids=["dim", "zero", "float", "list"]
)
def test_invalid_chunks(folder, chunks):
    with pytest.raises(ValueError, match="chunks"):
        open_micrographs(folder[0], chunks=chunks)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_pixel_size(folder, bad):
    with pytest.raises(ValueError, match=r"pixel_size_A must be a finite number > 0"):
        open_micrographs(folder[0], pixel_size_A=bad)


def test_pixel_size_argument_overrides_header(folder):
    mics = open_micrographs(folder[0], pixel_size_A=2.0)
    np.testing.assert_array_equal(mics.pixel_size_A.values, [2.0] * 3)
    np.testing.assert_allclose(mics.x.values, np.arange(56) * 2.0)


def test_unknown_or_mixed_pixel_sizes_give_pixel_coordinates(make_mrc, rng):
    image = np.zeros((16, 24), np.float32)
    make_mrc("mixed/a.mrc", image, voxel_size=1.0)
    make_mrc("mixed/b.mrc", image, voxel_size=2.0)
    path_c = make_mrc("mixed/c.mrc", image)
    mics = open_micrographs(path_c.parent)
    np.testing.assert_array_equal(mics.pixel_size_A.values, [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(mics.x.values, np.arange(24))
    assert mics.x.attrs["units"] == "px"
    alone = open_micrographs(path_c)
    assert np.isnan(alone.pixel_size_A.item()) and alone.y.attrs["units"] == "px"


def test_sources_file_list_and_globs(folder, make_mrc, tmp_path, monkeypatch):
    root, images = folder
    one = open_micrographs(root / "mic_2.mrc")
    assert one.micrograph.values.tolist() == ["mic_2"]
    listed = open_micrographs([root / "mic_2.mrc", str(root / "mic_0.mrc")])
    assert listed.micrograph.values.tolist() == ["mic_2", "mic_0"]
    np.testing.assert_array_equal(listed.values, np.stack([images[2], images[0]]))
    monkeypatch.chdir(tmp_path)
    globbed = open_micrographs("raw/mic_[01].mrc")
    assert globbed.micrograph.values.tolist() == ["mic_0", "mic_1"]
    assert globbed.path.values[0] == str(root / "mic_0.mrc")
    with pytest.raises(MicrographError, match="no micrograph files found"):
        open_micrographs("raw/*.tif")


def test_duplicates_are_listed_once(folder):
    root, _ = folder
    mics = open_micrographs([root, root / "mic_1.mrc", str(root / "*.mrc")])
    assert mics.micrograph.values.tolist() == ["mic_0", "mic_1", "mic_2"]


def test_folder_takes_mrc_mrcs_tif_tiff_not_others(make_mrc, tmp_path):
    image = np.ones((8, 8), np.float32)
    make_mrc("mixed/a.mrc", image)
    make_mrc("mixed/b.mrcs", image[None])
    tifffile.imwrite(tmp_path / "mixed/c.tif", image)
    tifffile.imwrite(tmp_path / "mixed/d.TIFF", image)
    make_mrc("mixed/e.map", image)
    make_mrc("mixed/.hidden.mrc", image)
    make_mrc("mixed/sub/f.mrc", image)
    (tmp_path / "mixed/notes.txt").write_text("x")
    mics = open_micrographs(tmp_path / "mixed")
    assert mics.micrograph.values.tolist() == ["a", "b", "c", "d"]


def _epu_layout(make_mrc, rng):
    """EPU-like: GridSquare_*/Data/FoilHole_*.mrc with one stem shared by two grid squares."""
    files = {
        "epu/GridSquare_1/Data/FoilHole_10_Data_1.mrc": 1,
        "epu/GridSquare_1/Data/FoilHole_11_Data_1.mrc": 2,
        "epu/GridSquare_2/Data/FoilHole_10_Data_1.mrc": 3,
        "epu/GridSquare_2/Data/FoilHole_12_Data_1.mrc": 4,
        "epu/GridSquare_2/Data/FoilHole_12_Data_1.tif": 5,
    }
    for name, value in files.items():
        image = np.full((8, 12), value, np.float32)
        if name.endswith(".tif"):
            path = make_mrc("scratch.mrc", image).parent / name
            tifffile.imwrite(path, image)
        else:
            make_mrc(name, image, voxel_size=1.0)
    return files


def test_recursive_glob_and_colliding_stems(make_mrc, rng, tmp_path, monkeypatch):
    _epu_layout(make_mrc, rng)
    monkeypatch.chdir(tmp_path / "epu")
    mics = open_micrographs("**/*.mrc")
    assert mics.micrograph.values.tolist() == [
        "GridSquare_1__Data__FoilHole_10_Data_1",
        "FoilHole_11_Data_1",
        "GridSquare_2__Data__FoilHole_10_Data_1",
        "FoilHole_12_Data_1",
    ]
    np.testing.assert_array_equal(mics.values[:, 0, 0], [1, 2, 3, 4])
    epu = open_micrographs("GridSquare_*/Data/*")
    assert epu.micrograph.values.tolist()[-2:] == [
        "GridSquare_2__Data__FoilHole_12_Data_1.mrc",
        "GridSquare_2__Data__FoilHole_12_Data_1.tif",
    ]


def test_names_do_not_depend_on_listing_order(make_mrc, rng, tmp_path, monkeypatch):
    files = _epu_layout(make_mrc, rng)
    monkeypatch.chdir(tmp_path)
    paths = [p for p in files if p.endswith(".mrc")]
    forward = open_micrographs(paths)
    backward = open_micrographs(paths[::-1])
    assert dict(zip(forward.path.values, forward.micrograph.values, strict=True)) == dict(
        zip(backward.path.values, backward.micrograph.values, strict=True)
    )
    assert len(set(forward.micrograph.values)) == 4


def test_bad_files_become_error_rows(folder, make_mrc, tmp_path):
    root, images = folder
    (root / "empty.mrc").write_bytes(b"")
    (root / "text.mrc").write_text("not a micrograph\n" * 200)
    whole = (root / "mic_0.mrc").read_bytes()
    (root / "truncated.mrc").write_bytes(whole[: len(whole) // 2])
    make_mrc("raw/stack.mrcs", np.zeros((2, 40, 56), np.int16))
    make_mrc("raw/small.mrc", np.zeros((20, 56), np.int16))
    mics = open_micrographs([root, root / "absent.mrc"])
    assert mics.micrograph.values.tolist() == ["mic_0", "mic_1", "mic_2"]
    np.testing.assert_array_equal(mics.values, np.stack(images))
    failed = {row["micrograph"]: row for row in mics.attrs["failed"]}
    assert set(failed) == {"empty", "text", "truncated", "stack", "small", "absent"}
    expected = {
        "empty": ("empty.mrc", "empty file"),
        "text": ("text.mrc", "not an MRC file"),
        "truncated": ("truncated.mrc", "truncated"),
        "stack": ("stack.mrcs", "3-D stack"),
        "small": ("small.mrc", "shape (20, 56) differs from the set's (40, 56)"),
        "absent": ("absent.mrc", "no such file"),
    }
    for name, (file_name, problem) in expected.items():
        assert problem in failed[name]["error"]
        assert failed[name]["path"] == str(root / file_name)
    assert set(failed["empty"]) == {"micrograph", "path", "error"}


def test_nothing_readable_gives_an_empty_stack_with_error_rows(tmp_path):
    (tmp_path / "empty.mrc").write_bytes(b"")
    mics = open_micrographs(tmp_path / "empty.mrc")
    assert mics.shape == (0, 0, 0)
    assert [row["micrograph"] for row in mics.attrs["failed"]] == ["empty"]


def test_mixed_dtypes_share_the_common_type(make_mrc):
    make_mrc("d/a.mrc", np.full((8, 8), -3, np.int8))
    make_mrc("d/b.mrc", np.full((8, 8), 60000, np.uint16))
    mics = open_micrographs(make_mrc("d/c.mrc", np.zeros((8, 8), np.int16)).parent)
    assert mics.dtype == np.result_type(np.int8, np.uint16, np.int16)
    np.testing.assert_array_equal(mics.values[:, 0, 0], [-3, 60000, 0])


def test_float16_stack_statistics_in_float64(make_mrc, rng):
    data = rng.uniform(5.9e4, 6.5e4, size=(2, 32, 32)).astype(np.float16)
    for i in range(2):
        make_mrc(f"h/{i}.mrc", data[i])
    mics = open_micrographs(make_mrc("h/0.mrc", data[0]).parent)
    assert mics.dtype == np.float16
    mean = mics.mean(dim=("y", "x"), dtype=np.float64).values
    std = mics.astype(np.float64).std(dim=("y", "x")).values
    wide = data.astype(np.float64)
    np.testing.assert_allclose(mean, wide.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, wide.std(axis=(1, 2)), rtol=1e-9)
    assert np.all(np.isfinite(std))


def test_pickled_stack_computes(folder):
    root, images = folder
    mics = open_micrographs(root)
    again = pickle.loads(pickle.dumps(mics))
    xr.testing.assert_identical(again, mics)
    np.testing.assert_array_equal(again[2].values, images[2])


def test_differently_chunked_opens_do_not_share_keys(folder):
    root, images = folder
    whole = open_micrographs(root)
    tiled = open_micrographs(root, chunks={"y": 16, "x": 16})
    total = (whole.astype(np.float64) - tiled.astype(np.float64)).sum() + whole.sum()
    assert total.values == np.stack(images).astype(np.int64).sum()


def test_tokens_change_when_files_change(folder, make_mrc):
    root, _ = folder
    before = open_micrographs(root)
    assert open_micrographs(root).data.name == before.data.name
    make_mrc("raw/mic_1.mrc", np.zeros((40, 56), np.int16))
    os.utime(root / "mic_1.mrc", ns=(1, 1))
    assert open_micrographs(root).data.name != before.data.name


def test_reading_on_a_distributed_cluster(folder, client, tmp_path):
    root, images = folder
    mics = open_micrographs(root)
    sums = client.compute(mics.astype(np.float64).sum(dim=("y", "x"))).result()
    np.testing.assert_allclose(sums.values, [im.astype(np.float64).sum() for im in images])
    corner = client.compute(mics[:, :5, :5]).result()
    np.testing.assert_array_equal(corner.values, np.stack(images)[:, :5, :5])
    moved = tmp_path / "moved"
    shutil.move(root, moved)
    with pytest.raises(MicrographError, match="no such file"):
        client.compute(mics).result()
