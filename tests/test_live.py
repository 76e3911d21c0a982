"""The live QC page (issue 18): ``OUT/report.html`` while ``daskmic watch`` runs, as an operator
sees it in a real headless Chromium, the page final once the stream closes, the page served on
127.0.0.1, and a long batch run's live page."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import daskmic
import daskmic.run.feeder
from daskmic.datasets import synthesize_micrograph
from daskmic.io.atomic import write_bytes_atomic
from daskmic.io.mrc_write import write_mrc
from daskmic.report.live import LiveReport, is_live
from daskmic.report.page import render_report, write_report
from daskmic.report.plot.timeline import (
    BIN_WIDTHS_S,
    MAX_BINS,
    bin_width_s,
    rate_per_minute,
    timeline,
)
from daskmic.run.config import RunConfig
from daskmic.tilt.params import TiltParams

TIMEOUT_S = 180
TILTS_DEG = (0.0, 60.0, 0.0, 55.0, 0.0)
MEAN_THRESHOLD = 0.765
"""Splits these synthetic micrographs into accepted and discarded ones."""
WATCH = (
    "--tilt",
    "--window-size",
    "256",
    "--mean-threshold",
    str(MEAN_THRESHOLD),
    "--settle",
    "0.3",
    "--poll",
    "0.2",
    "--batch-size",
    "1",
    "--workers",
    "1",
    "--threads-per-worker",
    "1",
    "--no-dashboard",
)


def _micrograph(path: Path, seed: int) -> None:
    image, _ = synthesize_micrograph(
        (512, 512),
        pixel_size_A=2.0,
        phase_std=0.3,
        tilt_angle_deg=TILTS_DEG[seed % len(TILTS_DEG)],
        tilt_axis_deg=30.0,
        seed=seed,
    )
    write_mrc(path, image, 2.0)


# --- the pure parts, against plain numpy -----------------------------------------------------


def test_bin_width_is_the_smallest_step_with_at_most_max_bins():
    for span in (0.0, 5.0, 400.0, 401.0, 3000.0, 36000.0, 10 * 86400.0):
        width = bin_width_s(span)
        assert span / width <= MAX_BINS
        smaller = [w for w in BIN_WIDTHS_S if w < width]
        assert not smaller or span / smaller[-1] > MAX_BINS


def test_timeline_counts_each_completion_and_arrival_once_in_its_bin():
    rng = np.random.default_rng(3)
    start, now = 1000.0, 1000.0 + 1234.5
    completed = rng.uniform(start, now, 300)
    completed[:5] = np.nan  # no record yet
    statuses = rng.choice(["accepted", "discarded", "failed"], 300)
    received = rng.uniform(start, now, 320)
    line = timeline(completed, statuses, received, start, now)
    width = line.width_s
    assert width == bin_width_s(now - start)
    assert line.edges_s[0] == start and line.edges_s[-2] <= now < line.edges_s[-1]
    for status in ("accepted", "discarded", "failed"):
        times = completed[(statuses == status) & np.isfinite(completed)]
        expected = np.bincount(((times - start) // width).astype(int), minlength=len(line.arrivals))
        np.testing.assert_array_equal(line.counts[status], expected)
    np.testing.assert_array_equal(
        line.arrivals,
        np.bincount(((received - start) // width).astype(int), minlength=len(line.arrivals)),
    )


def test_rate_per_minute_counts_the_last_ten_minutes_or_since_the_start():
    times = np.array([0.0, 100.0, 650.0, 700.0, 1190.0, 1200.0])
    assert rate_per_minute(times, 0.0, 1200.0) == pytest.approx(60 * 4 / 600)  # (600, 1200]
    assert rate_per_minute(times, 0.0, 120.0) == pytest.approx(60 * 1 / 120)  # (0, 120]
    assert np.isnan(rate_per_minute(times, 5.0, 5.0))


# --- a stream fed by a slow producer, through the command line, seen in Chromium --------------


class _Dom(HTMLParser):
    """What the tests read of a loaded page: ids, the live marker, table rows, counts."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str]] = {}
        self.rows: list[str] = []
        self.body: dict[str, str] = {}
        self.bold: list[str] = []
        self._in_b = False

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if "id" in attrs:
            self.ids[attrs["id"]] = attrs
        if tag == "body":
            self.body = attrs
        elif tag == "tr" and "data-status" in attrs:
            self.rows.append(attrs["data-status"])
        self._in_b = tag == "b"

    def handle_data(self, data):
        if self._in_b:
            self.bold.append(data)
            self._in_b = False


