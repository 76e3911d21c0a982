"""Remembered rows: a table rewritten with only its new or changed rows formatted gives the
bytes of one written from scratch (CSV, STAR, xmd, Scipion set), and formats only those rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from daskmic.io import write_csv, write_star, write_xmd
from daskmic.io.live_set import LiveSet
from daskmic.io.row_cache import RowCache, Rows, formatted, objects, positions
from daskmic.io.scipion_write import write_set
from daskmic.run.optics_groups import optics_table


def _table(names: list[str], stamps: dict[str, int]) -> pd.DataFrame:
    """Micrographs with text (one holding the CSV writer's row separator), numbers, flags;
    each row a function of its name and stamp (as a record's row is of its record)."""
    return pd.DataFrame(
        {
            "micrograph": names,
            "rlnMicrographName": [f"mrc/{n}.mrc" for n in names],
            "rlnOpticsGroup": [1 + (n == "m3") for n in names],
            "error": ["" if n != "m2" else "bad\x1e\nrow" for n in names],
            "score": [0.1 * int(n[1:]) + stamps[n] for n in names],
            "accepted": [int(n[1:]) % 2 == 0 for n in names],
        }
    )


def _rows(cache: RowCache, table: pd.DataFrame, stamps: dict[str, int]) -> Rows:
    keys = table["micrograph"].to_numpy(dtype=object)
    return Rows(cache, keys, [objects([stamps[k] for k in keys])])


def _optics(table: pd.DataFrame) -> pd.DataFrame:
    return optics_table(table["rlnOpticsGroup"].to_numpy(dtype=float))[0]


def _write_all(
    folder, table: pd.DataFrame, caches: dict[str, RowCache] | None, stamps, live=None
) -> None:
    """The tables of ``table``; with ``caches`` (and the Scipion set's ``live`` database) only
    their new or changed rows are formatted."""

    def rows(name: str) -> Rows | None:
        return None if caches is None else _rows(caches.setdefault(name, RowCache()), table, stamps)

    write_csv(folder / "t.csv", table, rows=rows("csv"))
    star = table.drop(columns=["error"])  # STAR text holds no control character
    write_star(folder / "t.star", star, _optics(table), rows=rows("star"))
    write_xmd(folder / "t.xmd", star, path_column="rlnMicrographName", rows=rows("xmd"))
    items = pd.DataFrame(
        {
            "id": np.arange(1, len(table) + 1),
            "_filename": table["rlnMicrographName"],
            "_samplingRate": table["score"],
            "_micName": table["micrograph"],
        }
    )
    creation = [f"2026-01-0{1 + int(n[1:]) % 9} 00:00:00" for n in table["micrograph"]]
    sqlite_rows = None if live is None else _rows(live.cache, table, stamps)
    write_set(
        folder / "t.sqlite", items, stream_open=True, creation=creation, rows=sqlite_rows, live=live
    )


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("t.*"))}


def test_rows_rewritten_with_what_changed_equal_a_whole_write(tmp_path):
    remembered, whole = tmp_path / "remembered", tmp_path / "whole"
    remembered.mkdir(), whole.mkdir()
    caches: dict[str, RowCache] = {}
    live = LiveSet(remembered / "live.sqlite")
    stamps = {f"m{i}": 0 for i in range(8)}
    steps = [
        (["m1", "m4", "m6"], ""),
        (["m0", "m1", "m2", "m4", "m6"], ""),  # rows before and between the known ones
        (["m0", "m1", "m2", "m3", "m4", "m5", "m6"], "m4"),  # one row's record changed
        (["m0", "m2", "m3", "m5", "m6", "m7"], ""),  # rows gone
    ]
    for names, changed in steps:
        if changed:
            stamps[changed] += 1
        table = _table(names, stamps)
        _write_all(remembered, table, caches, stamps, live)
        _write_all(whole, table, None, stamps)
        assert _files(remembered) == _files(whole)
    assert b"bad\x1e\nrow" in (whole / "t.csv").read_bytes()


def test_only_new_changed_or_unstamped_rows_are_formatted():
    cache = RowCache()
    asked: list[list[int]] = []

    def run(keys: list[str], stamps: list[object], schema: object = "s") -> list[str]:
        def make(positions: list[int]) -> list[str]:
            asked.append(positions)
            return [f"{keys[p]}:{stamps[p]}" for p in positions]

        rows = Rows(cache, objects(keys), [objects(stamps)])
        return formatted(rows, schema, len(keys), make)

    assert run(["a", "c"], [1, 1]) == ["a:1", "c:1"] and asked == [[0, 1]]
    assert run(["a", "b", "c"], [1, 1, 2]) == ["a:1", "b:1", "c:2"] and asked[-1] == [1, 2]
    asked.clear()
    assert run(["a", "b", "c"], [1, 1, 2]) == ["a:1", "b:1", "c:2"] and asked == []
    assert run(["a", "b", "c"], [1, None, 2]) == ["a:1", "b:None", "c:2"] and asked == [[1]]
    assert run(["a", "c"], [1, 2], schema="other") == ["a:1", "c:2"] and asked[-1] == [0, 1]


def test_positions_of_keys_appended_removed_or_moved():
    among = ["a", "b", "c"]
    cases = [
        (["a", "b", "c", "d"], [0, 1, 2, -1]),  # appended: no join
        (["a", "b"], [0, 1]),  # removed at the end
        (["a", "x", "b", "c"], [0, -1, 1, 2]),  # one before others
        (["c", "a"], [2, 0]),
        ([], []),
    ]
    for keys, expected in cases:
        assert positions(objects(keys), objects(among)).tolist() == expected
    assert positions(objects(["a"]), objects([])).tolist() == [-1]
