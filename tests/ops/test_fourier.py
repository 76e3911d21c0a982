"""The fused Fourier kernel: analytic gains, exact downsampling, spec transcription, fusion."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from daskmic.ops.fourier import (
    Downsample,
    Gaussian,
    Highpass,
    Invert,
    Lowpass,
    downsampled_shape,
    fourier_kernel,
)
from daskmic.ops.kernel import FULL_FRAME, compose
from daskmic.ops.lift import lift

# Odd, non-square, a prime (1019), and a K3 frame (5760×4092) scaled down by 10.
AWKWARD = [(63, 64), (57, 90), (409, 576), (1019, 96)]


def _assert_close(out: np.ndarray, reference: np.ndarray) -> None:
    """design.md's equality: max|Δ| ≤ 1e-5·std(reference)."""
    assert out.shape == reference.shape
    assert np.max(np.abs(out - reference)) <= 1e-5 * np.std(reference)


def _noise(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5.0, 1.0, size=shape).astype(np.float32)


def _cosine(shape: tuple[int, int], ky: int, kx: int) -> tuple[np.ndarray, float]:
    """cos(2π(ky·y/ny + kx·x/nx)) and its frequency |f| in cycles/pixel (per-axis units)."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    wave = np.cos(2 * np.pi * (ky * y / ny + kx * x / nx))
    return wave, float(np.hypot(ky / ny, kx / nx))


def _raised_cosine(phase: float) -> float:
    return 0.5 * (1 + np.cos(np.pi * phase))


@pytest.mark.parametrize("shape", [(57, 90), (409, 576), (128, 101)])
@pytest.mark.parametrize(
    ("step", "gain"),
    [
        (Lowpass(0.05, 0.1), lambda f: _raised_cosine((f - 0.05) / 0.1)),
        (Highpass(0.08, 0.06), lambda f: _raised_cosine((0.08 - f) / 0.06)),
        (Gaussian(1.5), lambda f: np.exp(-2 * np.pi**2 * 1.5**2 * f**2)),
        (Gaussian(1.5, xmipp_compat=True), lambda f: np.exp(-(np.pi**2) * 1.5**2 * f**2)),
    ],
)
def test_a_cosine_comes_out_with_the_filters_gain(shape: tuple[int, int], step, gain) -> None:
    # A whole number of cycles near (0.03, 0.05) cycles/pixel: |f| ≈ 0.06, inside both
    # raised-cosine transitions ([0.05, 0.15) and (0.02, 0.08]).
    wave, f = _cosine(shape, round(0.03 * shape[0]), round(0.05 * shape[1]))
    assert 0.05 < f < 0.08
    offset = 3.0
    dc = 0.0 if isinstance(step, Highpass) else offset
    out = fourier_kernel([step])((offset + wave).astype(np.float32))
    _assert_close(out, dc + gain(f) * wave)
    assert 0.05 < gain(f) < 0.999


@pytest.mark.parametrize(
    ("shape", "factor"), [((90, 120), 2.0), ((409, 576), 2.0), ((57, 91), 1.7)]
)
def test_downsampling_a_band_limited_signal_resamples_it_exactly(
    shape: tuple[int, int], factor: float
) -> None:
    ny, nx = shape
    out_shape = downsampled_shape(shape, factor)
    assert out_shape == (int(ny / factor), int(nx / factor))
    y, x = np.mgrid[0:ny, 0:nx]
    waves = [(1, 2, 0.3), (4, 1, 1.0), (0, 7, 0.5), (5, 6, 0.8)]  # (ky, kx, phase)

    def signal(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        # Integer cycles per frame, all below the output's Nyquist: band-limited and periodic.
        total = 2.0 + np.zeros(yy.shape)
        for ky, kx, phase in waves:
            total += np.cos(2 * np.pi * (ky * yy / ny + kx * xx / nx) + phase)
        return total

    out = fourier_kernel([Downsample(factor)])(signal(y, x).astype(np.float32))
    # Output pixel (i, j) sits at input position (i·ny/ny', j·nx/nx').
    yo, xo = np.mgrid[0 : out_shape[0], 0 : out_shape[1]]
    expected = signal(yo * ny / out_shape[0], xo * nx / out_shape[1])
    _assert_close(out, expected)
    assert float(out.mean(dtype=np.float64)) == pytest.approx(2.0, abs=1e-6)


def _spec_downsample(image: np.ndarray, factor: float) -> np.ndarray:
    """Spec A.2 #5's numpy equivalent of Xmipp's Fourier downsampling, in float64."""
    ny, nx = image.shape
    my, mx = int(ny / factor), int(nx / factor)
    spectrum = np.fft.rfft2(image.astype(np.float64))
    rows = np.r_[0 : my // 2 + 1, ny - my + my // 2 + 1 : ny]
    return np.fft.irfft2(spectrum[rows, : mx // 2 + 1], s=(my, mx)) * (my * mx) / (ny * nx)


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize("factor", [2.0, 3.3, 1.25])
def test_downsample_matches_the_spec_transcription(shape: tuple[int, int], factor: float) -> None:
    image = _noise(shape, seed=shape[0])
    _assert_close(fourier_kernel([Downsample(factor)])(image), _spec_downsample(image, factor))


def _spec_mask(shape: tuple[int, int], step: object) -> np.ndarray:
    """Masks written from spec A.2 #7-#8 with a plain loop-free numpy grid."""
    ny, nx = shape
    fy = np.array([i / ny if i <= ny // 2 else (i - ny) / ny for i in range(ny)])[:, None]
    fx = (np.arange(nx // 2 + 1) / nx)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    if isinstance(step, Gaussian):
        return np.exp(-(1 if step.xmipp_compat else 2) * np.pi**2 * step.sigma_px**2 * f**2)
    w1, rw = step.cutoff, step.width
    if isinstance(step, Lowpass):
        return np.where(f < w1, 1.0, np.where(f < w1 + rw, _raised_cos_array((f - w1) / rw), 0.0))
    return np.where(f > w1, 1.0, np.where(f > w1 - rw, _raised_cos_array((w1 - f) / rw), 0.0))


def _raised_cos_array(phase: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.cos(np.pi * phase))


STEPS = [
    Downsample(2.0),
    Gaussian(1.2),
    Highpass(0.01, 0.005),
    Lowpass(0.3, 0.05),
]


@pytest.mark.parametrize("shape", AWKWARD)
def test_fused_pass_matches_a_float64_reference_chain(shape: tuple[int, int]) -> None:
    image = _noise(shape, seed=1)
    reference = _spec_downsample(image, 2.0)
    for step in STEPS[1:]:
        spectrum = np.fft.rfft2(reference) * _spec_mask(reference.shape, step)
        reference = np.fft.irfft2(spectrum, s=reference.shape)
    for precision in ("float32", "float64"):
        out = fourier_kernel(STEPS, precision=precision)(image)
        assert out.dtype == np.float32
        _assert_close(out, reference)


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize(
    "steps",
    [
        STEPS,
        STEPS[1:],
        [Downsample(1.5), Lowpass(0.2, 0.02)],
        [Highpass(0.002, 0.001), Lowpass(0.4, 0.001)],
    ],
)
def test_fused_equals_one_by_one(shape: tuple[int, int], steps: list) -> None:
    image = _noise(shape, seed=2)
    one_by_one = compose([fourier_kernel([step]) for step in steps])(image)
    _assert_close(fourier_kernel(steps)(image), one_by_one)


@pytest.mark.parametrize("shape", AWKWARD)
@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("steps", [STEPS, STEPS[1:]])
def test_folded_invert_is_bit_identical_to_inverting_first(
    shape: tuple[int, int], precision: str, steps: list
) -> None:
    image = (3.0 + _noise(shape, seed=6)).astype(np.float32)
    folded = fourier_kernel([Invert(), *steps], precision=precision)
    inverted_first = fourier_kernel(steps, precision=precision)(np.negative(image))
    assert np.array_equal(folded(image), inverted_first)
    assert folded.output_shape(shape) == inverted_first.shape


def test_large_mean_does_not_cost_precision() -> None:
    # Raw counts: mean 1000, std 1 after the high-pass. Float32 transforms of the centred image.
    image = (1000.0 + _noise((200, 300), seed=4) - 5.0).astype(np.float32)
    steps = [Highpass(0.05, 0.02)]
    reference = fourier_kernel(steps, precision="float64")(image).astype(np.float64)
    spectrum = np.fft.rfft2(image.astype(np.float64)) * _spec_mask(image.shape, steps[0])
    exact = np.fft.irfft2(spectrum, s=image.shape)
    _assert_close(reference, exact)
    _assert_close(fourier_kernel(steps)(image), exact)


def test_kernel_contract() -> None:
    kernel = fourier_kernel(STEPS)
    assert kernel.name == "fourier"
    assert kernel.halo == FULL_FRAME
    assert kernel.output_shape((409, 576)) == (204, 288)
    assert fourier_kernel(STEPS[1:]).output_shape((409, 576)) == (409, 576)
    image = np.random.default_rng(5).integers(0, 100, size=(40, 30)).astype(np.int16)
    kept = image.copy()
    out = kernel(image)
    assert out.dtype == np.float32
    assert out.shape == (20, 15)
    assert np.array_equal(image, kept)


def test_tiled_stack_in_dask_threads_equals_whole_frames() -> None:
    kernel = fourier_kernel(STEPS)
    stack = np.stack([_noise((81, 70), seed=s) for s in range(3)])
    with dask.config.set(scheduler="threads"):
        lazy = lift(kernel, da.from_array(stack, chunks=(2, 31, 23))).compute()
    assert lazy.shape == (3, 40, 35)
    for frame, expected in zip(lazy, stack, strict=True):
        _assert_close(frame, kernel(expected))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Downsample(1.0), r"downsample factor: got 1.0; valid range: value > 1.0"),
        (lambda: Downsample(float("nan")), r"downsample factor: got nan"),
        (lambda: Gaussian(0.0), r"gaussian sigma_px: got 0.0; valid range: value > 0"),
        (lambda: Highpass(0.5, 0.01), r"highpass cutoff: got 0.5; valid range: 0.0 < value < 0.5"),
        (lambda: Lowpass(0.1, 0.0), r"lowpass width: got 0.0; valid range: value > 0"),
        (lambda: Lowpass("0.1", 0.1), r"lowpass cutoff: expected a number, got '0.1'"),
        (lambda: fourier_kernel([]), r"steps is empty"),
        (lambda: fourier_kernel([Lowpass(0.1, 0.1), Downsample(2)]), r"first step .*position 1"),
        (lambda: fourier_kernel(["lowpass"]), r"is not a Fourier step"),
        (lambda: fourier_kernel([Lowpass(0.1, 0.1), Invert()]), r"invert must be the first"),
        (lambda: fourier_kernel([Invert(), Lowpass(0.1, 0.1), Downsample(2)]), r"position 2"),
        (lambda: fourier_kernel(STEPS, precision="float16"), r"precision 'float16'"),
        (lambda: downsampled_shape((10, 300), 12.0), r"factor 12.0 leaves no pixel of a 10×300"),
    ],
)
def test_invalid_parameters_are_refused(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