def _dom(page: Path, fragment: str = "") -> _Dom:
    """The DOM of ``page`` after headless Chromium loaded it (and ran its scripts)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("headless Chromium is not installed")
        pytest.skip("headless Chromium is not installed")
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri() + fragment,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    dom = _Dom()
    dom.feed(done.stdout)
    return dom


def _rows_on_disk(page: Path) -> int:
    try:
        return page.read_text().count("<tr data-status=")
    except FileNotFoundError:
        return 0


def _wait(predicate, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended while waiting for {what}: {process.stdout}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> dict:
    """``daskmic watch`` fed in two steps, the page loaded in Chromium after each and after
    the close marker."""
    root = tmp_path_factory.mktemp("stream")
    folder, out = root / "microscope", root / "out"
    folder.mkdir()
    command = [sys.executable, "-m", "daskmic.cli", "watch", str(folder), "-o", str(out), *WATCH]
    seen: dict = {}
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    with subprocess.Popen(command, cwd=root, **output) as run:
        try:
            page = out / "report.html"
            for i in range(2):
                _micrograph(folder / f"mic_{i:03d}.mrc", i)
            _wait(lambda: _rows_on_disk(page) == 2, "a page with 2 rows", run)
            seen["early_html"] = page.read_text()
            seen["early"] = _dom(page)
            for i in range(2, 5):
                _micrograph(folder / f"mic_{i:03d}.mrc", i)
            (folder / "mic_broken.mrc").write_bytes(b"this is not an MRC file")
            _wait(lambda: _rows_on_disk(page) == 6, "a page with 6 rows", run)
            seen["late_html"] = page.read_text()
            seen["late"] = _dom(page, "#sort=-tilt_mean_corr")
            (folder / "CLOSED").touch()
            seen["code"] = run.wait(TIMEOUT_S)
        finally:
            if run.poll() is None:
                run.kill()
        seen["output"] = run.stdout.read().decode()
    seen["final_html"] = page.read_text()
    seen["closed"] = _dom(page)
    seen["out"] = out
    return seen


def _counts(dom: _Dom) -> dict[str, int]:
    """received / done / failed from the live marker's bold numbers."""
    return dict(zip(("received", "done", "failed"), map(int, dom.bold[:3]), strict=True))


@pytest.mark.browser
def test_the_page_is_live_while_the_stream_is_open_and_the_counts_grow(stream):
    early, late = stream["early"], stream["late"]
    for dom in (early, late):
        assert "live" in dom.ids, "the open stream's page carries the live marker"
        assert float(dom.ids["live"]["data-refresh-seconds"]) > 0
        assert "data-images" in dom.body, "the page's last script ran: the page is whole"
    assert len(early.rows) == 2 < len(late.rows) == 6, "fewer rows early than late"
    assert _counts(early)["done"] == 2 and _counts(early)["failed"] == 0
    assert _counts(late) == {"received": 6, "done": 5, "failed": 1}
    for html in (stream["early_html"], stream["late_html"]):
        assert "window.location.reload()" in html and "over-time" in html
    tilt = pd.read_csv(stream["out"] / "tilt.csv")
    if (tilt["status"] == "discarded").any():
        assert "latest-discarded" in late.ids
    assert "latest-failed" in late.ids
    assert "mic-mic_broken" in late.ids


@pytest.mark.browser
def test_the_live_page_keeps_the_sort_order_of_its_address(stream):
    table = pd.read_csv(stream["out"] / "tilt.csv", keep_default_na=False, na_values=[""])
    want = table.sort_values("tilt_mean_corr", ascending=False, na_position="last")
    assert stream["late"].rows == list(want["status"])


@pytest.mark.browser
def test_after_the_close_marker_the_page_is_the_report_and_no_longer_refreshes(stream):
    assert stream["code"] == 1, stream["output"]  # one micrograph failed
    closed, final = stream["closed"], stream["final_html"]
    assert "live" not in closed.ids and len(closed.rows) == 6
    assert "reload" not in final and 'http-equiv="refresh"' not in final.lower()
    assert not is_live(stream["out"] / "report.html")
    assert final.encode() == write_report(stream["out"]).read_bytes(), "byte-equal"
    assert f"report in {stream['out'] / 'report.html'}" in stream["output"]


