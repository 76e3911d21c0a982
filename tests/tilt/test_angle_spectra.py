"""Tile spectra reduced to sector profiles, against a per-pixel loop written here."""

import math

import numpy as np
import pytest

from daskmic.tilt.angle_spectra import sector_profiles, tile_origins


def test_tile_origins_are_half_overlapping_and_centred():
    np.testing.assert_array_equal(tile_origins(512, 128), [0, 64, 128, 192, 256, 320, 384])
    origins = tile_origins(300, 64)  # 8 tiles cover 288 px: 6 px left over on each side
    np.testing.assert_array_equal(origins, 6 + 32 * np.arange(8))
    with pytest.raises(ValueError, match="shorter than the tile"):
        tile_origins(50, 64)


def _reference(image, pixel_size_A, tile, s_edges, n_sectors, keep_axes=False):
    """Mean periodogram (image mean removed, periodic Hann) per (tile, sector, s-bin), by loops;
    pixels within one frequency sample of either axis left out unless ``keep_axes``."""
    hann = np.hanning(tile + 1)[:-1]
    taper = np.outer(hann, hann)
    ny, nx = image.shape
    n_bins = len(s_edges) - 1
    image = image - image.mean()
    signed = [i if i < tile // 2 else i - tile for i in range(tile)]
    out = []
    for y0 in tile_origins(ny, tile):
        for x0 in tile_origins(nx, tile):
            t = image[y0 : y0 + tile, x0 : x0 + tile].astype(np.float64)
            power = np.abs(np.fft.fft2(t * taper)) ** 2
            sums = np.zeros((n_sectors, n_bins))
            counts = np.zeros((n_sectors, n_bins))
            for i in range(tile):
                ky = signed[i] / (tile * pixel_size_A)
                for j in range(tile // 2 + 1):
                    if min(abs(signed[i]), j) <= 1 and not keep_axes:  # within a sample of an axis
                        continue
                    kx = j / (tile * pixel_size_A)
                    s = kx * kx + ky * ky
                    b = np.searchsorted(s_edges, s, side="right") - 1
                    if not 0 <= b < n_bins:
                        continue
                    angle = math.atan2(ky, kx) % math.pi
                    sector = min(int(angle / math.pi * n_sectors), n_sectors - 1)
                    sums[sector, b] += power[i, j]
                    counts[sector, b] += 1
            out.append((sums, counts))
    return out


def test_sector_profiles_match_explicit_loops():
    rng = np.random.default_rng(0)
    image = rng.poisson(20.0, size=(96, 160)).astype(np.uint16)
    pixel_size_A, tile, n_sectors = 1.3, 64, 6
    edges = np.linspace(0.0, (0.4 / pixel_size_A) ** 2, 41)
    prof = sector_profiles(image, pixel_size_A, tile_px=tile, s_edges=edges, n_sectors=n_sectors)
    reference = _reference(image, pixel_size_A, tile, edges, n_sectors)
    assert prof.power.shape == (len(reference), n_sectors, 40)
    assert prof.grid_shape == (2, 4)
    for got, (sums, counts) in zip(prof.power, reference, strict=True):
        full = counts > 0
        np.testing.assert_allclose(got[full], sums[full] / counts[full], rtol=2e-4)
        for sector in range(n_sectors):  # empty bins interpolate their filled neighbours
            filled = np.flatnonzero(full[sector])
            empty = np.flatnonzero(~full[sector])
            inner = empty[(empty > filled.min()) & (empty < filled.max())]
            expected = np.interp(inner, filled, sums[sector, filled] / counts[sector, filled])
            np.testing.assert_allclose(got[sector, inner], expected, rtol=2e-4)


def test_tile_centres_and_geometry():
    image = np.zeros((300, 200), dtype=np.float32)
    image[::7, ::5] = 1.0
    edges = np.linspace(0.0, 0.1, 11)
    prof = sector_profiles(image, 2.0, tile_px=64, s_edges=edges, n_sectors=4)
    ys, xs = tile_origins(300, 64), tile_origins(200, 64)
    assert prof.grid_shape == (len(ys), len(xs))
    expected_x = (xs + 31.5 - 99.5) * 2.0
    expected_y = (ys + 31.5 - 149.5) * 2.0
    np.testing.assert_allclose(prof.centers_A[: len(xs), 0], expected_x)
    np.testing.assert_allclose(prof.centers_A[:: len(xs), 1], expected_y)
    np.testing.assert_allclose(prof.sector_angle_rad, (np.arange(4) + 0.5) * np.pi / 4)
    np.testing.assert_allclose(prof.s_invA2, np.arange(10) * 0.01 + 0.005)


def test_an_offset_changes_no_profile():
    """The periodic Hann taper keeps each tile's mean at |k| <= 1 sample: no fitted bin moves."""
    rng = np.random.default_rng(3)
    image = rng.normal(size=(128, 128)).astype(np.float32)
    pixel_size_A, tile = 1.0, 64
    edges = np.linspace(0.0, 0.2, 201)
    plain = sector_profiles(image, pixel_size_A, tile_px=tile, s_edges=edges, n_sectors=4)
    offset = sector_profiles(image + 1000.0, pixel_size_A, tile_px=tile, s_edges=edges, n_sectors=4)
    beyond = plain.s_invA2 > (2.0 / (tile * pixel_size_A)) ** 2
    # float32 rounding of the offset image itself changes powers by ~1e-4, and adds noise of
    # ~1e-7 of the mean power: a bin of a single near-zero pixel sees it as a relative change
    rounding = 1e-5 * float(plain.power.mean())
    np.testing.assert_allclose(
        offset.power[..., beyond], plain.power[..., beyond], rtol=2e-3, atol=rounding
    )



def _sector_means(profiles):
    """Mean power per sector over tiles and bins (one number per sector)."""
    return np.array([np.mean([sums[k].sum() / counts[k].sum() for sums, counts in profiles])
                     for k in range(profiles[0][0].shape[0])])  # fmt: skip


@pytest.mark.parametrize("axis", [0, 1])
def test_gain_stripes_leave_every_profile_alone(axis):
    """Per-row (or per-column) gain errors put their power on the frequency axes only.

    The loops with the axes kept show the line: the sector that holds it gains power over
    the same counts without stripes (``T ε² N`` = 64 · 0.03² · 60 ≈ 3.5 times a pixel's
    power on the line). The profiles, which leave the axes out, are those of the counts.
    """
    rng = np.random.default_rng(5)
    counts = rng.poisson(60.0, size=(128, 128)).astype(np.float64)
    gain = 1.0 + 0.03 * rng.standard_normal(128)
    striped = counts * (gain[:, None] if axis == 0 else gain[None, :])
    edges = np.linspace(0.0, 0.2, 11)
    kept = [_reference(image, 1.0, 64, edges, 8, keep_axes=True) for image in (striped, counts)]
    gained = _sector_means(kept[0]) / _sector_means(kept[1])
    line = 4 if axis == 0 else 0  # the sector holding 90° (the k_y axis) or 0° (k_x)
    assert gained[line] > 1.1
    plain = sector_profiles(counts, 1.0, tile_px=64, s_edges=edges, n_sectors=8).power
    lined = sector_profiles(striped, 1.0, tile_px=64, s_edges=edges, n_sectors=8).power
    ratio = lined.mean(axis=(0, 2)) / plain.mean(axis=(0, 2))
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)  # the noise's gain: mean square 1 + 0.03²
