"""Streaming: which files count as complete, names independent of arrival order, watch()."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

import daskmic
from daskmic.cli import build_parser, main
from daskmic.datasets import synthesize_micrograph
from daskmic.errors import UsageError
from daskmic.io.mrc_write import write_mrc
from daskmic.io.scipion import read_set
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.arrivals import Arrivals
from daskmic.run.config import RunConfig
from daskmic.run.stream import watch
from daskmic.tilt.params import TiltParams

PREPROCESS = PreprocessParams.from_options(crop=True, invert=True, downsample=True, normalize=True)
CONFIG = RunConfig(preprocess=PREPROCESS, tilt=TiltParams(window_size=256, resolution_A=3.0))
SHAPE = (512, 512)


def _mrc_bytes(tmp_path: Path, seed: int, shape: tuple[int, int] = SHAPE) -> bytes:
    """The bytes of a synthetic micrograph's MRC file (written aside, then read back)."""
    image, _ = synthesize_micrograph(shape, pixel_size_A=1.0, seed=seed)
    staging = tmp_path / "staging" / f"{seed}.mrc"
    write_mrc(staging, image, 1.0)
    return staging.read_bytes()


# --- Arrivals: completeness by size/mtime stability and header -------------------------------


def test_a_file_written_in_pieces_is_complete_only_once_whole_and_settled(tmp_path):
    data = _mrc_bytes(tmp_path, 0, (64, 64))
    folder = tmp_path / "in"
    folder.mkdir()
    arrivals = Arrivals(folder, "*.mrc", exclude=tmp_path / "out", settle_seconds=1.0)
    path = folder / "a.mrc"
    path.write_bytes(data[:3000])  # header + part of the pixels
    assert arrivals.poll(now=0.0) == []
    assert arrivals.poll(now=0.5) == [], "not settled yet"
    assert arrivals.poll(now=1.5) == [], "settled but truncated: still being written"
    with open(path, "ab") as handle:
        handle.write(data[3000:])
    assert arrivals.poll(now=1.6) == [], "it changed: the settle time starts again"
    assert arrivals.poll(now=2.0) == []
    assert arrivals.poll(now=2.7) == [os.path.abspath(path)]
    assert arrivals.poll(now=9.0) == [], "each file is reported once"
    assert arrivals.waiting == 0


def test_a_file_that_stays_truncated_is_reported_after_twice_the_settle_time(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "cut.mrc").write_bytes(_mrc_bytes(tmp_path, 1, (64, 64))[:2000])
    (folder / "empty.mrc").write_bytes(b"")
    os.symlink(tmp_path / "nowhere.mrc", folder / "dangling.mrc")
    arrivals = Arrivals(folder, "*.mrc", exclude=tmp_path / "out", settle_seconds=1.0)
    assert arrivals.poll(now=0.0) == []
    assert arrivals.poll(now=1.5) == []
    assert arrivals.waiting == 3
    reported = arrivals.poll(now=2.0)
    assert [Path(p).name for p in reported] == ["cut.mrc", "dangling.mrc", "empty.mrc"]


def test_a_complete_file_is_reported_after_the_settle_time(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "b.mrc").write_bytes(_mrc_bytes(tmp_path, 2, (64, 64)))
    arrivals = Arrivals(folder, "*.mrc", exclude=tmp_path / "out", settle_seconds=1.0)
    assert arrivals.poll(now=10.0) == []
    assert arrivals.poll(now=10.9) == []
    assert arrivals.poll(now=11.0) == [os.path.abspath(folder / "b.mrc")]


def test_outputs_hidden_files_folders_and_other_names_are_never_input(tmp_path):
    folder = tmp_path / "in"
    data = _mrc_bytes(tmp_path, 3, (64, 64))
    out = folder / "results"
    for relative in (
        "good.mrc",
        ".hidden.mrc",
        ".good.mrc.tmp-0123abcd",
        "notes.txt",
        "results/mrc/good.mrc",
        "results/psd/good.mrc",
        "sub/deeper.mrc",
    ):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    (folder / "folder.mrc").mkdir()
    os.symlink(out / "mrc" / "good.mrc", folder / "link_to_output.mrc")
    arrivals = Arrivals(folder, "**/*.mrc", exclude=out, settle_seconds=0.0)
    assert [os.path.relpath(p, folder) for p in arrivals.scan()] == ["good.mrc", "sub/deeper.mrc"]
    flat = Arrivals(folder, "*.mrc", exclude=out, settle_seconds=0.0)
    assert flat.poll(now=0.0) == []
    assert flat.poll(now=0.0) == [os.path.abspath(folder / "good.mrc")]


