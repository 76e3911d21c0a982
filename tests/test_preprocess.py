"""The parameter model, the pipeline builder and the lazy ``preprocess`` (design.md order)."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import dask.array as da
import mrcfile
import numpy as np
import pytest
import xarray as xr

from daskmic.datasets import synthesize_micrograph
from daskmic.ops.kernel import compose
from daskmic.preprocessing.lazy import preprocess
from daskmic.preprocessing.params import DEFAULTS, PreprocessParams
from daskmic.preprocessing.pipeline import build_pipeline

TYPICAL = dict(
    crop=True,
    bad_pixels=True,
    invert=True,
    downsample=True,
    gaussian=1.0,
    highpass=True,
    lowpass=(0.25, 0.02),
    normalize=True,
)
"""The protocol's typical settings (issue 3)."""


def _assert_close(out: np.ndarray, reference: np.ndarray) -> None:
    assert out.shape == reference.shape
    assert np.max(np.abs(out - reference)) <= 1e-5 * np.std(reference)


def _stack(
    shape: tuple[int, int] = (409, 576), pixel_sizes: tuple[float, ...] = (1.0, 1.0, 1.0)
) -> xr.DataArray:
    """Synthetic micrographs (with hot and dead pixels), as open_micrographs lays them out."""
    frames = [
        synthesize_micrograph(shape, pixel_size_A=1.0, hot_pixels=15, dead_pixels=5, seed=s)[0]
        for s in range(len(pixel_sizes))
    ]
    names = [f"mic_{i:03d}" for i in range(len(frames))]
    return xr.DataArray(
        da.from_array(np.stack(frames), chunks=(1, -1, -1)),
        dims=("micrograph", "y", "x"),
        coords={
            "micrograph": names,
            "path": ("micrograph", [f"/data/{n}.mrc" for n in names]),
            "pixel_size_A": ("micrograph", list(pixel_sizes)),
            "y": xr.Variable("y", np.arange(shape[0]) * pixel_sizes[0], {"units": "Å"}),
            "x": xr.Variable("x", np.arange(shape[1]) * pixel_sizes[0], {"units": "Å"}),
        },
        attrs={"source": "test"},
        name="micrographs",
    )


def _eager(mics: xr.DataArray, **options: object) -> np.ndarray:
    """The production face: build_pipeline's kernels composed, one micrograph at a time."""
    params = PreprocessParams.from_options(**options)
    frames = []
    for i in range(mics.sizes["micrograph"]):
        pixel_size = float(mics.pixel_size_A[i])
        pipeline = build_pipeline(params, (mics.sizes["y"], mics.sizes["x"]), pixel_size)
        frames.append(compose(pipeline.kernels)(mics[i].values))
    return np.stack(frames)


# --- parameters -------------------------------------------------------------------------------


def test_enabling_an_option_without_a_value_takes_the_protocol_default() -> None:
    params = PreprocessParams.from_options(**{name: True for name in DEFAULTS})
    assert params.crop == 10
    assert params.log == (4.431, 0.402, 336.6)
    assert params.bad_pixels == 5.0
    assert params.downsample == 2.0
    assert params.denoise == 50
    assert params.gaussian == 2.0
    assert params.highpass == (0.002, 0.001)
    assert params.lowpass == (0.4, 0.001)
    assert params.enabled() == [
        "crop",
        "log",
        "bad_pixels",
        "downsample",
        "denoise",
        "gaussian",
        "highpass",
        "lowpass",
    ]
    assert PreprocessParams().enabled() == []


def test_options_in_other_forms() -> None:
    params = PreprocessParams.from_options(
        crop=12.0, highpass=0.01, lowpass=[0.3, 0.05], lowpass_A=None, invert=True, log=False
    )
    assert params.crop == 12 and isinstance(params.crop, int)
    assert params.highpass == (0.01, 0.001)
    assert params.lowpass == (0.3, 0.05)
    assert params.log is None and params.invert
    assert PreprocessParams.from_options(lowpass_A=8.0).lowpass_A == (8.0, 0.001)
    assert PreprocessParams.from_options(lowpass_A=8.0).enabled() == ["lowpass"]


