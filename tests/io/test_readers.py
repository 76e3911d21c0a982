"""Headers and pixels of single files: every MRC mode, TIFF, regions, and each bad input."""

from __future__ import annotations

import pickle

import mrcfile
import numpy as np
import pytest
import tifffile

from daskmic.io import (
    MicrographError,
    read_header,
    read_micrograph,
    require_pixel_size,
)

MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}


def _image(dtype, rng, shape=(48, 64)):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.normal(0, 100, size=shape).astype(dtype)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_mrc_round_trip_every_mode(make_mrc, rng, mode):
    data = _image(MODES[mode], rng)
    path = make_mrc(f"m{mode}.mrc", data, voxel_size=1.34)
    with mrcfile.open(path, header_only=True) as mrc:
        assert int(mrc.header.mode) == mode
    header = read_header(path)
    assert header.shape == (48, 64)
    assert header.dtype == np.dtype(MODES[mode])
    assert header.pixel_size_A == pytest.approx(1.34, abs=1e-6)
    assert header.format == "mrc"
    assert header.path == str(path)
    pixels = read_micrograph(path)
    assert pixels.dtype == np.dtype(MODES[mode])
    np.testing.assert_array_equal(pixels, data)


def test_regions_match_numpy_slicing(make_mrc, rng):
    data = _image(np.int16, rng)
    path = make_mrc("r.mrc", data)
    for region in [
        (slice(0, 10), slice(0, 10)),
        (slice(38, None), slice(-10, None)),
        (slice(5, 40, 3), slice(60, 2, -7)),
        (slice(10, 10), slice(0, 4)),
    ]:
        np.testing.assert_array_equal(read_micrograph(path, region), data[region])


def test_region_must_be_two_slices(make_mrc, rng):
    path = make_mrc("r.mrc", _image(np.int16, rng))
    with pytest.raises(ValueError, match="region"):
        read_micrograph(path, (0, slice(None)))


def test_big_endian_mrc_is_read_in_native_order(tmp_path, rng):
    data = _image(np.float32, rng)
    path = tmp_path / "be.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.astype(">f4"))
        mrc.voxel_size = 0.85
    header = read_header(path)
    assert header.dtype == np.dtype("=f4")
    pixels = read_micrograph(path)
    assert pixels.dtype.isnative
    np.testing.assert_array_equal(pixels, data)
    assert header.pixel_size_A == pytest.approx(0.85, abs=1e-6)


def test_motioncor2_style_header_needs_permissive_reading(make_mrc, rng, tmp_path):
    """No MAP ID and a zero machine stamp: strict mrcfile refuses, daskmic reads it quietly."""
    data = _image(np.float32, rng)
    good = make_mrc("good.mrc", data, voxel_size=1.06)
    raw = bytearray(good.read_bytes())
    raw[208:216] = bytes(8)  # MAP ID and machine stamp
    path = tmp_path / "motioncor2.mrc"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError):
        mrcfile.open(path, header_only=True).close()
    header = read_header(path)  # pytest turns any warning into an error
    assert header.shape == (48, 64)
    assert header.pixel_size_A == pytest.approx(1.06, abs=1e-6)
    np.testing.assert_array_equal(read_micrograph(path), data)


def test_unset_voxel_size_is_none(make_mrc, rng):
    assert read_header(make_mrc("n.mrc", _image(np.float32, rng))).pixel_size_A is None


@pytest.mark.parametrize(
    ("dtype", "options"),
    [(np.uint16, {}), (np.float32, {}), (np.uint16, {"compression": "zlib"})],
)
def test_tiff_round_trip_with_pixel_size(tmp_path, rng, dtype, options):
    data = _image(dtype, rng)
    path = tmp_path / "t.tiff"
    pixel_size_A = 1.1
    per_cm = 1e8 / pixel_size_A
    tifffile.imwrite(path, data, resolution=(per_cm, per_cm), resolutionunit=3, **options)
    header = read_header(path)
    assert (header.shape, header.dtype, header.format) == ((48, 64), np.dtype(dtype), "tiff")
    assert header.pixel_size_A == pytest.approx(pixel_size_A, rel=1e-6)
    np.testing.assert_array_equal(read_micrograph(path), data)
    region = (slice(3, 20), slice(40, 64))
    np.testing.assert_array_equal(read_micrograph(path, region), data[region])


def test_tiff_pixel_size_in_inches_and_imagej_microns(tmp_path, rng):
    data = _image(np.uint16, rng)
    inch = tmp_path / "inch.tif"
    tifffile.imwrite(inch, data, resolution=(2.54e8 / 2.0, 2.54e8 / 2.0), resolutionunit=2)
    assert read_header(inch).pixel_size_A == pytest.approx(2.0, rel=1e-6)
    imagej = tmp_path / "imagej.tif"
    tifffile.imwrite(imagej, data, imagej=True, resolution=(1e4, 1e4), metadata={"unit": "um"})
    assert read_header(imagej).pixel_size_A == pytest.approx(1.0, rel=1e-6)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, data)
    assert read_header(plain).pixel_size_A is None


