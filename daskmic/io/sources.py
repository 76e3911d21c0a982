"""From what the user typed (files, globs, folders, a table) to a list of micrograph files.

Also the naming rule: a micrograph is called by its file stem; when stems collide, by its path
relative to the source root. Names depend only on the set of paths, never on listing order.
"""

from __future__ import annotations

import glob
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from daskmic.io.errors import MicrographError
from daskmic.io.scipion import is_set_file, project_folder, read_set, resolve_item_path, set_tables
from daskmic.io.tables import PATH_COLUMNS, is_table, read_table, split_table_path

MICROGRAPH_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff")
"""File suffixes collected from a folder."""

PIXEL_SIZE_COLUMNS = {
    ".star": ("rlnMicrographPixelSize",),
    ".xmd": ("samplingRate",),
    ".csv": ("pixel_size_A", "rlnMicrographPixelSize", "samplingRate"),
}
"""Per table format, the columns that may give the pixel size (ångström), by preference."""

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass
class Listing:
    """The micrograph files of a source, with the table rows they came from (if any)."""

    paths: list[Path]
    root: Path
    description: str
    table: pd.DataFrame | None = None
    optics: pd.DataFrame | None = None
    table_pixel_size_A: np.ndarray | None = None


def _folder_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in MICROGRAPH_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def glob_root(pattern: str) -> Path:
    """The folder part of ``pattern`` before its first wildcard."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return Path(*fixed) if fixed else Path(".")


def _expand_item(item: str | os.PathLike[str]) -> tuple[list[Path], Path | None, str]:
    """Files of one source item, the root it implies (None for a plain file), a description."""
    text = os.fspath(item)
    path = Path(text)
    if path.is_dir():
        return _folder_files(path), path, f"folder {text}"
    if glob.has_magic(text) and not path.exists():
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        matches = [p for p in matches if not p.name.startswith(".")]
        return matches, glob_root(text), f"glob {text!r}"
    return [path], None, f"file {text}"


def _under(path: Path, root: Path) -> bool:
    return path.is_relative_to(root)


def _common_root(paths: list[Path]) -> Path:
    cwd = Path.cwd()
    if all(_under(p, cwd) for p in paths):
        return cwd
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _resolve_table_path(name: str, table_file: Path) -> Path:
    """Table paths are relative to the working directory (RELION), else to the table's folder."""
    path = Path(name)
    if path.is_absolute():
        return path
    if not (Path.cwd() / path).exists() and (table_file.parent / path).exists():
        return Path(os.path.abspath(table_file.parent / path))
    return Path(os.path.abspath(path))


def _table_listing(source: str | os.PathLike[str]) -> Listing:
    micrographs, optics = read_table(source)
    _, file = split_table_path(source)
    suffix = file.suffix.lower()
    column = next((c for c in PATH_COLUMNS[suffix] if c in micrographs.columns), None)
    if column is None:
        raise MicrographError(
            file, f"no micrograph path column (one of {list(PATH_COLUMNS[suffix])})"
        )
    micrographs = micrographs.reset_index(drop=True)
    paths = [_resolve_table_path(str(n), file) for n in micrographs[column]]
    return Listing(
        paths=paths,
        root=Path.cwd(),
        description=f"table {os.fspath(source)}",
        table=micrographs,
        optics=optics,
        table_pixel_size_A=_table_pixel_sizes(micrographs, optics, suffix),
    )


def set_root(set_file: str | os.PathLike[str]) -> Path:
    """The folder a Scipion set's micrograph names are relative to: its project, else cwd."""
    return project_folder(set_file) or Path.cwd()


def _set_listing(source: str | os.PathLike[str]) -> Listing:
    """A Scipion ``SetOfMicrographs``: its enabled items, optics from sampling and acquisition."""
    micrographs, optics = set_tables(read_set(source))
    if "_filename" not in micrographs.columns:
        raise MicrographError(source, "Scipion set has no _filename attribute")
    paths = [resolve_item_path(str(name), source) for name in micrographs["_filename"]]
    return Listing(
        paths=paths,
        root=set_root(source),
        description=f"Scipion set {os.fspath(source)}",
        table=micrographs,
        optics=optics,
        table_pixel_size_A=_table_pixel_sizes(micrographs, optics, ".star"),
    )


