"""The tilt estimator's fast numerics give the estimates of straightforward ones, bit for bit.

The estimator's inner loops were vectorised over tiles, groups and sectors, its BLAS runs on
one thread, the tile transforms skip the columns no bin uses, one ring table serves a
start's correlations, and ``workers`` threads share the tiles and the further starts: none
of that may change an estimate.
Each fast piece is checked here against the plain loop it replaced (written here), and
whole estimates against the same estimator with those plain loops put back in, on small
frames that take the several-starts fallback, find drift, or have a carbon region.
"""

import dataclasses
import math

import numpy as np
import pytest
import scipy.fft
import scipy.sparse

import daskmic.tilt.angle as angle
import daskmic.tilt.angle_model as angle_model
import daskmic.tilt.angle_spectra as angle_spectra
import daskmic.tilt.angle_steps as angle_steps
from daskmic.datasets_realistic import draw_realistic, synthesize_realistic
from daskmic.tilt.angle import _s_edges, estimate_tilt
from daskmic.tilt.angle_fit import (
    defocus_groups,
    interp_matrix,
    interp_weights,
    phase_matched_s,
    weighted_correlation,
)
from daskmic.tilt.angle_spectra import sector_profiles
from daskmic.tilt.ctf import Optics


def _interp_row_by_row(x, xp, fp):
    """``np.interp(…, left=0, right=0)`` called once per row of the broadcast arrays."""
    shape = np.broadcast_shapes(x.shape, fp.shape[:-1] + (1,))
    x = np.broadcast_to(x, shape)
    fp = np.broadcast_to(fp, shape[:-1] + fp.shape[-1:])
    out = np.empty(shape)
    for index in np.ndindex(shape[:-1]):
        out[index] = np.interp(x[index], xp, fp[index], left=0.0, right=0.0)
    return out


def _interp_matrix_from_triplets(s_invA2, s_src):
    """The interpolation map built from (row, column, value) triplets, as scipy sorts them."""
    n_rows, n = s_src.shape
    left, frac, weight = interp_weights(s_invA2, s_src)
    target = np.broadcast_to(np.arange(n), (n_rows, n)).ravel()
    source = (left + (np.arange(n_rows) * n)[:, None]).ravel()
    values = np.concatenate([(weight * (1 - frac)).ravel(), (weight * frac).ravel()])
    triplets = (values, (np.concatenate([target, target]), np.concatenate([source, source + 1])))
    return scipy.sparse.csr_matrix(triplets, shape=(n, n_rows * n))


def _profiles_tile_by_tile(image, pixel_size_A, tile_px, s_edges, n_sectors):
    """Each tile's whole ``rfft2`` half-plane, binned by the same operator, one tile at a time;
    and each tile's mean counts from its zero frequency."""
    columns, inside, operator = angle_spectra._binning(
        tile_px, float(pixel_size_A), tuple(s_edges), n_sectors
    )
    hann = np.hanning(tile_px + 1)[:-1].astype(np.float32)
    taper = hann[:, None] * hann[None, :]
    pixels = np.asarray(image, dtype=np.float32)
    offset = np.float32(pixels.mean(dtype=np.float64))
    rows, means = [], []
    for y in angle_spectra.tile_origins(image.shape[0], tile_px):
        for x in angle_spectra.tile_origins(image.shape[1], tile_px):
            tile = (pixels[y : y + tile_px, x : x + tile_px] - offset) * taper
            whole = scipy.fft.rfft2(tile)
            means.append(offset + whole[0, 0].real / float(taper.sum(dtype=np.float64)))
            spectrum = whole[:, :columns].ravel()[inside]
            magnitude = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
            rows.append(operator @ magnitude[:, None])
    return np.concatenate(rows, axis=1).T.reshape(len(rows), n_sectors, -1), np.array(means)


