"""Benchmark: the cost of one live-page update at 100, 1,000 and 10,000 micrographs.

A tilt-screen output folder of N micrographs is made the way a run makes it: one micrograph is
really processed (:func:`daskmic.run.unit.process_micrograph`), its record is copied N times
with other names and statistics (10 % discarded, 2 % failed; every discarded one has a
thumbnail and a PSD image, as a combined run's have), and the tables are rebuilt by
:func:`daskmic.run.publish.publish`. Then :meth:`daskmic.report.live.LiveReport.update` (render
from the published table, the records' times, the thumbnails and PSD images; atomic write) is
timed, best of three, against the rebuild it follows (``publish``, once): the ratio is the
update's share on top of each rebuild, which the driver's rebuild spacing keeps at
:data:`daskmic.run.feeder.PUBLISH_SHARE` of its time together.

``python -m benchmarks --only live`` (``--smoke``: 10, 20 and 40 micrographs).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.table import Row
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
from daskmic.report.live import LiveReport
from daskmic.run.config import RunConfig
from daskmic.run.driver import prepare
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest
from daskmic.run.publish import publish
from daskmic.run.unit import process_micrograph
from daskmic.tilt.params import TiltParams

SIZES = (100, 1_000, 10_000)
SMOKE_SIZES = (10, 20, 40)
CONFIG = RunConfig(tilt=TiltParams(window_size=256), thumbnail_px=64)


def make_folder(out: Path, n: int, seed: int = 0) -> Path:
    """An output folder of ``n`` recorded micrographs, its tables published (see module)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.parent / "input.mrc"
    image, _ = synthesize_micrograph((512, 512), pixel_size_A=1.0, seed=seed)
    write_mrc(raw, image, 1.0)
    sources, digest = prepare([str(raw)], out, CONFIG)
    template = process_micrograph(sources[0], CONFIG, str(out), digest)
    manifest = Manifest(out)
    psd_png = Path(template["psd_path"]).with_suffix(".png")
    thumbnail = np.asarray(image[::8, ::8], dtype=np.float32)
    rng = np.random.default_rng(seed)
    for i in range(n):
        name = f"mic_{i:05d}"
        row = {**template, "micrograph": name, "path": str(out.parent / f"{name}.mrc")}
        mean, std = rng.uniform(0.6, 0.95), rng.uniform(0.0, 0.08)
        kind = rng.uniform()
        if kind < 0.02:
            row.update(status="failed", tilt_status="failed", error="read: not an MRC file")
            row.update(tilt_mean_corr=None, tilt_std_corr=None, accepted=False)
        else:
            mean = 0.3 if kind < 0.12 else mean  # below the 0.5 threshold: discarded
            row.update(tilt_mean_corr=mean, tilt_std_corr=std)
            row.update(tilt_min_corr=mean - std, tilt_max_corr=mean + std)
        if 0.02 <= kind < 0.12:
            manifest.write_thumbnail(name, thumbnail)
            shutil.copyfile(psd_png, OutputLayout(out).psd_png(name))
        manifest.write(row, digest)
    manifest.record_path(template["micrograph"]).unlink()
    return out


def measure(out: Path, repeats: int = 3) -> tuple[float, float]:
    """Seconds of one table rebuild and of the best of ``repeats`` live-page updates."""
    start = time.perf_counter()
    publish(out, CONFIG)
    rebuild = time.perf_counter() - start
    live = LiveReport(out, "stream")
    live.received(len(Manifest(out).rows()))
    updates = []
    for _ in range(repeats):
        start = time.perf_counter()
        live.update()
        updates.append(time.perf_counter() - start)
    if not (out / "report.html").is_file():
        raise RuntimeError(f"no live page was written in {out}")
    return rebuild, min(updates)


def run(workdir: Path, smoke: bool) -> list[Row]:
    """Time one live-page update per set size, against the table rebuild it follows."""
    rows = []
    for n in SMOKE_SIZES if smoke else SIZES:
        out = make_folder(workdir / f"live_{n}" / "out", n)
        rebuild, update = measure(out)
        case = f"{n} micrographs, tilt screen"
        rows.append(Row("live", case, "table rebuild (publish)", 1000 * rebuild, "ms"))
        rows.append(
            Row("live", case, "live page update", 1000 * update, "ms", update / rebuild, "/rebuild")
        )
        print(f"live page: {n} micrographs, {1000 * update:.0f} ms per update", flush=True)
        shutil.rmtree(out.parent, ignore_errors=True)
    return rows
