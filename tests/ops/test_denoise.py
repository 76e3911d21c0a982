"""Tests of the total-variation denoiser against a plain numpy port and analytic facts.

The reference here is written in the test from the published method (Xmipp ``denoiseTVFilter``
as described in spec A.2 #6): whole-array ``np.roll`` differences, a literal SPG loop. xmippLib
has no binding for denoiseTV, so it cannot serve as an oracle.
"""

from __future__ import annotations

import pickle

import dask
import dask.array as da
import numpy as np
import pytest

from daskmic.ops.denoise import denoise_kernel, tv_denoise, tv_energy, tv_gradient
from daskmic.ops.kernel import FULL_FRAME
from daskmic.ops.lift import lift
from daskmic.ops.spg import mean_shift

LAM, SIGMA_G, Q, MU, BETA = 1.0, 5.8, 255.0, 0.03, 1e-5
K1 = 3.0 / 8.0 * LAM**2 + SIGMA_G**2


# ---------------------------------------------------------------- plain numpy reference
def ref_observation(image):
    scaled = (image - image.min()) * (Q / (image.max() - image.min()))
    anscombe = 2.0 / LAM * np.sqrt(np.maximum(0.0, LAM * scaled + K1))
    s = anscombe.max()
    return anscombe / s, s


def ref_energy(x, y, s):
    dx, dy = np.roll(x, -1, axis=1) - x, np.roll(x, -1, axis=0) - x
    vst = 2.0 / LAM * np.sqrt(np.maximum(0.0, LAM * Q * x / s**2 + K1 / s**2))
    return 0.5 * np.sum((vst - y) ** 2) + MU * np.sum(np.sqrt(dx**2 + dy**2 + BETA**2))


def ref_gradient(x, y, s):
    dx, dy = np.roll(x, -1, axis=1) - x, np.roll(x, -1, axis=0) - x
    norm = np.sqrt(dx**2 + dy**2 + BETA**2)
    px, py = dx / norm, dy / norm
    tv = -px - py + np.roll(px, 1, axis=1) + np.roll(py, 1, axis=0)
    data = 2.0 * Q / (LAM * s**2) - Q / s**2 * y / np.sqrt(LAM * Q * x / s**2 + K1 / s**2)
    return data + MU * tv


def ref_spg(image, iterations):
    """Literal SPG as the reference runs it; returns the [0, 1] iterate and the energies."""
    y, s = ref_observation(image.astype(np.float64))
    x = y.copy()
    f_old, g_old = ref_energy(x, y, s), ref_gradient(x, y, s)
    d = np.clip(x - 1.0 * g_old, 0, 1) - x
    energies = [f_old]
    for _ in range(iterations):
        delta, ksi = np.sum(g_old * d), 1.0
        x_new = x + d
        f_new = ref_energy(x_new, y, s)
        while f_new > f_old + 1e-4 * ksi * delta:
            trial = -0.5 * ksi**2 * delta / (f_new - f_old - ksi * delta)
            ksi = trial if 0.1 <= trial <= 0.9 * ksi else ksi / 2
            x_new = x + ksi * d
            f_new = ref_energy(x_new, y, s)
        energies.append(f_new)
        g_new = ref_gradient(x_new, y, s)
        step = x_new - x
        p, s2 = np.sum(step * (g_new - g_old)), np.sum(step * step)
        if step.max() < 0:
            return x_new, energies
        theta = 1000.0 if p <= 0 else min(1000.0, max(0.001, s2 / p))
        d = np.clip(x_new - theta * g_new, 0, 1) - x_new
        x, g_old, f_old = x_new, g_new, f_new
    return x, energies


def psnr_db(estimate, truth):
    peak = truth.max() - truth.min()
    return 10.0 * np.log10(peak**2 / np.mean((estimate.astype(np.float64) - truth) ** 2))


