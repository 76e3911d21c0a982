"""Drift's fade of the Thon rings: the model against the blur, the search, the tilt it keeps."""

import math

import numpy as np
import pytest

from daskmic.datasets_realistic import _drift_blur, synthesize_realistic
from daskmic.tilt.angle import _s_edges, estimate_tilt
from daskmic.tilt.angle_drift import drift_fade
from daskmic.tilt.angle_fit import ring_model
from daskmic.tilt.angle_model import spectrum_model
from daskmic.tilt.angle_spectra import SectorProfiles, sector_profiles
from daskmic.tilt.angle_steps import (
    DEFOCUS_STEP_A,
    band_weights,
    corrected_profiles,
    local_defocus,
    tile_curves,
)
from daskmic.tilt.ctf import Optics

OPTICS = Optics()


def _profiles(image, pixel_size_A, tile_px=256):
    edges = _s_edges(pixel_size_A, 3.5, 40000.0, OPTICS)
    return sector_profiles(image, pixel_size_A, tile_px=tile_px, s_edges=edges, n_sectors=24)


def test_drift_fade_is_the_power_that_the_blur_passes():
    """White noise blurred by the simulator's drift: its sector power over the unblurred's."""
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((1024, 1024)).astype(np.float32)
    pixel_size_A, length_A, angle_deg = 1.5, 12.0, 35.0
    blurred = _drift_blur(noise, length_A / pixel_size_A, angle_deg)
    plain, faded = _profiles(noise, pixel_size_A), _profiles(blurred, pixel_size_A)
    ratio = faded.power.mean(axis=0) / plain.power.mean(axis=0)
    model = drift_fade(plain.sector_angle_rad, plain.s_invA2, length_A, math.radians(angle_deg))
    inside = plain.s_invA2 > (2.0 / (256 * pixel_size_A)) ** 2  # past the Hann blur of k = 0
    assert np.abs(ratio - model)[:, inside].mean() < 0.02
    across = int(np.argmin(np.abs(np.cos(plain.sector_angle_rad - math.radians(angle_deg)))))
    assert model[across, inside].min() > 0.85  # the sector across the drift keeps its rings


def _drift_found(shape, seed, **params):
    image, truth = synthesize_realistic(shape, seed=seed, **params)
    prof = _profiles(image, params["pixel_size_A"], tile_px=512)
    model = spectrum_model(prof, np.full(len(prof.centers_A), truth["defocus_A"]), OPTICS, 1500)
    return model.drift_A, model.drift_angle_deg


@pytest.mark.slow
def test_drift_length_and_direction_are_found_and_none_is_invented():
    common = dict(pixel_size_A=2.0, defocus_A=9000.0, astigmatism_A=500.0,
                  astigmatism_angle_deg=70.0, dose_e_per_A2=20.0, phase_std=0.12)  # fmt: skip
    length, angle = _drift_found((2048, 2883), 5, drift_A=15.0, drift_angle_deg=130.0, **common)
    assert length == pytest.approx(15.0, abs=2.5)
    assert abs((angle - 130.0 + 90.0) % 180.0 - 90.0) <= 5.0
    assert _drift_found((2048, 2883), 5, **common) == (0.0, 0.0)
    assert _drift_found((2048, 2883), 5, **{**common, "phase_std": 0.0}) == (0.0, 0.0)


@pytest.mark.slow
def test_drift_and_low_defocus_with_strong_astigmatism_keep_the_tilt():
    """15 Å of drift at 0.8 µm with 0.12 µm astigmatism (2048×2883): the tilt 1–1.7° low before."""
    params = dict(
        pixel_size_A=1.6, defocus_A=8000.0, astigmatism_A=1200.0, astigmatism_angle_deg=40.0,
        tilt_angle_deg=25.0, tilt_axis_deg=100.0, dose_e_per_A2=20.0, phase_std=0.12,
        drift_A=15.0, drift_angle_deg=150.0,
    )  # fmt: skip
    image, truth = synthesize_realistic((2048, 2883), seed=19, **params)
    result = estimate_tilt(image, params["pixel_size_A"])
    error = result.tilt_angle_deg - truth["tilt_angle_deg"]
    axis_error = abs((result.tilt_axis_deg - truth["tilt_axis_deg"] + 90.0) % 180.0 - 90.0)
    # 2048 × 2883 at 0.8 µm with 15 Å of drift: the axis ± is about 2°, which flags it
    assert result.status == "ok" or result.message.startswith("the axis is uncertain")
    assert abs(error) <= 0.5 and abs(error) <= 3 * result.tilt_angle_err_deg
    assert axis_error <= 3.0 and axis_error <= 3 * result.tilt_axis_err_deg


