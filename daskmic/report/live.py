"""The live QC page: ``OUT/report.html`` while a stream is open or a long batch run goes on.

After every table rebuild the driver rewrites the page (atomically: a browser never loads half
of it) from what the run has published — the table, the manifest's thumbnails and records, the
PSD images — never from a micrograph file. The page leads with what an operator acts on: a live
marker with the counts, the counts over time and the throughput against the arrival rate, the
latest discarded and failed micrographs with their reason, image and PSD, and the tilt
statistics against the thresholds; then the table and the parameters. A small inline script
reloads it every few seconds and keeps the reader's scroll position (``sessionStorage``) and
sort order (``#sort=`` in the address). When the run ends, :meth:`LiveReport.close` writes the
page :func:`daskmic.report.page.write_report` writes: no marker, no reload.

A micrograph's completion time is its record's modification time
(:meth:`daskmic.run.manifest.Manifest.completed_at`); arrival times are the driver's; they are
binned by :mod:`daskmic.report.plot.timeline` and drawn by :mod:`daskmic.report.plot.svg`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from daskmic.errors import UsageError
from daskmic.io.storage import Location, location, write_whole
from daskmic.report.page import (
    OutputFolder,
    card_html,
    counts_html,
    has_table,
    heading_html,
    page_html,
    parameters_html,
    table_html,
    write_report,
)
from daskmic.report.plot import svg
from daskmic.report.plot.figures import STATUS_COLOURS
from daskmic.report.plot.svg import Series
from daskmic.report.plot.timeline import RATE_WINDOW_S, Timeline, rate_per_minute, timeline
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest

LATEST = 6
"""How many of the latest discarded (and failed) micrographs the page shows."""
DEFAULT_REFRESH_SECONDS = 10.0
DEFAULT_LIVE_AFTER_SECONDS = 60.0
"""A batch run gets a live page once it has lasted this long."""

_SCRIPT = """<script>
(function () {
  "use strict";
  var live = document.getElementById("live"), key = "daskmic-place:" + window.location.pathname;
  var scroller = document.querySelector(".scroll");
  window.addEventListener("load", function () {
    try {
      var place = JSON.parse(window.sessionStorage.getItem(key) || "null");
      if (place) {
        window.scrollTo(place[0], place[1]);
        if (scroller) { scroller.scrollLeft = place[2]; scroller.scrollTop = place[3]; }
      }
    } catch (e) {}
  });
  window.setTimeout(function () {
    try {
      var place = [window.scrollX, window.scrollY, scroller ? scroller.scrollLeft : 0,
                   scroller ? scroller.scrollTop : 0];
      window.sessionStorage.setItem(key, JSON.stringify(place));
    } catch (e) {}
    window.location.reload();
  }, 1000 * Number(live.getAttribute("data-refresh-seconds")));
})();
</script>"""


@dataclass
class Session:
    """What the driver knows and the output folder does not.

    Parameters
    ----------
    kind : str
        ``"stream"`` (``daskmic watch``) or ``"batch"``.
    started_s : float
        When the run started (seconds since the epoch).
    received_s : list of float
        When each micrograph was received: complete in the watched folder, or (batch) queued.
    waiting : int
        Files seen in the watched folder but still being written.
    """

    kind: str
    started_s: float
    received_s: list[float] = field(default_factory=list)
    waiting: int = 0


def _clock(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).astimezone().strftime("%H:%M:%S %Z")


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _timeline_html(line: Timeline, start_s: float) -> str:
    """Completions per bin, stacked by status, and the completion rate against arrivals."""
    minutes = (line.edges_s - start_s) / 60.0
    width = f"{line.width_s / 60:g} min" if line.width_s >= 60 else f"{line.width_s:g} s"
    x_label = f"minutes since {_clock(start_s)}"
    stacks = [
        Series(status, STATUS_COLOURS.get(status, "#3465a4"), counts)
        for status, counts in line.counts.items()
    ]
    per_minute = 60.0 / line.width_s
    completed = np.sum([s.values for s in stacks], axis=0) if stacks else 0 * line.arrivals
    rates = [
        Series("completed", "#3465a4", completed * per_minute),
        Series("arrived", "#555555", line.arrivals * per_minute, dashed=True),
    ]
    title = f"micrographs completed per {width}"
    bars = svg.stacked_bars(minutes, stacks, title=title, x_label=x_label, y_label="micrographs")
    return bars + svg.step_lines(
        minutes, rates, title="throughput against arrivals", x_label=x_label, y_label="per minute"
    )


def _throughput_html(
    session: Session, table: pd.DataFrame, completed_s: np.ndarray, start: float, now: float
) -> str:
    """The completion rate (and a stream's arrival rate) over the last minutes, and the backlog."""
    done = rate_per_minute(completed_s, start, now)
    failed = int((table["status"] == "failed").sum())
    left = len(session.received_s) - len(table)
    if session.kind == "batch":
        return (
            f"<p>throughput {done:.1f} micrographs/min over the last "
            f"{_duration(min(RATE_WINDOW_S, now - start))}; {left} left</p>"
        )
    arrived = rate_per_minute(np.asarray(session.received_s), start, now)
    behind = arrived > done and left > 0
    verdict = '<span class="behind">falling behind</span>' if behind else "keeping up"
    return (
        f"<p>throughput {done:.1f} micrographs/min against {arrived:.1f} arriving over the last "
        f"{_duration(min(RATE_WINDOW_S, now - start))}; {left} waiting to be processed "
        f"({failed} failed so far): {verdict}</p>"
    )


def _marker_html(session: Session, table: pd.DataFrame, now: float, refresh_s: float) -> str:
    failed = int((table["status"] == "failed").sum())
    what = "stream open" if session.kind == "stream" else "batch run going on"
    writing = f" · being written <b>{session.waiting}</b>" if session.kind == "stream" else ""
    return (
        f'<div id="live" class="live" data-refresh-seconds="{refresh_s:g}" '
        f'data-started="{datetime.fromtimestamp(session.started_s).astimezone().isoformat()}">'
        f'<span class="marker">● LIVE</span> {what} since {_clock(session.started_s)} '
        f"({_duration(now - session.started_s)}) · received <b>{len(session.received_s)}</b>"
        f" · done <b>{len(table) - failed}</b> · failed <b>{failed}</b>{writing}"
        f" · page updated {_clock(now)}, reloads every {refresh_s:g} s</div>"
    )


def _reason(row: pd.Series, tilt: dict[str, Any]) -> str:
    """Why a micrograph was discarded, with its values against the thresholds."""
    parts = []
    if "correlation" in str(row.get("discard_reason", "correlation")):
        parts.append(
            f"mean corr {row['tilt_mean_corr']:.3f} (accept > {tilt['mean_threshold']:g}), "
            f"std corr {row['tilt_std_corr']:.3f} (accept < {tilt['std_threshold']:g})"
        )
    if "angle" in str(row.get("discard_reason", "")):
        parts.append(f"tilt {row['tilt_angle_deg']:.1f}° > {tilt['max_tilt_deg']:g}°")
    return "; ".join(parts)


def _latest_html(folder: OutputFolder, completed_s: np.ndarray) -> str:
    """The latest discarded and failed micrographs, newest first, with their reason."""
    table = folder.table.assign(completed_s=completed_s)
    tilt = folder.parameters.get("tilt") or {}
    sections = []
    for status, title in (("discarded", "Latest discarded"), ("failed", "Latest failed")):
        part = table[table["status"] == status]
        if part.empty:
            continue
        latest = part.sort_values("completed_s", ascending=False, na_position="last")[:LATEST]
        cards = "".join(
            card_html(folder, row, _reason(row, tilt) if status == "discarded" else "")
            for _, row in latest.iterrows()
        )
        sections.append(
            f'<h2 id="latest-{status}">{title}</h2>'
            f'<p class="note">{len(latest)} of {len(part)}, newest first.</p>'
            f'<div class="gallery">{cards}</div>'
        )
    return "".join(sections)


def _by_status(table: pd.DataFrame, column: str) -> list[Series]:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    status = table["status"].astype(str).to_numpy()
    return [
        Series(name, STATUS_COLOURS[name], values[status == name])
        for name in ("accepted", "discarded")
        if (status == name).any()
    ]


def _tilt_html(folder: OutputFolder) -> str:
    """The tilt statistics (and angles) against the thresholds, as inline charts."""
    tilt = folder.parameters.get("tilt") or {}
    if not folder.has_tilt or "mean_threshold" not in tilt:
        return ""
    table, mean, std = folder.table, tilt["mean_threshold"], tilt["std_threshold"]
    means, stds = _by_status(table, "tilt_mean_corr"), _by_status(table, "tilt_std_corr")
    points = list(zip(means, stds, strict=True))
    charts = svg.scatter(
        points,
        title="tilt screen: accepted iff mean > T_mean and std < T_std",
        x_label=f"tilt_mean_corr; threshold {mean:g}",
        y_label=f"tilt_std_corr; threshold {std:g}",
        x_line=mean,
        y_line=std,
    )
    for column, line in (("tilt_mean_corr", mean), ("tilt_std_corr", std)):
        charts += svg.histogram(
            _by_status(table, column), title=column, x_label=column, x_line=line
        )
    if "tilt_angle_deg" in table and table["tilt_angle_deg"].notna().any():
        charts += svg.histogram(
            _by_status(table, "tilt_angle_deg"),
            title="estimated tilt angle",
            x_label="tilt_angle_deg",
            x_line=tilt.get("max_tilt_deg"),
        )
    return f'<h2 id="plots">Tilt screen</h2><div class="plots">{charts}</div>'


def render_live(
    out_dir: str | os.PathLike[str] | Location,
    session: Session,
    *,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    now_s: float | None = None,
) -> str:
    """The live page of an output folder a run is writing, as HTML text."""
    now = time.time() if now_s is None else now_s
    folder = OutputFolder.load(out_dir, live=True)
    table = folder.table
    completed_s = Manifest(folder.out_dir).completed_at([str(n) for n in table["micrograph"]])
    start = float(np.nanmin([session.started_s, *completed_s]))
    line = timeline(
        completed_s,
        table["status"].astype(str).to_numpy(),
        np.asarray(session.received_s),
        start,
        now,
    )
    body = (
        heading_html(folder, "live QC")
        + _marker_html(session, table, now, refresh_seconds)
        + counts_html(table)
        + '<h2 id="over-time">Over time</h2>'
        + _throughput_html(session, table, completed_s, start, now)
        + f'<div class="plots">{_timeline_html(line, start)}</div>'
        + _latest_html(folder, completed_s)
        + _tilt_html(folder)
        + table_html(table, set())
        + parameters_html(folder)
    )
    return page_html(folder, body, _SCRIPT)


class LiveReport:
    """Keep ``OUT/report.html`` current while a run goes on; make it the final page at the end.

    Parameters
    ----------
    out_dir : path-like
        The run's output folder.
    kind : str
        ``"stream"`` or ``"batch"``.
    refresh_seconds : float, optional
        How often the open page reloads itself (default :data:`DEFAULT_REFRESH_SECONDS`).
    after_seconds : float, optional
        Write no live page before the run has lasted this long. By default a batch run waits
        :data:`DEFAULT_LIVE_AFTER_SECONDS` (a short run gets only the final page) and a
        stream's page exists from its first rebuild on.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | Location,
        kind: str,
        *,
        refresh_seconds: float | None = None,
        after_seconds: float | None = None,
    ) -> None:
        refresh_seconds = DEFAULT_REFRESH_SECONDS if refresh_seconds is None else refresh_seconds
        if after_seconds is None:
            after_seconds = DEFAULT_LIVE_AFTER_SECONDS if kind == "batch" else 0.0
        if not refresh_seconds > 0:
            raise UsageError(f"refresh_seconds must be > 0, got {refresh_seconds!r}")
        self.out_dir = location(out_dir)
        self.session = Session(kind, time.time())
        self.refresh_seconds = refresh_seconds
        self.after_seconds = after_seconds
        self.final: Location | None = None

    def received(self, count: int) -> None:
        """Note that ``count`` micrographs were received now."""
        self.session.received_s += [time.time()] * count

    def update(self) -> None:
        """Rewrite the live page (once the run has lasted ``after_seconds``).

        Called after each table rebuild. A page that cannot be drawn is reported on stderr
        and never stops the run.
        """
        if time.time() - self.session.started_s < self.after_seconds:
            return
        if not has_table(self.out_dir):
            return
        try:
            page = render_live(self.out_dir, self.session, refresh_seconds=self.refresh_seconds)
        except Exception as exc:  # the page must never stop the run
            print(f"daskmic: live report not updated: {exc!r}", file=sys.stderr, flush=True)
            return
        write_whole(OutputLayout(self.out_dir).report, page.encode("utf-8"))

    def close(self) -> Location | None:
        """Write the final page (:func:`~daskmic.report.page.write_report`), kept in ``final``.

        Returns
        -------
        Location or None
            The page, or None when the run published no table (no micrograph at all).
        """
        self.final = write_report(self.out_dir) if has_table(self.out_dir) else None
        return self.final


def is_live(page: str | os.PathLike[str] | Location) -> bool:
    """Whether ``page`` is a live page (a run keeps it current), not a final one."""
    try:
        return b'<div id="live"' in location(page).read_bytes()
    except FileNotFoundError:
        return False
