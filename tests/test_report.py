"""The QC report: its content from the output folder, and its rendering in headless Chromium.

The output folders are made by real runs (``daskmic.run_batch`` on a distributed cluster) on
four small synthetic micrographs (two untilted, two tilted) plus one unreadable file.
"""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import daskmic
from daskmic.cli import main
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
from daskmic.preprocessing.params import PreprocessParams
from daskmic.report.page import write_report
from daskmic.run.config import RunConfig
from daskmic.tilt.params import TiltParams

PREPROCESS = PreprocessParams.from_options(crop=True, invert=True, downsample=True, normalize=True)
TILT = TiltParams(window_size=256)
TILTS_DEG = (0.0, 0.0, 60.0, 55.0)
EXTERNAL_URL = re.compile(r"(?:https?|ftp|wss?)://", re.IGNORECASE)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> list[str]:
    """Four 512² micrographs (two tilted) and a file that is no MRC."""
    root = tmp_path_factory.mktemp("raw")
    paths = []
    for i, tilt in enumerate(TILTS_DEG):
        image, _ = synthesize_micrograph(
            (512, 512),
            pixel_size_A=2.0,
            phase_std=0.3,
            tilt_angle_deg=tilt,
            tilt_axis_deg=30.0,
            seed=i,
        )
        paths.append(root / f"mic_{i:03d}.mrc")
        write_mrc(paths[-1], image, 2.0)
    paths.append(root / "mic_broken.mrc")
    paths[-1].write_bytes(b"this is not an MRC file")
    return [str(p) for p in paths]


def _split_between(out: Path) -> None:
    """Re-split at the median mean correlation so the run has accepted and discarded ones."""
    tilt = pd.read_csv(out / "tilt.csv")
    done = tilt[tilt["status"] != "failed"]
    middle = float(np.median(done["tilt_mean_corr"]))
    daskmic.select(out, mean_threshold=min(max(middle, 0.0), 1.0), std_threshold=1.0)


@pytest.fixture(scope="module")
def outputs(raw, client, tmp_path_factory) -> dict[str, Path]:
    """Output folders of a combined, a preprocess-only and a tilt-only run, with their report."""
    root = tmp_path_factory.mktemp("outputs")
    configs = {
        "both": RunConfig(preprocess=PREPROCESS, tilt=TILT),
        "preprocess": RunConfig(preprocess=PREPROCESS),
        "tilt": RunConfig(tilt=TILT),
    }
    folders = {}
    for kind, config in configs.items():
        folders[kind] = root / kind
        daskmic.run_batch(raw, folders[kind], config, client=client)
        if config.tilt is not None:
            _split_between(folders[kind])
        write_report(folders[kind])
    return folders


