"""Bad input fails alone: every bad micrograph gets a failed row with a clear reason, every good
one is written as if the bad ones were not there, the exit code says some failed, and the
inputs are not touched."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import yaml

import daskmic
from daskmic.cli import main
from daskmic.datasets import synthesize_micrograph
from daskmic.io.mrc_write import write_mrc
from daskmic.run.config import RunConfig

SHAPE = (512, 512)
CONFIG_VALUES = {
    "preprocess": {
        "crop": True,
        "log": True,
        "invert": True,
        "downsample": True,
        "normalize": True,
    },
    "tilt": {"window_size": 256, "resolution_A": 3.0},
}
GOOD = ["good_0", "good_1", "good_2"]
BAD = {  # micrograph -> what its error must say
    "truncated": "truncated",
    "empty": "empty file",
    "text": "not an MRC file",
    "stack": "3-D stack of 3 images",
    "nan_inf": "NaN/Inf",
    "constant": "constant image",
    "small": "too small",
    "unreadable": "no such file",
    "negative": "x + c <= 0",
}


def _image(seed: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    return synthesize_micrograph(shape, pixel_size_A=1.0, seed=seed)[0]


def _write_bad_inputs(folder: Path) -> None:
    folder.mkdir()
    for i, name in enumerate(GOOD):
        write_mrc(folder / f"{name}.mrc", _image(i), 1.0)
    whole = (folder / "good_0.mrc").read_bytes()
    (folder / "truncated.mrc").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.mrc").write_bytes(b"")
    (folder / "text.mrc").write_text("micrograph list, not an image\n" * 60)
    with mrcfile.new(folder / "stack.mrc") as mrc:
        mrc.set_data(np.stack([_image(7)] * 3))
    broken = _image(8)
    broken[10, 10], broken[20, 30] = np.nan, np.inf
    with warnings.catch_warnings():  # mrcfile warns about the NaN in its header statistics
        warnings.simplefilter("ignore", RuntimeWarning)
        write_mrc(folder / "nan_inf.mrc", broken, 1.0)
    write_mrc(folder / "constant.mrc", np.full(SHAPE, 7.0, np.float32), 1.0)
    write_mrc(folder / "small.mrc", _image(9, (200, 200)), 1.0)
    os.symlink(folder / "gone" / "lost.mrc", folder / "unreadable.mrc")  # root reads any mode
    write_mrc(folder / "negative.mrc", _image(10) - 1000.0, 1.0)


def _checksums(folder: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            sums[path.name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            sums[path.name] = "folder"
        else:
            sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def _check_run(out: Path, good_reference: Path, small_reason: str) -> None:
    table = pd.read_csv(out / "micrographs.csv", keep_default_na=False).set_index("micrograph")
    assert sorted(table.index) == sorted(GOOD + list(BAD))
    for name, reason in {**BAD, "small": small_reason}.items():
        row = table.loc[name]
        assert row["status"] == "failed", name
        assert reason in row["error"], f"{name}: {row['error']!r} does not say {reason!r}"
        written = (out / "mrc" / f"{name}.mrc").exists()  # preprocessed, then failed the screen
        assert written == bool(row["output_path"]) == (name == "small" and reason == "too small")
    tilt = pd.read_csv(out / "tilt.csv", keep_default_na=False).set_index("micrograph")
    assert set(tilt.index[tilt["status"] == "failed"]) == set(BAD)
    for name in GOOD:
        assert table.loc[name, "status"] != "failed" and table.loc[name, "error"] == ""
        assert tilt.loc[name, "status"] in ("accepted", "discarded")
        with mrcfile.open(out / "mrc" / f"{name}.mrc") as mrc:
            data = mrc.data.copy()
        assert data.shape == ((512 - 20) // 2, (512 - 20) // 2) and np.isfinite(data).all()
        assert abs(data.mean(dtype=np.float64)) < 1e-5
        assert data.std(dtype=np.float64) == pytest.approx(1.0, abs=1e-5)
        reference = (good_reference / "mrc" / f"{name}.mrc").read_bytes()
        assert (out / "mrc" / f"{name}.mrc").read_bytes() == reference, (
            f"{name} must not depend on the bad micrographs beside it"
        )
        psd = (good_reference / "psd" / f"{name}.mrc").read_bytes()
        assert (out / "psd" / f"{name}.mrc").read_bytes() == psd
    stars = [out / name for name in ("micrographs.star", "accepted.star", "discarded.star")]
    listed = "".join(star.read_text() for star in stars if star.exists())
    assert all(f"{name}.mrc" in listed for name in GOOD)
    assert not any(f"{name}.mrc" in listed for name in BAD), "failed ones are in no STAR"


@pytest.mark.slow
def test_every_bad_input_fails_alone_in_batch_and_streaming(tmp_path, client, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    _write_bad_inputs(raw)
    before = _checksums(raw)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG_VALUES))
    config = RunConfig.from_dict(CONFIG_VALUES)
    good_only = tmp_path / "good_only"
    daskmic.run_batch([str(raw / f"{n}.mrc") for n in GOOD], good_only, config, client=client)

    inputs = [str(raw / f"{name}.mrc") for name in GOOD + list(BAD)]
    cluster = ["--cluster", client.scheduler.address, "--no-report"]
    code = main(["run", "config.yaml", *inputs, "-o", "batch", *cluster])
    printed = capsys.readouterr()
    summary = printed.out
    assert code == 1, f"exit code 1: some failed, the rest written\n{printed.err}"
    for name in BAD:
        assert f"failed {name}: " in summary
    _check_run(tmp_path / "batch", good_only, small_reason="too small")

    (raw / "CLOSED").write_bytes(b"")
    code = main(
        [
            "watch",
            "raw",
            "-o",
            "raw/stream_out",
            "--config",
            "config.yaml",
            "--settle",
            "0.2",
            "--poll",
            "0.05",
            *cluster,
        ]
    )
    printed = capsys.readouterr()
    summary = printed.out
    assert code == 1, printed.err
    assert f"watch: {len(GOOD) + len(BAD)} seen, 3 done, {len(BAD)} failed" in summary
    _check_run(raw / "stream_out", good_only, small_reason="too small")

    (raw / "CLOSED").unlink()
    after = _checksums(raw)
    assert after.pop("stream_out") == "folder"
    assert after == before, "inputs must never be modified"
