"""Synthetic micrographs: determinism, noise model, CTF rings, tilt and defects vs their truth."""

import json
import math

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from daskmic.datasets import defocus_plane, make_dataset, synthesize_micrograph

LAMBDA_300KV_A = 0.0196875  # relativistic wavelength at 300 kV, tabulated


def _ctf_zeros(defocus_A, n_zeros, cs_mm=2.7, w=0.07):
    """Frequencies (1/Å) where π λ Δf k² - π/2 Cs λ³ k⁴ + asin(w) = nπ (smallest root in k²)."""
    lam, cs = LAMBDA_300KV_A, cs_mm * 1e7
    a, b = 0.5 * math.pi * cs * lam**3, math.pi * lam * defocus_A
    out = []
    for n in range(1, n_zeros + 1):
        c = n * math.pi - math.asin(w)
        k2 = (b - math.sqrt(b * b - 4 * a * c)) / (2 * a)
        out.append(math.sqrt(k2))
    return np.array(out)


def _radial_psd(image, tile=256):
    """Radial average (1-px bins, cycles/px = bin / tile) of the mean periodogram of tiles."""
    image = image - image.mean()
    ny, nx = image.shape
    psd = np.zeros((tile, tile))
    count = 0
    for y in range(0, ny - tile + 1, tile // 2):
        for x in range(0, nx - tile + 1, tile // 2):
            psd += np.abs(np.fft.fft2(image[y : y + tile, x : x + tile])) ** 2
            count += 1
    f = np.fft.fftfreq(tile)
    radius = np.rint(np.hypot(f[:, None], f[None, :]) * tile).astype(int)
    return np.bincount(radius.ravel(), (psd / count).ravel()) / np.bincount(radius.ravel())


def _fit_defocus(image, pixel_size_A, guess_A, tile=256):
    """Defocus maximising the correlation of the background-flattened radial PSD with CTF²."""
    radial = _radial_psd(image, tile)[: tile // 2]
    k = np.arange(tile // 2) / (tile * pixel_size_A)
    band = slice(int(0.04 * tile), int(0.3 * tile))
    x = np.arange(len(radial))
    flat = radial - np.polyval(np.polyfit(x[band], radial[band], 3), x)
    best, best_score = None, -np.inf
    for defocus in np.arange(guess_A - 3000, guess_A + 3000, 10.0):
        lam, cs = LAMBDA_300KV_A, 2.7e7
        chi = math.pi * lam * defocus * k**2 - 0.5 * math.pi * cs * lam**3 * k**4 + 0.07
        model = np.sin(chi[band]) ** 2
        score = np.corrcoef(model, flat[band])[0, 1]
        if score > best_score:
            best, best_score = defocus, score
    return best


def test_same_seed_same_micrograph_and_other_seed_differs():
    kwargs = {"shape": (200, 300), "tilt_angle_deg": 20.0, "hot_pixels": 3}
    a, truth_a = synthesize_micrograph(seed=5, **kwargs)
    b, truth_b = synthesize_micrograph(seed=5, **kwargs)
    c, _ = synthesize_micrograph(seed=6, **kwargs)
    np.testing.assert_array_equal(a, b)
    assert truth_a == truth_b
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint16", "int16"])
def test_shape_and_dtype(dtype):
    image, truth = synthesize_micrograph((96, 130), dtype=dtype, seed=1)
    assert image.shape == (96, 130)
    assert image.dtype == np.dtype(dtype)
    assert truth["shape"] == [96, 130]
    if np.issubdtype(image.dtype, np.integer):
        assert image.min() >= 0


def test_shot_noise_is_poisson_at_the_dose():
    """Without specimen, counts are Poisson with mean = variance = dose · pixel_size²."""
    image, _ = synthesize_micrograph((512, 512), pixel_size_A=1.2, dose_e_per_A2=20.0,
                                     phase_std=0.0, seed=2)  # fmt: skip
    expected = 20.0 * 1.2**2
    counts = image.astype(np.float64)
    assert counts.mean() == pytest.approx(expected, rel=0.01)
    assert counts.var() == pytest.approx(expected, rel=0.02)
    np.testing.assert_array_equal(counts, np.rint(counts))


def test_ctf_rings_at_the_expected_radii():
    """Minima of the radial PSD of an untilted micrograph sit at the CTF zeros."""
    defocus_A, tile = 20000.0, 512
    image, _ = synthesize_micrograph((1024, 1024), defocus_A=defocus_A, seed=3)
    radial = _radial_psd(image, tile)
    zeros_px = _ctf_zeros(defocus_A, 6) * tile  # pixel size 1 Å: cycles/px × tile = bin
    spacing = np.diff(np.concatenate([[0.0], zeros_px]))
    for zero, gap in zip(zeros_px, spacing, strict=True):
        lo, hi = int(zero - 0.4 * gap), int(math.ceil(zero + 0.4 * gap))
        found = lo + np.argmin(radial[lo : hi + 1])
        assert abs(found - zero) <= 1.5, (zero, found)


def test_tilted_micrograph_has_the_plane_of_defocus():
    """Halves on either side of the tilt axis show the defocus the truth plane predicts."""
    px = 1.5
    image, truth = synthesize_micrograph((1024, 1024), pixel_size_A=px, defocus_A=15000.0,
                                         tilt_angle_deg=40.0, tilt_axis_deg=0.0,
                                         dose_e_per_A2=40.0, seed=4)  # fmt: skip
    # axis along +x: defocus increases towards +y (rows with larger index)
    assert truth["tilt_direction_deg"] == pytest.approx(90.0)
    assert truth["defocus_plane_gx"] == pytest.approx(0.0, abs=1e-12)
    assert truth["defocus_plane_gy"] == pytest.approx(math.tan(math.radians(40.0)))
    y_half_A = 256.0 * px  # centre of each half, from the image centre
    expected_low = truth["defocus_plane_c0_A"] - truth["defocus_plane_gy"] * y_half_A
    expected_high = truth["defocus_plane_c0_A"] + truth["defocus_plane_gy"] * y_half_A
    low = _fit_defocus(image[:512], px, 15000.0)
    high = _fit_defocus(image[512:], px, 15000.0)
    assert expected_high - expected_low == pytest.approx(644.5, abs=1.0)
    assert low == pytest.approx(expected_low, abs=120.0)
    assert high == pytest.approx(expected_high, abs=120.0)


def test_defocus_plane_conventions():
    c0, gx, gy, direction = defocus_plane(10000.0, 30.0, 30.0)
    assert direction == pytest.approx(120.0)
    slope = math.tan(math.radians(30.0))
    assert (gx, gy) == pytest.approx(
        (slope * math.cos(math.radians(120)), slope * math.sin(math.radians(120)))
    )
    # constant along the axis, increasing towards the direction
    assert gx * math.cos(math.radians(30)) + gy * math.sin(math.radians(30)) == pytest.approx(0.0)
    _, gx_neg, gy_neg, direction_neg = defocus_plane(10000.0, -30.0, 30.0)
    assert direction_neg == pytest.approx(300.0)
    assert (gx_neg, gy_neg) == pytest.approx((-gx, -gy))
    with pytest.raises(ValueError, match="tilt_angle_deg"):
        defocus_plane(10000.0, 90.0, 0.0)


def test_hot_and_dead_pixels_at_the_recorded_positions():
    image, truth = synthesize_micrograph((256, 200), hot_pixels=7, dead_pixels=5, seed=8)
    hot = np.array(truth["hot_pixels_yx"])
    dead = np.array(truth["dead_pixels_yx"])
    assert hot.shape == (7, 2) and dead.shape == (5, 2)
    dose_px = truth["dose_e_per_A2"] * truth["pixel_size_A"] ** 2
    assert np.all(image[hot[:, 0], hot[:, 1]] >= 10 * dose_px)
    assert np.all(image[dead[:, 0], dead[:, 1]] == 0)
    mask = np.ones(image.shape, bool)
    mask[hot[:, 0], hot[:, 1]] = False
    assert image[mask].max() < 10 * dose_px  # no other pixel looks hot


def test_illumination_gradient_matches_the_truth():
    image, truth = synthesize_micrograph((256, 256), gradient=0.4, phase_std=0.0, seed=9)
    ny, nx = image.shape
    yn = (np.arange(ny) - (ny - 1) / 2) / ny
    xn = (np.arange(nx) - (nx - 1) / 2) / nx
    design = np.stack([np.ones(ny * nx), np.repeat(yn, nx), np.tile(xn, ny)], axis=1)
    coef, *_ = np.linalg.lstsq(design, image.ravel().astype(np.float64), rcond=None)
    dose_px = truth["dose_e_per_A2"]
    gamma = math.radians(truth["gradient_angle_deg"])
    assert coef[0] == pytest.approx(dose_px, rel=0.01)
    assert coef[2] == pytest.approx(0.4 * dose_px * math.cos(gamma), abs=0.03 * dose_px)
    assert coef[1] == pytest.approx(0.4 * dose_px * math.sin(gamma), abs=0.03 * dose_px)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"pixel_size_A": 0.0}, "pixel_size_A"),
        ({"defocus_A": -1.0}, "defocus_A"),
        ({"dose_e_per_A2": 0.0}, "dose_e_per_A2"),
        ({"astigmatism_A": -5.0}, "astigmatism_A"),
        ({"gradient": 1.5}, "gradient"),
        ({"shape": (8, 64)}, "shape"),
        ({"tilt_angle_deg": 95.0}, "tilt_angle_deg"),
        ({"amplitude_contrast": 1.2}, "amplitude_contrast"),
    ],
)
def test_invalid_parameters_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        synthesize_micrograph(**{"shape": (64, 64), **kwargs})


