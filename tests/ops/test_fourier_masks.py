"""Fourier masks: analytic values on the rfft2 half-plane grid, and xmippLib's filters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from daskmic.ops.fourier_masks import (
    gaussian_mask,
    half_plane_shape,
    highpass_mask,
    lowpass_mask,
    squared_frequency,
)

AWKWARD = [(64, 64), (57, 90), (409, 576), (127, 131)]


def _apply(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    spectrum = scipy.fft.rfft2(image.astype(np.float64))
    return scipy.fft.irfft2(spectrum * mask, s=image.shape)


def _noise(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 1.0, size=shape).astype(np.float32)


def test_frequencies_are_normalised_per_axis() -> None:
    f2 = squared_frequency((6, 10))
    assert f2.shape == half_plane_shape((6, 10)) == (6, 6)
    # Column j is j/10 cycles/pixel; row i is i/6, or (i - 6)/6 above 3; Nyquist is +0.5.
    assert f2[0, 5] == pytest.approx(0.25)
    assert f2[3, 0] == pytest.approx(0.25)
    assert f2[4, 0] == pytest.approx((2 / 6) ** 2)
    assert f2[1, 2] == pytest.approx((1 / 6) ** 2 + (2 / 10) ** 2)


def test_raised_cosine_values_at_known_frequencies() -> None:
    shape = (1, 200)  # column j has |f| = j/200 exactly
    low = lowpass_mask(shape, 0.1, 0.05)[0]
    # Passband below the cutoff, cosine over [0.1, 0.15), zero beyond; half way at 0.125.
    assert np.all(low[:20] == 1.0)
    assert low[25] == pytest.approx(0.5)
    assert low[22] == pytest.approx(0.5 * (1 + np.cos(np.pi * (0.11 - 0.1) / 0.05)))
    assert np.all(low[30:] == 0.0)
    high = highpass_mask(shape, 0.1, 0.05)[0]
    # Zero up to 0.05, cosine over (0.05, 0.1], passband above the cutoff.
    assert np.all(high[:11] == 0.0)
    assert high[15] == pytest.approx(0.5)
    assert high[18] == pytest.approx(0.5 * (1 + np.cos(np.pi * (0.1 - 0.09) / 0.05)))
    assert np.all(high[20:] == 1.0)


def test_gaussian_mask_is_the_transfer_function_of_a_gaussian_blur() -> None:
    shape = (96, 80)
    f2 = squared_frequency(shape)
    sigma = 1.7
    assert np.allclose(gaussian_mask(shape, sigma), np.exp(-2 * np.pi**2 * sigma**2 * f2))
    assert np.allclose(
        gaussian_mask(shape, sigma, xmipp_compat=True), np.exp(-(np.pi**2) * sigma**2 * f2)
    )
    # A delta blurred with the mask is a (sampled, periodic) Gaussian of std sigma.
    delta = np.zeros(shape)
    delta[0, 0] = 1.0
    blur = _apply(delta, gaussian_mask(shape, sigma))
    x = np.minimum(np.arange(shape[1]), shape[1] - np.arange(shape[1]))
    assert blur.sum() == pytest.approx(1.0)
    assert np.sqrt((blur.sum(axis=0) * x**2).sum()) == pytest.approx(sigma, rel=1e-6)


def test_masks_are_cached_and_read_only() -> None:
    mask = lowpass_mask((32, 48), 0.2, 0.02)
    assert lowpass_mask((32, 48), 0.2, 0.02) is mask
    assert mask.shape == (32, 25)
    assert not mask.flags.writeable


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize(("cutoff", "width"), [(0.2, 0.02), (0.05, 0.03), (0.4, 0.001)])
def test_lowpass_matches_xmipp(xmipp, shape: tuple[int, int], cutoff: float, width: float) -> None:
    image = _noise(shape)
    reference = xmipp("bandPassFilter", image, 0.0, cutoff, width)
    out = _apply(image, lowpass_mask(shape, cutoff, width))
    assert np.max(np.abs(out - reference)) <= 1e-9 * reference.std()


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize(("cutoff", "width"), [(0.002, 0.001), (0.05, 0.02), (0.3, 0.1)])
def test_highpass_matches_xmipp(xmipp, shape: tuple[int, int], cutoff: float, width: float) -> None:
    image = _noise(shape)
    reference = xmipp("bandPassFilter", image, cutoff, 0.5, width)
    out = _apply(image, highpass_mask(shape, cutoff, width))
    assert np.max(np.abs(out - reference)) <= 1e-9 * reference.std()


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize("sigma", [0.7, 2.0, 3.0])
def test_gaussian_compat_matches_xmipp_real_gaussian(
    xmipp, shape: tuple[int, int], sigma: float
) -> None:
    image = _noise(shape)
    reference = xmipp("realGaussianFilter", image, sigma)
    out = _apply(image, gaussian_mask(shape, sigma, xmipp_compat=True))
    assert np.max(np.abs(out - reference)) <= 1e-9 * reference.std()
