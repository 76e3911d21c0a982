"""The STAR syntax shared by RELION ``.star`` and Xmipp ``.xmd`` files: blocks, loops, values.

RELION files are *read* with ``starfile``; this module writes both dialects and reads Xmipp's
(``data_<block>``, then ``loop_`` with ``_label`` lines and one row per line, or ``_label value``
lines for a single-row block; values with blanks are quoted).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

import numpy as np
import pandas as pd

_NEEDS_QUOTES = re.compile(r"""\s|^$|^[_#;'"$]|^(data|loop|save|global|stop)_""", re.I)


def star_label(name: object) -> str:
    """A column name as a STAR label: blanks become ``_``, no leading underscore."""
    return re.sub(r"\s+", "_", str(name).strip()).lstrip("_") or "unnamed"


def format_value(value: object, quote: str) -> str:
    """One cell as STAR text: integers as such, floats round-trip exactly, strings quoted.

    Booleans become ``1``/``0`` (RELION has no boolean type); missing strings become ``""``.
    """
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, np.floating) and value.dtype != np.float64:
        return str(value)  # shortest text that reads back as the same float32/float16
    if isinstance(value, float | np.floating):
        return repr(float(value))  # "nan" and "inf" for non-finite values
    text = "" if value is None or value is pd.NA or value is pd.NaT else str(value)
    if _NEEDS_QUOTES.search(text):
        if quote in text:
            quote = '"' if quote == "'" else "'"
        return f"{quote}{text}{quote}"
    return text


def _cells(column: pd.Series) -> np.ndarray:
    """A column's cells: numbers keep their numpy type; missing text becomes ``""``."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy()
    return np.array(["" if pd.isna(v) else v for v in column.to_numpy(dtype=object)], object)


def format_loop(block: str, df: pd.DataFrame, *, quote: str, numbered: bool) -> str:
    """One ``data_<block>`` with a ``loop_`` of ``df``'s columns as STAR text.

    Parameters
    ----------
    block : str
        Block name, written as ``data_<block>``.
    df : pandas.DataFrame
        Rows to write; column names become labels (see :func:`star_label`).
    quote : str
        Quote character for strings with blanks: ``'"'`` (RELION) or ``"'"`` (Xmipp).
    numbered : bool
        Write RELION's ``#<column number>`` after each label.
    """
    labels = [star_label(c) for c in df.columns]
    lines = [f"data_{block}", "", "loop_"]
    lines += [f"_{label} #{i}" if numbered else f" _{label}" for i, label in enumerate(labels, 1)]
    columns = [_cells(df[c]) for c in df.columns]
    for row in zip(*columns, strict=True):
        lines.append(" ".join(format_value(v, quote) for v in row))
    return "\n".join(lines) + "\n\n"


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
    """Parse STAR text into ``{block name: DataFrame}``, labels without the leading ``_``."""
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
        columns = list(zip(*values, strict=True)) if values else [[] for _ in names]
        frames[name] = pd.DataFrame(
            {n: _typed(list(c)) for n, c in zip(names, columns, strict=True)}
        )
    return frames
