"""The CTF model against analytic values and an independently written RELION-form formula."""

import math

import numpy as np
import pytest

from daskmic.tilt.ctf import (
    Optics,
    canonical_astigmatism,
    ctf_1d,
    ctf_2d,
    electron_wavelength_A,
)


@pytest.mark.parametrize(
    ("voltage_kV", "expected_A"), [(300.0, 0.019687), (200.0, 0.025079), (100.0, 0.037014)]
)
def test_wavelength_matches_tabulated_values(voltage_kV, expected_A):
    assert electron_wavelength_A(voltage_kV) == pytest.approx(expected_A, abs=2e-6)


def test_wavelength_refuses_non_positive_voltage():
    with pytest.raises(ValueError, match="voltage_kV"):
        electron_wavelength_A(0.0)


def test_zeros_of_a_pure_defocus_ctf():
    """Cs = 0 and no amplitude contrast: zeros where π λ Δf k² = nπ, i.e. k = sqrt(n / (λ Δf))."""
    defocus_A = 12000.0
    lam = electron_wavelength_A(300.0)
    zeros = np.sqrt(np.arange(1, 8) / (lam * defocus_A))
    values = ctf_1d(zeros, defocus_A, spherical_aberration_mm=0.0, amplitude_contrast=0.0)
    np.testing.assert_allclose(values, 0.0, atol=1e-9)
    # the sign alternates between consecutive zeros
    mid = ctf_1d(
        np.sqrt((np.arange(1, 8) - 0.5) / (lam * defocus_A)),
        defocus_A,
        spherical_aberration_mm=0.0,
        amplitude_contrast=0.0,
    )
    np.testing.assert_allclose(mid, (-1.0) ** np.arange(7), atol=1e-9)


def _relion_ctf(shape, pixel_size_A, du, dv, azimuth_deg, kv, cs_mm, q0, phase_deg):
    """RELION's CTF::getCTF written per frequency (negated defocus, -sin of the argument)."""
    lam = electron_wavelength_A(kv)  # checked on its own above
    k1 = math.pi * lam
    k2 = math.pi / 2 * cs_mm * 1e7 * lam**3
    k3 = math.atan(q0 / math.sqrt(1 - q0 * q0))
    k5 = math.radians(phase_deg)
    ny, nx = shape
    out = np.empty((ny, nx // 2 + 1))
    for i in range(ny):
        y = (i if i < (ny + 1) // 2 else i - ny) / (ny * pixel_size_A)
        for j in range(nx // 2 + 1):
            x = j / (nx * pixel_size_A)
            u2 = x * x + y * y
            ang = math.atan2(y, x)
            deltaf = -(
                0.5 * (du + dv) + 0.5 * (du - dv) * math.cos(2 * (ang - math.radians(azimuth_deg)))
            )
            out[i, j] = -math.sin(k1 * deltaf * u2 + k2 * u2 * u2 - k3 - k5)
    return out


@pytest.mark.parametrize("shape", [(32, 32), (27, 40)])
def test_ctf_2d_matches_relion_formula(shape):
    args = (shape, 1.3, 21000.0, 19500.0, 33.0, 200.0, 2.0, 0.1, 20.0)
    ours = ctf_2d(*args)
    reference = _relion_ctf(*args)
    assert ours.dtype == np.float32
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_full_grid_extends_the_rfft_grid():
    shape = (25, 30)  # odd rows: no ±1/2 ambiguity along y
    half = ctf_2d(shape, 1.0, 9000.0, 8000.0, 120.0)
    full = ctf_2d(shape, 1.0, 9000.0, 8000.0, 120.0, rfft=False)
    assert full.shape == shape
    np.testing.assert_array_equal(full[:, : shape[1] // 2], half[:, : shape[1] // 2])
    # the Nyquist column is +1/2 on the rfft grid and -1/2 on the full one: CTF(-k) = CTF(k)
    np.testing.assert_allclose(full[:, shape[1] // 2], np.roll(half[::-1, -1], 1), atol=1e-6)
    # Friedel symmetry: CTF(-k) = CTF(k)
    flipped = np.roll(full[::-1, ::-1], (1, 1), axis=(0, 1))
    np.testing.assert_allclose(full[:, : shape[1] // 2], flipped[:, : shape[1] // 2], atol=1e-6)


def test_astigmatism_angle_is_the_direction_of_defocus_u():
    """Along the U direction the first zero sits at sqrt(1/(λ U)), along V at sqrt(1/(λ V))."""
    n, px = 512, 1.0
    lam = electron_wavelength_A(300.0)
    ctf = ctf_2d((n, n), px, 20000.0, 10000.0, 90.0, spherical_aberration_mm=0.0,
                 amplitude_contrast=0.0, rfft=False)  # fmt: skip
    k = np.arange(n // 2) / (n * px)
    along_y, along_x = ctf[: n // 2, 0] ** 2, ctf[0, : n // 2] ** 2
    first_zero_y = k[10 + np.argmin(along_y[10:40])]
    first_zero_x = k[10 + np.argmin(along_x[10:40])]
    assert first_zero_y == pytest.approx(math.sqrt(1 / (lam * 20000.0)), abs=1 / n)
    assert first_zero_x == pytest.approx(math.sqrt(1 / (lam * 10000.0)), abs=1 / n)


def test_canonical_astigmatism_swaps_u_and_v():
    assert canonical_astigmatism(10000.0, 12000.0, 170.0) == (12000.0, 10000.0, 80.0)
    assert canonical_astigmatism(12000.0, 10000.0, -10.0) == (12000.0, 10000.0, 170.0)
    a = ctf_2d((16, 16), 1.0, 10000.0, 12000.0, 170.0)
    b = ctf_2d((16, 16), 1.0, *canonical_astigmatism(10000.0, 12000.0, 170.0))
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"spherical_aberration_mm": -1.0}, "spherical_aberration_mm"),
        ({"amplitude_contrast": 1.0}, "amplitude_contrast"),
        ({"voltage_kV": -300.0}, "voltage_kV"),
    ],
)
def test_invalid_optics_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Optics(**kwargs)


def test_invalid_grid_is_refused():
    with pytest.raises(ValueError, match="pixel_size_A"):
        ctf_2d((8, 8), 0.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        ctf_2d((0, 8), 1.0, 1.0, 1.0, 0.0)