def _table_pixel_sizes(
    micrographs: pd.DataFrame, optics: pd.DataFrame | None, suffix: str
) -> np.ndarray:
    """Per row, the pixel size the table gives (NaN where it gives none)."""
    for column in PIXEL_SIZE_COLUMNS[suffix]:
        if column in micrographs.columns:
            return pd.to_numeric(micrographs[column], errors="coerce").to_numpy(dtype=float)
    sizes = np.full(len(micrographs), np.nan)
    if (
        optics is not None
        and {"rlnOpticsGroup", "rlnMicrographPixelSize"} <= set(optics.columns)
        and "rlnOpticsGroup" in micrographs.columns
    ):
        by_group = dict(
            zip(optics["rlnOpticsGroup"], optics["rlnMicrographPixelSize"], strict=True)
        )
        groups = micrographs["rlnOpticsGroup"]
        sizes = np.array([float(by_group.get(g, np.nan)) for g in groups], dtype=float)
    return sizes


def list_source(source: Source) -> Listing:
    """Expand a source into micrograph files (absolute paths, duplicates removed).

    Parameters
    ----------
    source : path-like or sequence of path-like
        A file, a folder (its ``.mrc``/``.mrcs``/``.tif``/``.tiff`` files, not recursive), a
        glob (``**`` recurses), a list of those, or one table (``.star``, ``.xmd``, ``.csv``,
        or a Scipion ``SetOfMicrographs`` ``.sqlite``; its disabled items are skipped).

    Raises
    ------
    MicrographError
        Nothing found, or a table that cannot be used.
    ValueError
        A table mixed with other items, or an empty list.
    """
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    if not items:
        raise ValueError("source must name at least one file, folder, glob or table, got []")
    if any(is_table(item) or is_set_file(item) for item in items):
        if len(items) > 1:
            raise ValueError(f"a table must be the only source, got {len(items)} items")
        return _set_listing(items[0]) if is_set_file(items[0]) else _table_listing(items[0])
    paths: list[Path] = []
    roots, descriptions = [], []
    for item in items:
        found, root, description = _expand_item(item)
        paths += found
        roots.append(root)
        descriptions.append(description)
    paths = list(dict.fromkeys(Path(os.path.abspath(p)) for p in paths))
    description = "; ".join(descriptions)
    if not paths:
        raise MicrographError(description, "no micrograph files found")
    if len(items) == 1 and roots[0] is not None:
        root = Path(os.path.abspath(roots[0]))
    else:
        root = _common_root(paths)
    return Listing(paths=paths, root=root, description=description)


def _relative_name(path: Path, root: Path, keep_suffix: bool) -> str:
    relative = path.relative_to(root) if _under(path, root) else Path(*path.parts[1:])
    relative = relative if keep_suffix else relative.with_suffix("")
    return "__".join(relative.parts)


def unique_names(paths: Sequence[Path], root: Path) -> list[str]:
    """One unique name per path: the stem, or the root-relative path when stems collide.

    Colliding stems become the path relative to ``root`` without suffix, folders joined by
    ``__`` (``GridSquare_1/Data/FoilHole_7.mrc`` -> ``GridSquare_1__Data__FoilHole_7``); the
    suffix is kept if that still collides; any remaining tie gets ``~1``, ``~2``, ... in path
    order. The result depends only on the set of paths, not on their order.
    """
    names = [p.stem for p in paths]
    for keep_suffix in (False, True):
        counts = Counter(names)
        names = [
            _relative_name(p, root, keep_suffix) if counts[n] > 1 else n
            for p, n in zip(paths, names, strict=True)
        ]
    groups: defaultdict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        groups[name].append(index)
    for name, indices in groups.items():
        if len(indices) > 1:
            for rank, index in enumerate(sorted(indices, key=lambda i: str(paths[i])), 1):
                names[index] = f"{name}~{rank}"
    return names
