"""Streaming from an object-store prefix (moto's S3 on 127.0.0.1): keys are arrivals."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from daskmic.datasets import synthesize_micrograph
from daskmic.errors import UsageError
from daskmic.io.mrc_write import write_mrc
from daskmic.io.storage import location
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.arrivals import KeyArrivals, PrefixClosing
from daskmic.run.config import RunConfig
from daskmic.run.stream import watch

CONFIG = RunConfig(preprocess=PreprocessParams.from_options(crop=True, invert=True))


def _listings(s3, bucket: str) -> int:
    """ListObjects requests on ``bucket`` (GET on the bucket itself, not on a key)."""
    name = bucket.removeprefix("s3://")
    return sum(
        1 for method, path, _, _ in s3.traffic.requests
        if method == "GET" and path.strip("/") == name
    )


def test_a_listed_key_arrives_once_in_one_listing_per_poll(s3):
    bucket = s3.bucket()
    fs = s3.filesystem()
    incoming = location(f"{bucket}/incoming", s3.storage_options)
    out = location(f"{bucket}/incoming/results", s3.storage_options)
    arrivals = KeyArrivals(incoming, "*.mrc", exclude=out, marker="CLOSED")
    closing = PrefixClosing(incoming / "CLOSED", None, arrivals)
    assert arrivals.poll() == [], "an empty prefix is no error"
    base = bucket.removeprefix("s3://")
    for key in ("a.mrc", ".hidden.mrc", "notes.txt", "sub/deeper.mrc", "results/mrc/a.mrc"):
        fs.pipe_file(f"{base}/incoming/{key}", b"bytes")
    s3.traffic.clear()
    assert arrivals.poll() == [f"{bucket}/incoming/a.mrc"]
    assert _listings(s3, bucket) == 1
    assert s3.traffic.count() == 1, "no request per key"
    assert arrivals.waiting == 0
    fs.pipe_file(f"{base}/incoming/b.mrc", b"bytes")
    assert arrivals.poll() == [f"{bucket}/incoming/b.mrc"], "the listing is not a stale cache"
    assert arrivals.poll() == []
    assert arrivals.seen == [f"{bucket}/incoming/a.mrc", f"{bucket}/incoming/b.mrc"]
    # the marker counts from the listing before: keys put before it are in the next one
    fs.pipe_file(f"{base}/incoming/CLOSED", b"")
    assert not closing.signalled()
    arrivals.poll()
    assert closing.signalled()
    assert closing.due(closing.signalled(), arrivals)


def test_recursive_patterns_on_a_prefix(s3):
    bucket = s3.bucket()
    fs = s3.filesystem()
    base = bucket.removeprefix("s3://")
    wanted = ["GridSquare_1/Data/FoilHole_1.mrc", "GridSquare_2/Data/FoilHole_1.mrc"]
    for key in [*wanted, "GridSquare_1/FoilHoles/FoilHole_1.mrc", "Atlas/atlas.mrc"]:
        fs.pipe_file(f"{base}/session/{key}", b"bytes")
    session = location(f"{bucket}/session", s3.storage_options)
    out = location(f"{bucket}/out", s3.storage_options)
    epu = KeyArrivals(session, "GridSquare_*/Data/*.mrc", exclude=out, marker="CLOSED")
    s3.traffic.clear()
    assert epu.poll() == [f"{bucket}/session/{key}" for key in wanted]
    assert _listings(s3, bucket) == s3.traffic.count() == 1, "one listing, however deep"
    assert epu.root == f"{bucket}/session"
    every = KeyArrivals(session, "**/*.mrc", exclude=out, marker="CLOSED")
    assert len(every.poll()) == 4


def test_a_prefix_that_cannot_be_watched_is_a_usage_error(s3, tmp_path: Path):
    config = RunConfig(preprocess=CONFIG.preprocess, storage_options=s3.storage_options)
    bucket = s3.bucket()
    with pytest.raises(UsageError, match="bucket 'no-such-bucket-x' does not exist"):
        watch("s3://no-such-bucket-x/incoming", tmp_path / "out", config, poll_seconds=0.1)
    with pytest.raises(UsageError, match="must not be the watched prefix"):
        watch(f"{bucket}/incoming/x", f"{bucket}/incoming", config, poll_seconds=0.1)
    with pytest.raises(UsageError, match="a web server lists nothing"):
        watch("http://127.0.0.1:9/incoming", tmp_path / "out", config, poll_seconds=0.1)


def _mrc_bytes(tmp_path: Path, seed: int) -> bytes:
    image, _ = synthesize_micrograph((256, 256), pixel_size_A=1.0, seed=seed)
    staging = tmp_path / "staging" / f"{seed}.mrc"
    write_mrc(staging, image, 1.0)
    return staging.read_bytes()


def _upload_over_time(fs, prefix: str, files: dict[str, bytes], pause: float) -> None:
    """Put each file as one object, then the ``CLOSED`` key, as a microscope's uploader would."""
    for name, data in files.items():
        fs.pipe_file(f"{prefix}/{name}", data)
        time.sleep(pause)
    fs.pipe_file(f"{prefix}/CLOSED", b"")


