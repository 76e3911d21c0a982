"""The 90° PSD rotation: exact about the zero frequency, and the reference's warp in compat."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xmippLib

from daskmic.tilt.rotate import (
    rotate90_about_dc,
    rotate90_xmipp,
    rotated_region,
    warp_matrix,
)


@pytest.mark.parametrize("n", [8, 9, 64, 65])
def test_rotation_about_dc_is_exact(n):
    c = n // 2
    image = np.zeros((n, n))
    image[c, c] = 5.0  # zero frequency
    image[c + 1, c + 3] = 1.0  # (dy, dx) = (1, 3)
    rotated = rotate90_about_dc(image)
    assert rotated[c, c] == 5.0
    # R[r, q] = P[q, 2c - r]: the sample at (dy, dx) = (1, 3) moves to (-3, 1)
    assert rotated[c - 3, c + 1] == 1.0
    assert np.count_nonzero(rotated) == 2
    # four quarter turns give the identity; rotations are permutations
    back = image
    for _ in range(4):
        back = rotate90_about_dc(back)
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("n", [8, 9])
def test_rotation_about_dc_equals_rot90_with_the_even_shift(n):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(n, n))
    expected = np.roll(np.rot90(image), 1, axis=0) if n % 2 == 0 else np.rot90(image)
    np.testing.assert_array_equal(rotate90_about_dc(image), expected)


def test_rotation_about_dc_needs_a_square():
    with pytest.raises(ValueError, match="square"):
        rotate90_about_dc(np.zeros((8, 9)))


def _xmipp_rotation(psd: np.ndarray) -> np.ndarray:
    """The protocol's rotation(psd, 90, psd.shape, I): applyWarpAffine with M = T⁻¹RT."""
    h, w = psd.shape
    a = math.radians(90)
    t = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    r = np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    matrix = np.linalg.inv(t) @ r @ t
    image = xmippLib.Image()
    image.setData(psd.copy())
    return image.applyWarpAffine(list(matrix.flatten()), psd.shape, True).getData()


def test_warp_matrix_is_the_protocols():
    h, w = 10, 12
    a = math.radians(90)
    t = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    r = np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    np.testing.assert_allclose(warp_matrix((h, w)), np.linalg.inv(t) @ r @ t, atol=1e-12)


@pytest.mark.parametrize("shape", [(64, 64), (65, 65), (65, 64), (64, 65), (101, 100), (100, 101)])
def test_compat_rotation_matches_xmipplib(shape):
    rng = np.random.default_rng(1)
    psd = rng.normal(size=shape)
    ours = rotate90_xmipp(psd)
    reference = _xmipp_rotation(psd)
    if shape[0] % 2 == 0 and shape[1] % 2 == 1:
        # Xmipp's last column samples exactly on the wrap boundary; no sub-window reaches it
        ours, reference = ours[:, :-1], reference[:, :-1]
    assert np.max(np.abs(ours - reference)) <= 1e-5 * np.std(reference)


def test_compat_rotation_of_squares_is_the_exact_rotation():
    rng = np.random.default_rng(2)
    for n in (64, 65):
        psd = rng.normal(size=(n, n))
        np.testing.assert_array_equal(rotate90_xmipp(psd), rotate90_about_dc(psd))


@pytest.mark.parametrize(("shape", "compat"), [((64, 64), False), ((65, 64), True)])
def test_rotated_region_is_a_slice_of_the_whole_rotation(shape, compat):
    rng = np.random.default_rng(3)
    psd = rng.normal(size=shape)
    whole = rotate90_xmipp(psd) if compat else rotate90_about_dc(psd)
    rows, cols = slice(10, 41), slice(12, 43)
    region = rotated_region(psd, rows, cols, xmipp_compat=compat)
    np.testing.assert_allclose(region, whole[rows, cols], rtol=0, atol=1e-12)