def test_make_dataset_writes_micrographs_truth_and_star(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = make_dataset("data", n=4, shape=(128, 160), pixel_size_A=1.3, seed=11,
                         hot_pixels=2, make_star=True)  # fmt: skip
    assert list(table["micrograph"]) == ["mic_000", "mic_001", "mic_002", "mic_003"]
    assert (table["tilt_angle_deg"] == 0).sum() == 2  # default: a mix of untilted and tilted
    assert table["tilt_angle_deg"].max() >= 10
    truth = pd.read_csv(tmp_path / "data" / "truth.csv")
    pd.testing.assert_frame_equal(truth, table, check_dtype=False)
    for row in truth.itertuples():
        with mrcfile.open(tmp_path / "data" / row.path) as mrc:
            assert mrc.data.shape == (128, 160)
            assert mrc.data.dtype == np.float32
            assert float(mrc.voxel_size.x) == pytest.approx(1.3, abs=1e-5)
            hot = np.array(json.loads(row.hot_pixels_yx))
            assert np.all(mrc.data[hot[:, 0], hot[:, 1]] >= 10 * row.dose_e_per_A2 * 1.3**2)
    star = starfile.read(tmp_path / "data" / "micrographs.star")
    assert star["optics"]["rlnMicrographPixelSize"].iloc[0] == pytest.approx(1.3)
    assert star["optics"]["rlnVoltage"].iloc[0] == pytest.approx(300.0)
    assert list(star["micrographs"]["rlnMicrographName"]) == [f"data/{p}" for p in table["path"]]
    np.testing.assert_allclose(star["micrographs"]["rlnDefocusU"], table["defocus_u_A"])


def test_make_dataset_is_deterministic_and_takes_given_tilts(tmp_path):
    a = make_dataset(tmp_path / "a", n=2, shape=(64, 64), tilt_angles_deg=[5.0, 45.0], seed=3)
    b = make_dataset(tmp_path / "b", n=2, shape=(64, 64), tilt_angles_deg=[5.0, 45.0], seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a["tilt_angle_deg"]) == [5.0, 45.0]
    for name in ("mic_000.mrc", "mic_001.mrc"):
        with mrcfile.open(tmp_path / "a" / name) as x, mrcfile.open(tmp_path / "b" / name) as y:
            np.testing.assert_array_equal(x.data, y.data)
    with pytest.raises(ValueError, match="tilt_angles_deg"):
        make_dataset(tmp_path / "c", n=3, tilt_angles_deg=[1.0])
