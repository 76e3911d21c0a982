"""What the tilt screen sees: the share of micrographs it discards per specimen tilt and size.

Makes ``--per-tilt`` micrographs per tilt as the demo does (:data:`DEMO_MICROGRAPHS`: 2 Å/px,
defocus 0.8–2.5 µm, astigmatism up to 1500 Å, dose 15–40 e/Å², random tilt axis, defects and an
illumination gradient), screens them with the default parameters (windows ``auto``: 256 px at
1024², 512 px at 2048²; resolution 3 Å; accepted when mean > 0.5 and std < 0.1) and prints a
markdown table: per size and tilt, the share discarded and the mean statistics.

Run: ``python benchmarks/screen_sensitivity.py --sizes 1024 2048 --per-tilt 10``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

import daskmic as dm
from daskmic.datasets import make_dataset
from daskmic.report.plot import as_table
from daskmic.run.demo import DEMO_MICROGRAPHS


def screen(folder: Path, size: int, tilt_deg: float, n: int, seed: int) -> pd.DataFrame:
    """Screen ``n`` micrographs of one size and tilt; one row each."""
    make_dataset(
        folder, n=n, shape=(size, size), tilt_angles_deg=[tilt_deg] * n, seed=seed,
        **DEMO_MICROGRAPHS,
    )  # fmt: skip
    qc = dm.tilt_analysis(dm.open_micrographs(str(folder / "*.mrc")))
    table = as_table(qc.compute(scheduler="threads"))
    return table.assign(size=size, tilt_deg=tilt_deg)


def markdown(frame: pd.DataFrame) -> str:
    """Per size and tilt: discarded / screened, mean of the mean and std statistics."""
    lines = [
        "| size | tilt | discarded | mean correlation | std of the correlations |",
        "|---|---|---|---|---|",
    ]
    for (size, tilt), part in frame.groupby(["size", "tilt_deg"]):
        discarded = int((part["status"] == "discarded").sum())
        lines.append(
            f"| {size}² | {tilt:g}° | {discarded} / {len(part)} "
            f"| {part['tilt_mean_corr'].mean():.2f} | {part['tilt_std_corr'].mean():.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, screen every size and tilt, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--tilts", type=float, nargs="+", default=[0, 20, 40, 50, 60, 70])
    parser.add_argument("--per-tilt", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--csv", default=None, help="also keep one row per micrograph")
    args = parser.parse_args(argv)
    frames = []
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes:
            for i, tilt in enumerate(args.tilts):
                folder = Path(work) / f"{size}_{tilt:g}"
                seed = args.seed + 100 * i + size
                frames.append(screen(folder, size, tilt, args.per_tilt, seed))
    frame = pd.concat(frames, ignore_index=True)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(markdown(frame))


if __name__ == "__main__":
    main()