def _plain_sector_profiles(image, pixel_size_A, *, tile_px, s_edges, n_sectors, workers):
    """The profiles' geometry, with the power of :func:`_profiles_tile_by_tile`."""
    prof = sector_profiles(
        image, pixel_size_A, tile_px=tile_px, s_edges=s_edges, n_sectors=n_sectors
    )
    plain, means = _profiles_tile_by_tile(image, pixel_size_A, tile_px, s_edges, n_sectors)
    return dataclasses.replace(prof, power=plain, mean_counts=means)


def _correlation_row_by_row(data, s, grid, optics, weights, envelope=None):
    """One call per data row when each row has its own envelope."""
    if envelope is None or np.ndim(envelope) == 1:
        return weighted_correlation(data, s, grid, optics, weights, envelope)
    rows = [weighted_correlation(data[i : i + 1], s, grid, optics, weights, envelope[i])[0]
            for i in range(len(data))]  # fmt: skip
    return np.stack(rows)


def _aligned_sectors_loop(prof, defocus_A, optics):
    """Each defocus group summed, then each sector read with ``np.interp``, group after group."""
    s = prof.s_invA2
    d_ref = len(defocus_A) / float(np.sum(1.0 / defocus_A))
    n_sectors, n_bins = prof.power.shape[1:]
    aligned = np.zeros((n_sectors, n_bins))
    count = np.zeros(n_bins)
    for group in defocus_groups(defocus_A):
        source = phase_matched_s(s, d_ref, float(np.mean(defocus_A[group])), optics)
        block = prof.power[group].sum(axis=0, dtype=np.float64)
        for sector in range(n_sectors):
            aligned[sector] += np.interp(source, s, block[sector], left=0.0, right=0.0)
        count += len(group) * ((source >= s[0]) & (source <= s[-1]))
    return d_ref, aligned * np.where(count > 0, 1.0 / np.maximum(count, 1.0), 0.0)


def _frame(features, pixel_size_range_A, seed):
    params = draw_realistic(
        np.random.default_rng(seed), features, tilted=True, pixel_size_range_A=pixel_size_range_A
    )
    image, _ = synthesize_realistic((1024, 1440), seed=seed, **params)
    return image, params["pixel_size_A"]


# several starts with drift found and rival starts; one start with drift; a carbon region
FRAMES = [
    (("drift", "low_defocus"), (3.2, 4.8), 3),
    (("drift",), (2.0, 2.4), 1),
    (("carbon",), (2.0, 2.4), 2),
]


def test_interp_rows_is_np_interp_row_by_row():
    rng = np.random.default_rng(0)
    xp = (np.arange(200) + 0.5) * 1.5e-4
    x = xp[None, :] * rng.uniform(0.7, 1.3, (5, 1))
    x[:, 10], x[:, 20], x[0, 30], x[1, 40] = xp[12], xp[-1], xp[0], xp[-1] * 1.5  # edge cases
    fp = rng.normal(size=(5, 3, 200)) * 10.0 ** rng.uniform(-3, 3, (5, 3, 1))
    for x_rows, values in ((x[:, None, :], fp), (x, fp[:, 0])):  # shared and own positions
        got = angle_model.interp_rows(x_rows, xp, values)
        assert np.array_equal(got, _interp_row_by_row(x_rows, xp, values))


def test_interp_matrix_is_the_map_built_from_triplets():
    rng = np.random.default_rng(1)
    s = (np.arange(300) + 0.5) * 1.5e-4
    s_src = s[None, :] * rng.uniform(0.8, 1.25, (24, 1)) - rng.uniform(0.0, 1e-3, (24, 1))
    fast, plain = interp_matrix(s, s_src), _interp_matrix_from_triplets(s, s_src)
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(fast, name), getattr(plain, name)), name
    block = rng.random((24 * 300, 3)).astype(np.float32)
    assert np.array_equal(fast @ block, plain @ block)


