"""The result table: one row per measurement, printed and written as markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured line: what, on which case, its value, and the ratio against its target."""

    benchmark: str
    case: str
    contender: str
    value: float
    unit: str
    ratio: float = math.nan
    ratio_of: str = ""
    target: str = ""

    @property
    def verdict(self) -> str:
        """``met``/``MISSED`` for rows with a target, else empty."""
        if not self.target:
            return ""
        op, bound = self.target.split(" ", 1)
        limit = float(bound)
        ok = self.ratio <= limit if op == "<=" else self.ratio >= limit
        return "met" if ok else "MISSED"


HEADER = ("benchmark", "case", "contender", "value", "ratio", "target", "verdict")


def _cells(row: Row) -> tuple[str, ...]:
    ratio = "" if math.isnan(row.ratio) else f"{row.ratio:.2f} ({row.ratio_of})"
    return (
        row.benchmark,
        row.case,
        row.contender,
        f"{row.value:.3g} {row.unit}",
        ratio,
        row.target,
        row.verdict,
    )


def markdown(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)
