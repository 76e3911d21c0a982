"""``xr.open_dataset(..., engine="daskmic")``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import xarray as xr

from daskmic.io import MicrographError
from daskmic.io.backend import DaskmicBackendEntrypoint


def test_open_dataset_is_lazy_and_reads_regions(make_mrc, rng, count_reads):
    data = rng.integers(0, 4000, size=(40, 56)).astype(np.uint16)
    path = make_mrc("m.mrc", data, voxel_size=1.5)
    ds = xr.open_dataset(path, engine="daskmic")
    assert ds.image.dims == ("y", "x") and ds.image.dtype == np.uint16
    assert count_reads == []
    np.testing.assert_array_equal(ds.image[2:5, -3:].values, data[2:5, -3:])
    assert count_reads == [(str(path), (slice(2, 5, 1), slice(53, 56, 1)))]
    np.testing.assert_array_equal(ds.image.values, data)
    np.testing.assert_allclose(ds.x.values, np.arange(56) * 1.5)
    assert ds.attrs["pixel_size_A"] == 1.5 and ds.x.attrs["units"] == "Å"


def test_open_dataset_with_chunks_gives_one_chunk_per_image(make_mrc, rng):
    data = rng.normal(size=(32, 48)).astype(np.float32)
    ds = xr.open_dataset(make_mrc("m.mrc", data), engine="daskmic", chunks={})
    assert ds.image.chunks == ((32,), (48,))
    np.testing.assert_array_equal(ds.image.compute().values, data)


def test_drop_variables(make_mrc):
    path = make_mrc("m.mrc", np.zeros((4, 4), np.float32))
    assert "image" not in xr.open_dataset(path, engine="daskmic", drop_variables="image")


def test_tiff_without_pixel_size(tmp_path, rng):
    data = rng.integers(0, 255, size=(16, 20)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data)
    ds = xr.open_dataset(tmp_path / "t.tif", engine="daskmic")
    np.testing.assert_array_equal(ds.image.values, data)
    assert np.isnan(ds.attrs["pixel_size_A"]) and ds.x.attrs["units"] == "px"


def test_guess_can_open_and_errors(tmp_path):
    backend = DaskmicBackendEntrypoint()
    assert backend.guess_can_open("a.mrc") and backend.guess_can_open(tmp_path / "b.TIFF")
    assert not backend.guess_can_open("c.nc") and not backend.guess_can_open(object())
    with pytest.raises(MicrographError, match="no such file"):
        xr.open_dataset(tmp_path / "absent.mrc", engine="daskmic")


def test_the_backend_and_open_micrographs_share_the_data_contract(make_mrc, rng):
    from daskmic.io import open_micrographs

    path = make_mrc("stack/m_7.mrc", rng.normal(size=(24, 40)).astype(np.float32), 1.25)
    one = xr.open_dataset(path, engine="daskmic").image.expand_dims("micrograph")
    stack = open_micrographs(path)
    xr.testing.assert_identical(
        one.rename(None).drop_attrs().reset_coords(["path", "pixel_size_A"], drop=True),
        stack.rename(None).drop_attrs().reset_coords(["path", "pixel_size_A"], drop=True),
    )
    for name in ("path", "pixel_size_A"):
        assert one[name].item() == stack[name].item()