def _drifted_sectors(
    rng, n_tiles, length_A, angle_deg, amplitude, noise, defocus_A=9000.0, astig_A=0.0
):
    """Sector profiles ``1 + a f_σ (sin² χ - ½)`` plus white noise per bin, at known defocus.

    Sector ``α`` has its rings at the tile's defocus plus ``astig_A · cos 2(α - 40°)``.
    """
    pixel_size_A, tile_px, n_sectors = 2.0, 512, 24
    edges = _s_edges(pixel_size_A, 3.5, 40000.0, OPTICS)
    s = 0.5 * (edges[1:] + edges[:-1])
    angle = (np.arange(n_sectors) + 0.5) * np.pi / n_sectors
    fade = drift_fade(angle, s, length_A, math.radians(angle_deg))
    tiles_A = rng.uniform(defocus_A - 500.0, defocus_A + 500.0, n_tiles)
    sectors_A = tiles_A[:, None] + astig_A * np.cos(2 * (angle - math.radians(40.0)))[None, :]
    rings = ring_model(s, sectors_A.ravel(), OPTICS).T.reshape(n_tiles, n_sectors, -1) - 0.5
    power = 1.0 + amplitude * fade[None] * rings
    power += noise * rng.standard_normal(power.shape)
    prof = SectorProfiles(
        power=power.astype(np.float32), s_invA2=s, sector_angle_rad=angle,
        centers_A=np.zeros((n_tiles, 2)), mean_counts=np.ones(n_tiles),
        grid_shape=(20, n_tiles // 20), tile_px=tile_px, pixel_size_A=pixel_size_A,
    )  # fmt: skip
    return prof, tiles_A, fade


def test_drift_readings_reach_the_cramer_rao_bound():
    """7 Å of drift: each tile's reading scatters about as little as its rings allow.

    With white noise of variance ``v`` per sector and bin and rings ``a f_σ m(s, Δf)``
    (``m = sin² χ - ½``), the Fisher information of one tile's defocus is
    ``Σ_σ,s (a f_σ ∂m/∂Δf)² / v`` over the fitted band, ``∂m/∂Δf = π λ s sin 2χ``; its
    inverse root bounds the readings' scatter.
    """
    amplitude, noise = 0.5, 0.5
    rng = np.random.default_rng(1)
    prof, truth_A, fade = _drifted_sectors(rng, 400, 7.0, 30.0, amplitude, noise)
    model = spectrum_model(prof, truth_A, OPTICS, 1500.0)
    assert abs(model.drift_A - 7.0) <= 1.0 and abs(model.drift_angle_deg - 30.0) <= 4.0
    s = prof.s_invA2
    inside = band_weights(s, model.d_ref_A, prof.tile_px, prof.pixel_size_A, OPTICS) > 0
    profiles = corrected_profiles(prof, truth_A, model.astig_ab_A, OPTICS, model.weights)
    grid = np.arange(7000.0, 11000.0, DEFOCUS_STEP_A)
    curves = tile_curves(profiles, model.d_ref_A, grid, prof, OPTICS, model.envelope)
    readings = local_defocus(curves, grid, truth_A, 800.0)[0]
    lam = OPTICS.wavelength_A
    c = 0.5 * math.pi * OPTICS.spherical_aberration_mm * 1e7 * lam**3
    chi = math.pi * lam * truth_A[:, None] * s - c * s * s + OPTICS.constant_phase_rad
    slope = math.pi * lam * s * np.sin(2 * chi)  # (tiles, bins)
    information = (inside * slope**2 * ((amplitude * fade) ** 2).sum(axis=0)).sum(axis=1) / noise**2
    bound_A = float(np.sqrt(np.mean(1.0 / information)))
    # about the mean: the astigmatism's noise shifts every tile alike (the plane's offset)
    scatter_A = float(np.std(readings - truth_A))
    assert 0.9 * bound_A <= scatter_A <= 1.2 * bound_A  # 400 tiles: ± 3.5 % sampling error

