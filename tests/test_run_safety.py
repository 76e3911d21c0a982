"""What a user's command line does with its own outputs, a damaged manifest and failures.

Each test walks the command line (:func:`daskmic.cli.main`) on small synthetic micrographs:
no output path may resolve to an input (same path, symlink or hard link), an unreadable
done-record means "not done", and the exit code says what happened (0 all done, 1 some
micrographs failed, 2 usage error before any work, 3 internal error).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from daskmic.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main


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
