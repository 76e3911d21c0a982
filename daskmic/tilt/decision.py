"""Accept or discard: the one rule, with its reasons, for every face and for ``select``.

A micrograph is accepted iff ``tilt_mean_corr > mean_threshold`` and
``tilt_std_corr < std_threshold``, both strict (the protocol's comparisons: a value equal to a
threshold is discarded), and, when a maximum tilt is given, its estimated ``tilt_angle_deg`` is
not above it (a NaN angle, too little signal to tell, does not discard). A micrograph without
statistics has failed: it is neither accepted nor discarded.

Used by the screen of one micrograph (:func:`daskmic.tilt.screen.screen_windows`), the
production unit (with the angle), the lazy face (:func:`daskmic.tilt_analysis`) and the split of
recorded statistics (:func:`daskmic.tilt.select.split`, :func:`daskmic.select`). numpy only.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

REASONS: Final = ("", "correlation", "angle", "correlation, angle")
"""``discard_reason`` by criterion: none, the correlations, the angle, both."""

STATUSES: Final = ("accepted", "discarded", "failed")


def decide(
    mean: Any,
    std: Any,
    *,
    mean_threshold: float,
    std_threshold: float,
    max_tilt_deg: float | None = None,
    angle_deg: Any = None,
    failed: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the acceptance rule element-wise.

    Parameters
    ----------
    mean, std : array-like of float
        ``tilt_mean_corr`` and ``tilt_std_corr``; NaN where a micrograph has none.
    mean_threshold, std_threshold : float
        Accept when ``mean > mean_threshold`` and ``std < std_threshold``.
    max_tilt_deg : float, optional
        Also discard when ``angle_deg > max_tilt_deg``.
    angle_deg : array-like of float, optional
        ``tilt_angle_deg``; needed with ``max_tilt_deg``.
    failed : array-like of bool, optional
        Micrographs that failed for another reason.

    Returns
    -------
    accepted : numpy.ndarray of bool
    status : numpy.ndarray of object
        ``"accepted"``, ``"discarded"`` or ``"failed"``.
    discard_reason : numpy.ndarray of object
        One of :data:`REASONS` (``""`` unless discarded).
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    bad = np.isnan(mean) | np.isnan(std)
    if failed is not None:
        bad |= np.asarray(failed, dtype=bool)
    by_correlation = ~bad & ~((mean > mean_threshold) & (std < std_threshold))
    by_angle = np.zeros_like(bad)
    if max_tilt_deg is not None:
        if angle_deg is None:
            raise ValueError("max_tilt_deg needs the tilt_angle_deg column (--angle)")
        by_angle = ~bad & (np.asarray(angle_deg, dtype=np.float64) > max_tilt_deg)
    accepted = ~bad & ~by_correlation & ~by_angle
    code = np.where(bad, 2, np.where(accepted, 0, 1))
    status = np.asarray(STATUSES, dtype=object)[code]
    reason = np.asarray(REASONS, dtype=object)[by_correlation.astype(int) + 2 * by_angle]
    return accepted, status, reason
