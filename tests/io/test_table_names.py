"""File names through the tables: every name the filesystem allows either reads back unchanged
through STAR (starfile, and Scipion's emtable), xmd (daskmic's reader and xmippLib) and CSV, and
through open_micrographs, or is refused with a message naming it."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from emtable import Table
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daskmic.io import open_micrographs, optics_table, read_table, write_csv, write_star, write_xmd
from daskmic.io.star import star_text_problem

AWKWARD = [
    "#hash;semi",
    "_lead",
    "$dollar",
    ";semi",
    "data_x",
    "loop_",
    "save_x",
    "stop_",
    "a b",
    " lead",
    "trail ",
    "ünï cødé",
    "日本",
    "x#y",
    "back\\slash",
    "com,ma",
    "<NA>",
    "nan",
    "1.5",
    "q'uote\"",
    "a  b",
    "tab\tx",
    "new\nline",
    "@at",
    "*[glob]?",
]
"""Starts of names that STAR, CSV or a shell read specially."""

# Any file name: every character but "/" and NUL (and lone surrogates, tested apart below).
NAME_CHARACTERS = st.characters(exclude_characters="/\0", exclude_categories=["Cs"])
NAMES = st.builds(
    lambda start, rest: f"{start}{rest}.mrc",
    st.sampled_from(["", *AWKWARD]),
    st.text(NAME_CHARACTERS, max_size=8),
)


def _micrograph(folder: Path, name: str) -> Path:
    path = folder / name
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.arange(48, dtype=np.float32).reshape(6, 8))
        mrc.voxel_size = 1.5
    return path


def _opened_paths(table: Path) -> list[str]:
    mics = open_micrographs(table)
    assert not mics.attrs["failed"]
    np.testing.assert_array_equal(mics.values[0], np.arange(48).reshape(6, 8))
    return mics.path.values.tolist()


def _star_and_xmd_round_trip(folder: Path, name: str, path: Path) -> None:
    optics, groups = optics_table([1.5])
    star = folder / "m.star"
    write_star(star, pd.DataFrame({"rlnMicrographName": [name], "rlnOpticsGroup": groups}), optics)
    assert starfile.read(star)["micrographs"]["rlnMicrographName"].tolist() == [name]
    scipion = Table(fileName=str(star), tableName="micrographs")
    assert [row.rlnMicrographName for row in scipion] == [name]
    assert _opened_paths(star) == [str(path)]
    xmd = folder / "m.xmd"
    write_xmd(xmd, pd.DataFrame({"path": [name], "pixel_size_A": [1.5]}))
    assert read_table(xmd)[0]["micrograph"].tolist() == [name]
    assert _opened_paths(xmd) == [str(path)]
    try:
        import xmippLib
    except ImportError:
        return
    md = xmippLib.MetaData(f"micrographs@{xmd}")
    assert [md.getValue(xmippLib.MDL_MICROGRAPH, row) for row in md] == [name]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES)
@example(name="#hash;semi.mrc")
@example(name="q'uote\".mrc")
def test_every_file_name_reads_back_or_is_refused(tmp_path_factory, name):
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    path = _micrograph(folder, name)  # names are relative to the tables' folder
    csv = folder / "m.csv"
    write_csv(csv, pd.DataFrame({"path": [name], "pixel_size_A": [1.5]}))
    assert read_table(csv)[0]["path"].tolist() == [name]
    assert _opened_paths(csv) == [str(path)]
    problem = star_text_problem(name)
    if problem is None:
        _star_and_xmd_round_trip(folder, name, path)
        return
    optics, groups = optics_table([1.5])
    named = re.escape(repr(name))
    with pytest.raises(ValueError, match=f"rlnMicrographName: value {named} cannot be written"):
        write_star(
            folder / "m.star",
            pd.DataFrame({"rlnMicrographName": [name], "rlnOpticsGroup": groups}),
            optics,
        )
    with pytest.raises(ValueError, match=f"{named} cannot be written .* it {re.escape(problem)}"):
        write_xmd(folder / "m.xmd", pd.DataFrame({"path": [name]}))
    assert not (folder / "m.star").exists() and not (folder / "m.xmd").exists()


def test_which_names_are_refused():
    assert star_text_problem("#hash;semi.mrc") is None
    assert star_text_problem("data_ _lead $x ;y loop_ ünï.mrc") is None
    assert "quote" in star_text_problem("q'uote\".mrc")
    assert "quote" in star_text_problem("it's.mrc")
    assert "control character" in star_text_problem("tab\tx.mrc")
    assert "two blanks" in star_text_problem("a  b.mrc")
    assert "number" in star_text_problem("nan")
    assert star_text_problem("nan", fragment=True) is None
    assert "UTF-8" in star_text_problem(os.fsdecode(b"\xff.mrc"))