@pytest.mark.browser
def test_a_page_loaded_while_it_is_rewritten_is_never_broken(stream, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(stream["out"], out)
    live = LiveReport(out, "stream")
    live.received(6)
    final = render_report(out).encode("utf-8")
    stop = threading.Event()
    rewrites = [0]

    def rewrite() -> None:
        while not stop.is_set():  # the live page and the final one, in turn, as fast as can be
            if rewrites[0] % 2:
                live.update()
            else:
                write_bytes_atomic(out / "report.html", final)  # as write_report writes it
            rewrites[0] += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    doms, during = [], []
    try:
        _wait(lambda: rewrites[0] > 0, "the first rewrite")
        for _ in range(3):
            before = rewrites[0]
            doms.append(_dom(out / "report.html"))
            during.append(rewrites[0] - before)
    finally:
        stop.set()
        writer.join()
    assert min(during) > 0, "the page was rewritten while each load went on"
    for dom in doms:
        assert "data-images" in dom.body, "the page's last script ran"
        assert len(dom.rows) == 6 and "micrographs" in dom.ids and "counts" in dom.ids


# --- the page served on 127.0.0.1 --------------------------------------------------------------


def test_report_serve_answers_a_real_get_on_loopback_until_interrupted(stream):
    out = stream["out"]
    command = [sys.executable, "-m", "daskmic.cli", "report", str(out), "--serve", "0"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, **pipes) as run:
        try:
            line = run.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert url, line
            with urllib.request.urlopen(url.group(0), timeout=30) as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"].startswith("text/html")
                assert answer.read() == (out / "report.html").read_bytes()
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(url.group(0) + "micrographs.csv", timeout=30)
            assert missing.value.code == 404, "only the page is served"
            run.send_signal(signal.SIGINT)
            assert run.wait(30) == 0
        finally:
            if run.poll() is None:
                run.kill()


# --- a batch run longer than the threshold ----------------------------------------------------


def test_a_long_batch_run_keeps_a_live_page_then_writes_the_final_one(
    tmp_path, client, monkeypatch
):
    monkeypatch.setattr(daskmic.run.feeder, "FIRST_REBUILD_S", 0.0)  # rebuilds from the first batch
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(6):
        _micrograph(raw / f"mic_{i:03d}.mrc", i)
    page = tmp_path / "out" / "report.html"
    config = RunConfig(tilt=TiltParams(window_size=256, mean_threshold=MEAN_THRESHOLD))
    seen = []
    summary = daskmic.run_batch(
        str(raw),
        tmp_path / "out",
        config,
        client=client,
        batch_size=1,
        report=True,
        live_after_seconds=0.0,
        on_row=lambda row: seen.append(is_live(page)),
    )
    assert any(seen), "a live page existed while the run went on"
    assert summary.report == page and not is_live(page)
    short = tmp_path / "short"
    seen.clear()
    daskmic.run_batch(
        str(raw),
        short,
        config,
        client=client,
        batch_size=1,
        report=True,
        live_after_seconds=3600.0,
        on_row=lambda row: seen.append((short / "report.html").exists()),
    )
    assert not any(seen), "a run shorter than the threshold writes no live page"
    assert (short / "report.html").read_bytes() == write_report(short).read_bytes()


def test_svg_bars_are_as_tall_as_their_counts_and_scatter_draws_every_finite_point():
    from daskmic.report.plot import svg

    counts = np.array([3, 0, 7, 1])
    chart = svg.stacked_bars(
        np.arange(5.0),
        [svg.Series("accepted", "#1b9e4b", counts)],
        title="t",
        x_label="x",
        y_label="y",
    )
    heights = [float(h) for h in re.findall(r'height="([0-9.]+)" fill="#1b9e4b"', chart)]
    heights = heights[:-1]  # the last is the legend's key
    assert len(heights) == 3  # no bar for an empty bin
    np.testing.assert_allclose(np.array(heights) / heights[1], counts[counts > 0] / 7, atol=0.01)
    x = svg.Series("discarded", "#e08a00", np.array([0.1, np.nan, 0.5, 0.7]))
    y = svg.Series("discarded", "#e08a00", np.array([0.2, 0.3, np.inf, 0.1]))
    assert svg.scatter([(x, y)], title="t", x_label="x", y_label="y").count("<circle") == 2
