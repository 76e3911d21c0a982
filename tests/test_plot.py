"""daskmic.plot: the data each plot shows (not its pixels), against plain numpy references."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import daskmic.report.plot as dmp
from daskmic.report.plot.data import downsample_factor, montage_grid
from daskmic.report.plot.png import data_uri, figure_png

MEAN_T, STD_T = 0.5, 0.1


@pytest.fixture
def stats() -> pd.DataFrame:
    """Twelve micrographs: random statistics, two exactly on a threshold, two failed."""
    rng = np.random.default_rng(7)
    n = 12
    table = pd.DataFrame(
        {
            "micrograph": [f"mic_{i:03d}" for i in range(n)],
            "status": ["accepted"] * n,
            "tilt_mean_corr": rng.uniform(0.2, 0.9, n),
            "tilt_std_corr": rng.uniform(0.01, 0.2, n),
            "tilt_min_corr": rng.uniform(0.0, 0.5, n),
            "tilt_max_corr": rng.uniform(0.5, 1.0, n),
        }
    )
    table.loc[0, ["tilt_mean_corr", "tilt_std_corr"]] = [MEAN_T, 0.05]  # on the mean line
    table.loc[1, ["tilt_mean_corr", "tilt_std_corr"]] = [0.8, STD_T]  # on the std line
    table.loc[2, ["tilt_mean_corr", "tilt_std_corr"]] = [0.8, 0.01]  # accepted for sure
    table.loc[[10, 11], "status"] = "failed"
    table.loc[11, list(dmp.TILT_STATISTICS)] = np.nan
    return table


def _reference_classes(table: pd.DataFrame) -> np.ndarray:
    accepted = (table["tilt_mean_corr"] > MEAN_T) & (table["tilt_std_corr"] < STD_T)
    return np.where(
        table["status"] == "failed", "failed", np.where(accepted, "accepted", "discarded")
    )


def _block_mean_reference(image: np.ndarray, f: int) -> np.ndarray:
    ny, nx = image.shape[0] // f, image.shape[1] // f
    return image[: ny * f, : nx * f].reshape(ny, f, nx, f).mean(axis=(1, 3))


def test_block_mean_matches_reshaped_mean_and_skips_nan():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(103, 77)).astype(np.float32)
    got = dmp.block_mean(image, 4)
    want = _block_mean_reference(image.astype(np.float64), 4)
    assert got.shape == (25, 19) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * want.std())

    image = np.arange(16.0).reshape(4, 4)
    image[0, 0] = np.nan
    image[2:, 2:] = np.nan
    got = dmp.block_mean(image, 2)
    assert got[0, 0] == pytest.approx((1 + 4 + 5) / 3)
    assert np.isnan(got[1, 1])
    assert got[0, 1] == pytest.approx((2 + 3 + 6 + 7) / 4)


@pytest.mark.parametrize("factor", [0, 2.0, 200])
def test_block_mean_refuses_bad_factors(factor):
    with pytest.raises(ValueError, match="factor"):
        dmp.block_mean(np.zeros((100, 100)), factor)


def test_thumbnail_is_downsampled_and_clipped_at_the_percentiles():
    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, size=(500, 300))
    thumb = dmp.thumbnail_data(image, max_px=128, percentiles=(2.0, 98.0))
    factor = downsample_factor(image.shape, 128)
    assert factor == 4 and thumb.shape == (125, 75) and thumb.dtype == np.float32
    small = _block_mean_reference(image, 4)
    low, high = np.percentile(small, [2.0, 98.0])
    want = np.clip((small - low) / (high - low), 0, 1)
    np.testing.assert_allclose(thumb, want, atol=1e-5)
    assert thumb.min() == 0.0 and thumb.max() == 1.0
    assert (thumb == 0).mean() == pytest.approx(0.02, abs=0.005)
    assert (thumb == 1).mean() == pytest.approx(0.02, abs=0.005)


def test_thumbnail_keeps_row_zero_first_and_is_drawn_at_the_bottom():
    ramp = np.repeat(np.arange(256.0)[:, None], 64, axis=1)  # row 0 darkest
    thumb = dmp.thumbnail_data(ramp, max_px=64, percentiles=(0.0, 100.0))
    assert thumb[0].max() == 0.0 and thumb[-1].min() == 1.0
    ax = dmp.show_image(ramp, max_px=64, percentiles=(0.0, 100.0))
    (drawn,) = ax.images
    assert drawn.origin == "lower"
    np.testing.assert_array_equal(np.asarray(drawn.get_array()), thumb)
    left, right, bottom, top = drawn.get_extent()
    assert bottom < top, "row 0 (first array row) is at the bottom of the axes"


def test_show_image_uses_angstrom_coordinates_of_a_dataarray():
    image = xr.DataArray(
        np.random.default_rng(2).normal(size=(40, 60)),
        dims=("y", "x"),
        coords={"y": np.arange(40) * 2.0, "x": 100 + np.arange(60) * 2.0},
    )
    ax = dmp.show_image(image)
    assert ax.images[0].get_extent() == pytest.approx((99.0, 219.0, -1.0, 79.0))
    assert "Å" in ax.get_xlabel()


def test_contrast_limits_edge_cases():
    assert dmp.contrast_limits(np.full((4, 4), 3.0)) == (3.0, 4.0)
    assert dmp.contrast_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)
    values = np.arange(101.0)
    assert dmp.contrast_limits(values, (10, 90)) == pytest.approx((10.0, 90.0))
    for bad in ((50, 50), (-1, 50), (10, 101)):
        with pytest.raises(ValueError, match="percentiles"):
            dmp.contrast_limits(values, bad)


def test_before_after_has_two_thumbnail_panels():
    rng = np.random.default_rng(3)
    fig = dmp.before_after(rng.normal(size=(300, 200)), rng.normal(size=(140, 90)), max_px=100)
    shapes = [ax.images[0].get_array().shape for ax in fig.axes]
    assert shapes == [(100, 66), (70, 45)]
    assert [ax.get_title() for ax in fig.axes] == ["before", "after"]


def test_montage_places_tiles_in_reading_order_with_nan_gaps():
    rng = np.random.default_rng(4)
    images = [rng.normal(size=(9, 9)) for _ in range(4)] + [rng.normal(size=(5, 7))]
    out, origins = dmp.montage(images, columns=3, gap_px=2, percentiles=(0, 100))
    assert montage_grid(5, 3) == (2, 3)
    assert out.shape == (2 * 9 + 2, 3 * 9 + 2 * 2)
    # displayed with row 0 at the bottom, the first row of tiles is the top band of the array
    assert origins == [(11, 0), (11, 11), (11, 22), (0, 0), (0, 11)]
    for image, (y0, x0) in zip(images, origins, strict=True):
        tile = out[y0 : y0 + image.shape[0], x0 : x0 + image.shape[1]]
        want = (image - image.min()) / (image.max() - image.min())
        np.testing.assert_allclose(tile, want, atol=1e-6)
    assert np.isnan(out[9:11]).all() and np.isnan(out[:, 9:11]).all()
    assert np.isnan(out[0:9, 18:20]).all(), "the small tile is padded with NaN"
    assert np.isnan(out[0:9, 22:]).all(), "the empty cell is NaN"


def test_psd_montage_labels_tiles_with_dataarray_names():
    stack = xr.DataArray(
        np.random.default_rng(5).normal(size=(3, 15, 15)),
        dims=("micrograph", "v", "u"),
        coords={"micrograph": ["a", "b", "c"]},
    )
    ax = dmp.psd_montage(stack)
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    assert ax.images[0].get_array().shape == (2 * 15 + 2, 2 * 15 + 2)


def test_scatter_data_classes_match_the_strict_rule(stats):
    points = dmp.tilt_scatter_data(stats, MEAN_T, STD_T)
    want = _reference_classes(stats)
    for status in dmp.STATUSES:
        member = want == status
        assert points[status]["count"] == member.sum()
        drawn = stats[member & stats["tilt_mean_corr"].notna().to_numpy()]
        np.testing.assert_array_equal(points[status]["x"], drawn["tilt_mean_corr"])
        np.testing.assert_array_equal(points[status]["y"], drawn["tilt_std_corr"])
        assert list(points[status]["micrograph"]) == list(drawn["micrograph"])
    assert "mic_000" in points["discarded"]["micrograph"], "mean == threshold is discarded"
    assert "mic_001" in points["discarded"]["micrograph"], "std == threshold is discarded"
    assert "mic_002" in points["accepted"]["micrograph"]
    assert points["failed"]["count"] == 2 and len(points["failed"]["x"]) == 1


def test_scatter_draws_each_class_and_the_threshold_lines(stats):
    ax = dmp.tilt_scatter(stats, mean_threshold=MEAN_T, std_threshold=STD_T)
    points = dmp.tilt_scatter_data(stats, MEAN_T, STD_T)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == [f"{s} ({points[s]['count']})" for s in dmp.STATUSES]
    for status, collection in zip(dmp.STATUSES, ax.collections, strict=True):
        offsets = np.asarray(collection.get_offsets())
        assert len(offsets) == len(points[status]["x"])
        np.testing.assert_array_equal(offsets.reshape(-1, 2)[:, 0], points[status]["x"])
    vertical, horizontal = ax.lines
    assert list(vertical.get_xdata()) == [MEAN_T, MEAN_T]
    assert list(horizontal.get_ydata()) == [STD_T, STD_T]


def test_scatter_thresholds_come_from_a_dataset_or_an_output_folder(stats, tmp_path):
    ds = xr.Dataset(
        {c: ("micrograph", stats[c].to_numpy()) for c in ["status", *dmp.TILT_STATISTICS]},
        coords={"micrograph": stats["micrograph"].to_numpy()},
        attrs={"tilt_mean_threshold": 0.6, "tilt_std_threshold": 0.05},
    )
    assert list(dmp.as_table(ds)["micrograph"]) == list(stats["micrograph"])
    ax = dmp.tilt_scatter(ds)
    assert list(ax.lines[0].get_xdata()) == [0.6, 0.6]
    assert list(ax.lines[1].get_ydata()) == [0.05, 0.05]

    stats.to_csv(tmp_path / "tilt.csv", index=False)
    (tmp_path / ".daskmic").mkdir()
    parameters = {"tilt": {"mean_threshold": 0.7, "std_threshold": 0.15}}
    (tmp_path / ".daskmic" / "parameters.json").write_text(
        json.dumps({"hash": "x", "parameters": parameters})
    )
    ax = dmp.tilt_scatter(tmp_path)
    assert list(ax.lines[0].get_xdata()) == [0.7, 0.7]
    assert ax.get_legend_handles_labels()[1][2] == "failed (2)"
    with pytest.raises(ValueError, match="mean_threshold"):
        dmp.tilt_scatter(stats)


def test_histogram_counts_per_status_match_numpy(stats):
    edges, counts = dmp.histogram_data(stats, "tilt_mean_corr", bins=7)
    values = stats["tilt_mean_corr"].to_numpy()
    finite = np.isfinite(values)
    np.testing.assert_allclose(edges, np.linspace(values[finite].min(), values[finite].max(), 8))
    assert list(counts) == ["accepted", "failed"]
    for status, got in counts.items():
        member = finite & (stats["status"] == status).to_numpy()
        np.testing.assert_array_equal(got, np.histogram(values[member], bins=edges)[0])
    assert sum(c.sum() for c in counts.values()) == finite.sum()


def test_histogram_of_a_constant_statistic_without_status():
    edges, counts = dmp.histogram_data(pd.DataFrame({"v": [2.0, 2.0, np.nan]}), "v", bins=4)
    np.testing.assert_allclose(edges, [1.5, 1.75, 2.0, 2.25, 2.5])
    np.testing.assert_array_equal(counts["all"], [0, 0, 2, 0])
    with pytest.raises(ValueError, match="no column"):
        dmp.histogram_data(pd.DataFrame({"v": [1.0]}), "w")


def test_statistic_histograms_stack_the_statuses_and_mark_thresholds(stats):
    fig = dmp.statistic_histograms(stats, bins=5, mean_threshold=MEAN_T, std_threshold=STD_T)
    assert [ax.get_xlabel() for ax in fig.axes] == list(dmp.TILT_STATISTICS)
    mean_ax = fig.axes[0]
    edges, counts = dmp.histogram_data(stats, "tilt_mean_corr", bins=5)
    tops = list(mean_ax.patches)
    assert len(tops) == len(counts)
    top = np.asarray(tops[-1].get_path().vertices)[:, 1].max()
    assert top == max(sum(counts.values()))
    assert [list(line.get_xdata()) for line in mean_ax.lines] == [[MEAN_T, MEAN_T]]
    assert [list(line.get_xdata()) for line in fig.axes[1].lines] == [[STD_T, STD_T]]
    assert len(fig.axes[2].lines) == 0


def test_data_uri_embeds_png_bytes():
    assert data_uri(b"abc") == "data:image/png;base64,YWJj"


def test_figure_png_carries_no_software_tag():
    ax = dmp.tilt_scatter(
        pd.DataFrame({"micrograph": ["a"], "tilt_mean_corr": [0.7], "tilt_std_corr": [0.02]}),
        mean_threshold=0.5,
        std_threshold=0.1,
    )
    png = figure_png(ax.figure)
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"://" not in png
