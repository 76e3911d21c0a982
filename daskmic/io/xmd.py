"""Reading Xmipp metadata (``.xmd``), the STAR dialect Xmipp writes.

``starfile`` writes both RELION's STAR and Xmipp's metadata (see :mod:`daskmic.io.tables`),
but it cannot read what Xmipp itself writes: Xmipp leaves a ``#`` inside a value unquoted and
single-quotes values that hold a double quote, and starfile reads a ``#`` as the start of a
comment and every ``'`` as ``"``. Xmipp's layout is ``data_<block>``, then ``loop_`` with
``_label`` lines and one row per line, or ``_label value`` lines for a single-row block.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

import pandas as pd


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    return list(lexer)


def _typed(values: list[str]) -> pd.Series:
    """Strings to integers or floats (``nan``/``inf`` included) when every value parses."""
    for kind in (int, float):
        try:
            return pd.Series([kind(v) for v in values], dtype=kind)
        except ValueError:
            continue
    return pd.Series(values, dtype=object)


def read_blocks(lines: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Parse Xmipp metadata text into ``{block name: DataFrame}``, labels without ``_``."""
    blocks: dict[str, tuple[list[str], list[list[str]]]] = {}
    labels: list[str] = []
    rows: list[list[str]] = []
    in_loop = False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("data_"):
            labels, rows, in_loop = [], [], False
            blocks[line[5:]] = (labels, rows)
        elif line == "loop_":
            in_loop = True
        elif line.startswith("_"):
            label, *rest = _tokens(line.split("#", 1)[0] if in_loop else line)
            labels.append(label.lstrip("_"))
            if not in_loop:  # single-row block: "_label value"
                rows[:] = [[*(rows[0] if rows else []), rest[0] if rest else ""]]
        else:
            rows.append(_tokens(line))
    frames = {}
    for name, (names, values) in blocks.items():
        for row in values:
            if len(row) != len(names):
                raise ValueError(
                    f"block data_{name}: a row has {len(row)} values for {len(names)} labels: "
                    + " ".join(row)[:200]
                )
        columns: list[Sequence[str]] = (
            list(zip(*values, strict=True)) if values else [[] for _ in names]
        )
        frames[name] = pd.DataFrame(
            {n: _typed(list(c)) for n, c in zip(names, columns, strict=True)}
        )
    return frames
