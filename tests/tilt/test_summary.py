"""PSD summary montage layout and its PNG orientation."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from daskmic.tilt.summary import psd_summary, write_psd_png


def test_montage_mirrors_the_corners_with_the_reference_overlap():
    sub = 3
    blocks = np.stack([np.full((sub, sub), float(k + 1)) for k in range(4)])  # 00, 02, 20, 22
    summary = psd_summary(blocks)
    expected = np.array(
        [  # near-y blocks at the top rows, near-x at the left; later corners overwrite
            [1, 1, 3, 3, 3],
            [1, 1, 3, 3, 3],
            [2, 2, 4, 4, 4],
            [2, 2, 4, 4, 4],
            [2, 2, 4, 4, 4],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(summary, expected)
    assert summary.dtype == np.float32


def test_montage_refuses_bad_shapes():
    with pytest.raises(ValueError, match="four square"):
        psd_summary(np.zeros((3, 4, 4)))


def test_png_shows_row_zero_at_the_bottom(tmp_path):
    image = np.zeros((6, 4), dtype=np.float32)
    image[0, :] = 1.0  # bright first row
    image[2, 1] = np.nan  # padding is drawn black
    path = tmp_path / "psd" / "mic.png"
    path.parent.mkdir()
    write_psd_png(path, image)
    png = matplotlib.image.imread(path)
    assert png.shape == (6, 4)  # 8-bit grey
    grey = png
    np.testing.assert_allclose(grey[-1], 1.0)  # last PNG row (bottom) = row 0
    np.testing.assert_allclose(grey[:-1], 0.0)
    assert list(tmp_path.joinpath("psd").iterdir()) == [path]  # no temporary left behind
