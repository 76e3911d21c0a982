"""Low pass, correlations and statistics against plain numpy."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from daskmic.tilt.correlate import correlation_stats, correlations, lowpass


def _raised_cosine_lowpass(image: np.ndarray, cutoff: float, width: float) -> np.ndarray:
    """Xmipp's low_pass written out: per-axis digital frequencies, full complex FFT."""
    ny, nx = image.shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    if ny % 2 == 0:  # Xmipp puts the Nyquist index at +0.5, numpy at -0.5 (same |f|)
        fy = np.abs(fy)
    f = np.sqrt(fy**2 + fx**2)
    mask = np.where(
        f < cutoff,
        1.0,
        np.where(f < cutoff + width, 0.5 * (1 + np.cos(np.pi * (f - cutoff) / width)), 0.0),
    )
    return np.real(np.fft.ifft2(np.fft.fft2(image) * mask))


@pytest.mark.parametrize("n", [64, 85])
def test_lowpass_is_the_raised_cosine_at_0_1_width_0_02(n):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, n, n))
    filtered = lowpass(images)
    for image, ours in zip(images, filtered, strict=True):
        reference = _raised_cosine_lowpass(image, 0.1, 0.02)
        assert np.max(np.abs(ours - reference)) <= 1e-5 * np.std(reference)


def test_lowpass_keeps_the_mean_and_removes_high_frequencies():
    y, x = np.mgrid[:64, :64]
    slow = np.cos(2 * np.pi * 4 * x / 64)  # 0.0625 c/px: passes
    fast = np.cos(2 * np.pi * 16 * y / 64)  # 0.25 c/px: removed
    out = lowpass((3.0 + slow + fast)[None])[0]
    np.testing.assert_allclose(out, 3.0 + slow, atol=1e-12)


def test_ten_correlations_in_the_reference_order():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(16, 16))
    filtered = np.stack([base + rng.normal(scale=s, size=(16, 16)) for s in (0.1, 0.5, 1, 2)])
    rotated = np.stack([f.T + rng.normal(scale=0.3, size=(16, 16)) for f in filtered])
    values = correlations(filtered, rotated)
    flat = filtered.reshape(4, -1)
    expected = [np.corrcoef(flat[a], flat[b])[0, 1] for a, b in combinations(range(4), 2)]
    expected += [np.corrcoef(flat[a], rotated[a].ravel())[0, 1] for a in range(4)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    assert values.shape == (10,)


def test_correlation_with_a_flat_image_is_zero():
    rng = np.random.default_rng(2)
    filtered = rng.normal(size=(4, 8, 8))
    filtered[2] = 7.0
    values = correlations(filtered, filtered.copy())
    # pairs involving corner 2: (0,2), (1,2), (2,3) -> indices 1, 3, 5; its own pair -> 8
    assert values[[1, 3, 5, 8]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert values[6] == pytest.approx(1.0)


def test_stats_population_std():
    values = np.array([0.9, 0.8, 0.85, 0.95, 0.7, 0.75, 0.9, 0.88, 0.92, 0.6])
    stats = correlation_stats(values)
    assert stats == {
        "mean": pytest.approx(values.mean()),
        "std": pytest.approx(np.std(values, ddof=0)),
        "min": 0.6,
        "max": 0.95,
    }
