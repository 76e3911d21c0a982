"""The local-defocus map and its plot, from a result built by hand."""

import dataclasses
import math

import matplotlib
import numpy as np
import pytest

from daskmic.tilt.angle import ANGLE_COLUMNS, TiltAngleResult
from daskmic.tilt.angle_plot import defocus_map, plot_local_defocus

matplotlib.use("Agg")


def _result(status="ok"):
    xs, ys = np.array([-300.0, -100.0, 100.0, 300.0]), np.array([-200.0, 0.0, 200.0])
    centers = np.array([(x, y) for y in ys for x in xs])
    defocus = 15000.0 + 0.2 * centers[:, 0] - 0.1 * centers[:, 1]
    usable = np.ones(len(centers), bool)
    usable[5] = False
    return TiltAngleResult(
        tilt_angle_deg=math.degrees(math.atan(math.hypot(0.2, 0.1))),
        tilt_axis_deg=(math.degrees(math.atan2(-0.1, 0.2)) - 90) % 180,
        tilt_direction_deg=math.degrees(math.atan2(-0.1, 0.2)) % 360,
        tilt_angle_err_deg=0.3,
        defocus_mean_A=15000.0,
        astigmatism_A=0.0,
        astigmatism_angle_deg=0.0,
        usable_patches=11,
        total_patches=12,
        plane_residual_A=0.0,
        status=status,
        defocus_gradient=(0.2, -0.1),
        patch_centers_A=centers,
        patch_defocus_A=defocus,
        patch_usable=usable,
    )


def test_defocus_map_puts_each_tile_on_its_grid_cell():
    x, y, values = defocus_map(_result())
    np.testing.assert_array_equal(x, [-300.0, -100.0, 100.0, 300.0])
    np.testing.assert_array_equal(y, [-200.0, 0.0, 200.0])
    expected = 15000.0 + 0.2 * x[None, :] - 0.1 * y[:, None]
    expected[1, 1] = np.nan  # tile 5 (row 1, column 1) is unusable
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("status", ["ok", "uncertain", "low_signal"])
def test_plot_shows_the_map_and_the_plane(status):
    import matplotlib.pyplot as plt

    result = _result(status)
    if status == "low_signal":  # no angle: NaN, as the estimator gives it
        result = dataclasses.replace(result, tilt_angle_deg=math.nan, message="no rings")
    ax = plot_local_defocus(result)
    shown = ax.images[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(shown, np.nan), defocus_map(result)[2])
    answered = status != "low_signal"
    assert (len(ax.collections) > 0) == answered  # the plane's contours
    assert ("tilt" in ax.get_title()) == answered
    assert ax.get_title().startswith(status) == (status != "ok")
    plt.close(ax.figure)


def test_row_columns_are_the_published_list():
    assert tuple(_result().as_row()) == ANGLE_COLUMNS
