"""Local-defocus map of one micrograph with its fitted tilt plane (for notebooks and reports)."""

from __future__ import annotations

import math

import numpy as np

from daskmic.tilt.angle import TiltAngleResult


def defocus_map(result: TiltAngleResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tiles' local defocus on their grid: ``(x_A, y_A, defocus_A)``, NaN where unusable.

    ``x_A`` and ``y_A`` are the sorted unique tile-centre coordinates (Å from the image
    centre); ``defocus_A[i, j]`` is the tile at ``(x_A[j], y_A[i])``.
    """
    centers = result.patch_centers_A
    x = np.unique(centers[:, 0])
    y = np.unique(centers[:, 1])
    values = np.full((len(y), len(x)), np.nan)
    if len(result.patch_defocus_A):
        usable = result.patch_usable.astype(bool)
        cols = np.searchsorted(x, centers[:, 0])
        rows = np.searchsorted(y, centers[:, 1])
        values[rows[usable], cols[usable]] = result.patch_defocus_A[usable]
    return x, y, values


def plot_local_defocus(result: TiltAngleResult, ax=None, *, title: str | None = None):
    """Draw the local-defocus map, the fitted plane's contours and the tilt direction.

    Parameters
    ----------
    result : TiltAngleResult
        An estimate from :func:`daskmic.tilt.angle.estimate_tilt`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.
    title : str, optional
        Title; by default the angle, axis and status.

    Returns
    -------
    matplotlib.axes.Axes
        The axes, y increasing upwards (row 0 at the bottom, as in the conventions).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    x, y, values = defocus_map(result)
    step_x = x[1] - x[0] if len(x) > 1 else 1.0
    step_y = y[1] - y[0] if len(y) > 1 else 1.0
    extent = (x[0] - step_x / 2, x[-1] + step_x / 2, y[0] - step_y / 2, y[-1] + step_y / 2)
    shown = ax.imshow(values, origin="lower", extent=extent, cmap="viridis")
    ax.figure.colorbar(shown, ax=ax, label="local defocus (Å)")
    answered = math.isfinite(result.tilt_angle_deg)
    if answered:
        gx, gy = result.defocus_gradient
        grid_x, grid_y = np.meshgrid(np.linspace(*extent[:2], 50), np.linspace(*extent[2:], 50))
        plane = result.defocus_mean_A + gx * grid_x + gy * grid_y
        lines = ax.contour(grid_x, grid_y, plane, colors="white", linewidths=0.8)
        ax.clabel(lines, fmt="%.0f", fontsize=7)
        beta = math.radians(result.tilt_direction_deg)
        length = 0.35 * min(extent[1] - extent[0], extent[3] - extent[2])
        ax.annotate(
            "",
            xy=(length * math.cos(beta), length * math.sin(beta)),
            xytext=(0.0, 0.0),
            arrowprops={"arrowstyle": "->", "color": "red", "lw": 1.5},
        )
    if title is None:
        title = (
            f"tilt {result.tilt_angle_deg:.1f}° ± {result.tilt_angle_err_deg:.1f}°, "
            f"axis {result.tilt_axis_deg:.0f}° ± {result.tilt_axis_err_deg:.0f}°"
            if answered
            else f"{result.status}: {result.message}"
        )
        if answered and result.status != "ok":
            title = f"{result.status}: {title}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    return ax
