"""Accept or discard micrographs from their recorded tilt statistics (no recomputation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from daskmic.tilt.decision import decide
from daskmic.tilt.params import check_max_tilt, check_thresholds


def split(
    table: pd.DataFrame,
    mean_threshold: float,
    std_threshold: float,
    max_tilt_deg: float | None = None,
) -> pd.DataFrame:
    """Re-apply the acceptance rule (:func:`daskmic.tilt.decision.decide`) to a table.

    Failed micrographs (``status == "failed"``, or no statistics) stay failed and are never
    accepted.

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

    def numbers(column: str) -> np.ndarray | None:
        if column not in out.columns:
            return None
        return pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=np.float64)

    accepted, status, reason = decide(
        numbers("tilt_mean_corr"),
        numbers("tilt_std_corr"),
        mean_threshold=mean_threshold,
        std_threshold=std_threshold,
        max_tilt_deg=max_tilt_deg,
        angle_deg=numbers("tilt_angle_deg"),
        failed=(out["status"] == "failed").to_numpy() if "status" in out.columns else None,
    )
    out["discard_reason"] = reason.astype(str)
    out["accepted"] = accepted
    out["status"] = status.astype(str)
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
