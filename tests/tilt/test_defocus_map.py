"""The local-defocus map saved beside a run's outputs gives back the estimate it came from."""

import math

import numpy as np
import pytest

from daskmic.datasets import synthesize_micrograph
from daskmic.tilt.angle import ANGLE_COLUMNS, estimate_tilt
from daskmic.tilt.defocus_map import load_defocus_map, result_from_map, save_defocus_map


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("tilt_deg", [30.0, None])
def test_save_load_rebuild_gives_back_the_result(tmp_path, tilt_deg):
    if tilt_deg is None:  # pure noise: a low-signal result full of NaN
        image = np.random.default_rng(5).normal(size=(1024, 1024))
    else:
        image, _ = synthesize_micrograph(
            (768, 768), pixel_size_A=2.0, phase_std=0.3, defocus_A=15000.0,
            tilt_angle_deg=tilt_deg, tilt_axis_deg=60.0, seed=7,
        )  # fmt: skip
    result = estimate_tilt(image, 2.0)
    assert result.status == ("ok" if tilt_deg else "low_signal")
    save_defocus_map(tmp_path / "map.json", result)
    rebuilt = result_from_map(load_defocus_map(tmp_path / "map.json"))

    row, again = result.as_row(), rebuilt.as_row()
    assert list(again) == list(ANGLE_COLUMNS)
    for name in ANGLE_COLUMNS:
        assert _same(again[name], row[name]), name
    np.testing.assert_array_equal(rebuilt.defocus_gradient, result.defocus_gradient)
    np.testing.assert_array_equal(rebuilt.patch_centers_A, result.patch_centers_A)
    np.testing.assert_array_equal(rebuilt.patch_defocus_A, result.patch_defocus_A)
    np.testing.assert_array_equal(rebuilt.patch_usable, np.asarray(result.patch_usable, bool))