class _Page(HTMLParser):
    """Collects what the tests look at: table rows, images, links, counts, parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.cards: list[str] = []
        self.ids: list[str] = []
        self.body: dict[str, str] = {}
        self._cells: list[str] | None = None
        self._text: list[str] = []
        self._in_table = False
        self.text = ""

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.urls += [attrs[a] for a in ("src", "href", "action", "data") if a in attrs]
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "body":
            self.body = attrs
        elif tag == "table" and attrs.get("id") == "micrographs":
            self._in_table = True
        elif tag == "tr" and self._in_table and self._cells is None and "data-status" in attrs:
            self._cells = []
            self.rows.append({"status": attrs.get("data-status", "")})
        elif tag == "td" and self._cells is not None:
            self._text = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "div" and attrs.get("class") == "card":
            self.cards.append(attrs["id"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cells is not None:
            self._cells.append("".join(self._text).strip())
        elif tag == "tr" and self._cells is not None:
            self.rows[-1]["cells"] = self._cells  # type: ignore[assignment]
            self._cells = None

    def handle_data(self, data):
        self._text.append(data)
        self.text += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _png(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    decoded = matplotlib.image.imread(io.BytesIO(base64.b64decode(uri[len(prefix) :])), "png")
    return np.atleast_3d(decoded)  # grey PNGs decode as 2-D; plots as RGBA


def _assert_offline(html: str, page: _Page) -> None:
    assert not EXTERNAL_URL.search(html), EXTERNAL_URL.search(html)
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in page.urls)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html, "the page forbids fetching anything"


@pytest.mark.parametrize("kind", ["both", "preprocess", "tilt"])
def test_report_shows_every_micrograph_with_its_status(outputs, kind):
    out = outputs[kind]
    path = write_report(out)
    assert path == out / "report.html"
    assert not [p for p in out.iterdir() if ".tmp-" in p.name], "written atomically"
    html = path.read_text()
    page = _parse(html)
    _assert_offline(html, page)

    table = pd.read_csv(out / "micrographs.csv", keep_default_na=False)
    assert [r["cells"][0] for r in page.rows] == list(table["micrograph"])
    assert [r["status"] for r in page.rows] == list(table["status"])
    assert table.set_index("micrograph").loc["mic_broken", "status"] == "failed"
    counts = table["status"].value_counts()
    for status, n in counts.items():
        assert f"{n}{status}" in page.text.replace(" ", "")
    assert ("tilt.mean_threshold" in page.text) == (kind != "preprocess")
    assert ("preprocess.crop" in page.text) == (kind != "tilt")

    for image in page.images:
        pixels = _png(image["src"])
        assert pixels.ndim == 3 and pixels.shape[0] >= 16
    plots = [i for i in page.images if i.get("class") == "plot"]
    assert len(plots) == (0 if kind == "preprocess" else 2)


@pytest.mark.parametrize("kind", ["both", "tilt"])
def test_report_galleries_hold_the_failed_discarded_and_a_sample(outputs, kind):
    out = outputs[kind]
    page = _parse(Path(write_report(out, sample_size=1)).read_text())
    table = pd.read_csv(out / "tilt.csv", keep_default_na=False)
    discarded = list(table.loc[table["status"] == "discarded", "micrograph"])
    accepted = list(table.loc[table["status"] == "accepted", "micrograph"])
    assert discarded and accepted
    cards = [c.removeprefix("mic-") for c in page.cards]
    assert cards == ["mic_broken", *discarded, accepted[0]]
    assert f"1 of {len(accepted)} shown" in page.text
    assert "not an MRC file" in page.text, "the failed micrograph's reason is shown"

    by_alt: dict[str, list[str]] = {}
    for image in page.images:
        by_alt.setdefault(image.get("alt", ""), []).append(image["src"])
    psd_pngs = [(out / "psd" / f"{name}.png").read_bytes() for name in [*discarded, accepted[0]]]
    assert [base64.b64decode(s.split(",", 1)[1]) for s in by_alt["PSD summary"]] == psd_pngs
    thumbs = [_png(s) for s in by_alt["micrograph"]]
    assert len(thumbs) == len(discarded) + 1, "the failed micrograph has no image"
    assert all(t.shape[:2] == (256, 256) for t in thumbs)


def test_report_of_a_preprocess_run_shows_the_stored_thumbnails(outputs):
    out = outputs["preprocess"]
    page = _parse(Path(write_report(out, sample_size=2)).read_text())
    assert [c.removeprefix("mic-") for c in page.cards] == ["mic_broken", "mic_000", "mic_003"]
    results = daskmic.io.open_results(out / "micrographs.zarr")
    stored = results["thumbnail"].sel(micrograph="mic_000").values
    shown = _png([i for i in page.images if i.get("alt") == "micrograph"][0]["src"])[..., 0]
    low, high = np.percentile(stored, [1, 99])
    want = np.clip((stored - low) / (high - low), 0, 1)[::-1]  # the PNG's top row is row -1
    assert np.abs(shown - want).max() <= 2.5 / 255, "8-bit grey levels of the colormap"


def test_report_refuses_a_folder_that_is_not_an_output(tmp_path):
    with pytest.raises(ValueError, match="not a daskmic output folder"):
        write_report(tmp_path)
    with pytest.raises(ValueError, match="sample_size"):
        write_report(tmp_path, sample_size=-1)


@pytest.mark.slow
def test_cli_writes_the_report_after_a_run_unless_told_not_to(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = ["--window-size", "256", "--workers", "1", "--threads-per-worker", "1"]
    assert main(["tilt", *raw[:2], "-o", "with", *options]) == 0
    assert (tmp_path / "with" / "report.html").is_file()
    assert main(["tilt", *raw[:2], "-o", "without", "--no-report", *options]) == 0
    assert not (tmp_path / "without" / "report.html").exists()
    assert main(["report", "without"]) == 0
    assert (tmp_path / "without" / "report.html").is_file()
    assert main(["report", "nowhere"]) == 2


# --- rendered in a real headless Chromium -------------------------------------------------


@pytest.mark.browser
def test_the_network_check_sees_a_page_that_fetches(chromium, tmp_path):
    page = tmp_path / "fetches.html"
    page.write_text('<html><body><img src="http://example.invalid/a.png"></body></html>')
    _, netlog = chromium.render(page.as_uri(), "--dump-dom")
    assert chromium.page_requests(netlog) == ["http://example.invalid/a.png"]


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["both", "preprocess"])
def test_chromium_renders_the_report_offline(chromium, outputs, kind):
    path = outputs[kind] / "report.html"
    html = path.read_text()
    dom, netlog = chromium.render(path.as_uri(), "--dump-dom")
    assert chromium.page_requests(netlog) == [], "the page fetched something from the network"
    page = _parse(dom)
    n_images = html.count("<img ")
    assert n_images > 0
    assert page.body["data-images"] == str(n_images)
    assert page.body["data-images-shown"] == str(n_images), "every image decoded offline"
    table = pd.read_csv(outputs[kind] / "micrographs.csv", keep_default_na=False)
    assert [r["cells"][0] for r in page.rows] == list(table["micrograph"])
    plots = [i for i in page.images if i.get("class") == "plot"]
    assert len(plots) == (2 if kind == "both" else 0)


@pytest.mark.browser
def test_chromium_sorts_the_table_by_a_column(chromium, outputs):
    out = outputs["both"]
    path = out / "report.html"
    dom, _ = chromium.render(path.as_uri() + "#sort=-tilt_mean_corr", "--dump-dom")
    table = pd.read_csv(out / "micrographs.csv", keep_default_na=False, na_values=[""])
    want = table.sort_values("tilt_mean_corr", ascending=False, na_position="last")
    assert [r["cells"][0] for r in _parse(dom).rows] == list(want["micrograph"])


@pytest.mark.browser
def test_chromium_screenshot_shows_the_page(chromium, outputs, tmp_path):
    path = outputs["both"] / "report.html"
    shot = tmp_path / "report.png"
    chromium.render(path.as_uri(), f"--screenshot={shot}", "--window-size=1200,5000")
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (5000, 1200)
    assert pixels.std() > 0.1, "the page is not blank"
    assert (pixels.mean(axis=2) < 0.2).mean() > 0.002, "dark pixels: text, thumbnails, PSDs"
    for colour in ("#1b9e4b", "#e08a00"):  # accepted and discarded: counts, points, bars
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        assert (np.abs(pixels - rgb).max(axis=2) < 0.03).sum() > 50, colour
