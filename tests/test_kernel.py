"""The one lifter: tiled == whole frame for every halo rule."""

import functools
import pickle

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from daskmic.ops.kernel import FULL_FRAME, Kernel, compose
from daskmic.ops.lift import lift


def _square(image):
    return (np.asarray(image, dtype=np.float32) ** 2).astype(np.float32)


def _median3(image):
    return ndimage.median_filter(np.asarray(image, dtype=np.float32), size=3, mode="mirror")


def _crop(image, n):
    return np.asarray(image[n:-n, n:-n], dtype=np.float32)


def _crop_shape(shape, n):
    return (shape[0] - 2 * n, shape[1] - 2 * n)


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 10, 14)).astype(np.float32)


def test_pointwise_on_tiles(stack):
    tiled = da.from_array(stack, chunks=(1, 5, 7))
    out = lift(Kernel("square", _square, halo=0), tiled)
    assert out.chunks == tiled.chunks
    np.testing.assert_array_equal(out.compute(), stack**2)


def test_local_halo_on_tiles_equals_whole_frame(stack):
    tiled = da.from_array(stack, chunks=(1, 5, 7))
    out = lift(Kernel("median", _median3, halo=1), tiled).compute()
    expected = np.stack([ndimage.median_filter(frame, size=3, mode="mirror") for frame in stack])
    np.testing.assert_array_equal(out, expected)


def test_full_frame_rechunks_and_may_change_shape(stack):
    tiled = da.from_array(stack, chunks=(2, 5, 7))
    kernel = Kernel(
        "crop", functools.partial(_crop, n=2), FULL_FRAME, functools.partial(_crop_shape, n=2)
    )
    out = lift(kernel, tiled)
    assert out.chunks == ((1, 1, 1), (6,), (10,))
    np.testing.assert_array_equal(out.compute(), stack[:, 2:-2, 2:-2])


def test_compose_applies_in_order_and_kernels_pickle(stack):
    square = Kernel("square", _square, halo=0)
    crop = Kernel(
        "crop", functools.partial(_crop, n=1), FULL_FRAME, functools.partial(_crop_shape, n=1)
    )
    apply = compose([crop, square])
    np.testing.assert_array_equal(apply(stack[0]), stack[0, 1:-1, 1:-1] ** 2)
    assert pickle.loads(pickle.dumps(crop))(stack[0]).shape == (8, 12)


def test_bad_halo_and_dimensionality_are_refused(stack):
    with pytest.raises(ValueError, match="halo"):
        Kernel("x", _square, halo=-2)
    with pytest.raises(ValueError, match="dimensions"):
        lift(Kernel("square", _square, halo=0), da.from_array(stack[0]))
