"""Thumbnails: the real-FFT resize and the one-partition encode against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from daskmic.io.thumbnails import fourier_resize


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
