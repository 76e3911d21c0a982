"""Re-splitting recorded statistics: strict thresholds, failed rows stay failed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from daskmic.tilt.select import discard_reasons, split


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "micrograph": ["a", "b", "c", "d", "e", "f"],
            "status": ["discarded", "accepted", "accepted", "discarded", "failed", "accepted"],
            "tilt_mean_corr": [0.9, 0.5, 0.8, 0.3, 0.95, np.nan],
            "tilt_std_corr": [0.05, 0.05, 0.1, 0.02, 0.01, 0.01],
            "error": ["", "", "", "", "unreadable", ""],
        }
    )


def test_split_is_strict_and_keeps_failures():
    out = split(_table(), 0.5, 0.1)
    # b: mean equal to the threshold; c: std equal to the threshold -> both discarded
    assert out["status"].tolist() == [
        "accepted",
        "discarded",
        "discarded",
        "discarded",
        "failed",
        "failed",
    ]
    assert out["accepted"].tolist() == [True, False, False, False, False, False]
    assert out["accepted"].dtype == bool
    assert out["error"].tolist() == _table()["error"].tolist()


def test_split_with_other_thresholds_and_without_status():
    table = _table().drop(columns="status")
    out = split(table, 0.25, 0.11)
    assert out["status"].tolist() == [
        "accepted",
        "accepted",
        "accepted",
        "accepted",
        "accepted",
        "failed",
    ]
    assert "status" not in table.columns  # the input is not modified


def test_split_validates():
    with pytest.raises(ValueError, match="mean_threshold"):
        split(_table(), 1.5, 0.1)
    with pytest.raises(ValueError, match="tilt_std_corr"):
        split(_table().drop(columns="tilt_std_corr"), 0.5, 0.1)


def test_discard_reasons_name_each_failed_condition_as_split_decides():
    table = _table().assign(tilt_angle_deg=[10.0, 40.0, 35.5, 5.0, np.nan, 1.0])
    decided = split(table, 0.5, 0.1, max_tilt_deg=30.0)
    reasons = [discard_reasons(row, 0.5, 0.1, 30.0) for row in table.to_dict("records")]
    assert [bool(r) for r in reasons] == (decided["status"] == "discarded").tolist()
    assert reasons[0] == []
    assert reasons[1] == ["mean correlation 0.500 <= 0.5", "tilt 40.0° > 30°"]
    assert reasons[2] == ["std of the correlations 0.100 >= 0.1", "tilt 35.5° > 30°"]
    assert reasons[3] == ["mean correlation 0.300 <= 0.5"]
    assert reasons[5] == []  # no statistics: failed, not discarded
