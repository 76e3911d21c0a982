"""The manifest: records, parameter binding, resume refusal."""

import json

import numpy as np
import pytest

from daskmic.run.manifest import Manifest, canonical_json, parameters_hash


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert parameters_hash({"b": 1, "a": 2}) == parameters_hash({"a": 2, "b": 1})
    assert parameters_hash({"a": 1}) != parameters_hash({"a": 2})


def test_canonical_json_converts_numpy_scalars_and_arrays():
    assert json.loads(canonical_json({"x": np.float32(1.5), "y": np.arange(2)})) == {
        "x": 1.5,
        "y": [0, 1],
    }


def test_records_sorted_and_done_only_when_successful(tmp_path):
    manifest = Manifest(tmp_path)
    digest = manifest.bind({"p": 1, "t": 0.5}, {"p": 1})
    manifest.write({"micrograph": "b", "path": "/b.mrc", "status": "done", "error": ""}, digest)
    manifest.write(
        {"micrograph": "a", "path": "/a.mrc", "status": "failed", "error": "truncated"}, digest
    )
    assert [row["micrograph"] for row in manifest.rows()] == ["a", "b"]
    assert manifest.is_done("b", digest, "/b.mrc")
    assert not manifest.is_done("b", digest, "/elsewhere/b.mrc"), "another file of that name"
    assert not manifest.is_done("a", digest, "/a.mrc"), "a failed record must be retried"
    assert not manifest.is_done("c", digest, "/c.mrc")
    assert not manifest.is_done("b", "another-hash", "/b.mrc")
    assert not list(tmp_path.rglob(".*.tmp-*")), "no temporary file may remain"


def test_rebinding_other_parameters_is_refused_unless_overwrite(tmp_path):
    manifest = Manifest(tmp_path)
    digest = manifest.bind({"p": 1}, {"p": 1})
    manifest.write({"micrograph": "a", "status": "done", "error": ""}, digest)
    assert manifest.bind({"p": 1, "threshold": 9}, {"p": 1}) == digest  # unhashed part may change
    assert manifest.parameters() == {"p": 1, "threshold": 9}
    with pytest.raises(ValueError, match="other parameters"):
        manifest.bind({"p": 2}, {"p": 2})
    assert manifest.rows(), "a refused bind must not touch the records"
    manifest.bind({"p": 2}, {"p": 2}, overwrite=True)
    assert manifest.rows() == []


def test_thumbnails_are_stored_once_as_8_bit_levels(tmp_path):
    rng = np.random.default_rng(0)
    manifest = Manifest(tmp_path)
    manifest.bind({}, {})
    thumb = rng.normal(size=(32, 32)).astype(np.float32)
    manifest.write_thumbnail("a", thumb)
    stored = manifest.thumbnail("a")
    assert stored.levels.dtype == np.uint8 and stored.levels.shape == (32, 32)
    assert stored.path.stat().st_size == 32 * 32, "raw levels: the zarr chunk as it is"
    low, high = np.percentile(thumb.astype(float), [0.1, 99.9])
    assert (stored.low, stored.high) == pytest.approx((low, high))
    got = stored.values()
    assert got.dtype == np.float32
    assert np.abs(got - np.clip(thumb, low, high)).max() <= (high - low) / 510 * 1.001
    assert manifest.thumbnail("missing") is None
    stored.path.unlink()
    assert manifest.thumbnail("a") is None, "a mapping without its levels is no thumbnail"


def test_a_record_keeps_its_input_stamp_and_a_changed_input_is_not_done(tmp_path):
    manifest = Manifest(tmp_path)
    digest = manifest.bind({"p": 1}, {"p": 1})
    row = {"micrograph": "b", "path": "/b.mrc", "status": "done", "error": ""}
    manifest.write(row, digest, stamp=(1024, 5))
    assert manifest.read("b")["input"] == [1024, 5]
    assert manifest.is_done("b", digest, "/b.mrc", (1024, 5))
    assert not manifest.is_done("b", digest, "/b.mrc", (1024, 6)), "touched since"
    assert not manifest.is_done("b", digest, "/b.mrc", (2048, 5)), "rewritten since"
    assert manifest.is_done("b", digest, "/b.mrc"), "a source without a stamp trusts the record"
    manifest.write({**row, "micrograph": "old"}, digest)  # as records were made before stamps
    assert "input" not in manifest.read("old")
    assert manifest.is_done("old", digest, "/b.mrc", (1024, 6)), "an old record still resumes"


def test_records_are_read_once_while_their_files_stay_the_same(tmp_path, monkeypatch):
    import daskmic.run.manifest as module

    manifest = Manifest(tmp_path)
    digest = manifest.bind({}, {})
    for name in "abc":
        manifest.write({"micrograph": name, "status": "done", "error": ""}, digest)
    reads, load = [], module._load_record

    def counted(path, *args):
        reads.append(path.stem)
        return load(path, *args)

    monkeypatch.setattr(module, "_load_record", counted)
    assert sorted(manifest.records()) == ["a", "b", "c"]
    assert sorted(Manifest(tmp_path).done(digest)) == ["a", "b", "c"]
    assert sorted(reads) == ["a", "b", "c"], "each record read once"
    manifest.records()["a"]["row"]["status"] = "changed by a caller"
    assert manifest.records()["a"]["row"]["status"] == "done", "what is kept is not shared"
    manifest.write({"micrograph": "b", "status": "failed", "error": "again"}, digest)
    assert sorted(Manifest(tmp_path).done(digest)) == ["a", "c"], "a rewritten record is read anew"
    assert sorted(reads) == ["a", "b", "b", "c"]