def _outputs(fs, out: str) -> dict[str, bytes]:
    """Every MRC under ``out`` (a local folder or a bucket's prefix) by its relative name."""
    if "://" not in out:
        return {str(p.relative_to(out)): p.read_bytes() for p in Path(out).rglob("*.mrc")}
    base = out.removeprefix("s3://")
    keys = fs.find(base, refresh=True)
    return {k.removeprefix(f"{base}/"): fs.cat_file(k) for k in keys if k.endswith(".mrc")}


def _rows(fs, table: str) -> pd.DataFrame:
    """A CSV table's rows without its path columns (they name the run's own places)."""
    with fs.open(table) if "://" in table else open(table) as handle:
        frame = pd.read_csv(handle)
    return frame.drop(columns=[c for c in frame.columns if "path" in c])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("into", ["s3", "local"])
def test_watching_a_prefix_gives_a_batch_runs_outputs(s3, client, tmp_path: Path, into: str):
    import daskmic as dm

    config = RunConfig(preprocess=CONFIG.preprocess, storage_options=s3.storage_options)
    bucket = s3.bucket()
    fs = s3.filesystem()
    base = bucket.removeprefix("s3://")
    outputs = bucket if into == "s3" else str(tmp_path)
    files = {f"mic_{i}.mrc": _mrc_bytes(tmp_path, 30 + i) for i in range(4)}
    uploader = threading.Thread(
        target=_upload_over_time, args=(fs, f"{base}/incoming", files, 0.4)
    )
    rows: list[dict] = []
    uploader.start()
    try:
        summary = watch(
            f"{bucket}/incoming",
            f"{outputs}/live",
            config,
            poll_seconds=0.1,
            batch_size=2,
            client=client,
            on_row=rows.append,
        )
    finally:
        uploader.join()
    names = ["mic_0", "mic_1", "mic_2", "mic_3"]
    assert sorted(row["micrograph"] for row in rows) == names
    assert [row["micrograph"] for row in summary.rows] == names and summary.failed == []
    assert {row["path"] for row in summary.rows} == {f"{bucket}/incoming/{n}.mrc" for n in names}

    batch = dm.run_batch(f"{bucket}/incoming/*.mrc", f"{outputs}/batch", config, client=client)
    assert [row["micrograph"] for row in batch.rows] == names
    live, made = _outputs(fs, f"{outputs}/live"), _outputs(fs, f"{outputs}/batch")
    assert sorted(live) == [f"mrc/{name}.mrc" for name in names]
    assert live == made, "every MRC the same, byte for byte"
    pd.testing.assert_frame_equal(
        _rows(fs, f"{outputs}/live/micrographs.csv"), _rows(fs, f"{outputs}/batch/micrographs.csv")
    )