def test_recursive_patterns_match_epu_layouts(tmp_path):
    folder = tmp_path / "session"
    data = _mrc_bytes(tmp_path, 4, (64, 64))
    wanted = ["GridSquare_1/Data/FoilHole_1.mrc", "GridSquare_2/Data/FoilHole_1.mrc"]
    for relative in [*wanted, "GridSquare_1/FoilHoles/FoilHole_1.mrc", "Atlas/atlas.mrc"]:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    arrivals = Arrivals(
        folder, "GridSquare_*/Data/*.mrc", exclude=tmp_path / "out", settle_seconds=0.0
    )
    assert [os.path.relpath(p, folder) for p in arrivals.scan()] == wanted
    assert arrivals.root == os.path.abspath(folder)


# --- watch(): options, folders ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
        ("settle_seconds", -1.0, "settle_seconds must be a finite number >= 0, got -1.0"),
        ("poll_seconds", 0.0, "poll_seconds must be a finite number > 0, got 0.0"),
        ("idle_timeout", -5, "idle_timeout must be > 0 seconds or None, got -5"),
        ("close_marker", "a/b", "close_marker must be a file name, got 'a/b'"),
    ],
)
def test_invalid_options_are_refused_naming_the_value(tmp_path, option, value, message):
    (tmp_path / "in").mkdir()
    with pytest.raises(ValueError, match=message):
        watch(tmp_path / "in", tmp_path / "out", CONFIG, **{option: value})
    assert not (tmp_path / "out").exists(), "nothing may start"


def test_folders_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        watch(tmp_path / "missing", tmp_path / "out", CONFIG)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    with pytest.raises(ValueError, match="must not be the watched folder"):
        watch(tmp_path / "data" / "raw", tmp_path / "data" / "raw", CONFIG)
    with pytest.raises(ValueError, match="or contain it"):
        watch(tmp_path / "data" / "raw", tmp_path / "data", CONFIG)


# --- watch() end to end, in process ---------------------------------------------------------


def _produce(folder: Path, files: dict[str, bytes], pieces: int, pause_s: float) -> None:
    """Write each file in ``pieces`` parts with pauses, then the CLOSED marker."""
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for part in np.array_split(np.frombuffer(data, dtype=np.uint8), pieces):
                handle.write(part.tobytes())
                handle.flush()
                time.sleep(pause_s)
    (folder / "CLOSED").write_bytes(b"")


def _table(out: Path, name: str, roots: list[Path]) -> str:
    if name.endswith(".sqlite"):  # a Scipion set: its items and properties (not creation times)
        scipion_set = read_set(out / name)
        text = scipion_set.items.to_csv() + repr(sorted(scipion_set.properties.items()))
    else:
        text = (out / name).read_text()
    for root in roots:
        text = text.replace(str(root), "OUT")
    return text


