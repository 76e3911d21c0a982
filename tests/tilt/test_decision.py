"""One accept/discard rule with its reasons: the screen, the unit, the lazy face and select."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import daskmic
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
from daskmic.run.config import RunConfig
from daskmic.tilt.decision import decide
from daskmic.tilt.params import TiltParams
from daskmic.tilt.select import split


def _reference(mean, std, angle, failed, t_mean, t_std, max_tilt):
    """The rule written out per micrograph, in plain Python."""
    if failed or math.isnan(mean) or math.isnan(std):
        return False, "failed", ""
    by_correlation = not (mean > t_mean and std < t_std)
    by_angle = max_tilt is not None and angle > max_tilt  # NaN > x is False
    reason = ", ".join(r for r, on in (("correlation", by_correlation), ("angle", by_angle)) if on)
    accepted = not (by_correlation or by_angle)
    return accepted, "accepted" if accepted else "discarded", reason


def test_the_rule_matches_its_statement_at_every_boundary():
    rng = np.random.default_rng(0)
    mean = np.r_[0.5, 0.5000001, 0.7, 0.7, np.nan, 0.9, rng.uniform(0, 1, 40)]
    std = np.r_[0.05, 0.05, 0.1, 0.0999999, 0.01, np.nan, rng.uniform(0, 0.2, 40)]
    angle = np.r_[10.0, 20.0, 20.0000001, np.nan, 5.0, 5.0, rng.uniform(0, 60, 40)]
    failed = np.zeros(len(mean), bool)
    failed[-1] = True
    for max_tilt in (None, 20.0):
        accepted, status, reason = decide(
            mean,
            std,
            mean_threshold=0.5,
            std_threshold=0.1,
            max_tilt_deg=max_tilt,
            angle_deg=angle,
            failed=failed,
        )
        expected = [
            _reference(*values, 0.5, 0.1, max_tilt)
            for values in zip(mean, std, angle, failed, strict=True)
        ]
        assert list(zip(accepted, status, reason, strict=True)) == expected


def test_a_maximum_tilt_without_angles_is_refused():
    with pytest.raises(ValueError, match="tilt_angle_deg"):
        decide([0.9], [0.01], mean_threshold=0.5, std_threshold=0.1, max_tilt_deg=20.0)


@pytest.fixture(scope="module")
def tilted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decision")
    for seed, tilt in enumerate((0.0, 45.0)):
        image, _ = synthesize_micrograph(
            (1024, 1024), pixel_size_A=2.0, phase_std=0.3, tilt_angle_deg=tilt, seed=seed
        )
        write_mrc(folder / f"tilt_{tilt:02.0f}.mrc", image, 2.0)
    return [str(p) for p in sorted(folder.glob("*.mrc"))]


@pytest.mark.slow
def test_every_face_gives_the_same_decision_and_reason(tilted, tmp_path, client):
    params = {"mean_threshold": 0.0, "std_threshold": 10.0, "max_tilt_deg": 20.0}
    config = RunConfig(tilt=TiltParams(estimate_angle=True, **params))
    summary = daskmic.run_batch(tilted, tmp_path / "out", config, client=client)
    table = pd.read_csv(tmp_path / "out" / "tilt.csv", keep_default_na=False)
    lazy = daskmic.tilt_analysis(
        daskmic.open_micrographs(tilted), estimate_angle=True, **params
    ).compute()
    resplit = split(table, **params)
    decisions = {
        "tables": table[["status", "discard_reason"]].values.tolist(),
        "run summary": [[r["status"], r.get("discard_reason")] for r in summary.rows],
        "lazy face": np.stack([lazy.status.values, lazy.discard_reason.values], 1).tolist(),
        "select": resplit[["status", "discard_reason"]].values.tolist(),
    }
    assert decisions["tables"] == [["accepted", ""], ["discarded", "angle"]]
    for face, decided in decisions.items():
        assert decided == decisions["tables"], face
    assert summary.counts() == {"accepted": 1, "discarded": 1}
