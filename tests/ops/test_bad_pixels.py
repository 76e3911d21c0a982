"""Bad pixels: a hand-worked 7×7 case, a plain transcription of spec A.2 #3, and xmippLib."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from daskmic.ops.bad_pixels import (
    _float32_bounds,
    bad_pixels_kernel,
    outlier_mask,
    replace_bad_pixels,
)
from daskmic.ops.kernel import FULL_FRAME
from daskmic.ops.lift import lift

# Background of the hand-worked cases: pixel (i, j) holds 7i + j, i.e. 0..48 in raster order.
RAMP = (7 * np.arange(7)[:, None] + np.arange(7)[None, :]).astype(np.float32)


def test_hand_worked_7x7_sequential_medians() -> None:
    image = RAMP.copy()
    image[2, 2] = image[2, 3] = image[6, 6] = 1000.0
    image[5, 0] = -1000.0
    # Mean 62.45, population std 280.0, so k = 2 flags exactly the four planted pixels
    # (thresholds -497.6 and 622.5); the ramp stays inside.
    assert np.array_equal(np.argwhere(outlier_mask(image, 2.0)), [[2, 2], [2, 3], [5, 0], [6, 6]])
    expected = RAMP.copy()
    # (2,2): 5×5 window rows/cols 0..4 = {7i + j} minus 16, 17 (both flagged): 23 values
    # 0 1 2 3 4 7 8 9 10 11 14 [15] 18 21 ... 32, median (12th) = 15.
    expected[2, 2] = 15.0
    # (2,3): rows 0..4, cols 1..5; (2,2) is now good with its new value 15 (Gauss–Seidel), so
    # 24 values 1 2 3 4 5 8 9 10 11 12 15 [15 18] 19 22 ..., median = (15 + 18)/2 = 16.5.
    # (A median of the original values would give 17; ignoring (2,2) would give 18.)
    expected[2, 3] = 16.5
    # (5,0): window clipped to rows 3..6, cols 0..2: 11 values 21 22 23 28 29 [30] 36 37 42 43
    # 44, median 30.
    expected[5, 0] = 30.0
    # (6,6): corner window rows/cols 4..6: 8 values 32 33 34 [39 40] 41 46 47, median 39.5.
    expected[6, 6] = 39.5
    assert np.array_equal(bad_pixels_kernel(2.0)(image), expected)


def test_hand_worked_7x7_block_needs_a_second_pass() -> None:
    image = RAMP.copy()
    image[:3, :3] = 1000.0  # mean 206.2, std 376.7: k = 2 flags the 3×3 block only
    out = bad_pixels_kernel(2.0)(image)
    # Pass 1 in raster order: (0,0) has no good neighbour and waits; (0,1) takes the median
    # of column 3 rows 0..2 (3 10 17) = 10; (0,2): 3 4 10 10 11 17 18 -> 10; (1,0): 10 10 21
    # 22 23 -> 21; (1,1): 3 10 10 10 17 21 21 22 23 24 -> 19; (1,2): 15 values -> 18;
    # (2,0): 11 values -> 21; (2,1): 17 values -> 21; (2,2): 23 values -> 21.
    # Pass 2: (0,0) sees 10 10 18 19 21 21 21 21 -> (19 + 21)/2 = 20.
    expected = RAMP.copy()
    expected[:3, :3] = [[20, 10, 10], [21, 19, 18], [21, 21, 21]]
    assert np.array_equal(out, expected)


def _transcribed_filter(image: np.ndarray, k: float) -> np.ndarray:
    """Spec A.2 #3 word for word: raster order over every pixel, in place, in float64."""
    v = image.astype(np.float64)
    mean, std = v.mean(), v.std()
    mask = (v < mean - k * std) | (v > mean + k * std)
    ny, nx = v.shape
    remaining = True
    while remaining:
        remaining = False
        for i in range(ny):
            for j in range(nx):
                if not mask[i, j]:
                    continue
                neighbours = sorted(
                    v[ii, jj]
                    for ii in range(max(i - 2, 0), min(i + 3, ny))
                    for jj in range(max(j - 2, 0), min(j + 3, nx))
                    if not mask[ii, jj]
                )
                n = len(neighbours)
                if n == 0:
                    remaining = True
                    continue
                v[i, j] = (
                    neighbours[n // 2]
                    if n % 2
                    else 0.5 * (neighbours[n // 2 - 1] + neighbours[n // 2])
                )
                mask[i, j] = False
    return v.astype(np.float32)


def _defective(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Noise with hot and cold pixels, clusters of them and a dead corner block."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 10.0, size=shape).astype(np.float32)
    ny, nx = shape
    for _ in range(12):
        i, j = rng.integers(0, ny - 4), rng.integers(0, nx - 4)
        h, w = rng.integers(1, 5, size=2)
        image[i : i + h, j : j + w] = rng.choice([1000.0, -1000.0]) + rng.normal(0, 5, (h, w))
    image[-4:, -4:] = 900.0
    image[0, :] = rng.normal(100.0, 10.0, nx).astype(np.float32)
    image[0, 3] = 5000.0  # a hot pixel on the border
    return image


@pytest.mark.parametrize("shape", [(61, 61), (57, 90), (101, 37)])
def test_matches_plain_transcription_of_the_spec(shape: tuple[int, int]) -> None:
    image = _defective(shape, seed=shape[0])
    assert np.array_equal(bad_pixels_kernel(3.0)(image), _transcribed_filter(image, 3.0))


@pytest.mark.parametrize(("shape", "k"), [((128, 128), 3.0), ((97, 160), 2.5), ((211, 64), 5.0)])
def test_bit_identical_to_xmipplib(xmipp, shape: tuple[int, int], k: float) -> None:
    image = _defective(shape, seed=shape[1])
    reference = xmipp("badPixelFilter", image, k)
    out = bad_pixels_kernel(k)(image)
    assert out.dtype == np.float32
    assert np.array_equal(out, reference.astype(np.float32))


def test_float32_thresholds_make_the_float64_decisions() -> None:
    rng = np.random.default_rng(11)
    pixels = rng.normal(size=50_000).astype(np.float32)
    for _ in range(300):
        low, high = np.sort(rng.normal(size=2))
        choice = rng.integers(4)
        if choice == 1:  # thresholds exactly on pixel values
            low, high = float(pixels[0]), float(pixels[1])
        elif choice == 2:  # a hair above / below pixel values
            low, high = float(pixels[2]) + 1e-12, float(pixels[3]) - 1e-12
        low32, high32 = _float32_bounds(np.float64(low), np.float64(high))
        in_float64 = (pixels < np.float64(low)) | (pixels > np.float64(high))
        assert np.array_equal((pixels < low32) | (pixels > high32), in_float64)


def test_clean_image_is_unchanged_and_input_untouched() -> None:
    image = np.linspace(-1, 1, 35 * 22, dtype=np.float32).reshape(35, 22)
    before = image.copy()
    out = bad_pixels_kernel(5.0)(image)
    assert np.array_equal(out, image)
    defective = _defective((40, 40), seed=3)
    kept = defective.copy()
    bad_pixels_kernel(3.0)(defective)
    assert np.array_equal(defective, kept)
    assert np.array_equal(image, before)


def test_integer_input_is_read_as_float32() -> None:
    image = np.full((20, 30), 100, dtype=np.int16)
    image[::3, ::4] = 90
    image[7, 11] = 30000
    out = bad_pixels_kernel(4.0)(image)
    assert out.dtype == np.float32
    assert out[7, 11] == np.median(np.delete(image[5:10, 9:14].ravel(), 12))


def test_stops_when_no_pixel_can_be_replaced() -> None:
    # Xmipp would loop forever when no pixel is good; the pass that replaces nothing ends it.
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    bad = np.ones((2, 2), dtype=bool)
    assert replace_bad_pixels(values, bad) == 4
    assert np.array_equal(values, [[1.0, 2.0], [3.0, 4.0]])


def test_tiled_stack_equals_whole_frames() -> None:
    kernel = bad_pixels_kernel(3.0)
    assert kernel.halo == FULL_FRAME
    stack = np.stack([_defective((70, 53), seed=s) for s in range(3)])
    tiled = lift(kernel, da.from_array(stack, chunks=(2, 23, 17))).compute()
    assert np.array_equal(tiled, np.stack([kernel(frame) for frame in stack]))


@pytest.mark.parametrize("k", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_invalid_k_is_refused(k: object) -> None:
    with pytest.raises(ValueError, match=r"bad_pixels: .*k"):
        bad_pixels_kernel(k)  # type: ignore[arg-type]
