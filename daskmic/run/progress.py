"""What a run prints: a line per micrograph as it completes, and the final counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from daskmic.tilt.params import TiltParams


def format_row(row: dict[str, Any]) -> str:
    """One line for one micrograph: its name, status and statistics or error."""
    parts = [f"{row['micrograph']:<24}", f"{row['status']:<9}"]
    if row["status"] == "failed":
        parts.append(row["error"])
    else:
        if "tilt_mean_corr" in row:
            parts.append(f"mean={row['tilt_mean_corr']:.3f} std={row['tilt_std_corr']:.3f}")
        if row.get("output_path"):
            parts.append(f"-> {row['output_path']}")
    return "  ".join(parts)


def print_row(row: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print :func:`format_row` and flush, so a watching user sees it at once.

    ``stream`` defaults to the ``sys.stdout`` of the moment of the call (not of the import).
    """
    print(format_row(row), file=stream, flush=True)


def print_summary(summary: Any, stream: TextIO | None = None) -> None:
    """Print a run's counts, where its outputs are, and every failure with its reason."""
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts().items())
    print(f"\n{len(summary.rows)} micrographs: {counts}", file=stream)
    print(f"results in {summary.out_dir.resolve()}", file=stream)
    for row in summary.failed:
        print(f"  failed {row['micrograph']}: {row['error']}", file=stream)


def print_screen(summary: Any, params: TiltParams, stream: TextIO | None = None) -> None:
    """Print the tilt screen's acceptance rule and why each discarded micrograph failed it."""
    rule = f"mean correlation > {params.mean_threshold:g} and std < {params.std_threshold:g}"
    if params.max_tilt_deg is not None:
        rule += f" and tilt <= {params.max_tilt_deg:g}°"
    from daskmic.tilt.select import discard_reasons

    print(f"tilt screen: accepted when {rule}", file=stream)
    for row in summary.rows:
        if row["status"] == "discarded":
            reasons = discard_reasons(
                row, params.mean_threshold, params.std_threshold, params.max_tilt_deg
            )
            print(f"  discarded {row['micrograph']}: {'; '.join(reasons)}", file=stream)
