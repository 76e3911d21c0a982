"""The results table written directly (:mod:`daskmic.io.zarr_table`) is what xarray writes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from daskmic.io import open_results, write_results


def _table() -> pd.DataFrame:
    """A table with every kind of column a run's records give (and a few more)."""
    return pd.DataFrame(
        {
            "micrograph": ["mic_b", "mic_a", "mic_é"],
            "status": ["done", "failed", "done"],
            "error": ["", "truncated", ""],
            "none_text": [None, "x", None],
            "empty": ["", "", ""],
            "mean": [0.5, np.nan, 2.0],
            "all_nan": [np.nan] * 3,
            "crop_px": [10, 10, 10],
            "zeros": [0, 0, 0],
            "small": np.array([1, 2, 3], np.uint8),
            "single": np.array([0.0, 1.5, np.nan], np.float32),
            "accepted": [True, False, True],
            "none_accepted": [False] * 3,
            "mixed": [True, None, 2.5],
        }
    )


def _reference(table: pd.DataFrame) -> xr.Dataset:
    """What xarray stores for ``table``: along ``micrograph``, text as ``str`` objects."""
    ds = xr.Dataset.from_dataframe(table.set_index("micrograph"))
    for name, variable in ds.variables.items():
        if variable.dtype.kind in "OU":
            text = ["" if pd.isna(v) else str(v) for v in variable.values]
            ds[name] = variable.copy(data=np.array(text, dtype=object))
    return ds


def _files(folder) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _assert_same_arrays(store, reference, names) -> None:
    """Each array's files: the same names, the chunks byte for byte, the metadata as JSON."""
    for name in names:
        ours, theirs = _files(store / name), _files(reference / name)
        assert sorted(ours) == sorted(theirs), name
        for file, data in theirs.items():
            if file == "zarr.json":
                assert json.loads(ours[file]) == json.loads(data), name
                assert ours[file] == data, f"{name}: the bytes zarr writes"
            else:
                assert ours[file] == data, f"{name}/{file}"


def test_the_table_is_stored_as_xarray_stores_it(tmp_path, rng):
    table = _table()
    thumbs = rng.normal(size=(3, 8, 8)).astype(np.float32)
    store, reference = tmp_path / "direct.zarr", tmp_path / "xarray.zarr"
    write_results(store, table, thumbnails=thumbs, parameters={"crop": 10})
    expected = _reference(table)
    opened = open_results(store)
    for name in ("thumbnail_low", "thumbnail_high"):
        expected[name] = opened[name].load()
    encoding = {name: {"chunks": (3,)} for name in expected.variables}
    expected.to_zarr(reference, zarr_format=3, consolidated=False, encoding=encoding)
    _assert_same_arrays(store, reference, list(expected.variables))
    xr.testing.assert_identical(
        xr.open_zarr(store)[list(expected.variables)].load().drop_attrs(),
        xr.open_zarr(reference, consolidated=False).load().drop_attrs(),
    )
    loaded = opened[list(table.columns[1:])].load()
    xr.testing.assert_identical(loaded.drop_attrs(), expected[list(table.columns[1:])].drop_attrs())
    assert json.loads(opened.attrs["parameters"]) == {"crop": 10}


def test_a_dataset_keeps_its_attributes(tmp_path):
    ds = _reference(_table()[["micrograph", "status", "mean"]])
    ds["mean"].attrs = {"units": "e/Å²", "scale": [1, 2]}
    ds.attrs = {"origin": "test"}
    store, reference = tmp_path / "direct.zarr", tmp_path / "xarray.zarr"
    write_results(store, ds)
    encoding = {name: {"chunks": (3,)} for name in ds.variables}
    ds.to_zarr(reference, zarr_format=3, consolidated=False, encoding=encoding)
    _assert_same_arrays(store, reference, list(ds.variables))
    assert open_results(store).attrs["origin"] == "test"


def test_a_smaller_table_shrinks_the_thumbnails(tmp_path, rng):
    store = tmp_path / "s.zarr"
    table = _table()[["micrograph", "status"]]
    write_results(store, table, thumbnails=rng.normal(size=(3, 8, 8)))
    write_results(store, table.iloc[:1], thumbnails=rng.normal(size=(1, 8, 8)))
    chunks = sorted(p.relative_to(store).as_posix() for p in store.glob("thumbnail/c/*/*/*"))
    assert chunks == ["thumbnail/c/0/0/0"], "the rows past the table are gone"
    assert open_results(store).thumbnail.shape == (1, 8, 8)
    write_results(store, table, thumbnails=rng.normal(size=(3, 16, 16)))
    assert open_results(store).thumbnail.shape == (3, 16, 16), "another size: a new array"


def test_writing_a_table_imports_neither_xarray_nor_dask_nor_zarr(tmp_path):
    """The table above (pandas' own types, as a run's records give it) is written directly."""
    _table().to_pickle(tmp_path / "table.pkl")
    code = (
        "import sys, pandas as pd; from daskmic.io import write_results; "
        f"table = pd.read_pickle({str(tmp_path / 'table.pkl')!r}); "
        f"write_results({str(tmp_path / 's.zarr')!r}, table); "
        "print(sorted({'xarray', 'dask', 'zarr'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]"]


@pytest.mark.parametrize("rows", [0])
def test_an_empty_table_goes_through_xarray(tmp_path, rows):
    write_results(tmp_path / "s.zarr", pd.DataFrame({"micrograph": [], "status": []}))
    assert open_results(tmp_path / "s.zarr").sizes["micrograph"] == rows
