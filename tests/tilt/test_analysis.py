"""``tilt_analysis``: lazy == eager, corner-only reads, failures alone, a real LocalCluster."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster

from daskmic.tilt.analysis import PAIR_LABELS, tilt_analysis
from daskmic.tilt.params import TiltParams
from daskmic.tilt.screen import screen_micrograph

SHAPE = (700, 760)  # automatic window: 256 px


class CountingReader:
    """A lazy (micrograph, y, x) array-like that records every region it is asked for."""

    def __init__(self, stack: np.ndarray) -> None:
        self.stack = stack
        self.shape, self.dtype, self.ndim = stack.shape, stack.dtype, stack.ndim
        self.reads: list[tuple[slice, ...]] = []
        self._lock = threading.Lock()

    def __getitem__(self, key):
        with self._lock:
            self.reads.append(key)
        return self.stack[key]


def _stack(n: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    rings = np.cos(np.hypot(y - 350.0, x - 380.0) ** 2 / 900.0)  # some radial structure
    return np.stack([rings + rng.normal(scale=1.0, size=SHAPE) for _ in range(n)]).astype(
        np.float32
    )


def _mics(data, pixel_sizes) -> xr.DataArray:
    names = [f"mic{i}" for i in range(len(pixel_sizes))]
    coords = {
        "micrograph": names,
        "path": ("micrograph", [f"/data/{n}.mrc" for n in names]),
        "pixel_size_A": ("micrograph", list(pixel_sizes)),
    }
    return xr.DataArray(data, dims=("micrograph", "y", "x"), coords=coords)


def _assert_matches_eager(row: xr.Dataset, image: np.ndarray, pixel_size_A: float, params):
    eager = screen_micrograph(image, pixel_size_A, params)
    reference = eager.correlations
    assert np.max(np.abs(row.tilt_correlations.values - reference)) <= 1e-5 * np.std(reference)
    assert float(row.tilt_mean_corr) == pytest.approx(eager.mean, abs=1e-12)
    assert float(row.tilt_std_corr) == pytest.approx(eager.std, abs=1e-12)
    assert bool(row.accepted) == eager.accepted
    assert str(row.status.values) == eager.status
    assert str(row.error.values) == ""
    assert int(row.window_size_px) == eager.window_size_px
    assert int(row.sub_window_px) == eager.sub_window_px
    assert float(row.band_limit_A) == pytest.approx(eager.band_limit_A)
    edge = eager.psd_summary.shape[0]
    summary = row.psd_summary.values
    np.testing.assert_array_equal(summary[:edge, :edge], eager.psd_summary)
    assert np.isnan(summary[edge:]).all() and np.isnan(summary[:, edge:]).all()


@pytest.mark.parametrize("compat", [False, True])
def test_lazy_equals_eager_and_reads_only_the_corners(compat):
    stack = _stack()
    reader = CountingReader(stack)
    data = da.from_array(reader, chunks=(1, *SHAPE), asarray=False)
    pixel_sizes = [1.0, 1.0, 1.5]  # sub-windows 85, 85 and 128 px
    qc = tilt_analysis(_mics(data, pixel_sizes), xmipp_compat=compat)
    assert isinstance(qc.tilt_correlations.data, da.Array)
    assert reader.reads == [] or all(
        k[0].stop - k[0].start == 0 for k in reader.reads
    )  # nothing but dask's empty metadata probes before compute
    out = qc.compute()
    params = TiltParams(xmipp_compat=compat)
    for i, pixel_size_A in enumerate(pixel_sizes):
        _assert_matches_eager(out.isel(micrograph=i), stack[i], pixel_size_A, params)
    assert out.psd_summary.shape == (3, 2 * 128 - 1, 2 * 128 - 1)
    assert list(out.pair.values) == list(PAIR_LABELS)
    assert out.pixel_size_A.values.tolist() == pixel_sizes
    assert out.path.values[1] == "/data/mic1.mrc"
    real_reads = [k for k in reader.reads if k[0].stop > k[0].start]
    assert len(real_reads) == 4 * len(pixel_sizes)  # four corners per micrograph, once each
    widest = 257 if compat else 256
    assert all(k[1].stop - k[1].start <= widest for k in real_reads)
    assert all(k[2].stop - k[2].start <= widest for k in real_reads)


def test_a_failing_micrograph_fails_alone():
    stack = _stack(4)
    stack[1, 10, 10] = np.nan  # in a corner
    stack[2] = 1.0  # constant
    qc = tilt_analysis(_mics(da.from_array(stack, chunks=(1, *SHAPE)), [1.0, 1.0, 1.0, 0.2]))
    out = qc.compute()
    assert out.status.values.tolist()[:3] == ["discarded", "failed", "failed"]
    assert out.status.values[3] == "failed"  # 0.2 Å pixels: sub-window 17 px, too coarse
    assert "NaN or Inf" in out.error.values[1]
    assert "constant" in out.error.values[2]
    assert "too coarse" in out.error.values[3]
    assert out.error.values[0] == ""
    assert not out.accepted.values[1:].any()
    assert np.isnan(out.tilt_correlations.values[1:]).all()
    assert np.isnan(out.psd_summary.values[1:]).all()
    assert int(out.window_size_px.values[1]) == 256 and int(out.sub_window_px.values[1]) == 0
    _assert_matches_eager(out.isel(micrograph=0), stack[0], 1.0, TiltParams())


def test_micrographs_too_small_fail_without_an_exception():
    small = np.random.default_rng(0).normal(size=(2, 600, 600))
    out = tilt_analysis(_mics(small, [1.0, 1.0])).compute()  # numpy-backed input
    assert out.status.values.tolist() == ["failed", "failed"]
    assert "too small" in out.error.values[0]
    assert out.psd_summary.shape == (2, 0, 0)


def test_usage_errors_are_raised_before_any_work():
    reader = CountingReader(_stack(1))
    mics = _mics(da.from_array(reader, chunks=(1, *SHAPE), asarray=False), [1.0])
    with pytest.raises(ValueError, match="resolution_A=0.5 suits no micrograph"):
        tilt_analysis(mics, resolution=0.5)
    with pytest.raises(ValueError, match="mean_threshold"):
        tilt_analysis(mics, mean_threshold=2.0)
    with pytest.raises(ValueError, match="window_size=1024 px fits no micrograph"):
        tilt_analysis(mics, window_size=1024)
    with pytest.raises(ValueError, match="pixel_size_A"):
        tilt_analysis(mics.drop_vars("pixel_size_A"))
    assert all(k[0].stop == k[0].start for k in reader.reads)


@pytest.mark.slow
def test_runs_on_a_distributed_local_cluster():
    stack = _stack(2, seed=1)
    mics = _mics(da.from_array(stack, chunks=(1, *SHAPE)), [1.0, 1.2])
    qc = tilt_analysis(mics, window_size=300, resolution=3.0)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        out = qc.compute()
    params = TiltParams(window_size=300)
    for i, pixel_size_A in enumerate([1.0, 1.2]):
        _assert_matches_eager(out.isel(micrograph=i), stack[i], pixel_size_A, params)
