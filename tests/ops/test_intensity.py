"""Log, invert and normalize against numpy written from spec A.2 #2, #4, #10; crop too."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from daskmic.ops.crop import crop_kernel, cropped_shape
from daskmic.ops.intensity import invert_kernel, log_kernel, normalize_kernel
from daskmic.ops.kernel import FULL_FRAME
from daskmic.ops.lift import lift
from daskmic.ops.stats import mean_std


def _assert_close(out: np.ndarray, reference: np.ndarray) -> None:
    assert out.dtype == np.float32
    assert out.shape == reference.shape
    assert np.max(np.abs(out - reference)) <= 1e-5 * np.std(reference)


def _counts(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Scanner-like raw values: a few thousand grey levels with Poisson noise."""
    return np.random.default_rng(seed).poisson(3000.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(57, 90), (409, 576)])
def test_log_matches_the_formula_in_float64(shape: tuple[int, int]) -> None:
    # Grey levels over a scanner's range (the output's float32 rounding stays ≪ its spread).
    image = np.random.default_rng(2).uniform(0.0, 2e4, size=shape).astype(np.float32)
    a, b, c = 4.431, 0.402, 336.6
    kernel = log_kernel(a, b, c)
    assert kernel.halo == 0
    _assert_close(kernel(image), a - b * np.log(image.astype(np.float64) + c))


def test_log_refuses_non_positive_arguments_with_a_clear_message() -> None:
    image = _counts((40, 50))
    image[3, 7] = -400.0
    image[9, 9] = -336.6
    with pytest.raises(ValueError, match=r"log: 2 pixel\(s\) have x \+ c <= 0 .*-400.*c = 336.6"):
        log_kernel(4.431, 0.402, 336.6)(image)


def test_log_error_is_as_clear_from_a_tile_of_a_lazy_stack() -> None:
    stack = np.stack([_counts((60, 70), seed=s) for s in range(3)])
    stack[1, 50, 60] = -1000.0
    lazy = lift(log_kernel(4.431, 0.402, 336.6), da.from_array(stack, chunks=(1, 25, 25)))
    with pytest.raises(ValueError, match=r"log: 1 pixel\(s\) have x \+ c <= 0 .*-1000"):
        lazy.compute()
    assert np.isfinite(lazy[[0, 2]].compute()).all()


@pytest.mark.parametrize("coefficient", [float("nan"), float("inf"), "1", None, True])
def test_log_refuses_invalid_coefficients(coefficient: object) -> None:
    with pytest.raises(ValueError, match=r"log b: "):
        log_kernel(1.0, coefficient, 1.0)  # type: ignore[arg-type]


def test_invert() -> None:
    image = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    out = invert_kernel()(image)
    assert invert_kernel().halo == 0
    assert out.dtype == np.float32
    assert np.array_equal(out, -image.astype(np.float32))


def test_normalize_of_a_known_image() -> None:
    image = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    # mean 3, population variance (4 + 1 + 0 + 9)/4 = 3.5
    expected = (np.array([[1.0, 2.0], [3.0, 6.0]]) - 3.0) / np.sqrt(3.5)
    out = normalize_kernel()(image)
    assert normalize_kernel().halo == FULL_FRAME
    assert out.dtype == np.float32
    assert np.allclose(out, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("shape", [(57, 90), (1019, 64)])
def test_normalize_matches_numpy_on_counts(shape: tuple[int, int]) -> None:
    image = _counts(shape) + np.float32(1e5)  # large mean, small std
    reference = image.astype(np.float64)
    reference = (reference - reference.mean()) / reference.std()
    out = normalize_kernel()(image)
    _assert_close(out, reference)
    assert float(out.mean(dtype=np.float64)) == pytest.approx(0.0, abs=1e-6)
    assert float(out.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-6)


def test_normalize_refuses_a_constant_image() -> None:
    with pytest.raises(ValueError, match=r"normalize: the image is constant \(value 7"):
        normalize_kernel()(np.full((5, 6), 7.0, dtype=np.float32))


def test_mean_std_is_float64_population_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("daskmic.ops.stats.BLOCK_ELEMENTS", 100)  # many row blocks
    rng = np.random.default_rng(7)
    for image in (
        rng.normal(1e4, 0.5, size=(301, 257)).astype(np.float32),
        rng.integers(0, 30000, size=(33, 90)).astype(np.uint16),
        rng.normal(0.0, 2.0, size=(20, 20)).astype(np.float16),
    ):
        mean, std = mean_std(image)
        as64 = image.astype(np.float64)
        assert mean == pytest.approx(as64.mean(), rel=1e-12)
        assert std == pytest.approx(as64.std(ddof=0), rel=1e-7)


@pytest.mark.parametrize(("shape", "crop"), [((57, 90), 10), ((409, 576), 1), ((21, 30), 0)])
def test_crop_removes_the_same_border_everywhere(shape: tuple[int, int], crop: int) -> None:
    image = np.random.default_rng(1).integers(-100, 100, size=shape).astype(np.int16)
    kernel = crop_kernel(crop)
    out = kernel(image)
    assert kernel.halo == FULL_FRAME
    assert kernel.output_shape(shape) == out.shape == (shape[0] - 2 * crop, shape[1] - 2 * crop)
    assert out.dtype == np.float32
    assert np.array_equal(out, image[crop : shape[0] - crop, crop : shape[1] - crop])


def test_crop_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match=r"crop: 15 px per border does not fit a 30×40 image"):
        cropped_shape((30, 40), 15)
    with pytest.raises(ValueError, match=r"crop: got -1 px; valid range: integers ≥ 0"):
        crop_kernel(-1)
    with pytest.raises(ValueError, match=r"crop: expected a whole number of pixels, got 2.5"):
        crop_kernel(2.5)  # type: ignore[arg-type]
