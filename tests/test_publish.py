"""Publishing as micrographs finish: the files equal one publish of all the records, each
publish touches only what changed, and thumbnails are stored once, 8-bit, looking the same."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

import daskmic.run.publish
from daskmic.io import make_thumbnail, open_results
from daskmic.io.png import grey_png
from daskmic.io.thumbnails import decode_thumbnails, encode_thumbnail
from daskmic.preprocessing.params import PreprocessParams
from daskmic.report.plot import thumbnail_data
from daskmic.run.config import RunConfig
from daskmic.run.driver import prepare
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest
from daskmic.run.publish import publish
from daskmic.run.unit import process_micrograph
from daskmic.tilt.params import TiltParams

CONFIG = RunConfig(
    preprocess=PreprocessParams(crop=2, normalize=True),
    tilt=TiltParams(window_size=256),
    thumbnail_px=32,
)


@pytest.fixture
def run(write_micrographs, tmp_path):
    """Eight micrographs bound to an output folder, nothing processed yet."""
    paths = write_micrographs(n=8, shape=(512, 512), pixel_size_A=2.0)
    sources, digest = prepare([str(p) for p in paths], tmp_path / "out", CONFIG)
    daskmic.run.publish._PUBLISHERS.clear()
    yield tmp_path / "out", sources, digest
    daskmic.run.publish._PUBLISHERS.clear()


def _process(out: Path, sources, digest, indices) -> None:
    for index in indices:
        row = process_micrograph(sources[index], CONFIG, str(out), digest)
        assert row["error"] == "", row["error"]


def _snapshot(out: Path) -> dict[str, bytes | dict]:
    """Every published file's bytes (the root's metadata parsed, without its timestamp)."""
    files: dict[str, bytes | dict] = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        if path.is_dir() or relative.startswith((".daskmic", "mrc/", "psd/", "report")):
            continue
        if relative == "micrographs.zarr/zarr.json":
            root = json.loads(path.read_bytes())
            del root["attributes"]["created"]
            files[relative] = root
        else:
            files[relative] = path.read_bytes()
    return files


def _unpublish(out: Path) -> None:
    """Remove what publishing made (tables, the store's table and metadata), keep the rest."""
    for name in OutputLayout(out).tables():
        name.unlink(missing_ok=True)
    shutil.rmtree(OutputLayout(out).live_sets, ignore_errors=True)  # the live Scipion sets
    store = OutputLayout(out).zarr
    for entry in store.iterdir():
        if entry.name not in ("micrographs", "psd"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def test_publishing_as_micrographs_finish_equals_one_publish(run):
    out, sources, digest = run
    for indices in ([3], [0, 5], [7], [1, 2], [6], [4]):  # out of name order: rows move
        _process(out, sources, digest, indices)
        publish(out, CONFIG, stream_open=True)
    _process(out, sources, digest, [5])  # a retry rewrites one micrograph
    publish(out, CONFIG, stream_open=True)
    publish(out, CONFIG)  # the last one closes the Scipion sets
    streamed = _snapshot(out)

    _unpublish(out)
    daskmic.run.publish._PUBLISHERS.clear()  # a new process: one publish of every record
    rows = publish(out, CONFIG)
    assert _snapshot(out) == streamed

    names = [s.micrograph for s in sources]
    assert [r["micrograph"] for r in rows] == names
    table = open_results(OutputLayout(out).zarr)
    assert table.micrograph.values.tolist() == names
    manifest = Manifest(out)
    for name in names:  # each row's thumbnail is that micrograph's
        np.testing.assert_array_equal(
            table.thumbnail.sel(micrograph=name).values, manifest.thumbnail(name).values()
        )


def test_a_publish_touches_only_what_changed(run):
    out, sources, digest = run
    _process(out, sources, digest, [0, 1, 2, 4])
    publish(out, CONFIG, stream_open=True)
    layout = OutputLayout(out)
    store = layout.zarr
    chunks = {p: p.stat().st_mtime_ns for p in (store / "thumbnail").rglob("c/*/*/*")}
    tables = {p: p.stat().st_mtime_ns for p in layout.tables() if p.exists()}
    assert len(chunks) == 4 and layout.micrographs_csv in tables

    publish(out, CONFIG, stream_open=True)  # nothing changed: nothing is written
    assert {p: p.stat().st_mtime_ns for p in tables} == tables
    publish(out, CONFIG, stream_open=True)
    assert {p: p.stat().st_mtime_ns for p in chunks} == chunks

    _process(out, sources, digest, [5, 6])  # after the others in name order: an append
    publish(out, CONFIG, stream_open=True)
    assert {p: p.stat().st_mtime_ns for p in chunks} == chunks, "no thumbnail rewritten"
    assert len(list((store / "thumbnail").rglob("c/*/*/*"))) == 6


def test_a_new_process_publishes_only_what_changed_since(run):
    out, sources, digest = run
    _process(out, sources, digest, [0, 2, 3, 6])
    publish(out, CONFIG, stream_open=True)
    store = OutputLayout(out).zarr
    chunks = {p: p.stat().st_mtime_ns for p in (store / "thumbnail").rglob("c/*/*/*")}
    daskmic.run.publish._PUBLISHERS.clear()  # a new process, e.g. resuming
    _process(out, sources, digest, [7, 2])  # one new after the others, one retried
    publish(out, CONFIG)
    kept = {p: t for p, t in chunks.items() if p.parts[-3] != "1"}  # row 1: mic_002, retried
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "nothing published is redone"
    resumed = _snapshot(out)
    _unpublish(out)
    daskmic.run.publish._PUBLISHERS.clear()
    publish(out, CONFIG)
    assert _snapshot(out) == resumed


def _items_stored(out: Path) -> dict[str, int]:
    """By Scipion set, the items its last publish in this process stored (made and inserted)."""
    (publisher,) = daskmic.run.publish._PUBLISHERS.values()
    sets = publisher._tables._sets  # the live databases (daskmic.io.live_set), by kind
    return {kind: live.written for kind, live in sets.items()}


def test_scipion_sets_store_only_what_changed(run):
    out, sources, digest = run
    raw = Path(sources[2].path)
    good = raw.read_bytes()
    raw.write_bytes(good[:4096])  # truncated: mic_002 fails
    failed = process_micrograph(sources[2], CONFIG, str(out), digest)
    assert failed["status"] == "failed"
    _process(out, sources, digest, [0, 1, 4])
    publish(out, CONFIG, stream_open=True)
    assert _items_stored(out)["micrographs"] == 3

    raw.write_bytes(good)  # mic_002 retried: before mic_004, whose id moves; mic_005 after
    _process(out, sources, digest, [2, 5])
    publish(out, CONFIG, stream_open=True)
    assert _items_stored(out)["micrographs"] == 3

    daskmic.run.publish._PUBLISHERS.clear()  # a new process takes the live sets over
    _process(out, sources, digest, [7])
    publish(out, CONFIG)
    assert _items_stored(out)["micrographs"] == 1
    resumed = _snapshot(out)

    _unpublish(out)
    daskmic.run.publish._PUBLISHERS.clear()
    publish(out, CONFIG)  # one publish of every record, the sets made from nothing
    assert _items_stored(out)["micrographs"] == 6
    assert _snapshot(out) == resumed


def test_thumbnails_are_stored_once(run):
    out, sources, digest = run
    _process(out, sources, digest, range(3))
    publish(out, CONFIG)
    manifest = Manifest(out)
    for index, source in enumerate(sources[:3]):
        stored = manifest.thumbnail(source.micrograph)
        chunk = OutputLayout(out).zarr / "thumbnail" / "c" / str(index) / "0" / "0"
        assert chunk.stat().st_ino == stored.path.stat().st_ino, "the chunk is the manifest's file"
        assert chunk.stat().st_nlink == 2
        assert chunk.stat().st_size == CONFIG.thumbnail_px**2


def _report_png(thumbnail: np.ndarray) -> np.ndarray:
    """The report's rendering of a thumbnail: its contrast-clipped 8-bit PNG, as pixels."""
    return np.asarray(Image.open(io.BytesIO(grey_png(thumbnail_data(thumbnail)))), dtype=int)


@pytest.mark.parametrize("hot_pixels", [False, True])
def test_stored_thumbnails_look_like_the_float_ones(write_micrographs, hot_pixels):
    from daskmic.io import read_micrograph

    for path in write_micrographs(n=3, shape=(512, 512), seed=3):
        image = read_micrograph(path).astype(np.float64)
        if hot_pixels:  # a few detector outliers dominate min and max
            image.flat[[5, 50_000, 200_000]] = image.mean() + 1e3 * image.std()
        thumb = make_thumbnail(image, 256)
        levels, low, high = encode_thumbnail(thumb)
        stored = decode_thumbnails(levels.astype(np.float64), low, high)
        before, after = _report_png(thumb), _report_png(stored)
        difference = np.abs(before - after)
        assert difference.max() <= 2, "at most two grey levels anywhere"
        assert difference.mean() <= 0.6
        for percentiles in [(0.5, 99.5), (1.0, 99.0)]:  # the montage's and the page's
            a = thumbnail_data(thumb, percentiles=percentiles)
            b = thumbnail_data(stored, percentiles=percentiles)
            assert np.abs(a - b).max() <= 2.5 / 255


def test_consolidated_metadata_is_what_zarr_consolidates(run, tmp_path):
    out, sources, digest = run
    _process(out, sources, digest, [2, 0])
    publish(out, CONFIG, stream_open=True)
    _process(out, sources, digest, [1])
    publish(out, CONFIG)
    store = OutputLayout(out).zarr
    ours = json.loads((store / "zarr.json").read_bytes())["consolidated_metadata"]
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    with pytest.warns(UserWarning):  # v3 consolidation not in the spec; the OME-XML
        zarr.consolidate_metadata(str(copy), zarr_format=3)
    theirs = json.loads((copy / "zarr.json").read_bytes())["consolidated_metadata"]
    assert ours == theirs
