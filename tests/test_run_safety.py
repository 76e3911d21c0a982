"""What a user's command line does with its own outputs, a damaged manifest and failures.

Each test walks the command line (:func:`daskmic.cli.main`) on small synthetic micrographs:
no output path may resolve to an input (same path, symlink or hard link), an unreadable
done-record means "not done", and the exit code says what happened (0 all done, 1 some
micrographs failed, 2 usage error before any work, 3 internal error).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd
import pytest

import daskmic
from daskmic.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main
from daskmic.errors import UsageError
from daskmic.preprocessing.params import PreprocessParams
from daskmic.run.config import RunConfig
from daskmic.run.layout import (
    OWNED_FOLDERS,
    TABLE_NAMES,
    micrograph_outputs,
    overwritten_inputs,
    refuse_overwriting_inputs,
)
from daskmic.tilt.params import TiltParams


@pytest.fixture
def mics(write_micrographs) -> list[Path]:
    return write_micrographs(n=3, shape=(256, 256))


@pytest.fixture
def cluster(client) -> list[str]:
    return ["--cluster", client.scheduler.address, "--no-report", "--no-dashboard"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checksums(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): _digest(p) for p in files}


# --- item 4: no output path may resolve to an input -----------------------------------------


def _refused(capsys, argv: list[str], input_path: Path, output_path: Path) -> None:
    """The command exits 2 naming the input and the output it would overwrite."""
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(input_path) in err and str(output_path) in err, err


def test_an_earlier_output_given_as_input_is_refused(mics, tmp_path, cluster, capsys):
    out = tmp_path / "out"
    assert main(["preprocess", *map(str, mics), "-o", str(out), "--invert", *cluster]) == EXIT_OK
    own = out / "mrc" / "mic_000.mrc"
    before = _checksums(out)
    # the command: a run's own output given back as its input, same folder and steps
    for given in (own, out / "mrc"):  # the file, or the folder holding it
        argv = ["preprocess", str(given), "-o", str(out), "--invert", *cluster]
        _refused(capsys, argv, own, own)
    assert _checksums(out) == before, "a refused run writes nothing"


def test_outputs_reaching_inputs_through_links_are_refused(mics, tmp_path, cluster, capsys):
    raw = mics[0].parent
    before = _checksums(raw)
    # the output's mrc/ folder is a symlink to the input folder
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "mrc").symlink_to(raw)
    argv = ["preprocess", *map(str, mics), "-o", str(linked), "--invert", *cluster]
    _refused(capsys, argv, mics[0], linked / "mrc" / "mic_000.mrc")
    # a PSD already in the output folder is a hard link of an input
    hard = tmp_path / "hard"
    (hard / "psd").mkdir(parents=True)
    os.link(mics[1], hard / "psd" / "mic_001.mrc")
    _refused(capsys, ["tilt", *map(str, mics), "-o", str(hard), *cluster], mics[1], hard / "psd")
    # the input is a symlink to a table the run writes
    table = tmp_path / "table"
    table.mkdir()
    (table / "micrographs.csv").write_text(f"path\n{mics[2]}\n")
    (tmp_path / "in.csv").symlink_to(table / "micrographs.csv")
    argv = ["preprocess", str(tmp_path / "in.csv"), "-o", str(table), "--invert", *cluster]
    _refused(capsys, argv, tmp_path / "in.csv", table / "micrographs.csv")
    assert _checksums(raw) == before
    assert not (linked / ".daskmic").exists() and not (hard / ".daskmic").exists()


def test_write_and_run_batch_refuse_to_overwrite_an_input(mics, tmp_path, client):
    out = tmp_path / "out"
    config = RunConfig(preprocess=PreprocessParams.from_options(invert=True))
    daskmic.run_batch([str(m) for m in mics], out, config, client=client)
    own = out / "mrc" / "mic_001.mrc"
    before = _digest(own)
    with pytest.raises(UsageError, match="mic_001.mrc"):
        daskmic.run_batch([str(own)], out, config, client=client)
    lazy = daskmic.preprocess(daskmic.open_micrographs([str(own)]), invert=True)
    with pytest.raises(UsageError, match="mic_001.mrc"):
        daskmic.write(lazy, out, client=client)
    assert _digest(own) == before


def test_watch_refuses_outputs_that_land_on_watched_files(mics, tmp_path, cluster, capsys):
    raw = mics[0].parent
    out = tmp_path / "out"
    out.mkdir()
    (out / "mrc").symlink_to(raw)  # OUT/mrc/<name>.mrc would be the watched files
    argv = ["watch", str(raw), "-o", str(out), "--invert", "--idle-timeout", "1", *cluster]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(out / "mrc") in err and str(raw) in err, err


def test_watch_takes_no_input_from_its_own_output_folder(mics, tmp_path, cluster, capsys):
    raw = mics[0].parent
    out = raw / "out"  # inside the watched folder, so its outputs match the pattern
    (raw / "CLOSED").write_bytes(b"")
    argv = ["watch", str(raw), "-o", str(out), "--pattern", "**/*.mrc", "--invert"]
    argv += ["--settle", "0", "--poll", "0.05", *cluster]
    assert main(argv) == EXIT_OK
    assert main(argv) == EXIT_OK, "a second look at the folder takes none of its outputs"
    table = pd.read_csv(out / "micrographs.csv")
    assert sorted(table["micrograph"]) == ["mic_000", "mic_001", "mic_002"]
    assert sorted(p.name for p in (out / "mrc").iterdir()) == [f"{m.stem}.mrc" for m in mics]


def test_the_layout_names_every_file_a_run_writes(write_micrographs, tmp_path, client):
    """What the safety check compares with the inputs is what a run writes (both steps)."""
    mics = write_micrographs(n=2, shape=(512, 512))
    out = tmp_path / "out"
    tilt = TiltParams(window_size=256, estimate_angle=True)
    config = RunConfig(preprocess=PreprocessParams.from_options(invert=True), tilt=tilt)
    daskmic.run_batch([str(m) for m in mics], out, config, client=client)
    planned = {out / name for name in TABLE_NAMES}
    planned |= {p for m in mics for p in micrograph_outputs(out, m.stem, config)}
    written = {
        p
        for p in out.rglob("*")
        if p.is_file() and p.relative_to(out).parts[0] not in OWNED_FOLDERS
    }
    assert written <= planned, sorted(written - planned)
    assert (out / "defocus").is_dir() and (out / "psd").is_dir() and (out / "mrc").is_dir()


def test_overwritten_inputs_compares_files_not_spellings(tmp_path):
    """Same file by another spelling, a symlink or a hard link; a separate copy is fine."""
    config = RunConfig(preprocess=PreprocessParams.from_options(invert=True))
    out = tmp_path / "out"
    (out / "mrc").mkdir(parents=True)
    (out / "mrc" / "a.mrc").write_bytes(b"a")
    (tmp_path / "copy.mrc").write_bytes(b"a")
    os.link(out / "mrc" / "a.mrc", tmp_path / "hard.mrc")
    (tmp_path / "soft.mrc").symlink_to(out / "mrc" / "a.mrc")
    dotted = f"{out}/mrc/../mrc/a.mrc"
    inputs = [str(tmp_path / n) for n in ("copy.mrc", "hard.mrc", "soft.mrc")] + [dotted]
    found = overwritten_inputs(out, config, ["a"], inputs)
    assert sorted(i for i, _ in found) == sorted(inputs[1:])
    assert {o for _, o in found} == {str(out / "mrc" / "a.mrc")}
    assert overwritten_inputs(out, config, ["b"], inputs) == []
    # to be created: a folder of the output that is a symlink to the inputs' folder
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "b.mrc").write_bytes(b"b")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "psd").symlink_to(tmp_path / "raw")
    tilt = RunConfig(tilt=TiltParams())
    found = overwritten_inputs(tmp_path / "new", tilt, ["b"], [str(tmp_path / "raw" / "b.mrc")])
    assert found == [(str(tmp_path / "raw" / "b.mrc"), str(tmp_path / "new" / "psd" / "b.mrc"))]
    assert overwritten_inputs(tmp_path / "new", tilt, ["c"], [found[0][0]]) == []
    with pytest.raises(UsageError, match="is the output folder|would be overwritten"):
        refuse_overwriting_inputs(tmp_path / "copy.mrc", config, [], [str(tmp_path / "copy.mrc")])


# --- item 5: an unreadable done-record counts as not done -----------------------------------


@pytest.mark.parametrize(
    "damage",
    [b'{"hash": "abc", "row": {"micro', b"\x00\xffgarbage", b'{"hash": 1}', b"[1, 2]"],
    ids=["truncated", "garbage", "no-row", "not-a-record"],
)
def test_a_corrupt_record_is_redone_with_a_warning(mics, tmp_path, cluster, damage):
    out = tmp_path / "out"
    argv = ["preprocess", "-o", str(out), "--invert", *cluster]
    assert main([*argv[:1], *map(str, mics[:2]), *argv[1:]]) == EXIT_OK
    first = _checksums(out / "mrc")
    kept = (out / ".daskmic" / "records" / "mic_000.json").stat().st_mtime_ns
    record = out / ".daskmic" / "records" / "mic_001.json"
    record.write_bytes(damage)
    (out / "mrc" / "mic_001.mrc").unlink()
    # the rerun adds mic_002: work is done before and after the record is met
    with pytest.warns(UserWarning, match=re.escape(f"unreadable done-record {record}")):
        assert main([*argv[:1], *map(str, mics), *argv[1:]]) == EXIT_OK
    assert {k: v for k, v in _checksums(out / "mrc").items() if k in first} == first
    assert (out / ".daskmic" / "records" / "mic_000.json").stat().st_mtime_ns == kept
    table = pd.read_csv(out / "micrographs.csv")
    assert list(table["micrograph"]) == ["mic_000", "mic_001", "mic_002"]
    assert list(table["status"]) == ["done"] * 3


# --- item 6: exit codes ---------------------------------------------------------------------


def test_exit_codes_tell_what_happened(mics, tmp_path, cluster, capsys):
    raw = mics[0].parent
    broken = raw / "broken.mrc"
    broken.write_bytes(b"not an mrc file at all" * 100)
    inputs = [*map(str, mics), str(broken)]
    # 2: usage errors, before any work: nothing is created
    for options in (["--downsample", "0.5"], ["--crop", "200"], ["--amplitude-contrast", "2"]):
        argv = ["preprocess", *inputs, "-o", str(tmp_path / "usage"), *options, *cluster]
        assert main(argv) == EXIT_USAGE, options
        assert not (tmp_path / "usage").exists()
    argv = ["preprocess", str(raw / "none*.mrc"), "-o", str(tmp_path / "usage"), *cluster]
    assert main(argv) == EXIT_USAGE, "a glob that finds nothing"
    assert not (tmp_path / "usage").exists()
    assert main(["tilt", *inputs, "-o", str(tmp_path / "u"), "--window-size", "512", *cluster]) == 2
    capsys.readouterr()
    # 1: some micrographs failed, each with its reason in the tables, the rest written
    out = tmp_path / "out"
    assert main(["preprocess", *inputs, "-o", str(out), "--invert", *cluster]) == EXIT_FAILED
    table = pd.read_csv(out / "micrographs.csv").set_index("micrograph")
    assert table.loc["broken", "status"] == "failed"
    assert "not an MRC" in table.loc["broken", "error"]
    assert (table.drop(index="broken")["status"] == "done").all()
    # 1 also when every micrograph failed (a named file that does not exist fails alone)
    missing = tmp_path / "missing"
    assert main(["preprocess", str(raw / "gone.mrc"), "-o", str(missing), *cluster]) == 1
    assert "no such file" in pd.read_csv(missing / "micrographs.csv")["error"][0]
    # 3: an error after work started (here the tables cannot be written: a folder stands where
    # micrographs.star goes) is an internal error with its traceback, neither 1 nor 2
    blocked = tmp_path / "blocked"
    (blocked / "micrographs.star").mkdir(parents=True)
    argv = ["preprocess", *map(str, mics), "-o", str(blocked), "--invert", *cluster]
    assert main(argv) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "micrographs.star" in err, err
    assert EXIT_INTERNAL not in (EXIT_OK, EXIT_FAILED, EXIT_USAGE)


def test_the_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code in ("0", "1", "2", "3"):
        assert f"{code} " in text
    assert "exit codes" in text.lower()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "| 3 | internal error" in readme and "| 2 | usage error" in readme
