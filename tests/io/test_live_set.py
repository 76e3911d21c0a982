"""A Scipion set kept live between publishes: each write stores only the items new, changed or
moved since, and the file is byte for byte the set written whole from every item; a new
process takes the database over, and a damaged or missing one is made again."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from daskmic.io.live_set import LiveSet
from daskmic.io.row_cache import Rows, objects
from daskmic.io.scipion import read_set
from daskmic.io.scipion_write import write_set


def _items(names: list[str], stamps: dict[str, int], ids: str) -> pd.DataFrame:
    """Items of ``names`` (sorted), each a function of its name and stamp; ids are the
    positions (1..N, as for micrographs without an input set) or fixed per name."""
    numbers = [int(name[1:]) for name in names]
    positions = np.arange(1, len(names) + 1)
    return pd.DataFrame(
        {
            "id": positions if ids == "positions" else [100 - n for n in numbers],
            "_filename": [f"mrc/{n}.mrc" for n in names],
            "_samplingRate": [1.0 + 0.5 * stamps[n] for n in names],
            "_acquisition._voltage": 300.0,
            "_micName": names,
            "_tilt_mean_corr": [np.nan if n == 3 else 0.1 * n for n in numbers],
        }
    )


def _write(path, live: LiveSet | None, names: list[str], stamps, ids: str = "positions") -> None:
    names = sorted(names)
    items = _items(names, stamps, ids)
    keys = objects(names)
    rows = Rows(live.cache, keys, [objects([stamps[n] for n in names])]) if live else None
    creation = [f"2026-12-0{1 + int(n[1:]) % 9} 10:00:00" for n in names]
    write_set(path, items, stream_open=True, dims=(64, 64), creation=creation, rows=rows, live=live)


def _same_as_whole(tmp_path, names, stamps, ids: str = "positions") -> bytes:
    """The live file's bytes, checked against a whole write of the same items."""
    _write(tmp_path / "whole.sqlite", None, names, stamps, ids)
    live = (tmp_path / "live.sqlite").read_bytes()
    assert live == (tmp_path / "whole.sqlite").read_bytes()
    return live


def test_only_new_changed_and_moved_items_are_stored(tmp_path):
    live = LiveSet(tmp_path / ".daskmic" / "sets" / "live.sqlite")
    stamps = {f"m{i}": 0 for i in range(10)}
    steps = [  # (names, a name whose record changed, items stored)
        (["m2", "m5", "m7"], "", 3),
        (["m2", "m5", "m7", "m8", "m9"], "", 2),  # appended
        (["m2", "m5", "m7", "m8", "m9"], "", 0),  # nothing new
        (["m2", "m5", "m6", "m7", "m8", "m9"], "", 4),  # out of order: m6 and the ids after it
        (["m2", "m5", "m6", "m7", "m8", "m9"], "m5", 1),  # a changed record
        (["m2", "m6", "m7", "m8", "m9"], "", 4),  # one gone: the ids after it move
        (["m0", "m1", "m2", "m6", "m7", "m8", "m9"], "", 7),  # before every other
    ]
    for names, changed, stored in steps:
        if changed:
            stamps[changed] += 1
        _write(tmp_path / "live.sqlite", live, names, stamps)
        assert live.written == stored
        _same_as_whole(tmp_path, names, stamps)
    assert read_set(tmp_path / "live.sqlite").items["_micName"].tolist() == [
        "m0", "m1", "m2", "m6", "m7", "m8", "m9"
    ]


def test_ids_of_the_input_set_move_nothing(tmp_path):
    live = LiveSet(tmp_path / "sets" / "live.sqlite")
    stamps = {f"m{i}": 0 for i in range(10)}
    for names, stored in [(["m4", "m8"], 2), (["m1", "m4", "m6", "m8"], 2), (["m1", "m8"], 0)]:
        _write(tmp_path / "live.sqlite", live, names, stamps, ids="input")
        assert live.written == stored
        _same_as_whole(tmp_path, names, stamps, ids="input")


def test_a_new_process_takes_the_database_over(tmp_path):
    file = tmp_path / "sets" / "live.sqlite"
    stamps = {f"m{i}": 0 for i in range(10)}
    first = LiveSet(file)
    _write(tmp_path / "live.sqlite", first, ["m1", "m3", "m5"], stamps)
    first.close()  # a run's last publish: its files closed, what it holds remembered
    assert sorted(p.name for p in file.parent.iterdir()) == ["live.sqlite"], "no WAL left"
    _write(tmp_path / "live.sqlite", first, ["m1", "m3", "m5"], stamps)
    assert first.written == 0
    first.close()

    stamps["m3"] += 1
    again = LiveSet(file)  # what a new process has: the database, nothing in memory
    _write(tmp_path / "live.sqlite", again, ["m1", "m3", "m5", "m6"], stamps)
    assert again.written == 2, "the changed record and the new one"
    _same_as_whole(tmp_path, ["m1", "m3", "m5", "m6"], stamps)

    other = LiveSet(file)  # another writer of the same database in between
    _write(tmp_path / "live.sqlite", other, ["m1", "m3", "m6"], stamps)
    _write(tmp_path / "live.sqlite", again, ["m1", "m3", "m6", "m7"], stamps)
    assert again.written == 1
    _same_as_whole(tmp_path, ["m1", "m3", "m6", "m7"], stamps)


def test_a_damaged_or_missing_database_is_made_again(tmp_path):
    file = tmp_path / "sets" / "live.sqlite"
    stamps = {f"m{i}": 0 for i in range(6)}
    names = ["m0", "m2", "m4"]
    first = LiveSet(file)
    _write(tmp_path / "live.sqlite", first, names, stamps)
    first.close()  # as at the end of a process

    file.write_bytes(b"not a database" * 100)
    live = LiveSet(file)
    _write(tmp_path / "live.sqlite", live, names, stamps)
    assert live.written == 3
    _same_as_whole(tmp_path, names, stamps)

    live.close()
    with sqlite3.connect(file) as db:  # readable, but its items lost behind its back
        db.execute("DELETE FROM Objects WHERE id = 2")
        db.execute("DROP TABLE daskmic_rows")
    live = LiveSet(file)
    _write(tmp_path / "live.sqlite", live, names, stamps)
    assert live.written == 3
    _same_as_whole(tmp_path, names, stamps)

    live.close()
    file.unlink()
    live = LiveSet(file)
    _write(tmp_path / "live.sqlite", live, [*names, "m5"], stamps)
    assert live.written == 4
    _same_as_whole(tmp_path, [*names, "m5"], stamps)


def test_the_file_holds_only_the_set(tmp_path):
    live = LiveSet(tmp_path / "sets" / "live.sqlite")
    _write(tmp_path / "live.sqlite", live, ["m1", "m2"], {"m1": 0, "m2": 0})
    with sqlite3.connect(tmp_path / "live.sqlite") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert db.execute("PRAGMA freelist_count").fetchone() == (0,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert {t for t in tables if not t.startswith("sqlite_")} == {
        "Properties",
        "Classes",
        "Objects",
    }
