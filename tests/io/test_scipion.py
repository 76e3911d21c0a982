"""Scipion set files with the standard library alone (pwem's own reading: tests/scipion/)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daskmic.io.scipion import read_set, resolve_item_path, set_tables
from daskmic.io.scipion_write import write_set


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [3, 7],
            "_filename": ["Runs/1/extra/a.mrc", "Runs/1/extra/b.mrc"],
            "_samplingRate": [1.0, 2.0],
            "_acquisition._voltage": [300.0, 200.0],
            "_micName": ["a.mrc", "b.mrc"],
            "_tilt_mean_corr": [0.5, np.nan],
            "_tilt_psds_image._filename": ["psd/a.mrc", "psd/b.mrc"],
            "_tilt_angle_status": ["ok", ""],
        }
    )


def test_written_set_reads_back_in_pwems_layout(tmp_path):
    path = tmp_path / "set.sqlite"
    write_set(path, _items(), stream_open=True, dims=(512, 1024))
    back = read_set(path)
    assert back.stream_open and back.disabled == 0
    assert back.properties["_size"] == "2" and back.properties["_firstDim"] == "1024,512,1"
    assert back.properties["_acquisition._voltage"] == "300.0"
    assert list(back.items["scipion_id"]) == [3, 7]
    assert list(back.items["_filename"]) == ["Runs/1/extra/a.mrc", "Runs/1/extra/b.mrc"]
    assert back.items["_tilt_mean_corr"][0] == 0.5 and back.items["_tilt_mean_corr"].isna()[1]
    status = back.items["_tilt_angle_status"]
    assert status[0] == "ok" and status.isna()[1]  # "" is stored as NULL
    with sqlite3.connect(path) as db:
        classes = db.execute("SELECT label_property, column_name, class_name FROM Classes")
        classes = classes.fetchall()
        columns = [row[1] for row in db.execute("PRAGMA table_info(Objects)")]
    labels = [label for label, _, _ in classes]
    # pwem reads Objects by position: its columns follow Classes, composites before parts
    assert classes[0] == ("self", "c00", "Micrograph")
    basic = ["id", "enabled", "label", "comment", "creation"]
    assert columns == basic + [column for _, column, _ in classes[1:]]
    assert labels.index("_acquisition") == labels.index("_acquisition._voltage") - 1
    assert dict((label, kind) for label, _, kind in classes)["_tilt_psds_image"] == "Image"
    assert labels.index("_tilt_psds_image") < labels.index("_tilt_psds_image._filename")

    write_set(path, _items().iloc[:0], stream_open=False)
    closed = read_set(path)
    assert not closed.stream_open and closed.items.empty


def test_disabled_items_are_skipped_and_optics_grouped(tmp_path):
    path = tmp_path / "set.sqlite"
    write_set(path, _items(), stream_open=False)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO Objects (id, enabled, c02) VALUES (9, 0, 'off.mrc')")
    scipion_set = read_set(path)
    assert scipion_set.disabled == 1 and list(scipion_set.items["scipion_id"]) == [3, 7]
    micrographs, optics = set_tables(scipion_set)
    assert list(micrographs["rlnOpticsGroup"]) == [1, 2]
    assert list(optics["rlnMicrographPixelSize"]) == [1.0, 2.0]
    assert list(optics["rlnVoltage"]) == [300.0, 200.0]
    assert optics["rlnSphericalAberration"].isna().all()  # neither item nor set gives it


def test_item_paths_resolve_against_the_project(tmp_path, monkeypatch):
    project = tmp_path / "project"
    set_file = project / "Runs" / "000002_Import" / "micrographs.sqlite"
    (project / "Runs" / "000002_Import" / "extra").mkdir(parents=True)
    (project / "Runs" / "000002_Import" / "extra" / "a.mrc").touch()
    monkeypatch.chdir(tmp_path)
    found = resolve_item_path("Runs/000002_Import/extra/a.mrc", set_file)
    assert found == project / "Runs" / "000002_Import" / "extra" / "a.mrc"
    assert resolve_item_path("/abs/b.mrc", set_file) == Path("/abs/b.mrc")


def test_not_a_set_is_a_clear_error(tmp_path):
    from daskmic.io import MicrographError

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(MicrographError, match="not a Scipion set"):
        read_set(path)
    with pytest.raises(MicrographError, match="no such Scipion set"):
        read_set(tmp_path / "missing.sqlite")
