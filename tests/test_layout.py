"""The output layout: every file of an output folder is one the layout names, in every mode."""

from __future__ import annotations

from pathlib import Path

import pytest

import daskmic
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
from daskmic.preprocessing.params import PreprocessParams
from daskmic.report.page import write_report
from daskmic.run.config import RunConfig
from daskmic.run.layout import SET_NAMES, OutputLayout
from daskmic.tilt.params import TiltParams

SHAPE = (512, 512)
PREPROCESS = PreprocessParams.from_options(crop=True, downsample=True)
CONFIG = RunConfig(preprocess=PREPROCESS, tilt=TiltParams(window_size=256))
ANGLE = RunConfig(preprocess=PREPROCESS, tilt=TiltParams(window_size=256, estimate_angle=True))


def _micrograph(path: Path, seed: int) -> None:
    image, _ = synthesize_micrograph(SHAPE, pixel_size_A=1.0, phase_std=0.3, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mrc(path, image, 1.0)


def _files(out: Path) -> set[str]:
    """Every file of an output folder, relative to it (the zarr store counted as one)."""
    zarr = out / "micrographs.zarr"
    return {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and zarr not in p.parents
    } | ({"micrographs.zarr"} if zarr.is_dir() else set())


def _named(layout: OutputLayout, names: list[str]) -> set[str]:
    """The files the layout names for a preprocessing and tilt run (no angle) with a report."""
    per_micrograph = [
        path
        for n in names
        for path in layout.outputs(n)
        if path not in (*layout.store_images(n), layout.defocus_map(n))  # in the store; --angle
    ]
    tables = [*layout.tables(), layout.report, layout.zarr, layout.parameters, layout.optics]
    tables += [layout.published, layout.headers, *(layout.live_set(k) for k in SET_NAMES)]
    return {str(p.relative_to(layout.root)) for p in per_micrograph + tables}


@pytest.mark.slow
def test_every_output_is_named_by_the_layout(tmp_path, client):
    paths = [tmp_path / "raw" / f"mic_{i}.mrc" for i in range(2)]
    for seed, path in enumerate(paths):
        _micrograph(path, seed)
    out = tmp_path / "out"
    summary = daskmic.run_batch([str(p) for p in paths], out, CONFIG, client=client)
    write_report(out)
    names = [row["micrograph"] for row in summary.rows]
    assert summary.failed == []
    layout = OutputLayout(out)
    found = _files(out)
    stars = {str(layout.split_star(s).relative_to(out)) for s in ("accepted", "discarded")}
    assert found - _named(layout, names) == set()
    assert _named(layout, names) - found <= stars  # a STAR with no micrograph is not written
    for name in names:
        assert all(image.is_dir() for image in layout.store_images(name))
        assert Path(summary.rows[names.index(name)]["output_path"]) == layout.micrograph(name)


@pytest.mark.slow
def test_a_renamed_micrograph_in_a_stream_leaves_what_a_batch_run_leaves(tmp_path, client):
    """#14 item 10: renaming during ``watch --angle`` left ``defocus/<name>.json`` behind."""
    folder = tmp_path / "session"
    pattern = "Grid_*/*.mrc"
    _micrograph(folder / "Grid_1" / "hole.mrc", 0)
    out = tmp_path / "stream"
    options = {"pattern": pattern, "settle_seconds": 0.0, "poll_seconds": 0.05, "client": client}
    first = daskmic.watch(folder, out, ANGLE, idle_timeout=0.3, **options)
    assert [row["micrograph"] for row in first.rows] == ["hole"]
    assert OutputLayout(out).defocus_map("hole").is_file()

    _micrograph(folder / "Grid_2" / "hole.mrc", 1)  # the stems collide: both are renamed
    (folder / "CLOSED").write_bytes(b"")
    both = daskmic.watch(folder, out, ANGLE, **options)
    batch = daskmic.run_batch(str(folder / pattern), tmp_path / "batch", ANGLE, client=client)
    names = ["Grid_1__hole", "Grid_2__hole"]
    assert [row["micrograph"] for row in both.rows] == names
    assert [row["micrograph"] for row in batch.rows] == names
    # the batch run also keeps the state its outputs were rebuilt from and the headers it read
    # (for an instant resume)
    kept = OutputLayout("")
    batch_files = _files(tmp_path / "batch") - {kept.published.as_posix(), kept.headers.as_posix()}
    assert _files(out) == batch_files
    assert not OutputLayout(out).defocus_map("hole").exists()
