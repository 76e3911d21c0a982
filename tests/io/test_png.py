"""The one grey-PNG encoder, decoded back by an independent reader (matplotlib)."""

import io

import matplotlib.image
import numpy as np
import pytest

from daskmic.io.png import grey_png


def _decode(png: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(png), "png")


def test_row_zero_is_the_bottom_row_and_levels_are_rounded():
    ramp = np.repeat(np.linspace(0.0, 1.0, 32)[:, None], 8, axis=1)
    decoded = _decode(grey_png(ramp))
    assert decoded.shape == (32, 8), "plain 8-bit grey"
    np.testing.assert_array_equal(decoded[::-1] * 255, np.rint(ramp * 255))


def test_values_outside_the_unit_range_are_clipped():
    decoded = _decode(grey_png(np.array([[-3.0, 0.5, 7.0]])))
    np.testing.assert_array_equal(decoded[0] * 255, [0, 128, 255])


def test_nan_pixels_are_transparent():
    image = np.full((3, 2), 0.25)
    image[0, 1] = np.nan
    decoded = _decode(grey_png(image))
    assert decoded.shape[:2] == (3, 2) and decoded.shape[2] in (2, 4), "grey and alpha"
    alpha = decoded[::-1, :, -1]
    np.testing.assert_array_equal(alpha, [[1, 0], [1, 1], [1, 1]])
    assert decoded[::-1, :, 0][0, 0] == pytest.approx(64 / 255)


def test_compression_level_changes_size_not_pixels():
    rng = np.random.default_rng(0)
    image = rng.random((64, 64))
    fast, small = grey_png(image, compress_level=1), grey_png(image, compress_level=9)
    np.testing.assert_array_equal(_decode(fast), _decode(small))


def test_refuses_a_stack():
    with pytest.raises(ValueError, match="2-D"):
        grey_png(np.zeros((2, 3, 3)))
