"""Each way to make an output folder with every step on at once, then the same again.

``preprocess``, ``tilt``, ``run`` and ``watch`` on the command line and ``write`` through the
API, each with every preprocessing step (flags alone: the protocol's defaults), the tilt
screen with the angle estimate and a maximum tilt, and the report: exit 0, and an output
folder a user opens with xarray, starfile and mrcfile. The second run of the same command
resumes: exit 0, the same outputs, nothing recomputed (every per-micrograph file and record
keeps its bytes and its modification time).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import xarray as xr
import yaml

pytestmark = pytest.mark.slow  # end to end, as a user runs daskmic (still in CI)

PER_MICROGRAPH = (
    ".daskmic/records", ".daskmic/thumbnails", "mrc/", "psd/", "defocus/",
    "micrographs.zarr/micrographs/", "micrographs.zarr/psd/",
)  # fmt: skip
TABLES = ("*.csv", "*.star", "*.xmd", "*.txt")
SPLIT = ("accepted", "discarded")


def _results(out: Path) -> xr.Dataset:
    """The per-micrograph table: ``micrographs.zarr`` opened as xarray opens a zarr store."""
    return xr.open_zarr(out / "micrographs.zarr")


def _check_complete(out: Path, names: list[str], *, preprocess: bool, tilt: bool) -> None:
    """Every output a user opens is there, readable, one entry per micrograph."""
    results = _results(out).compute()
    assert sorted(results["micrograph"].values.tolist()) == names
    assert set(results["status"].values.tolist()) <= {"done", "accepted", "discarded"}
    assert (out / "report.html").stat().st_size > 0
    tree = xr.open_datatree(out / "micrographs.zarr", engine="zarr")
    mrc_files = sorted(out.rglob("*.mrc"))
    for path in mrc_files:
        with mrcfile.open(path) as mrc:
            assert mrc.data.ndim == 2 and np.isfinite(mrc.data).all(), path
            assert mrc.voxel_size.x > 0, path
    if preprocess:
        table = pd.read_csv(out / "micrographs.csv").set_index("micrograph")
        assert sorted(table.index) == names
        assert {p.stem for p in (out / "mrc").glob("*.mrc")} == set(names)
        for name in names:
            with mrcfile.open(out / "mrc" / f"{name}.mrc") as mrc:
                assert mrc.data.dtype == np.float32
                image = tree[f"micrographs/{name}/0"]["image"].values  # OME-NGFF level 0
                np.testing.assert_array_equal(image, mrc.data)
                shape = (table.loc[name, "output_ny"], table.loc[name, "output_nx"])
                assert mrc.data.shape == shape
                assert mrc.voxel_size.x == pytest.approx(table.loc[name, "output_pixel_size_A"])
                # --normalize: mean 0, std 1 over the whole image
                assert float(mrc.data.mean()) == pytest.approx(0, abs=1e-3)
                assert float(mrc.data.std()) == pytest.approx(1, abs=1e-3)
        star = starfile.read(out / "micrographs.star", always_dict=True)
        assert len(star["optics"]) == 1 and len(star["micrographs"]) == len(names)
        assert (out / "micrographs.xmd").stat().st_size > 0
    if tilt:
        screen = pd.read_csv(out / "tilt.csv")
        assert sorted(screen["micrograph"]) == names
        assert set(screen["status"]) <= {"accepted", "discarded"}
        assert np.isfinite(screen["tilt_angle_deg"]).all()
        by_angle = screen["tilt_angle_deg"] > 30
        assert (screen.loc[by_angle, "status"] == "discarded").all()
        split = [starfile.read(out / f"{s}.star", always_dict=True) for s in SPLIT]
        counts = [len(s["micrographs"]) if "micrographs" in s else 0 for s in split]
        assert counts == [int(screen["accepted"].sum()), int((~screen["accepted"]).sum())]
        assert {p.stem for p in (out / "psd").glob("*.png")} == set(names)
        assert {p.stem for p in (out / "psd").glob("*.mrc")} == set(names)
        assert set(tree["psd"].children) == set(names)


def _snapshot(out: Path) -> dict[str, tuple[int, str]]:
    """Every file of the folder: modification time (ns) and content hash."""
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def _check_resumed(out: Path, before: dict[str, tuple[int, str]], results: xr.Dataset) -> None:
    """The second run recomputed nothing and left the same outputs."""
    after = _snapshot(out)
    assert sorted(after) == sorted(before)
    per_micrograph = [k for k in before if k.startswith(PER_MICROGRAPH)]
    assert per_micrograph
    for key in per_micrograph:  # untouched: neither recomputed nor rewritten
        assert after[key] == before[key], key
    for pattern in TABLES:  # rebuilt from the records: the same bytes
        for path in out.glob(pattern):
            key = str(path.relative_to(out))
            assert after[key][1] == before[key][1], key
    again = _results(out)
    xr.testing.assert_equal(again, results)
    again.attrs.pop("created", None)  # provenance may differ by its timestamp only
    assert again.attrs == {k: v for k, v in results.attrs.items() if k != "created"}


def _config(work: Path) -> str:
    """A ``daskmic run`` file with every step on and the angle screen."""
    from daskmic.preprocessing.params import PreprocessParams
    from daskmic.run.config import RunConfig
    from daskmic.tilt.params import TiltParams

    steps = ("crop", "log", "bad_pixels", "invert", "downsample", "denoise", "gaussian")
    steps += ("highpass", "lowpass", "normalize")
    config = RunConfig(
        preprocess=PreprocessParams.from_options(**dict.fromkeys(steps, True)),
        tilt=TiltParams(estimate_angle=True, max_tilt_deg=30.0),
    )
    values = {"inputs": ["raw/*.mrc"], "output": "out", **config.to_dict()}
    (work / "config.yaml").write_text(yaml.safe_dump(values))
    return "config.yaml"


COMMANDS = {
    "preprocess": (lambda w, o: ["preprocess", "raw/*.mrc", "-o", "out", *o["preprocess"]],
                   True, False),
    "tilt": (lambda w, o: ["tilt", "micrographs.star", "-o", "out", *o["tilt"]], False, True),
    "run": (lambda w, o: ["run", _config(w)], True, True),
    "watch": (
        lambda w, o: [
            "watch", "session", "-o", "out", "--pattern", "GridSquare_*/Data/*.mrc",
            *o["preprocess"], "--tilt", *o["tilt"], "--settle", "0.5", "--poll", "0.2",
        ],
        True,
        True,
    ),
}  # fmt: skip
"""Per command: its arguments (from the working folder and the ``every_option`` lists), whether
it preprocesses, whether it screens tilt."""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_with_every_option_completes_and_resumes(
    command, workdir, daskmic, cluster_options, every_option
):
    make_args, preprocess, tilt = COMMANDS[command]
    args = make_args(workdir, every_option) + cluster_options
    names = sorted(p.stem for p in (workdir / "raw").glob("*.mrc"))
    out = workdir / "out"
    first = daskmic(args, cwd=workdir)
    assert first.returncode == 0, (first.stdout[-2000:], first.stderr[-4000:])
    _check_complete(out, names, preprocess=preprocess, tilt=tilt)
    before, results = _snapshot(out), _results(out).compute()
    second = daskmic(args, cwd=workdir)
    assert second.returncode == 0, (second.stdout[-2000:], second.stderr[-4000:])
    _check_resumed(out, before, results)


def test_write_with_every_option_completes_and_resumes(workdir, client):
    import daskmic as dm
    from daskmic.report.page import write_report

    mics = dm.open_micrographs("raw/*.mrc")
    steps = ("crop", "log", "bad_pixels", "invert", "downsample", "denoise", "gaussian")
    steps += ("highpass", "lowpass", "normalize")
    out_lazy = dm.preprocess(mics, **dict.fromkeys(steps, True))
    qc = dm.tilt_analysis(mics, estimate_angle=True, max_tilt_deg=30.0)
    out = workdir / "out"
    names = sorted(mics["micrograph"].values.tolist())

    def write() -> None:
        summary = dm.write(out_lazy, out, tilt=qc, client=client)
        assert summary.failed == [] and len(summary.rows) == len(names)
        write_report(out)

    write()
    _check_complete(out, names, preprocess=True, tilt=True)
    before, results = _snapshot(out), _results(out).compute()
    write()
    _check_resumed(out, before, results)
