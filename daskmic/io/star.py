"""STAR text written by ``starfile``, and which text a STAR or ``.xmd`` value can hold.

Every text value is quoted, so names that begin like STAR syntax (``_``, ``#``, ``$``, ``;``,
``data_``, ``loop_``) or hold blanks read back unchanged through ``starfile``, RELION and Xmipp;
text that none can read back (:func:`star_text_problem`) is refused, naming it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd
import starfile

from daskmic.io.row_cache import Rows, formatted

_MISSING_TEXT = ("nan", "NaN", "<NA>")
"""Text that ``starfile`` reads as a missing value."""


@functools.lru_cache(maxsize=2**17)  # every publish checks every micrograph's names
def star_text_problem(text: str, *, fragment: bool = False) -> str | None:
    """Why ``text`` cannot be a STAR or ``.xmd`` value that reads back unchanged, else None.

    Quoted, any text reads back through ``starfile``, RELION and Xmipp except text that

    - holds a quote: ``starfile`` reads every ``'`` as ``"``, and a ``"`` inside a value cannot
      be escaped (RELION and Xmipp end a value at a quote before a blank);
    - holds a control character (tab, newline, ...): RELION drops them or reads them as blanks,
      and a tab or newline breaks the row;
    - holds two blanks in a row: RELION and Xmipp read them as one;
    - is not UTF-8 (a file name of other bytes);
    - reads as a number or a missing value (``nan``), which ``starfile`` converts; not checked
      for a ``fragment``, text that is only part of a value (a name inside a path).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if "'" in text or '"' in text:
        return "holds a quote (' or \"), which starfile reads back changed"
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "holds a control character (tab, newline, ...)"
    if "  " in text:
        return "holds two blanks in a row, which RELION and Xmipp read as one"
    if not fragment and (text in _MISSING_TEXT or _is_number(text)):
        return "reads back as a number or a missing value"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_star_text(values: Iterable[str], what: str, *, fragment: bool = False) -> None:
    """Refuse, naming it, the first of ``values`` a STAR table cannot hold.

    Parameters
    ----------
    values : iterable of str
        The text to check.
    what : str
        What the values are, for the message (``"micrograph file"``).
    fragment : bool
        The values are parts of longer values (see :func:`star_text_problem`).

    Raises
    ------
    ValueError
        ``values`` holds text for which :func:`star_text_problem` gives a reason.
    """
    for value in values:
        problem = star_text_problem(value, fragment=fragment)
        if problem is not None:
            raise ValueError(
                f"{what} {value!r} cannot be written to a STAR or .xmd table: it {problem}; "
                "rename it"
            )


def star_label(name: object) -> str:
    """A column name as a STAR label: blanks become ``_``, no leading underscore."""
    return re.sub(r"\s+", "_", str(name).strip()).lstrip("_") or "unnamed"


def _star_column(name: str, column: pd.Series) -> pd.Series:
    """One column as ``starfile`` should write it.

    Booleans become 1/0 (RELION has no boolean type); float32 values become the float64 of
    their shortest text (``0.1``, not ``0.10000000149011612``); missing text becomes ``""``.
    """
    if pd.api.types.is_bool_dtype(column):
        return column.astype(int)
    if pd.api.types.is_float_dtype(column) and column.dtype != np.float64:
        return column.astype(str).astype(np.float64)
    if pd.api.types.is_numeric_dtype(column):
        return column
    values = ["" if np.ndim(v) == 0 and pd.isna(v) else v for v in column]
    check_star_text((v for v in values if isinstance(v, str)), f"column {name}: value")
    return pd.Series(values, index=column.index, dtype=object)


def star_block(name: str, df: pd.DataFrame, rows: Rows | None = None) -> str:
    """One ``data_<name>`` loop as STAR text, written by ``starfile``.

    Every text value is quoted; the dated banner starfile writes first is dropped, so the same
    table always gives the same bytes. With ``rows``, the rows it remembers are not formatted
    again (:mod:`daskmic.io.row_cache`); the text is the same: the loop's header is written
    here and checked against starfile's whenever rows are formatted.

    Raises
    ------
    ValueError
        A text value that cannot be written (see :func:`star_text_problem`).
    """
    labels = [star_label(c) for c in df.columns]
    head = f"data_{name}\n\nloop_\n" + "".join(f"_{c} #{i}\n" for i, c in enumerate(labels, 1))

    def make(positions: list[int]) -> list[str]:
        text = _starfile_block(name, df.iloc[positions])
        body = text[len(head) : -len(_LOOP_END)]
        lines = [f"{line}\n" for line in body.split("\n")[:-1]]
        if not (text.startswith(head) and text.endswith(_LOOP_END)) or len(lines) != len(positions):
            raise ValueError(f"starfile wrote an unexpected loop for {len(positions)} rows")
        return lines

    schema = (name, tuple(map(str, df.columns)), tuple(map(str, df.dtypes)))
    return head + "".join(formatted(rows, schema, len(df), make)) + _LOOP_END


_LOOP_END = "\n\n"
"""What ``starfile`` writes after a loop's last row."""


def _starfile_block(name: str, df: pd.DataFrame) -> str:
    columns = {star_label(c): _star_column(str(c), df[c]) for c in df.columns}
    text = starfile.to_string(
        {name: pd.DataFrame(columns, index=df.index)},
        float_format=None,  # shortest text that reads back as the same float
        na_rep="nan",
        quote_all_strings=True,
    )
    return text.split("\n", 1)[1].lstrip("\n")
