"""The README as written: its Python tour and every command line, on a small dataset.

A README line that no longer works fails here. Inputs are substituted by small ones (the
conftest's dataset, a watched folder in place of ``/data/session``); the options are kept as
written, with only the session's cluster added (and, for ``watch``, short settle and poll
times).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # end to end, as a user runs daskmic (still in CI)

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = {"preprocess", "tilt", "select", "run", "watch", "report", "demo"}
"""The commands the README shows; each must keep a line there."""


def _blocks(language: str) -> list[str]:
    """The fenced code blocks of the README in ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def _command_lines() -> list[list[str]]:
    """Every ``daskmic`` line of the README's bash blocks, split as the shell would."""
    lines = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "s3://" in line:  # run against S3 by tests/journeys/test_object_storage.py
                continue
            if words and words[0] == "daskmic":
                lines.append(words[1:])
    return lines


def _config(work: Path) -> None:
    """``config.yaml`` with the keys of ``RunConfig.to_dict()``, as the README says."""
    from daskmic.preprocessing.params import PreprocessParams
    from daskmic.run.config import RunConfig
    from daskmic.tilt.params import TiltParams

    config = RunConfig(
        preprocess=PreprocessParams.from_options(crop=True, invert=True, downsample=True),
        tilt=TiltParams(),
    )
    values = {"inputs": ["raw/*.mrc"], "output": "both", **config.to_dict()}
    (work / "config.yaml").write_text(yaml.safe_dump(values))


def _small(args: list[str], cluster_options: list[str]) -> list[str]:
    """The README's line with small inputs and the session's cluster."""
    args = [word.replace("/data/session", "session") for word in args]
    if args[0] in ("preprocess", "tilt", "run", "watch", "demo"):
        args += cluster_options
    if args[0] == "watch":
        args += ["--settle", "0.5", "--poll", "0.2"]
    return args


def test_readme_python_tour_runs_as_written(workdir):
    tour = "\n".join(_blocks("python"))
    assert "dm.write(" in tour and "dm.select(" in tour
    namespace: dict = {}
    exec(compile(tour, str(README), "exec"), namespace)
    assert namespace["mics"].attrs["failed"] == []
    n = len(list((workdir / "raw").glob("*.mrc")))
    assert len(list((workdir / "results" / "mrc").glob("*.mrc"))) == n
    # select re-split the recorded statistics with its thresholds (0.6, 0.08 in the README)
    table = pd.read_csv(workdir / "results" / "tilt.csv")
    assert len(table) == n
    expected = (table["tilt_mean_corr"] > 0.6) & (table["tilt_std_corr"] < 0.08)
    assert (table["accepted"] == expected).all()


def _serve_once(args: list[str], daskmic_command, cwd: Path) -> None:
    """A ``report --serve PORT`` line, on a free port: one GET of the page, then Ctrl-C."""
    command, env = daskmic_command
    port = args.index("--serve") + 1
    args = [*args[:port], "0", *args[port + 1 :]]
    with subprocess.Popen(
        command + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline())
            assert url, (args, server.stderr.read() if server.poll() is not None else "")
            with urllib.request.urlopen(url.group(0), timeout=60) as answer:
                assert b"daskmic" in answer.read()
            server.send_signal(signal.SIGINT)
            assert server.wait(60) == 0, args
        finally:
            if server.poll() is None:
                server.kill()


def test_readme_command_lines_run_as_written(workdir, daskmic, daskmic_command, cluster_options):
    lines = _command_lines()
    assert {args[0] for args in lines} >= COMMANDS
    _config(workdir)
    printed = {}
    for args in lines:
        if "--serve" in args:  # serves until Ctrl-C
            _serve_once(args, daskmic_command, workdir)
            continue
        done = daskmic(_small(args, cluster_options), cwd=workdir)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-4000:])
        assert "Traceback" not in done.stderr, (args, done.stderr[-4000:])
        printed[args[0]] = done.stdout
    n = len(list((workdir / "raw").glob("*.mrc")))
    for out in ("results", "screen", "both", "live", "tilt_screen", "live_qc"):
        assert (workdir / out / "report.html").is_file(), out
    assert (workdir / "daskmic-demo" / "results" / "report.html").is_file()
    for out in ("screen", "both", "live", "tilt_screen", "live_qc"):
        assert len(pd.read_csv(workdir / out / "tilt.csv")) == n, out
    screen = pd.read_csv(workdir / "screen" / "tilt.csv")  # re-split by `select`
    expected = (screen["tilt_mean_corr"] > 0.6) & (screen["tilt_std_corr"] < 0.08)
    assert (screen["accepted"] == expected).all()
    _check_demo_explains_itself(workdir / "daskmic-demo", printed["demo"])


def _check_demo_explains_itself(demo: Path, printed: str) -> None:
    """The demo prints its thresholds, why each discarded micrograph failed, and its truth."""
    assert "tilt screen: accepted when mean correlation > 0.5 and std < 0.1" in printed
    screen = pd.read_csv(demo / "results" / "tilt.csv")
    discarded = screen[screen["status"] == "discarded"]
    assert len(discarded) > 0, "the demo shows the screen discarding"
    for row in discarded.itertuples():
        start = f"discarded {row.micrograph}:"
        (line,) = [s for s in printed.splitlines() if s.strip().startswith(start)]
        assert ("mean correlation" in line) == (row.tilt_mean_corr <= 0.5), line
        assert ("std of the correlations" in line) == (row.tilt_std_corr >= 0.1), line
    truth = demo.resolve() / "raw" / "truth.csv"
    assert f"true tilts: {truth} (column tilt_angle_deg)" in printed
    tilts = pd.read_csv(truth).set_index("micrograph")["tilt_angle_deg"]
    assert sorted(tilts.index) == sorted(screen["micrograph"])
    # what README.md says the demo shows ("What the tilt screen can see")
    readme_says = {"mic_001": (60.0, "accepted"), "mic_005": (65.0, "discarded")}
    readme_says["mic_007"] = (40.0, "discarded")
    status = screen.set_index("micrograph")["status"]
    assert {name: (tilts[name], status[name]) for name in readme_says} == readme_says
