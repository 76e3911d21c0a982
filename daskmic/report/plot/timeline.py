"""Counts over time: completions per status and arrivals in time bins, and rates per minute.

Pure functions of timestamps (seconds since the epoch), for the live QC page
(``daskmic.report.live``); tested against plain counting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BIN_WIDTHS_S = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
"""Widths of the time bins of the counts over time: the smallest giving at most MAX_BINS."""
MAX_BINS = 40
RATE_WINDOW_S = 600.0
"""The throughput and arrival rate are taken over the last ten minutes (or since the start)."""


@dataclass(frozen=True)
class Timeline:
    """Counts per time bin: ``counts[status][i]`` completed in ``[edges_s[i], edges_s[i+1])``."""

    edges_s: np.ndarray
    counts: dict[str, np.ndarray]
    arrivals: np.ndarray

    @property
    def width_s(self) -> float:
        """The bins' width, seconds."""
        return float(self.edges_s[1] - self.edges_s[0])


def bin_width_s(span_s: float) -> float:
    """The smallest of :data:`BIN_WIDTHS_S` that covers ``span_s`` in at most MAX_BINS bins."""
    for width in BIN_WIDTHS_S:
        if span_s <= width * MAX_BINS:
            return float(width)
    return float(BIN_WIDTHS_S[-1] * math.ceil(span_s / (BIN_WIDTHS_S[-1] * MAX_BINS)))


def timeline(
    completed_s: np.ndarray,
    statuses: np.ndarray,
    received_s: np.ndarray,
    start_s: float,
    now_s: float,
) -> Timeline:
    """Bin completions (per status) and arrivals from ``start_s`` to ``now_s``.

    The bins have a width of :func:`bin_width_s` of the span and the last one holds ``now_s``;
    times outside ``[start_s, now_s]`` and NaN are not counted.
    """
    width = bin_width_s(now_s - start_s)
    n_bins = max(1, math.floor((now_s - start_s) / width) + 1)
    edges = start_s + width * np.arange(n_bins + 1)
    counts = {
        str(status): np.histogram(completed_s[statuses == status], edges)[0]
        for status in dict.fromkeys(statuses)
    }
    return Timeline(edges, counts, np.histogram(received_s, edges)[0])


def rate_per_minute(times_s: np.ndarray, start_s: float, now_s: float) -> float:
    """Events per minute over the last :data:`RATE_WINDOW_S` seconds (or since ``start_s``)."""
    window = min(RATE_WINDOW_S, now_s - start_s)
    if window <= 0:
        return math.nan
    recent = np.count_nonzero((times_s > now_s - window) & (times_s <= now_s))
    return 60.0 * recent / window