def affine_psnr_db(estimate, truth):
    """PSNR of the least-squares affine map ``a * estimate + b`` of the estimate to the truth."""
    design = np.stack([estimate.ravel().astype(np.float64), np.ones(estimate.size)], axis=1)
    coefficients = np.linalg.lstsq(design, truth.ravel(), rcond=None)[0]
    return psnr_db((design @ coefficients).reshape(truth.shape), truth)


def piecewise_constant(n, rng):
    """Noiseless blocks and a disc (counts), and a Poisson + Gaussian noisy observation."""
    truth = np.full((n, n), 10.0)
    truth[n // 8 : n // 2, n // 8 : n // 2] = 30.0
    truth[n // 2 : 7 * n // 8, n // 4 : 3 * n // 4] = 60.0
    yy, xx = np.mgrid[:n, :n]
    truth[(yy - 0.7 * n) ** 2 + (xx - 0.3 * n) ** 2 < (n / 8) ** 2] = 45.0
    return truth, rng.poisson(truth) + rng.normal(0.0, 1.0, truth.shape)


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture
def state(rng):
    """A random feasible point on an awkward (odd, non-square) grid."""
    y, s = ref_observation(rng.poisson(30.0, (19, 26)) + rng.normal(0, 2, (19, 26)))
    return rng.uniform(0.05, 0.95, y.shape), y, s


# ---------------------------------------------------------------- energy and gradient
def test_energy_matches_plain_numpy(state):
    x, y, s = state
    assert tv_energy(x, y, s) == pytest.approx(ref_energy(x, y, s), rel=1e-13)


def test_gradient_matches_plain_numpy(state):
    x, y, s = state
    expected = ref_gradient(x, y, s)
    assert np.max(np.abs(tv_gradient(x, y, s) - expected)) <= 1e-12 * np.max(np.abs(expected))


@pytest.mark.parametrize("shape", [(9, 11), (1, 6), (5, 1)])
def test_gradient_matches_finite_differences(rng, shape):
    x = rng.uniform(0.1, 0.9, shape)
    y = rng.uniform(0.4, 1.0, shape)
    s, h = 33.0, 1e-6
    numeric = np.empty(shape)
    for index in np.ndindex(shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (tv_energy(plus, y, s) - tv_energy(minus, y, s)) / (2 * h)
    analytic = tv_gradient(x, y, s)
    assert np.max(np.abs(analytic - numeric)) <= 1e-6 * np.max(np.abs(numeric))


def test_gradient_zero_at_rescaled_intensity_not_at_anscombe_value():
    """The data term vanishes at X = x'/q: the iterate lives in the intensity domain."""
    scaled, s = 100.0, 2.0 * np.sqrt(Q + K1)  # a flat rescaled image x' = 100
    y = np.full((8, 10), 2.0 * np.sqrt(scaled + K1) / s)
    at_intensity = tv_gradient(np.full_like(y, scaled / Q), y, s)
    at_anscombe = tv_gradient(y.copy(), y, s)
    assert np.max(np.abs(at_intensity)) <= 1e-12
    assert np.all(at_anscombe > 0.05)  # an Anscombe-domain value is pushed down, towards x'/q


# ---------------------------------------------------------------- the solver
def test_spg_matches_plain_numpy_port(rng):
    _, noisy = piecewise_constant(72, rng)
    noisy = noisy[:, :61]  # non-square, odd width
    expected, expected_energies = ref_spg(noisy, 15)
    result, energies = tv_denoise(noisy, 15, xmipp_compat=True, return_energies=True)
    assert len(energies) == 16
    np.testing.assert_allclose(energies, expected_energies, rtol=1e-12)
    assert np.max(np.abs(result - expected)) <= 1e-5 * np.std(expected)


def test_energy_does_not_increase(rng):
    _, noisy = piecewise_constant(128, rng)
    _, energies = tv_denoise(noisy, 50, return_energies=True)
    assert len(energies) == 51  # no early exit on this image
    assert np.all(np.diff(energies) <= 0.0)
    assert energies[-1] < 0.5 * energies[0]


def test_early_exit_when_every_pixel_decreases(rng):
    """The reference stops as soon as max(x_new - x_old) < 0, and returns x_new."""
    tiny = rng.poisson(20.0, (3, 4)).astype(np.float64)
    tiny[0, 0] += 1.0  # never constant
    expected, expected_energies = ref_spg(tiny, 10)
    assert len(expected_energies) < 11
    result, energies = tv_denoise(tiny, 10, xmipp_compat=True, return_energies=True)
    assert len(energies) == len(expected_energies)
    assert np.max(np.abs(result - expected)) <= 1e-5 * np.std(expected)


def test_compat_output_lies_in_unit_box(rng):
    _, noisy = piecewise_constant(96, rng)
    result = tv_denoise(noisy * 37.0 - 500.0, 20, xmipp_compat=True)
    assert result.dtype == np.float32
    assert result.min() >= 0.0
    assert result.max() <= 1.0


def test_default_output_on_input_scale(rng):
    flat = rng.poisson(40.0, (128, 128)) + rng.normal(0.0, 2.0, (128, 128))
    result = tv_denoise(flat, 50)
    assert result.dtype == np.float32
    assert abs(result.mean() - flat.mean()) <= 0.02 * flat.mean()
    assert result.std() < 0.5 * flat.std()
    # an affine change of the input's units changes the output the same way
    affine = tv_denoise(flat * 2.5 - 300.0, 50)
    np.testing.assert_allclose(affine, result * 2.5 - 300.0, atol=1e-4 * flat.std() * 2.5)


@pytest.mark.parametrize("read_noise", [0.0, 1.0], ids=["poisson", "poisson-gaussian"])
@pytest.mark.parametrize("mean_counts", [0.5, 2.0, 10.0, 100.0, 1000.0])
def test_output_keeps_intensity_scale_from_low_to_high_counts(rng, mean_counts, read_noise):
    """Issue #14: at 1.97 counts/px the output mean was 4.72 (reference start + early exit)."""
    blocks, _ = piecewise_constant(256, rng)
    truth = blocks * (mean_counts / blocks.mean())
    noisy = (rng.poisson(truth) + rng.normal(0.0, read_noise, truth.shape)).astype(np.float32)
    result, energies = tv_denoise(noisy, 50, return_energies=True)
    assert len(energies) == 51  # no early exit: the iterate is not the first step from y
    mean_in, mean_out = noisy.mean(dtype=np.float64), result.mean(dtype=np.float64)
    assert abs(mean_out - mean_in) <= 0.05 * mean_in
    assert abs(mean_out - truth.mean()) <= 0.05 * truth.mean()
    assert abs(mean_out - mean_in) <= 1e-6 * (noisy.max() - noisy.min())  # the constraint
    assert affine_psnr_db(result, truth) > affine_psnr_db(noisy, truth)


def test_mean_projection_shift_with_heavy_clipping(rng):
    """The shift solves sum(clip(z - tau, 0, 1)) = total when most pixels clip (bisection)."""
    x, grad = rng.uniform(0.0, 1.0, (37, 23)), rng.normal(0.0, 1.0, (37, 23))
    theta = 40.0  # z = x - theta * grad spans about [-150, 150]: about 99 % of pixels clip
    z = x - theta * grad
    for total in [0.3, 0.5 * x.size, x.size - 0.3, 0.0 + 1e-9, 3.7]:
        tau = mean_shift(x, grad, theta, total)
        assert abs(np.clip(z - tau, 0.0, 1.0).sum() - total) <= 1e-9
    # with nothing clipped the shift is the plain mean difference
    inner = 0.1 + 0.8 * x
    tau = mean_shift(inner, np.zeros_like(x), 1.0, inner.sum() - 0.01 * x.size)
    assert tau == pytest.approx(0.01, abs=1e-12)


def test_psnr_improves_on_piecewise_constant_image(rng):
    truth, noisy = piecewise_constant(192, rng)
    gain = psnr_db(tv_denoise(noisy, 50), truth) - psnr_db(noisy, truth)
    assert gain > 3.0


def test_nearly_constant_image_changes_little(rng):
    image = 1000.0 + rng.normal(0.0, 1e-3, (64, 64))
    result = tv_denoise(image, 50).astype(np.float64)
    assert np.max(np.abs(result - image)) <= image.max() - image.min()
    assert abs(result.mean() - image.mean()) <= 1e-3
    assert np.max(np.abs(result - image)) <= 1e-5 * image.mean()


def test_integer_input_and_input_untouched(rng):
    image = rng.poisson(200.0, (40, 52)).astype(np.uint16)
    before = image.copy()
    result = tv_denoise(image, 5)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(result, tv_denoise(image.astype(np.float64), 5))


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("iterations", [0, -3, 2.5, True, "50", None])
def test_invalid_iterations_rejected(iterations):
    with pytest.raises(ValueError, match=r"iterations must be an integer >= 1, got"):
        denoise_kernel(iterations)
    with pytest.raises(ValueError, match=r"iterations .*>= 1"):
        tv_denoise(np.arange(12.0).reshape(3, 4), iterations)


def test_numpy_integer_iterations_accepted():
    assert denoise_kernel(np.int64(3)).func.keywords["iterations"] == 3


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((8, 8), 7.0), "constant"),
        (np.where(np.eye(8) > 0, np.nan, 1.0), "NaN or infinite"),
        (np.where(np.eye(8) > 0, np.inf, 1.0), "NaN or infinite"),
        (np.ones((2, 8, 8)), "2-D"),
    ],
)
def test_bad_images_rejected(image, message):
    with pytest.raises(ValueError, match=message):
        tv_denoise(image, 5)


