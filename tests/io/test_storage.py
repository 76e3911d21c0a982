"""The one place that knows where data lives: local paths, S3 (moto on 127.0.0.1) and HTTP."""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path

import pytest

from daskmic.errors import UsageError
from daskmic.io.storage import (
    create_exclusive,
    is_local,
    is_url,
    list_files,
    list_stamped,
    location,
    read_range,
    write_whole,
)


@pytest.mark.parametrize(
    ("value", "url"),
    [("/data/a.mrc", False), ("rel/a.mrc", False), ("C:/x.mrc", False),
     ("s3://bucket/a.mrc", True), ("https://host/a.mrc", True), ("gs://b/k", True)],
)
def test_is_url(value: str, url: bool) -> None:
    assert is_url(value) is url


def test_local_paths_stay_plain_paths(tmp_path: Path) -> None:
    assert type(location(tmp_path)) is type(tmp_path)
    assert location(f"file://{tmp_path}") == tmp_path
    assert is_local(location(str(tmp_path / "x")))


def test_a_missing_backend_names_its_extra() -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(UsageError, match=r"pip install 'daskmic\[gcs\]'"):
        location("gs://bucket/key")


def test_s3_location_carries_its_options_through_joins_and_pickling(s3) -> None:
    root = location(s3.bucket(), s3.storage_options)
    child = root / "a" / "b.mrc"
    again = pickle.loads(pickle.dumps(child))
    assert again.storage_options == s3.storage_options
    write_whole(again, b"payload")
    assert child.read_bytes() == b"payload"


def test_write_whole_is_one_request_on_s3(s3) -> None:
    target = location(s3.bucket(), s3.storage_options) / "out" / "x.bin"
    target.fs  # noqa: B018  (connect first)
    s3.traffic.clear()
    write_whole(target, b"x" * 100_000)
    assert s3.traffic.count("/out/x.bin", "PUT") == 1
    assert target.read_bytes() == b"x" * 100_000


@pytest.mark.parametrize("where", ["local", "s3"])
def test_create_exclusive_lets_exactly_one_racer_win(where: str, tmp_path: Path, s3) -> None:
    root = location(tmp_path) if where == "local" else location(s3.bucket(), s3.storage_options)
    target = root / "bound.json"
    won: list[bool] = []
    gate = threading.Barrier(4)

    def race(i: int) -> None:
        gate.wait()
        won.append(create_exclusive(target, f"runner {i}".encode()))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False, False, False, True]
    assert target.read_bytes().startswith(b"runner ")
    leftovers = [p.name for p in root.iterdir() if p.name != "bound.json"]
    assert leftovers == []


def test_read_range_is_one_ranged_request(s3, http_folder, tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    (http_folder.root / "f.bin").write_bytes(data)
    (tmp_path / "f.bin").write_bytes(data)
    on_s3 = location(s3.bucket(), s3.storage_options) / "f.bin"
    write_whole(on_s3, data)
    s3.traffic.clear()
    assert read_range(on_s3, 1000, 1100) == data[1000:1100]
    assert s3.traffic.count("/f.bin", "GET") == 1
    assert s3.traffic.bytes_sent("/f.bin") == 100
    assert read_range(location(http_folder.url + "/f.bin"), 10, 20) == data[10:20]
    assert http_folder.traffic.bytes_sent("/f.bin") <= len(data) // 10
    assert read_range(location(tmp_path / "f.bin"), 5, 9) == data[5:9]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_listing_gives_each_file_its_time_and_a_stamp_that_changes_with_it(
    where: str, tmp_path: Path, s3
) -> None:
    root = location(tmp_path) if where == "local" else location(s3.bucket(), s3.storage_options)
    folder = root / "records"
    assert list_stamped(folder) == {} and list_files(folder) == {}, "no folder: nothing"
    before = time.time()
    write_whole(folder / "a.json", b'{"row": 1}')
    write_whole(folder / "b.json", b'{"row": 2}')
    write_whole(folder / "sub" / "c.json", b"{}")  # in a subfolder: not listed
    if where == "s3":
        folder.fs  # noqa: B018  (connect first)
        s3.traffic.clear()
    listed = list_stamped(folder)
    if where == "s3":
        assert s3.traffic.count(method="GET") == 1, "one LIST request, none per object"
    assert sorted(listed) == ["a.json", "b.json"]
    assert list_files(folder) == {name: entry.modified_s for name, entry in listed.items()}
    assert all(before - 2 <= entry.modified_s <= time.time() + 2 for entry in listed.values())
    assert listed["a.json"].stamp != listed["b.json"].stamp
    assert list_stamped(folder) == listed, "nothing written: the same stamps"
    write_whole(folder / "a.json", b'{"row": 3}')  # replaced: same size, new content
    if where == "local":  # even within the file system's time granularity
        mtime_ns = listed["a.json"].stamp[1]
        os.utime(folder / "a.json", ns=(mtime_ns, mtime_ns))
    again = list_stamped(folder)
    assert again["a.json"].stamp != listed["a.json"].stamp
    assert again["b.json"] == listed["b.json"]
