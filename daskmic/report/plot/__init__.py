"""Plots for looking at micrographs and choosing tilt thresholds by eye.

Data preparation (``daskmic.report.plot.data``, pure functions returning arrays) is kept
apart from drawing (``daskmic.report.plot.figures``, matplotlib). Images are drawn with row 0
at the bottom, as MRC viewers show them.

Examples
--------
>>> import daskmic as dm
>>> import daskmic.report.plot as dmp
>>> qc = dm.tilt_analysis(dm.open_micrographs("raw/*.mrc"))    # doctest: +SKIP
>>> dmp.tilt_scatter(qc, mean_threshold=0.6, std_threshold=0.08)  # doctest: +SKIP
"""

from daskmic.report.plot.data import (
    STATUSES,
    TILT_STATISTICS,
    as_table,
    block_mean,
    classify,
    contrast_limits,
    histogram_data,
    montage,
    thumbnail_data,
    tilt_scatter_data,
)
from daskmic.report.plot.figures import (
    STATUS_COLOURS,
    before_after,
    psd_montage,
    show_image,
    statistic_histograms,
    tilt_scatter,
)

__all__ = [
    "STATUSES",
    "STATUS_COLOURS",
    "TILT_STATISTICS",
    "as_table",
    "before_after",
    "block_mean",
    "classify",
    "contrast_limits",
    "histogram_data",
    "montage",
    "psd_montage",
    "show_image",
    "statistic_histograms",
    "thumbnail_data",
    "tilt_scatter",
    "tilt_scatter_data",
]
