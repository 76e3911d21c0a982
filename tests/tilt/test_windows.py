"""Window sizes, corner positions and PSD sub-windows against the reference's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from daskmic.tilt.windows import (
    auto_window_size,
    band_limit_A,
    corner_regions,
    sub_window_px,
    sub_window_slices,
    window_size_for,
)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [  # spec B.2's examples, as (ny, nx)
        ((4096, 4096), 1024),
        ((4092, 5760), 1024),
        ((7420, 7676), 2048),
        ((1024, 1024), 256),
        ((9441, 9216), 2048),
        ((640, 700), 256),  # h = 256 is not strictly above 256: h itself
        ((600, 600), 240),  # h = 240: below the 256 px floor
    ],
)
def test_auto_window_size_follows_the_reference(shape, expected):
    assert auto_window_size(shape) == expected


def test_window_size_for_refuses_micrographs_too_small():
    assert window_size_for((640, 700), "auto", xmipp_compat=False) == 256
    with pytest.raises(ValueError, match="too small"):
        window_size_for((600, 600), "auto", xmipp_compat=False)
    assert window_size_for((512, 600), 512, xmipp_compat=False) == 512
    with pytest.raises(ValueError, match="too small"):
        window_size_for((512, 600), 512, xmipp_compat=True)  # far windows are w + 1 wide
    with pytest.raises(ValueError, match="two dimensions"):
        window_size_for((512,), "auto", xmipp_compat=False)


def _reference_windows(image: np.ndarray, w: int) -> list[np.ndarray]:
    """The reference's window_coordinates2D and inclusive window2D, in its loop order."""
    ny, nx = image.shape
    xs = [0, w - 1, nx - 1 - w, nx - 1]
    ys = [0, w - 1, ny - 1 - w, ny - 1]
    return [image[ys[j] : ys[j + 1] + 1, xs[i] : xs[i + 1] + 1] for i in (0, 2) for j in (0, 2)]


def test_compat_corners_are_the_reference_windows():
    image = np.arange(40 * 50).reshape(40, 50)
    windows = [image[r] for r in corner_regions(image.shape, 16, xmipp_compat=True)]
    for ours, reference in zip(windows, _reference_windows(image, 16), strict=True):
        np.testing.assert_array_equal(ours, reference)
    assert [w.shape for w in windows] == [(16, 16), (17, 16), (16, 17), (17, 17)]


def test_default_corners_are_equal_and_flush_with_the_corners():
    image = np.arange(40 * 50).reshape(40, 50)
    windows = [image[r] for r in corner_regions(image.shape, 16, xmipp_compat=False)]
    assert all(w.shape == (16, 16) for w in windows)
    np.testing.assert_array_equal(windows[0], image[:16, :16])  # near x, near y
    np.testing.assert_array_equal(windows[1], image[-16:, :16])  # near x, far y
    np.testing.assert_array_equal(windows[2], image[:16, -16:])  # far x, near y
    np.testing.assert_array_equal(windows[3], image[-16:, -16:])  # far x, far y
    with pytest.raises(ValueError, match="does not fit"):
        corner_regions(image.shape, 41, xmipp_compat=False)


def test_sub_window_size_and_band_limit():
    assert sub_window_px(1024, 1.0, 3.0) == 341
    assert sub_window_px(512, 3.54, 8.0) == 226  # the protocol test: window 512, 8 Å
    assert sub_window_px(600, 3.54, 4.0) == 531
    # a PSD of w px spans ±Nyquist: sub/2 px reach sub / (2 w p) per Å
    assert band_limit_A(1024, 341, 1.0) == pytest.approx(1 / (341 / 2 / (1024 * 1.0)))
    with pytest.raises(ValueError, match="below the pixel size"):
        sub_window_px(512, 1.0, 0.9)
    with pytest.raises(ValueError, match="too coarse"):
        sub_window_px(256, 1.0, 9.0)
    with pytest.raises(ValueError, match="pixel_size_A"):
        sub_window_px(256, float("nan"), 3.0)


@pytest.mark.parametrize(("n", "sub"), [(256, 85), (256, 86), (257, 85), (257, 86)])
def test_default_sub_window_is_centred_on_zero_frequency(n, sub):
    rows, cols = sub_window_slices((n, n), sub, xmipp_compat=False)
    dc = n // 2  # fftshift puts the zero frequency here
    assert rows == cols
    assert rows.stop - rows.start == sub
    assert dc - rows.start == sub // 2  # and here within the sub-window


def test_compat_sub_window_uses_the_column_count_for_both_axes():
    rows, cols = sub_window_slices((257, 256), 85, xmipp_compat=True)
    start = int(256 / 2 - 85 / 2)
    assert (rows.start, cols.start) == (start, start) == (85, 85)
    default_rows, _ = sub_window_slices((257, 256), 85, xmipp_compat=False)
    assert default_rows.start == 86  # the reference is one pixel off the centre here
