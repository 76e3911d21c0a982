"""Small inline SVG charts for the live page: drawn in milliseconds, with no figure library.

The live page is redrawn after every table rebuild while the microscope collects, so its
charts must cost little whatever the set's size; matplotlib's figures (the final report's)
take about a second each. Each function returns an ``<svg>`` element (text) that a
self-contained page embeds directly: no image, no fetch. Colours are the final report's.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import MaxNLocator

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 26, 40


@dataclass(frozen=True)
class Series:
    """One named set of values and its colour (``dashed`` for a reference line)."""

    label: str
    colour: str
    values: np.ndarray
    dashed: bool = False


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _limits(values: np.ndarray, pad: float = 0.0) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high == low:
        return low - 0.5, high + 0.5
    span = high - low
    return low - pad * span, high + pad * span


@dataclass(frozen=True)
class _Frame:
    """Data → pixel mapping of one chart, and its axes, ticks and labels."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def x(self, value: np.ndarray | float) -> np.ndarray:
        low, high = self.x_range
        return LEFT + (np.asarray(value, dtype=float) - low) / (high - low) * (WIDTH - LEFT - RIGHT)

    def y(self, value: np.ndarray | float) -> np.ndarray:
        low, high = self.y_range
        span = HEIGHT - TOP - BOTTOM
        return HEIGHT - BOTTOM - (np.asarray(value, dtype=float) - low) / (high - low) * span

    def axes(self, title: str, x_label: str, y_label: str, integer_y: bool = False) -> str:
        parts = [
            f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#999"/>',
            f'<text x="{LEFT}" y="16" font-weight="bold">{_e(title)}</text>',
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" text-anchor="middle">{_e(x_label)}</text>',
            f'<text x="12" y="{HEIGHT / 2}" text-anchor="middle" '
            f'transform="rotate(-90 12 {HEIGHT / 2})">{_e(y_label)}</text>',
        ]
        for tick in MaxNLocator(6).tick_values(*self.x_range):
            if self.x_range[0] <= tick <= self.x_range[1]:
                px = float(self.x(tick))
                parts.append(
                    f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">'
                    f"{tick:g}</text>"
                )
        for tick in MaxNLocator(5, integer=integer_y).tick_values(*self.y_range):
            if self.y_range[0] <= tick <= self.y_range[1]:
                py = float(self.y(tick))
                parts.append(
                    f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" '
                    'stroke="#eee"/>'
                    f'<text x="{LEFT - 4}" y="{py + 4:.1f}" text-anchor="end">{tick:g}</text>'
                )
        return "".join(parts)

    def vline(self, value: float) -> str:
        px = float(self.x(value))
        return (
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
            'stroke="#333" stroke-dasharray="5 3"/>'
        )

    def hline(self, value: float) -> str:
        py = float(self.y(value))
        return (
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" '
            'stroke="#333" stroke-dasharray="2 2"/>'
        )


def _legend(series: Sequence[Series]) -> str:
    """Coloured keys in the top margin, right-aligned (the title is left-aligned)."""
    widths = [30 + 6 * len(s.label) for s in series]
    x, items = WIDTH - RIGHT - sum(widths), []
    for s, width in zip(series, widths, strict=True):
        items.append(
            f'<rect x="{x}" y="7" width="10" height="10" fill="{s.colour}"/>'
            f'<text x="{x + 14}" y="16">{_e(s.label)}</text>'
        )
        x += width
    return "".join(items)


def _svg(label: str, content: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{_e(label)}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-size="11" '
        f'font-family="sans-serif">{content}</svg>'
    )


def stacked_bars(
    edges: np.ndarray, stacks: Sequence[Series], *, title: str, x_label: str, y_label: str
) -> str:
    """Bars over the bins ``edges``, one stacked segment per series (counts)."""
    total = np.sum([s.values for s in stacks], axis=0) if stacks else np.zeros(len(edges) - 1)
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, max(1.0, float(total.max()))))
    left, right = frame.x(edges[:-1]), frame.x(edges[1:])
    base = np.zeros(len(edges) - 1)
    bars = []
    for s in stacks:
        top, bottom = frame.y(base + s.values), frame.y(base)
        bars += [
            f'<rect x="{a:.1f}" y="{t:.1f}" width="{max(b - a - 1, 1):.1f}" height="{d - t:.1f}" '
            f'fill="{s.colour}"/>'
            for a, b, t, d, n in zip(left, right, top, bottom, s.values, strict=True)
            if n > 0
        ]
        base = base + s.values
    content = frame.axes(title, x_label, y_label, integer_y=True) + "".join(bars)
    return _svg(title, content + _legend(stacks))


def step_lines(
    edges: np.ndarray, lines: Sequence[Series], *, title: str, x_label: str, y_label: str
) -> str:
    """One step line per series over the bins ``edges`` (values per bin)."""
    values = np.concatenate([s.values for s in lines]) if lines else np.zeros(1)
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, max(1.0, _limits(values)[1])))
    paths = []
    for s in lines:
        xs, ys = frame.x(np.repeat(edges, 2)[1:-1]), frame.y(np.repeat(s.values, 2))
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        paths.append(
            f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>'
        )
    return _svg(title, frame.axes(title, x_label, y_label) + "".join(paths) + _legend(lines))


def scatter(
    points: Sequence[tuple[Series, Series]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_line: float | None = None,
    y_line: float | None = None,
) -> str:
    """Points ``(x, y)`` per class (each pair's first series names and colours it)."""
    xs = np.concatenate([x.values for x, _ in points] + [np.atleast_1d(x_line or np.nan)])
    ys = np.concatenate([y.values for _, y in points] + [np.atleast_1d(y_line or np.nan)])
    frame = _Frame(_limits(xs, 0.05), _limits(ys, 0.05))
    dots = []
    for x, y in points:
        keep = np.isfinite(x.values) & np.isfinite(y.values)
        dots += [
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{x.colour}" stroke="#000" '
            'stroke-width="0.4"/>'
            for a, b in zip(frame.x(x.values[keep]), frame.y(y.values[keep]), strict=True)
        ]
    lines = (frame.vline(x_line) if x_line is not None else "") + (
        frame.hline(y_line) if y_line is not None else ""
    )
    content = frame.axes(title, x_label, y_label) + lines + "".join(dots)
    return _svg(title, content + _legend([x for x, _ in points]))


def histogram(
    values: Sequence[Series],
    *,
    bins: int = 20,
    title: str,
    x_label: str,
    x_line: float | None = None,
) -> str:
    """Stacked histogram of the series' values over common bins, with a vertical line."""
    pooled = np.concatenate([s.values for s in values] + [np.atleast_1d(x_line or np.nan)])
    edges = np.linspace(*_limits(pooled), bins + 1)
    stacks = [
        Series(s.label, s.colour, np.histogram(s.values[np.isfinite(s.values)], edges)[0])
        for s in values
    ]
    chart = stacked_bars(edges, stacks, title=title, x_label=x_label, y_label="micrographs")
    if x_line is None:
        return chart
    frame = _Frame((float(edges[0]), float(edges[-1])), (0.0, 1.0))
    return chart.replace("</svg>", frame.vline(x_line) + "</svg>")