def test_parameters_round_trip_through_json() -> None:
    params = PreprocessParams.from_options(**TYPICAL, log=True, highpass_A=None, xmipp_compat=True)
    text = json.dumps(params.to_dict())
    assert PreprocessParams.from_dict(json.loads(text)) == params


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"unknown preprocessing option\(s\) \['lowpas'\]"):
        PreprocessParams.from_options(lowpas=0.1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(crop=-1), r"crop: got -1; valid range: integers ≥ 0"),
        (dict(crop=2.5), r"crop: got 2.5; valid range: integers ≥ 0"),
        (dict(log=(1.0, 2.0)), r"log: got \(1.0, 2.0\); valid range: three finite numbers"),
        (dict(log=(1.0, float("nan"), 2.0)), r"log b: got nan; valid range: finite reals"),
        (dict(bad_pixels=0), r"bad_pixels: got 0; valid range: k > 0"),
        (dict(downsample=1.0), r"downsample: got 1.0; valid range: factor > 1"),
        (dict(downsample=0.5), r"downsample: got 0.5; valid range: factor > 1"),
        (dict(denoise=0), r"denoise: got 0; valid range: integers ≥ 1"),
        (dict(denoise=2.5), r"denoise: got 2.5; valid range: integers ≥ 1"),
        (dict(gaussian=-2.0), r"gaussian: got -2.0; valid range: sigma > 0 px"),
        (dict(highpass=(0.5, 0.01)), r"highpass cutoff: got 0.5; valid range: 0 < cutoff < 0.5"),
        (dict(highpass=(0.0, 0.01)), r"highpass cutoff: got 0.0; valid range: 0 < cutoff < 0.5"),
        (dict(lowpass=(0.2, 0.0)), r"lowpass width: got 0.0; valid range: width > 0"),
        (dict(lowpass=(0.2, 0.1, 3)), r"lowpass: got \(0.2, 0.1, 3\); valid range: a pair"),
        (dict(lowpass_A=True), r"lowpass_A: got True; valid range: a pair \(cutoff_A, width\)"),
        (dict(highpass_A=(-5.0, 0.01)), r"highpass_A cutoff: got -5.0; valid range: cutoff_A > 0"),
        (dict(lowpass=True, lowpass_A=8.0), r"lowpass and lowpass_A both given"),
        (dict(invert="yes"), r"invert: got 'yes'; valid range: True or False"),
    ],
)
def test_invalid_values_name_the_parameter_the_value_and_the_range(
    options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PreprocessParams.from_options(**options)


def test_validate_against_a_shape_and_a_pixel_size() -> None:
    with pytest.raises(ValueError, match=r"crop: 205 px per border does not fit a 409×576"):
        PreprocessParams(crop=205).validate((409, 576))
    with pytest.raises(ValueError, match=r"factor 400.0 leaves no pixel of a 389×556 .*≤ 389"):
        PreprocessParams(crop=10, downsample=400.0).validate((409, 576))
    with pytest.raises(ValueError, match=r"lowpass_A: cutoff 3.0 Å is 0.6667 cycles/pixel at a"):
        PreprocessParams(downsample=2.0, lowpass_A=(3.0, 0.01)).validate((64, 64), 1.0)
    with pytest.raises(ValueError, match=r"highpass_A: the pixel size is unknown"):
        PreprocessParams(highpass_A=(500.0, 0.001)).validate((64, 64), float("nan"))
    PreprocessParams(crop=10, downsample=2.0, lowpass_A=(5.0, 0.01)).validate((409, 576), 1.0)


# --- pipeline ---------------------------------------------------------------------------------


def test_pipeline_order_and_fusion() -> None:
    params = PreprocessParams.from_options(**TYPICAL)
    pipeline = build_pipeline(params, (512, 512), 1.1)
    assert [k.name for k in pipeline.kernels] == [
        "crop",
        "bad_pixels",
        "fourier",  # invert + downsample + gaussian + highpass + lowpass: one rfft2, one irfft2
        "normalize",
    ]
    assert pipeline.output_shape == (246, 246)
    assert pipeline.output_pixel_size_A == pytest.approx(2.2)
    assert pipeline.crop_px == 10 and pipeline.scale_yx == (2.0, 2.0)
    split = PreprocessParams.from_options(log=True, downsample=2, denoise=3, gaussian=True)
    names = [k.name for k in build_pipeline(split, (64, 64), 1.0).kernels]
    assert names == ["log", "fourier", "denoise", "fourier"]
    not_followed = PreprocessParams.from_options(invert=True, denoise=3, lowpass=True)
    names = [k.name for k in build_pipeline(not_followed, (64, 64), 1.0).kernels]
    assert names == ["invert", "denoise", "fourier"], "an invert is folded only into a next pass"
    assert build_pipeline(PreprocessParams(crop=0), (64, 64), 1.0).kernels == []


def test_output_pixel_size_is_isotropic_from_x_and_compat_multiplies_by_the_factor() -> None:
    shape = (409, 576)  # a K3 frame (5760×4092) scaled down: 556×389 after cropping 10
    params = PreprocessParams(crop=10, downsample=3.0)
    with pytest.warns(UserWarning, match=r"downsample: 389×556 → 129×185 scales y by 3.0155"):
        pipeline = build_pipeline(params, shape, 0.8)
    assert pipeline.output_shape == (129, 185)
    assert pipeline.output_pixel_size_A == pytest.approx(0.8 * 556 / 185)
    assert pipeline.scale_yx == pytest.approx((389 / 129, 556 / 185))
    with pytest.warns(UserWarning):
        compat = build_pipeline(
            PreprocessParams(crop=10, downsample=3.0, xmipp_compat=True), shape, 0.8
        )
    assert compat.output_pixel_size_A == pytest.approx(2.4)
    unknown = build_pipeline(PreprocessParams(downsample=2.0), (64, 64), None)
    assert np.isnan(unknown.output_pixel_size_A)


def test_cutoff_in_angstrom_uses_the_pixel_size_after_downsampling() -> None:
    image = _stack((128, 96), (1.0,))[0].values
    in_A = PreprocessParams(downsample=2.0, lowpass_A=(8.0, 0.02), highpass_A=(400.0, 0.005))
    in_px = PreprocessParams(downsample=2.0, lowpass=(0.25, 0.02), highpass=(0.005, 0.005))
    out_A = compose(build_pipeline(in_A, image.shape, 1.0).kernels)(image)
    out_px = compose(build_pipeline(in_px, image.shape, 1.0).kernels)(image)
    assert np.array_equal(out_A, out_px)


# --- lazy preprocess --------------------------------------------------------------------------


def test_lazy_equals_eager_and_tiled_equals_whole() -> None:
    mics = _stack()  # 409×576: 389×556 after cropping, 194×278 after downsampling by 2
    with pytest.warns(UserWarning, match="scales y by 2.00515 and x by 2"):
        lazy = preprocess(mics, **TYPICAL)
        eager = _eager(mics, **TYPICAL)
    assert isinstance(lazy.data, da.Array)
    whole = lazy.values
    assert whole.dtype == np.float32 and whole.shape == (3, 194, 278)
    for computed, expected in zip(whole, eager, strict=True):
        _assert_close(computed, expected)
    tiled = mics.chunk({"micrograph": 2, "y": 101, "x": 77})
    with dask.config.set(scheduler="threads"), pytest.warns(UserWarning, match="scales y"):
        from_tiles = preprocess(tiled, **TYPICAL).values
    for computed, expected in zip(from_tiles, whole, strict=True):
        _assert_close(computed, expected)


def test_pointwise_steps_stay_on_tiles() -> None:
    mics = _stack((90, 70)).chunk({"micrograph": 1, "y": 31, "x": 29})
    out = preprocess(mics, log=(0.0, -1.0, 1.0), invert=True)
    assert out.data.chunks == mics.data.chunks
    expected = -np.log(mics.values.astype(np.float64) + 1.0)
    _assert_close(out.values, expected)


def test_coordinates_and_attributes() -> None:
    mics = _stack(pixel_sizes=(1.0, 1.0, 1.0))
    with pytest.warns(UserWarning, match="scales y by"):
        out = preprocess(mics, crop=10, downsample=2.0, xmipp_compat=False)
    assert list(out.micrograph.values) == list(mics.micrograph.values)
    assert list(out.path.values) == list(mics.path.values)
    assert np.allclose(out.pixel_size_A, 2.0)
    # Output pixel (i, j) sits at input pixel (10 + i·389/194, 10 + j·556/278), in Å here.
    assert np.allclose(out.x.values, 10.0 + np.arange(278) * 2.0)
    assert np.allclose(out.y.values, 10.0 + np.arange(194) * 389 / 194)
    assert out.x.attrs["units"] == "Å"
    assert out.attrs["crop_px"] == 10
    assert out.attrs["xmipp_compat"] is False
    assert out.attrs["source"] == "test"
    assert json.loads(json.dumps(out.attrs["parameters"]))["downsample"] == 2.0


def test_mixed_pixel_sizes_get_their_own_angstrom_cutoffs() -> None:
    mics = _stack((96, 80), pixel_sizes=(1.0, 1.5, 1.0))
    out = preprocess(mics, lowpass_A=(6.0, 0.02), normalize=True)
    assert np.allclose(out.pixel_size_A, [1.0, 1.5, 1.0])
    # 6 Å is 1/6 cycles/pixel at 1 Å per pixel and 1/4 at 1.5 Å per pixel.
    for frame, computed, cutoff in zip(mics.values, out.values, [1 / 6, 1 / 4, 1 / 6], strict=True):
        params = PreprocessParams(lowpass=(cutoff, 0.02), normalize=True)
        expected = compose(build_pipeline(params, frame.shape, None).kernels)(frame)
        _assert_close(computed, expected)


def test_parameters_are_refused_before_any_work() -> None:
    def explode() -> np.ndarray:
        raise AssertionError("pixels were read")

    pixels = da.from_delayed(dask.delayed(explode)(), shape=(2, 64, 64), dtype=np.float32)
    mics = xr.DataArray(
        pixels, dims=("micrograph", "y", "x"), coords={"pixel_size_A": ("micrograph", [1.0, 1.0])}
    )
    with pytest.raises(ValueError, match=r"crop: 40 px per border does not fit a 64×64"):
        preprocess(mics, crop=40)
    with pytest.raises(ValueError, match=r"lowpass_A: cutoff 1.0 Å"):
        preprocess(mics, lowpass_A=1.0)
    with pytest.raises(ValueError, match=r"no step enabled"):
        preprocess(mics)
    with pytest.raises(ValueError, match=r"expected dims"):
        preprocess(mics.transpose("x", "y", "micrograph"), invert=True)
    assert preprocess(mics, invert=True).shape == (2, 64, 64)  # still lazy


def test_denoise_inside_the_pipeline() -> None:
    mics = _stack((64, 80), pixel_sizes=(1.0, 1.0))
    options = dict(downsample=2.0, denoise=3, gaussian=1.0)
    lazy = preprocess(mics, **options)
    for computed, expected in zip(lazy.values, _eager(mics, **options), strict=True):
        _assert_close(computed, expected)


def _xmipp_step(tmp_path: Path, name: str, image: np.ndarray, *args: float) -> np.ndarray:
    """One xmippLib filter on a float32 MRC, as each Xmipp program of the protocol runs."""
    import xmippLib

    path = tmp_path / "step.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(image, dtype=np.float32))
    result = xmippLib.Image()
    getattr(xmippLib, name)(result, str(path), *args, int(max(image.shape)))
    return result.getData().astype(np.float32)  # every program writes float32


def test_compat_pipeline_matches_the_xmipp_chain(tmp_path: Path) -> None:
    image = _stack((256, 200), (1.0,))[0].values
    options = dict(
        crop=7,
        bad_pixels=4.0,
        invert=True,
        gaussian=1.5,
        highpass=(0.01, 0.005),
        lowpass=(0.3, 0.02),
    )
    out = preprocess(_stack((256, 200), (1.0,)), **options, normalize=True, xmipp_compat=True)
    chain = image[7:-7, 7:-7]
    chain = _xmipp_step(tmp_path, "badPixelFilter", chain, 4.0)
    chain = -chain
    chain = _xmipp_step(tmp_path, "realGaussianFilter", chain, 1.5)
    chain = _xmipp_step(tmp_path, "bandPassFilter", chain, 0.01, 0.5, 0.005)
    chain = _xmipp_step(tmp_path, "bandPassFilter", chain, 0.0, 0.3, 0.02).astype(np.float64)
    chain = (chain - chain.mean()) / chain.std()
    _assert_close(out.values[0], chain)