# ---------------------------------------------------------------- the kernel on dask
def test_kernel_is_full_frame_and_picklable(rng):
    kernel = denoise_kernel(7, xmipp_compat=True)
    assert kernel.name == "denoise"
    assert kernel.halo == FULL_FRAME
    image = rng.poisson(25.0, (33, 47)).astype(np.float32)
    clone = pickle.loads(pickle.dumps(kernel))
    np.testing.assert_array_equal(clone(image), tv_denoise(image, 7, xmipp_compat=True))


def test_lifted_tiled_equals_eager(rng):
    frames = rng.poisson(25.0, (2, 40, 54)).astype(np.float32)
    kernel = denoise_kernel(6)
    lazy = lift(kernel, da.from_array(frames, chunks=(1, 20, 27)))
    with dask.config.set(scheduler="synchronous"):
        result = lazy.compute()
    eager = np.stack([tv_denoise(frame, 6) for frame in frames])
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, eager)


# ---------------------------------------------------------------- the user's way
def test_cli_denoise_keeps_a_low_dose_micrograph_on_its_scale(
    write_micrographs, tmp_path, monkeypatch
):
    """Issue #14's report, as a user runs it: ``daskmic preprocess ... --denoise 50`` on a
    2 counts/px micrograph returned mean 4.72."""
    import mrcfile

    from daskmic.cli import main

    monkeypatch.chdir(tmp_path)
    (path,) = write_micrographs(n=1, shape=(256, 256), pixel_size_A=1.0, dose_e_per_A2=2.0)
    assert main(["preprocess", str(path), "-o", "out", "--denoise", "50", "--workers", "1"]) == 0
    with mrcfile.open(path) as raw, mrcfile.open(tmp_path / "out" / "mrc" / path.name) as done:
        mean_in, mean_out = (float(m.data.mean(dtype=np.float64)) for m in (raw, done))
    assert abs(mean_out - mean_in) <= 0.05 * mean_in
    assert abs(mean_out - 2.0) <= 0.05 * 2.0  # the noiseless mean: dose x pixel area
