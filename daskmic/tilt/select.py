"""Accept or discard micrographs from their recorded tilt statistics (no recomputation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from daskmic.tilt.params import check_max_tilt, check_thresholds


def split(
    table: pd.DataFrame,
    mean_threshold: float,
    std_threshold: float,
    max_tilt_deg: float | None = None,
) -> pd.DataFrame:
    """Re-apply the acceptance thresholds to a table of tilt statistics.

    A micrograph is accepted iff ``tilt_mean_corr > mean_threshold`` and
    ``tilt_std_corr < std_threshold``, both strict (the protocol's ``Scalar`` comparisons); a
    value equal to a threshold is discarded. Failed micrographs (``status == "failed"``, or no
    statistics) stay failed and are never accepted.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``tilt_mean_corr`` and ``tilt_std_corr``; ``status`` if present.
    mean_threshold : float
        In [0, 1].
    std_threshold : float
        Finite, > 0.
    max_tilt_deg : float, optional
        Also discard micrographs whose ``tilt_angle_deg`` is strictly above it (a NaN angle,
        i.e. too little signal to tell, does not discard).

    Returns
    -------
    pandas.DataFrame
        A copy with ``accepted`` (bool), ``status`` (``"accepted"``, ``"discarded"`` or
        ``"failed"``) and ``discard_reason`` (``""``, ``"correlation"``, ``"angle"`` or
        ``"correlation, angle"``) set.
    """
    check_thresholds(mean_threshold, std_threshold)
    check_max_tilt(max_tilt_deg, estimate_angle=True)
    missing = {"tilt_mean_corr", "tilt_std_corr"} - set(table.columns)
    if missing:
        raise ValueError(f"the table lacks the tilt statistics columns {sorted(missing)}")
    out = table.copy()
    mean = pd.to_numeric(out["tilt_mean_corr"], errors="coerce").to_numpy(dtype=np.float64)
    std = pd.to_numeric(out["tilt_std_corr"], errors="coerce").to_numpy(dtype=np.float64)
    failed = np.isnan(mean) | np.isnan(std)
    if "status" in out.columns:
        failed |= (out["status"] == "failed").to_numpy()
    by_correlation = ~failed & ~((mean > mean_threshold) & (std < std_threshold))
    by_angle = np.zeros(len(out), dtype=bool)
    if max_tilt_deg is not None:
        if "tilt_angle_deg" not in out.columns:
            raise ValueError("max_tilt_deg needs the tilt_angle_deg column (--angle)")
        angle = pd.to_numeric(out["tilt_angle_deg"], errors="coerce").to_numpy(np.float64)
        by_angle = ~failed & (angle > max_tilt_deg)
    accepted = ~failed & ~by_correlation & ~by_angle
    reasons = np.array(["", "correlation", "angle", "correlation, angle"])
    out["discard_reason"] = reasons[by_correlation.astype(int) + 2 * by_angle.astype(int)]
    out["accepted"] = accepted
    out["status"] = np.where(failed, "failed", np.where(accepted, "accepted", "discarded"))
    return out


def discard_reasons(
    row: Mapping[str, Any],
    mean_threshold: float,
    std_threshold: float,
    max_tilt_deg: float | None = None,
) -> list[str]:
    """Why one micrograph's statistics fail the acceptance rule of :func:`split`.

    Parameters
    ----------
    row : mapping
        ``tilt_mean_corr`` and ``tilt_std_corr``; ``tilt_angle_deg`` with ``max_tilt_deg``.
    mean_threshold, std_threshold, max_tilt_deg : float
        As in :func:`split`.

    Returns
    -------
    list of str
        One phrase per condition that fails, with the value and the threshold (empty for an
        accepted micrograph, or one without statistics).
    """
    mean, std = float(row["tilt_mean_corr"]), float(row["tilt_std_corr"])
    if np.isnan(mean) or np.isnan(std):
        return []
    reasons = []
    if not mean > mean_threshold:
        reasons.append(f"mean correlation {mean:.3f} <= {mean_threshold:g}")
    if not std < std_threshold:
        reasons.append(f"std of the correlations {std:.3f} >= {std_threshold:g}")
    angle = float(row.get("tilt_angle_deg", np.nan))
    if max_tilt_deg is not None and angle > max_tilt_deg:
        reasons.append(f"tilt {angle:.1f}° > {max_tilt_deg:g}°")
    return reasons