def test_format_comes_from_content_not_suffix(tmp_path, rng):
    data = _image(np.uint16, rng)
    path = tmp_path / "really_a_tiff.mrc"
    tifffile.imwrite(path, data)
    assert read_header(path).format == "tiff"
    np.testing.assert_array_equal(read_micrograph(path), data)


def _truncated(make_mrc, rng, tmp_path):
    good = make_mrc("whole.mrc", _image(np.int16, rng))
    path = tmp_path / "truncated.mrc"
    path.write_bytes(good.read_bytes()[:-100])
    return path


def _stack(make_mrc, rng, tmp_path):
    return make_mrc("stack.mrcs", np.stack([_image(np.float32, rng)] * 3))


def _text(make_mrc, rng, tmp_path):
    path = tmp_path / "notes.mrc"
    path.write_text("this is not a micrograph\n" * 100)
    return path


def _short_text(make_mrc, rng, tmp_path):
    path = tmp_path / "short.mrc"
    path.write_text("hello")
    return path


def _empty(make_mrc, rng, tmp_path):
    path = tmp_path / "empty.mrc"
    path.write_bytes(b"")
    return path


def _missing(make_mrc, rng, tmp_path):
    return tmp_path / "missing.mrc"


def _tiff_stack(make_mrc, rng, tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack([_image(np.uint16, rng)] * 2))
    return path


def _complex_mode(make_mrc, rng, tmp_path):
    return make_mrc("complex.mrc", np.ones((8, 8), np.complex64))


def _huge_extended_header(make_mrc, rng, tmp_path):
    """A header announcing a 2 GiB extended header: refused before anything is allocated."""
    raw = bytearray(make_mrc("whole.mrc", _image(np.int16, rng)).read_bytes())
    raw[92:96] = np.int32(2**31 - 1).tobytes()
    path = tmp_path / "huge_ext.mrc"
    path.write_bytes(bytes(raw))
    return path


def _folder(make_mrc, rng, tmp_path):
    (tmp_path / "a_folder.mrc").mkdir()
    return tmp_path / "a_folder.mrc"


BAD = {
    _truncated: "truncated",
    _stack: "3-D stack",
    _text: "not an MRC file",
    _short_text: "not an MRC file",
    _empty: "empty file",
    _missing: "no such file",
    _tiff_stack: "3-D stack",
    _complex_mode: "unsupported MRC mode 4",
    _huge_extended_header: "truncated: the header announces a 2147483647-byte extended",
    _folder: "folder",
}


@pytest.mark.parametrize("make_bad", list(BAD), ids=[f.__name__.strip("_") for f in BAD])
def test_bad_input_names_the_file_and_the_problem(make_mrc, rng, tmp_path, make_bad):
    path = make_bad(make_mrc, rng, tmp_path)
    for read in (read_header, read_micrograph):
        with pytest.raises(MicrographError) as caught:
            read(path)
        assert str(caught.value).startswith(f"{path}: ")
        assert BAD[make_bad] in str(caught.value)
        assert caught.value.path == str(path)
        assert isinstance(caught.value, ValueError)


def test_micrograph_error_survives_pickling():
    error = MicrographError("/data/x.mrc", "truncated")
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.path) == (MicrographError, str(error), error.path)


def test_require_pixel_size():
    assert require_pixel_size(1.5, "a.mrc") == 1.5
    for unknown in (None, float("nan")):
        with pytest.raises(MicrographError, match=r"a\.mrc: pixel size unknown"):
            require_pixel_size(unknown, "a.mrc")
    with pytest.raises(MicrographError, match="> 0"):
        require_pixel_size(-1.0, "a.mrc")


def test_float16_statistics_in_float64_do_not_overflow(make_mrc, rng):
    data = rng.uniform(5.9e4, 6.5e4, size=(64, 64)).astype(np.float16)
    path = make_mrc("f16.mrc", data)
    pixels = read_micrograph(path)
    assert pixels.dtype == np.float16
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.square(pixels).sum(dtype=np.float16))  # the trap avoided
    wide = pixels.astype(np.float64)
    values = data.astype(np.float64).ravel()
    reference_mean = sum(values.tolist()) / values.size
    reference_std = (sum((v - reference_mean) ** 2 for v in values.tolist()) / values.size) ** 0.5
    assert wide.mean() == pytest.approx(reference_mean, rel=1e-12)
    assert wide.std() == pytest.approx(reference_std, rel=1e-9)