@pytest.mark.parametrize(("workers", "batch"), [(1, 16), (2, 3)])
def test_profiles_are_whole_transforms_tile_by_tile(workers, batch):
    image, pixel_size_A = _frame(("stripes",), (0.8, 1.0), 5)  # a band well below Nyquist
    edges = _s_edges(pixel_size_A, 3.5, 40000.0, Optics())
    assert angle_spectra._binning(256, pixel_size_A, tuple(edges), 24)[0] < 129  # columns left
    prof = sector_profiles(
        image, pixel_size_A, tile_px=256, s_edges=edges, n_sectors=24, batch=batch,
        workers=workers,
    )  # fmt: skip
    plain, means = _profiles_tile_by_tile(image, pixel_size_A, 256, edges, 24)
    assert np.array_equal(prof.power, plain)
    assert np.array_equal(prof.mean_counts, means)


def test_one_envelope_per_row_is_the_rows_one_at_a_time():
    optics = Optics()
    rng = np.random.default_rng(2)
    s = np.linspace(0.002, 0.05, 300)
    data = rng.normal(size=(6, 300))
    grid = np.arange(9000.0, 12000.0, 10.0)
    weights = np.where((s > 0.005) & (s < 0.045), 1.0, 0.0)
    envelopes = rng.uniform(0.0, 2.0, (6, 300))
    same = np.broadcast_to(envelopes[0], envelopes.shape)  # no drift: one model for all rows
    for rows in (envelopes, same):
        got = weighted_correlation(data, s, grid, optics, weights, rows)
        assert np.array_equal(got, _correlation_row_by_row(data, s, grid, optics, weights, rows))


def test_aligned_sectors_are_the_group_by_group_loop():
    image, pixel_size_A = _frame(("drift",), (2.0, 2.4), 1)
    optics = Optics()
    edges = _s_edges(pixel_size_A, 3.5, 40000.0, optics)
    prof = sector_profiles(image, pixel_size_A, tile_px=256, s_edges=edges, n_sectors=24)
    rng = np.random.default_rng(3)
    defocus_A = rng.uniform(6000.0, 9000.0, len(prof.centers_A))  # groups of 1-3 tiles
    d_ref, aligned = angle_model._aligned_sectors(prof, defocus_A, optics)
    d_plain, plain = _aligned_sectors_loop(prof, defocus_A, optics)
    assert d_ref == d_plain
    assert np.array_equal(aligned, plain)


@pytest.mark.parametrize(("features", "pixel_size_range_A", "seed"), FRAMES)
def test_estimates_equal_those_of_the_plain_loops(monkeypatch, features, pixel_size_range_A, seed):
    image, pixel_size_A = _frame(features, pixel_size_range_A, seed)
    fast = estimate_tilt(image, pixel_size_A, workers=2)  # tiles and further starts: 2 threads
    with monkeypatch.context() as patch:
        patch.setattr(angle_model, "interp_rows", _interp_row_by_row)
        patch.setattr(angle_model, "_aligned_sectors", _aligned_sectors_loop)
        patch.setattr(angle_model, "weighted_correlation", _correlation_row_by_row)
        for module in (angle_model, angle_steps):
            patch.setattr(module, "interp_matrix", _interp_matrix_from_triplets)
        patch.setattr(angle_steps, "ring_table", lambda *args: None)  # each correlation its own
        patch.setattr(angle, "sector_profiles", _plain_sector_profiles)
        plain = estimate_tilt(image, pixel_size_A, workers=1)
    assert fast.status == plain.status and fast.message == plain.message
    for name, value in fast.as_row().items():
        other = plain.as_row()[name]
        both_nan = isinstance(value, float) and math.isnan(value) and math.isnan(other)
        assert value == other or both_nan, f"{name}: {value!r} != {other!r}"
    assert np.array_equal(fast.patch_defocus_A, plain.patch_defocus_A, equal_nan=True)
    assert np.array_equal(fast.patch_usable, plain.patch_usable)
