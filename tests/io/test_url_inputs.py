"""Inputs at URLs: the same micrographs read from local files, S3 (moto) and HTTP agree.

Real servers on 127.0.0.1 (``s3`` and ``http_folder`` fixtures); their traffic counters check
that a header costs a bounded number of requests and bytes, and that pixels come by range.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
import xarray as xr

import daskmic as dm
from daskmic.errors import UsageError
from daskmic.io import MicrographError, read_header, read_micrograph
from daskmic.io.storage import location
from daskmic.run.sources import catalogue

NAMES = ("a", "b", "c")
HEADER_BUDGET_BYTES = 16 * 1024
"""At most what reading one micrograph's header may cost on the wire."""


def _write_set(folder: Path) -> dict[str, np.ndarray]:
    """Three 96 x 128 float32 MRC micrographs and a STAR table naming them relatively."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for name in NAMES:
        data = rng.normal(10, 2, (96, 128)).astype(np.float32)
        with mrcfile.new(folder / f"{name}.mrc", overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = 1.5
        images[name] = data
    rows = "\n".join(f"{name}.mrc 1" for name in NAMES)
    (folder / "set.star").write_text(
        "data_optics\nloop_\n_rlnOpticsGroup\n_rlnMicrographPixelSize\n1 1.5\n\n"
        f"data_micrographs\nloop_\n_rlnMicrographName\n_rlnOpticsGroup\n{rows}\n"
    )
    return images


def _upload(s3, folder: Path, prefix: str = "raw") -> str:
    """Copy ``folder``'s files to a fresh bucket under ``prefix``; the prefix's URL."""
    url = f"{s3.bucket()}/{prefix}"
    fs = s3.filesystem()
    for file in sorted(folder.iterdir()):
        fs.pipe_file(f"{url}/{file.name}"[len("s3://"):], file.read_bytes())
    return url


@pytest.fixture
def local_set(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return tmp_path / "raw", _write_set(tmp_path / "raw")


def test_local_s3_and_http_give_the_same_arrays_and_sources(local_set, s3, http_folder):
    folder, images = local_set
    url = _upload(s3, folder)
    _write_set(http_folder.root)
    options = s3.storage_options
    opened = {
        "local": dm.open_micrographs(str(folder / "*.mrc")),
        "s3 glob": dm.open_micrographs(f"{url}/*.mrc", storage_options=options),
        "s3 folder": dm.open_micrographs(url, storage_options=options),
        "s3 table": dm.open_micrographs(f"{url}/set.star", storage_options=options),
        "http table": dm.open_micrographs(f"{http_folder.url}/set.star"),
        "http files": dm.open_micrographs([f"{http_folder.url}/{n}.mrc" for n in NAMES]),
    }
    expected = np.stack([images[n] for n in NAMES])
    for how, mics in opened.items():
        assert list(mics["micrograph"].values) == list(NAMES), how
        np.testing.assert_array_equal(mics.values, expected, err_msg=how)
        assert mics["pixel_size_A"].values.tolist() == [1.5] * 3, how
        assert mics.attrs["failed"] == [], how
    assert list(opened["s3 glob"]["path"].values) == [f"{url}/{n}.mrc" for n in NAMES]
    http_paths = [f"{http_folder.url}/{n}.mrc" for n in NAMES]
    assert list(opened["http table"]["path"].values) == http_paths
    assert list(opened["http table"]["rlnMicrographName"].values) == [f"{n}.mrc" for n in NAMES]

    local_sources, _ = catalogue(str(folder / "*.mrc"))
    s3_sources, _ = catalogue(f"{url}/*.mrc", storage_options=options)
    http_sources, _ = catalogue(http_paths)
    for sources, base in ((s3_sources, url), (http_sources, http_folder.url)):
        assert [s.path for s in sources] == [f"{base}/{n}.mrc" for n in NAMES]
        strip = [(s.micrograph, s.pixel_size_A, s.shape, s.error) for s in sources]
        assert strip == [(s.micrograph, s.pixel_size_A, s.shape, s.error) for s in local_sources]


def test_a_header_costs_two_small_requests_and_pixels_come_by_range(local_set, s3):
    folder, images = local_set
    url = _upload(s3, folder)
    target = location(f"{url}/b.mrc", s3.storage_options)
    target.fs.invalidate_cache()
    s3.traffic.clear()
    header = read_header(target)
    assert header.shape == (96, 128) and header.path == f"{url}/b.mrc"
    assert s3.traffic.count("/raw/b.mrc") <= 2  # its size (HEAD) and its first KiB
    assert s3.traffic.bytes_sent("/raw/b.mrc") <= HEADER_BUDGET_BYTES

    s3.traffic.clear()
    band = read_micrograph(target, (slice(40, 50), slice(3, 9)))
    np.testing.assert_array_equal(band, images["b"][40:50, 3:9])
    row_bytes = 128 * 4
    ranged = s3.traffic.bytes_sent("/raw/b.mrc") - 1024  # the header, read again
    assert ranged == 10 * row_bytes  # the 10 rows, not the 48 KiB image
    np.testing.assert_array_equal(
        read_micrograph(target, (slice(90, 10, -7), slice(None, None, 5))),
        images["b"][90:10:-7, ::5],
    )


def test_open_micrographs_reads_headers_within_the_budget_and_no_pixels(local_set, s3):
    folder, _ = local_set
    url = _upload(s3, folder)
    s3.traffic.clear()
    mics = dm.open_micrographs(f"{url}/*.mrc", storage_options=s3.storage_options)
    per_file = [s3.traffic.bytes_sent(f"/raw/{n}.mrc") for n in NAMES]
    assert max(per_file) <= HEADER_BUDGET_BYTES, per_file
    assert all(s3.traffic.count(f"/raw/{n}.mrc") <= 3 for n in NAMES)  # + a stamp (HEAD)
    s3.traffic.clear()
    corner = mics[1, :8, :8].values
    assert corner.shape == (8, 8)
    assert s3.traffic.count("/raw/a.mrc") == 0 and s3.traffic.count("/raw/c.mrc") == 0


def test_tiff_at_a_url(tmp_path, http_folder):
    data = np.arange(64 * 80, dtype=np.uint16).reshape(64, 80)
    tifffile.imwrite(http_folder.root / "t.tif", data, resolution=(1e8 / 2.0, 1e8 / 2.0),
                     resolutionunit=3)
    url = f"{http_folder.url}/t.tif"
    http_folder.traffic.clear()
    header = read_header(url)
    assert (header.shape, header.format, header.pixel_size_A) == ((64, 80), "tiff", 2.0)
    assert http_folder.traffic.bytes_sent("/t.tif") <= HEADER_BUDGET_BYTES + 32 * 1024
    np.testing.assert_array_equal(read_micrograph(url, (slice(5, 9), slice(70, 80))),
                                  data[5:9, 70:80])


def test_the_xarray_backend_opens_a_url(local_set, s3):
    folder, images = local_set
    url = _upload(s3, folder)
    ds = xr.open_dataset(f"{url}/c.mrc", engine="daskmic", storage_options=s3.storage_options)
    assert str(ds["micrograph"].values) == "c" and str(ds["path"].values) == f"{url}/c.mrc"
    np.testing.assert_array_equal(ds["image"][10:20, 5:7].values, images["c"][10:20, 5:7])


def test_http_lists_nothing_so_globs_and_folders_are_usage_errors(http_folder):
    _write_set(http_folder.root)
    with pytest.raises(UsageError, match="lists no folder"):
        dm.open_micrographs(f"{http_folder.url}/*.mrc")
    with pytest.raises(UsageError, match="lists no folder"):
        catalogue(f"{http_folder.url}/")


def test_a_listing_that_finds_nothing_is_a_usage_error(s3):
    with pytest.raises(UsageError, match="no micrograph files found"):
        catalogue(f"{s3.bucket()}/raw/*.mrc", storage_options=s3.storage_options)
    with pytest.raises(UsageError, match="no micrograph files found"):
        catalogue("s3://no-such-bucket-here/raw/*.mrc", storage_options=s3.storage_options)


def test_missing_bucket_denied_key_and_vanished_object_fail_alone(local_set, s3):
    folder, _ = local_set
    url = _upload(s3, folder)
    denied = s3.filesystem()
    bucket = url[len("s3://"):].split("/")[0]
    denied.pipe_file(f"{bucket}/secret/d.mrc", (folder / "a.mrc").read_bytes())
    policy = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", '
        f'"Action": "s3:GetObject", "Resource": "arn:aws:s3:::{bucket}/secret/*"}}]}}'
    )
    denied.call_s3("put_bucket_policy", Bucket=bucket, Policy=policy)
    inputs = [f"{url}/a.mrc", f"{url}/b.mrc", "s3://no-such-bucket-here/x.mrc",
              f"s3://{bucket}/secret/d.mrc"]
    sources, _ = catalogue(inputs, storage_options=s3.storage_options)
    by_name = {s.micrograph: s for s in sources}
    assert by_name["a"].error == "" and by_name["b"].error == ""
    assert "no such file" in by_name["x"].error
    assert by_name["d"].error.startswith("access denied")
    s3.filesystem().rm_file(f"{url}/b.mrc"[len("s3://"):])  # vanishes after listing
    with pytest.raises(MicrographError, match="no such file"):
        read_micrograph(by_name["b"].path, storage_options=s3.storage_options)


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in (".mrc", ".png", ".csv", ".star", ".xmd")
    }


def test_a_batch_from_s3_to_a_local_folder_equals_the_local_batch(
    write_micrographs, tmp_path, s3, client, monkeypatch
):
    mics = write_micrographs(n=3, shape=(640, 640))  # the tilt screen needs 640 px
    url = _upload(s3, mics[0].parent)
    config = dm.RunConfig(
        preprocess=dm.PreprocessParams.from_options(crop=True, downsample=True, normalize=True),
        tilt=dm.TiltParams(resolution_A=3.0),
        storage_options=s3.storage_options,
    )
    outputs = {}
    for how, inputs in (("local", [str(p) for p in mics]), ("s3", f"{url}/*.mrc")):
        (tmp_path / how).mkdir()
        monkeypatch.chdir(tmp_path / how)  # the STAR tables name outputs relative to cwd
        summary = dm.run_batch(inputs, "out", config, client=client)
        assert summary.counts().get("failed", 0) == 0, summary.rows
        outputs[how] = _files(tmp_path / how / "out")
    assert sorted(outputs["s3"]) == sorted(outputs["local"])
    differ = [name for name in outputs["local"] if outputs["s3"][name] != outputs["local"][name]]
    assert all(name.endswith((".csv", ".xmd", ".star")) for name in differ), differ
    for name in differ:  # only the input paths differ: the URLs, as given
        local = outputs["local"][name].decode()
        local = local.replace(str(tmp_path / "local" / "out"), str(tmp_path / "s3" / "out"))
        for path in mics:
            relative = os.path.relpath(path, tmp_path / "local")
            local = local.replace(str(path), f"{url}/{path.name}").replace(
                f'"{relative}"', f'"{url}/{path.name}"'
            )
        assert outputs["s3"][name].decode() == local, name



def test_an_object_rewritten_in_place_is_redone_and_the_rest_read_from_the_listing(
    write_micrographs, tmp_path, s3, monkeypatch
):
    """Inputs in a bucket carry their version (ETag) in their done-records: a rerun asks the
    bucket for nothing but its listing, and an object rewritten under the same key (same size)
    is processed again, alone; an object that arrived since is seen (this process's cached
    listing is not trusted)."""
    from daskmic.run.manifest import Manifest

    mics = write_micrographs(n=3, shape=(64, 64))
    url = _upload(s3, mics[0].parent)
    config = dm.RunConfig(
        preprocess=dm.PreprocessParams(crop=2, invert=True), write_stack=False,
        storage_options=s3.storage_options,
    )
    monkeypatch.chdir(tmp_path)
    assert dm.run_batch(f"{url}/*.mrc", "out", config).counts() == {"done": 3}
    records = Manifest(tmp_path / "out").records_dir
    made = {p.name: p.stat().st_mtime_ns for p in records.iterdir()}
    etags = {p.name: s3.filesystem().info(f"{url}/{p.name}"[5:])["ETag"] for p in mics}
    kept = {name: Manifest(tmp_path / "out").read(name)["input"] for name in ("mic_000",)}
    assert kept["mic_000"] == [mics[0].stat().st_size, etags["mic_000.mrc"]]

    s3.traffic.clear()
    assert dm.run_batch(f"{url}/*.mrc", "out", config).counts() == {"done": 3}
    assert s3.traffic.count("/raw/mic_") == 0, "a current set reads no object, not a header"
    assert {p.name: p.stat().st_mtime_ns for p in records.iterdir()} == made

    with mrcfile.open(mics[1], "r+") as mrc:  # new pixels, same size: only the version says
        mrc.data[:8] *= -1
    s3.filesystem().pipe_file(f"{url}/{mics[1].name}"[5:], mics[1].read_bytes())
    s3.filesystem().pipe_file(f"{url}/mic_new.mrc"[5:], mics[2].read_bytes())  # arrived since
    assert dm.run_batch(f"{url}/*.mrc", "out", config).counts() == {"done": 4}
    now = {p.name: p.stat().st_mtime_ns for p in records.iterdir()}
    assert sorted(name for name in now if now[name] != made.get(name)) == [
        "mic_001.json", "mic_new.json"
    ]
    with mrcfile.open(tmp_path / "out" / "mrc" / "mic_001.mrc") as out:
        np.testing.assert_array_equal(out.data, -mrcfile.read(mics[1])[2:-2, 2:-2])


def test_storage_options_on_the_command_line(capsys):
    from daskmic.cli import _config, build_parser, main

    given = '{"key": "k", "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}'
    args = build_parser().parse_args(["preprocess", "s3://b/*.mrc", "-o", "out", "--crop",
                                      "--storage-options", given])
    config = _config(args, preprocess=True, tilt=False)
    assert config.storage_options == {"key": "k",
                                      "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}
    assert "storage" not in repr(config) and "storage" not in str(config.to_dict())
    for bad in ("{not json", "[1, 2]"):
        with pytest.raises(SystemExit) as exit_:
            main(["tilt", "s3://b/*.mrc", "-o", "out", "--storage-options", bad])
        assert exit_.value.code == 2
        assert "--storage-options" in capsys.readouterr().err
