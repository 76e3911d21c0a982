"""Accept or discard micrographs from their recorded tilt statistics (no recomputation)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from daskmic.tilt.params import check_thresholds


def split(table: pd.DataFrame, mean_threshold: float, std_threshold: float) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
        A copy with ``accepted`` (bool) and ``status`` (``"accepted"``, ``"discarded"`` or
        ``"failed"``) set.
    """
    check_thresholds(mean_threshold, std_threshold)
    missing = {"tilt_mean_corr", "tilt_std_corr"} - set(table.columns)
    if missing:
        raise ValueError(f"the table lacks the tilt statistics columns {sorted(missing)}")
    out = table.copy()
    mean = pd.to_numeric(out["tilt_mean_corr"], errors="coerce").to_numpy(dtype=np.float64)
    std = pd.to_numeric(out["tilt_std_corr"], errors="coerce").to_numpy(dtype=np.float64)
    failed = np.isnan(mean) | np.isnan(std)
    if "status" in out.columns:
        failed |= (out["status"] == "failed").to_numpy()
    accepted = ~failed & (mean > mean_threshold) & (std < std_threshold)
    out["accepted"] = accepted
    out["status"] = np.where(failed, "failed", np.where(accepted, "accepted", "discarded"))
    return out