def test_watch_processes_files_as_they_arrive_like_a_batch_run(tmp_path, client, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    files = {f"mic_{i}.mrc": _mrc_bytes(tmp_path, 10 + i) for i in range(3)}
    producer = threading.Thread(target=_produce, args=(folder, files, 3, 0.1))
    rows = []
    producer.start()
    try:
        summary = watch(
            folder,
            folder / "out",
            CONFIG,
            settle_seconds=0.3,
            poll_seconds=0.1,
            batch_size=2,
            client=client,
            on_row=rows.append,
        )
    finally:
        producer.join()
    assert sorted(r["micrograph"] for r in rows) == ["mic_0", "mic_1", "mic_2"]
    assert [r["micrograph"] for r in summary.rows] == ["mic_0", "mic_1", "mic_2"]
    assert summary.failed == []

    batch = daskmic.run_batch(str(folder / "*.mrc"), tmp_path / "batch", CONFIG, client=client)
    assert [r["micrograph"] for r in batch.rows] == ["mic_0", "mic_1", "mic_2"]
    tables = sorted(p.name for p in (tmp_path / "batch").glob("*.*") if p.is_file())
    assert tables == sorted(p.name for p in (folder / "out").glob("*.*") if p.is_file())
    assert {"micrographs.csv", "tilt.csv", "micrographs.star"} <= set(tables)
    roots = [folder / "out", tmp_path / "batch", Path("in/out"), Path("batch")]
    for name in tables:
        assert _table(folder / "out", name, roots) == _table(tmp_path / "batch", name, roots)
    for row in batch.rows:
        stream_mrc = folder / "out" / "mrc" / f"{row['micrograph']}.mrc"
        assert stream_mrc.read_bytes() == Path(row["output_path"]).read_bytes()
    with mrcfile.open(folder / "out" / "mrc" / "mic_0.mrc") as mrc:
        assert mrc.data.shape == ((512 - 20) // 2, (512 - 20) // 2)


def test_names_follow_the_whole_set_whatever_the_arrival_order(tmp_path, client, monkeypatch):
    """A later file whose stem collides renames (and redoes) the earlier micrograph."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "session"
    pattern = "GridSquare_*/Data/*.mrc"
    first = folder / "GridSquare_1" / "Data" / "FoilHole_7.mrc"
    first.parent.mkdir(parents=True)
    first.write_bytes(_mrc_bytes(tmp_path, 20))
    out = tmp_path / "out"
    options = {"pattern": pattern, "settle_seconds": 0.0, "poll_seconds": 0.05, "client": client}
    alone = watch(folder, out, CONFIG, idle_timeout=0.3, **options)
    assert [r["micrograph"] for r in alone.rows] == ["FoilHole_7"]
    assert (out / "mrc" / "FoilHole_7.mrc").exists()

    second = folder / "GridSquare_2" / "Data" / "FoilHole_7.mrc"
    second.parent.mkdir(parents=True)
    second.write_bytes(_mrc_bytes(tmp_path, 21))
    (folder / "CLOSED").write_bytes(b"")
    both = watch(folder, out, CONFIG, **options)
    names = ["GridSquare_1__Data__FoilHole_7", "GridSquare_2__Data__FoilHole_7"]
    assert [r["micrograph"] for r in both.rows] == names
    assert sorted(p.name for p in (out / "mrc").iterdir()) == [f"{n}.mrc" for n in names]
    assert sorted(p.name for p in (out / "psd").glob("*.mrc")) == [f"{n}.mrc" for n in names]
    for collection in ("micrographs", "psd"):
        images = out / "micrographs.zarr" / collection
        assert sorted(p.name for p in images.iterdir() if p.is_dir()) == names
    for kept in (".daskmic/records", ".daskmic/thumbnails"):
        assert sorted({p.stem for p in (out / kept).iterdir()}) == names
    assert pd.read_csv(out / "micrographs.csv")["micrograph"].tolist() == names

    batch = daskmic.run_batch(str(folder / pattern), tmp_path / "batch", CONFIG, client=client)
    assert [r["micrograph"] for r in batch.rows] == names
    for name in names:
        assert (out / "mrc" / f"{name}.mrc").read_bytes() == (
            tmp_path / "batch" / "mrc" / f"{name}.mrc"
        ).read_bytes()


def test_an_arriving_file_the_tables_cannot_name_fails_alone(tmp_path, client, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "session"
    folder.mkdir()
    (folder / "#good;one.mrc").write_bytes(_mrc_bytes(tmp_path, 30))
    (folder / "it's.mrc").write_bytes(_mrc_bytes(tmp_path, 31))
    out = tmp_path / "out"
    config = RunConfig(preprocess=PREPROCESS)
    options = {"settle_seconds": 0.0, "poll_seconds": 0.05, "idle_timeout": 0.3, "client": client}
    summary = watch(folder, out, config, **options)
    rows = {row["micrograph"]: row for row in summary.rows}
    assert rows["#good;one"]["status"] == "done"
    assert rows["it's"]["status"] == "failed"
    assert rows["it's"]["error"].startswith("micrograph file \"session/it's.mrc\" cannot be")
    names = daskmic.open_micrographs(out / "micrographs.star").micrograph.values.tolist()
    assert names == ["#good;one"]


# --- the command line ------------------------------------------------------------------------


def test_watch_command_line_parses_steps_and_stream_options():
    args = build_parser().parse_args(
        [
            "watch",
            "raw",
            "-o",
            "out",
            "--crop",
            "--invert",
            "--tilt",
            "--resolution",
            "4",
            "--batch-size",
            "4",
            "--pattern",
            "GridSquare_*/Data/*.mrc",
            "--close-marker",
            "DONE",
            "--idle-timeout",
            "60",
            "--settle",
            "3",
        ]
    )
    assert (args.folder, args.output, args.batch_size, args.pattern) == (
        "raw",
        "out",
        4,
        "GridSquare_*/Data/*.mrc",
    )
    assert (args.close_marker, args.idle_timeout, args.settle) == ("DONE", 60.0, 3.0)
    assert args.tilt and args.crop is True and args.invert and args.resolution == 4.0


def test_watch_command_line_runs_to_the_close_marker(tmp_path, client, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mrc").write_bytes(_mrc_bytes(tmp_path, 30))
    (folder / "CLOSED").write_bytes(b"")
    code = main(
        [
            "watch",
            str(folder),
            "-o",
            str(tmp_path / "out"),
            "--crop",
            "--normalize",
            "--settle",
            "0",
            "--cluster",
            client.scheduler.address,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "watch: 1 seen, 1 done, 0 failed" in printed
    table = pd.read_csv(tmp_path / "out" / "micrographs.csv")
    assert table["micrograph"].tolist() == ["a"] and table["status"].tolist() == ["done"]
    with mrcfile.open(tmp_path / "out" / "mrc" / "a.mrc") as mrc:
        assert mrc.data.shape == (512 - 20, 512 - 20)
        assert float(mrc.data.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)


def test_watch_command_line_refuses_a_run_without_steps(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    assert main(["watch", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 2
    assert "at least one step" in capsys.readouterr().err


def test_watch_refuses_limit_which_a_stream_cannot_honour(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["watch", "in", "-o", "out", "--limit", "2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --limit 2" in capsys.readouterr().err
    batch = build_parser().parse_args(["preprocess", "a.mrc", "-o", "out", "--limit", "2"])
    assert batch.limit == 2
