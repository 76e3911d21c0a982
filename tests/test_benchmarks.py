"""The benchmark suite: its smoke mode runs every path on tiny inputs (no timing is checked)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is run from the repository root, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import denoise_psnr, live_bench, screen_sensitivity  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.table import Row, markdown  # noqa: E402

EXPECTED = {
    # end to end, small set, marginal, fixed start-up, smallest set within the bound
    ("preprocess", "daskmic CLI"): 5,
    ("preprocess", "floor (rfft2+irfft2, 2 procs)"): 3,
    ("preprocess", "Xmipp-style chain (2 procs)"): 2,
    ("tilt", "daskmic default"): 1,
    ("tilt", "daskmic --xmipp-compat"): 1,
    ("tilt", "xmippLib path (pyxmipp3)"): 1,
    ("throughput", "local cluster 2 workers x 1 thread"): 2,
    ("throughput", "local cluster 1 worker x 2 threads"): 2,
    ("throughput", "process pool (2 procs)"): 2,
    ("memory", "daskmic worker (max over workers)"): 1,
    ("scaling", "daskmic unit"): 2,
    ("scaling", "local cluster 2 workers x 1 thread"): 1,
    ("live", "table rebuild (publish)"): 3,
    ("live", "live page update"): 3,
    # two set sizes and the start-up; per size: CPU, rerun, rebuild, publish, memory, growth
    ("overhead", "daskmic CLI, end to end"): 3,
    ("overhead", "floor (rfft2+irfft2, 2 procs)"): 3,
    ("overhead", "daskmic CLI, CPU time"): 2,
    ("overhead", "rerun of the finished set"): 2,
    ("overhead", "one full rebuild (publish)"): 2,
    ("overhead", "publish after 16 new micrographs"): 2,
    ("overhead", "publish after 16 new micrographs, CPU time"): 2,
    ("overhead", "driver peak memory"): 2,
    ("overhead", "per micrograph, end to end"): 2,
    ("overhead", "daskmic CLI, its record written after"): 1,
}


def test_row_verdict_follows_the_target_direction():
    assert Row("b", "c", "x", 1.0, "s", 1.4, "a/b", "<= 1.5").verdict == "met"
    assert Row("b", "c", "x", 1.0, "s", 1.6, "a/b", "<= 1.5").verdict == "MISSED"
    assert Row("b", "c", "x", 1.0, "s", 3.0, "a/b", ">= 3").verdict == "met"
    assert Row("b", "c", "x", 1.0, "s", 2.9, "a/b", ">= 3").verdict == "MISSED"
    assert Row("b", "c", "x", 1.0, "s").verdict == ""


def test_smallest_set_within_the_bound_follows_from_fixed_and_marginal_costs():
    from benchmarks.preprocess_bench import smallest_set_within

    fixed, steady = {"daskmic": 4.8, "floor": 1.2}, {"daskmic": 0.69, "floor": 0.57}
    n = smallest_set_within(1.5, fixed, steady)
    assert n == 19  # (4.8 - 1.5 x 1.2) / (1.5 x 0.57 - 0.69) = 18.2
    for size, meets in ((n, True), (n - 1, False)):
        ratio = (fixed["daskmic"] + size * steady["daskmic"]) / (
            fixed["floor"] + size * steady["floor"]
        )
        assert (ratio <= 1.5) == meets
    assert smallest_set_within(1.5, {"daskmic": 1.0, "floor": 1.0}, steady) == 1
    assert smallest_set_within(1.5, fixed, {"daskmic": 0.9, "floor": 0.57}) == math.inf


def test_markdown_has_a_line_per_row():
    rows = [Row("b", "c", "x", 1.0, "s", 2.0, "a/b", ">= 3"), Row("b", "c", "y", 2.0, "s")]
    lines = markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2] == "| b | c | x | 1 s | 2.00 (a/b) | >= 3 | MISSED |"


@pytest.mark.slow
def test_smoke_run_has_every_row_with_finite_positive_ratios(tmp_path):
    results = tmp_path / "RESULTS.md"
    rows = main(["--smoke", "--results", str(results), "--workdir", str(tmp_path)])
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[(row.benchmark, row.contender)] = counts.get((row.benchmark, row.contender), 0) + 1
    assert counts == EXPECTED
    for row in rows:
        if "smallest set" in row.case:  # a set size, or inf when no set size meets the bound
            assert row.value >= 1 and row.unit == "mic", row
            continue
        # differences of two timings (marginal cost, fixed start-up) are only finite: on tiny
        # inputs the per-micrograph cost is below the timing noise, so their sign is not fixed
        difference = "marginal" in row.case or "start-up" in row.case
        assert math.isfinite(row.value) and (difference or row.value > 0), row
        if row.ratio_of:
            assert math.isfinite(row.ratio) and (difference or row.ratio > 0), row
    assert all(row.target == "" or row.verdict in ("met", "MISSED") for row in rows)
    page = results.read_text()
    assert "cores; RAM" in page and "numpy" in page and "BLAS" in page
    assert page.count("\n| ") == len(rows) + 1
    assert list(tmp_path.iterdir()) == [results]  # the scratch folder is removed


def test_streaming_benchmark_runs_and_leaves_no_temporary_data(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where its temporary workdir goes
    command = [sys.executable, "benchmarks/streaming.py", "--micrographs", "3", "--size", "256"]
    done = subprocess.run(
        [*command, "--interval", "0.05"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 micrographs 256² float32" in done.stdout
    assert "sustained throughput:" in done.stdout
    assert not list(tmp_path.glob("daskmic-streaming-*"))  # its micrographs are removed


def test_denoise_benchmark_prints_the_readme_scale_table(capsys):
    """``benchmarks/denoise_psnr.py`` regenerates the README's table: a row per scene, noise
    and dose, each output mean the input's."""
    denoise_psnr.main(["--scale-size", "64", "--size", "64", "--iterations", "1", "--no-timing"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert "reference's iterate, mapped back" in header
    assert len(body) == 2 * 2 * len(denoise_psnr.SCALE_MEANS_COUNTS)
    for row in body:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[4].startswith(cells[2] + " ("), row  # output mean == input mean (4 digits)
        assert float(cells[7]) > float(cells[6]), row  # the PSNR rises


def test_live_benchmark_has_a_row_per_set_size_in_ms_per_update(tmp_path, capsys):
    """``benchmarks/live_bench.py``: the cost of one live-page update at each set size (tiny
    sets here), against the table rebuild it follows."""
    rows = live_bench.run(tmp_path, smoke=True)
    updates = [row for row in rows if row.contender == "live page update"]
    assert [row.case.split()[0] for row in updates] == [str(n) for n in live_bench.SMOKE_SIZES]
    for row in rows:
        assert row.benchmark == "live" and row.unit == "ms" and row.value > 0, row
    assert all(row.ratio > 0 and row.ratio_of == "/rebuild" for row in updates)
    printed = capsys.readouterr().out
    assert all(f"live page: {n} micrographs," in printed for n in live_bench.SMOKE_SIZES)
    assert "ms per update" in printed
    assert list(tmp_path.iterdir()) == []  # each set's folder is removed


def test_screen_benchmark_counts_what_the_thresholds_discard(capsys, tmp_path):
    """``benchmarks/screen_sensitivity.py`` (the README's table of what the screen sees): a row
    per size and tilt whose count is the micrographs that fail mean > 0.5 and std < 0.1."""
    csv = tmp_path / "screen.csv"
    screen_sensitivity.main(
        ["--sizes", "768", "--tilts", "0", "60", "--per-tilt", "2", "--csv", str(csv)]
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 768")]
    frame = pd.read_csv(csv)
    assert len(rows) == 2 and len(frame) == 4
    for row, (tilt, part) in zip(rows, frame.groupby("tilt_deg"), strict=True):
        fails = (part["tilt_mean_corr"] <= 0.5) | (part["tilt_std_corr"] >= 0.1)
        assert row.startswith(f"| 768² | {tilt:g}° | {int(fails.sum())} / 2 |"), row
