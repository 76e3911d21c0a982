"""Thumbnails: the real-FFT resize and the one-partition encode against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from daskmic.io.thumbnails import (
    THUMBNAIL_RANGE_PCT,
    encode_thumbnail,
    fourier_resize,
    percentiles,
)


def complex_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The reference: crop or zero-pad the centred complex spectrum, real part, mean kept."""
    spectrum = scipy.fft.fftshift(scipy.fft.fft2(image))
    out = np.zeros(shape, dtype=complex)
    src, dst = [], []
    for n, m in zip(image.shape, shape, strict=True):
        keep = min(n, m)
        src.append(slice(n // 2 - keep // 2, n // 2 - keep // 2 + keep))
        dst.append(slice(m // 2 - keep // 2, m // 2 - keep // 2 + keep))
    out[tuple(dst)] = spectrum[tuple(src)]
    scale = (shape[0] * shape[1]) / (image.shape[0] * image.shape[1])
    return scipy.fft.ifft2(scipy.fft.ifftshift(out)).real * scale


@pytest.mark.parametrize("source", [(128, 128), (127, 130), (4, 5), (7, 9), (1, 3), (300, 200)])
@pytest.mark.parametrize("target", [(256, 256), (64, 64), (3, 3), (4, 4), (128, 7), (1, 1)])
def test_fourier_resize_matches_the_complex_transform(source, target):
    image = np.random.default_rng(sum(source) * 7 + sum(target)).normal(size=source)
    expected = complex_resize(image, target)
    np.testing.assert_allclose(fourier_resize(image, target), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [1, 2, 3, 999, 1000, 1001, 65536])
def test_percentiles_equal_numpy(size):
    values = np.random.default_rng(size).normal(size=size) * 10.0 ** (size % 5)
    values[: size // 3] = np.round(values[: size // 3])  # ties
    for percents in [THUMBNAIL_RANGE_PCT, (0.0, 100.0), (25.0, 50.0, 75.0), (33.3,)]:
        assert percentiles(values, percents) == tuple(np.percentile(values, percents))


def old_encode(thumbnail: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The reference: np.percentile of the finite pixels, then the float64 passes."""
    image = np.asarray(thumbnail, dtype=np.float64)
    finite = image[np.isfinite(image)]
    low, high = (float(v) for v in np.percentile(finite, THUMBNAIL_RANGE_PCT))
    high = high if high > low else low + 1.0
    with np.errstate(invalid="ignore"):
        scaled = np.nan_to_num((image - low) / (high - low), nan=0.0)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8), low, high


@pytest.mark.parametrize("holes", [False, True])
def test_encode_thumbnail_equals_the_reference(holes):
    rng = np.random.default_rng(3)
    thumbnail = rng.gamma(2.0, size=(256, 256)).astype(np.float32)
    if holes:
        thumbnail[rng.random(thumbnail.shape) < 0.01] = np.nan
        thumbnail[0, :3] = [np.inf, -np.inf, np.inf]
    levels, low, high = encode_thumbnail(thumbnail)
    expected, expected_low, expected_high = old_encode(thumbnail)
    assert (low, high) == (expected_low, expected_high)
    np.testing.assert_array_equal(levels, expected)
    flat = encode_thumbnail(np.full((8, 8), 2.5))
    assert flat[1:] == (2.5, 3.5) and not flat[0].any()
