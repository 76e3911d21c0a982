"""From what the user typed (files, globs, folders, a table) to a list of micrograph files.

Each may be a local path or a URL (``s3://b/raw/*.mrc``, ``https://host/set.star`` …): a URL
glob or folder is listed by its filesystem (HTTP lists nothing, so there only files and tables
work), and a table's relative names resolve against the table's own URL.

Also the naming rule: a micrograph is called by its file stem; when stems collide, by its path
relative to the source root. Names depend only on the set of paths, never on listing order.
"""

from __future__ import annotations

import glob
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
from upath import UPath

from daskmic.errors import UsageError
from daskmic.io.errors import MicrographError
from daskmic.io.storage import Location, StorageOptions, absolute, is_local, is_url, location

if TYPE_CHECKING:  # the table readers (pandas, starfile): only when a table is read
    import pandas as pd

MICROGRAPH_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff")
"""File suffixes collected from a folder."""

PIXEL_SIZE_COLUMNS = {
    ".star": ("rlnMicrographPixelSize",),
    ".xmd": ("samplingRate",),
    ".csv": ("pixel_size_A", "rlnMicrographPixelSize", "samplingRate"),
}
"""Per table format, the columns that may give the pixel size (ångström), by preference."""

Item = str | os.PathLike[str] | UPath
Source = Item | Sequence[Item]

UNLISTED = ("http", "https")
"""URL schemes whose servers list no folder: only files and tables can be named there."""


@dataclass
class Listing:
    """The micrograph files of a source, with the table rows they came from (if any)."""

    paths: list[Location]
    root: Location
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


def _expand_item(
    item: Item, storage_options: StorageOptions | None
) -> tuple[list[Location], Location | None, str]:
    """Files of one source item, the root it implies (None for a plain file), a description."""
    where = location(item, storage_options)
    if not is_local(where):
        return _expand_url(where, str(item))
    text = str(item)
    if where.is_dir():
        return list(_folder_files(where)), where, f"folder {text}"
    if glob.has_magic(text) and not where.exists():
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        return [p for p in matches if not p.name.startswith(".")], glob_root(text), f"glob {text!r}"
    return [where], None, f"file {text}"


def _expand_url(loc: UPath, text: str) -> tuple[list[Location], Location | None, str]:
    """As :func:`_expand_item`, for a URL: its filesystem lists the glob or the folder."""
    unlisted = loc.protocol in UNLISTED
    if glob.has_magic(loc.path.partition("?")[0] if unlisted else loc.path):
        if unlisted:
            raise UsageError(
                f"{text}: an {loc.protocol}:// server lists no folder, so a glob cannot be "
                "expanded there; name the files, or give a table (STAR, xmd, CSV) of them"
            )
        parts = text.split("/")
        fixed = "/".join(parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))])
        _forget_listings(location(fixed, loc.storage_options))
        found = _listed(loc, text, lambda: loc.fs.glob(loc.path, detail=True))
        return found, location(fixed, loc.storage_options), f"glob {text!r}"
    if loc.suffix.lower() in MICROGRAPH_SUFFIXES:
        return [loc], None, f"file {text}"
    if unlisted:
        if text.endswith("/"):
            raise UsageError(
                f"{text}: an {loc.protocol}:// server lists no folder; name the files, or "
                "give a table (STAR, xmd, CSV) of them"
            )
        return [loc], None, f"file {text}"
    _forget_listings(loc)
    if loc.fs.isdir(loc.path):
        found = _listed(loc, text, lambda: loc.fs.ls(loc.path, detail=True))
        found = [p for p in found if p.suffix.lower() in MICROGRAPH_SUFFIXES]
        return found, loc, f"folder {text}"
    return [loc], None, f"file {text}"


def _forget_listings(loc: Location) -> None:
    """Forget the listings of ``loc`` and below that its filesystem cached.

    fsspec keeps one filesystem per set of options for the whole process, with the listings it
    made; a notebook that opens a bucket again must see the objects that arrived or changed
    since (their versions are the inputs' stamps), at the cost of listing again.
    """
    if isinstance(loc, Path):
        return
    fs, root = loc.fs, loc.path.rstrip("/")
    fs.invalidate_cache(root)
    for key in [key for key in fs.dircache if str(key).startswith(root + "/")]:
        fs.dircache.pop(key, None)


def _listed(loc: UPath, text: str, listing: Callable[[], Any]) -> list[Location]:
    """The files (not folders, not hidden) a listing of ``loc``'s filesystem gives, sorted."""
    try:
        entries = listing()
    except FileNotFoundError:
        return []
    except Exception as error:  # the store's own errors: denied, no such bucket, network
        raise MicrographError(text, f"cannot list ({type(error).__name__}: {error})") from error
    infos = entries.values() if isinstance(entries, dict) else entries
    names = sorted(
        loc.fs.unstrip_protocol(info["name"])
        for info in infos
        if info.get("type") == "file" and not info["name"].rsplit("/", 1)[-1].startswith(".")
    )
    return [location(name, loc.storage_options) for name in names]


def _under(path: Path, root: Path) -> bool:
    return path.is_relative_to(root)


def _common_root(paths: list[Location]) -> Location:
    if not all(is_local(p) for p in paths):
        common = os.path.commonprefix([absolute(p.parent) + "/" for p in paths])
        return location(common.rpartition("/")[0] or "/")
    local = [p for p in paths if is_local(p)]
    cwd = Path.cwd()
    if all(_under(p, cwd) for p in local):
        return cwd
    return Path(os.path.commonpath([str(p.parent) for p in local]))


def _resolve_table_path(name: str, table_file: Location) -> Location:
    """Table paths are relative to the working directory (RELION), else to the table's folder.

    A table at a URL names its files relative to its own URL (or by URL).
    """
    if is_url(name):
        return location(name, getattr(table_file, "storage_options", None))
    path = Path(name)
    if path.is_absolute():
        return path
    if not is_local(table_file):
        return table_file.parent / name
    if not (Path.cwd() / path).exists() and (table_file.parent / path).exists():
        return Path(os.path.abspath(table_file.parent / path))
    return Path(os.path.abspath(path))


def names_table(item: object) -> bool:
    """Whether ``item`` names a table: STAR, xmd or CSV (:func:`daskmic.io.tables.is_table`)
    or a Scipion set (:func:`daskmic.io.scipion.is_set_file`).

    A micrograph file, or a glob of them, says by its suffix that it is none: the table
    readers (and pandas) are imported only to ask about other names.
    """
    if isinstance(item, str | os.PathLike | UPath):
        if PurePath(str(item)).suffix.lower() in MICROGRAPH_SUFFIXES:
            return False
    from daskmic.io.scipion import is_set_file
    from daskmic.io.tables import is_table

    return is_table(item) or is_set_file(item)


def _table_listing(source: Item, storage_options: StorageOptions | None) -> Listing:
    from daskmic.io.tables import PATH_COLUMNS, read_table, split_table_path

    micrographs, optics = read_table(source, storage_options)
    _, file = split_table_path(source, storage_options)
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
        root=Path.cwd() if is_local(file) else file.parent,
        description=f"table {source}",
        table=micrographs,
        optics=optics,
        table_pixel_size_A=_table_pixel_sizes(micrographs, optics, suffix),
    )


def set_root(set_file: Item) -> Location:
    """The folder a Scipion set's micrograph names are relative to: its project, else cwd
    (for a set at a URL: its project, else its own folder)."""
    from daskmic.io.scipion import project_folder

    if isinstance(set_file, UPath) and not is_local(set_file):
        return project_folder(set_file) or set_file.parent
    return project_folder(set_file) or Path.cwd()


def _set_listing(source: Item, storage_options: StorageOptions | None) -> Listing:
    """A Scipion ``SetOfMicrographs``: its enabled items, optics from sampling and acquisition."""
    from daskmic.io.scipion import read_set, resolve_item_path, set_tables

    where = location(source, storage_options)
    micrographs, optics = set_tables(read_set(where))
    if "_filename" not in micrographs.columns:
        raise MicrographError(where, "Scipion set has no _filename attribute")
    paths = [resolve_item_path(str(name), where) for name in micrographs["_filename"]]
    return Listing(
        paths=paths,
        root=set_root(where),
        description=f"Scipion set {source}",
        table=micrographs,
        optics=optics,
        table_pixel_size_A=_table_pixel_sizes(micrographs, optics, ".star"),
    )


def _table_pixel_sizes(
    micrographs: pd.DataFrame, optics: pd.DataFrame | None, suffix: str
) -> np.ndarray:
    """Per row, the pixel size the table gives (NaN where it gives none)."""
    import pandas as pd

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


def list_source(source: Source, storage_options: StorageOptions | None = None) -> Listing:
    """Expand a source into micrograph files (absolute paths or URLs, duplicates removed).

    Parameters
    ----------
    source : path-like, URL, or a sequence of them
        A file, a folder (its ``.mrc``/``.mrcs``/``.tif``/``.tiff`` files, not recursive), a
        glob (``**`` recurses), a list of those, or one table (``.star``, ``.xmd``, ``.csv``,
        or a Scipion ``SetOfMicrographs`` ``.sqlite``; its disabled items are skipped). Any of
        them may be a URL (``s3://bucket/raw/*.mrc``); over HTTP(S), which lists nothing,
        files and tables only.
    storage_options : dict, optional
        For the URLs' filesystems (see :func:`daskmic.io.storage.location`).

    Raises
    ------
    MicrographError
        Nothing found, a listing refused by the store, or a table that cannot be used.
    UsageError
        A glob or folder over HTTP(S).
    ValueError
        A table mixed with other items, or an empty list.
    """
    items = [source] if isinstance(source, str | os.PathLike | UPath) else list(source)
    if not items:
        raise ValueError("source must name at least one file, folder, glob or table, got []")
    if any(names_table(item) for item in items):
        from daskmic.io.scipion import is_set_file

        if len(items) > 1:
            raise ValueError(f"a table must be the only source, got {len(items)} items")
        if is_set_file(items[0]):
            return _set_listing(items[0], storage_options)
        return _table_listing(items[0], storage_options)
    found: list[Location] = []
    roots, descriptions = [], []
    for item in items:
        files, root, description = _expand_item(item, storage_options)
        found += files
        roots.append(root)
        descriptions.append(description)
    unique: dict[str, Location] = {}
    for p in found:
        unique.setdefault(absolute(p), Path(absolute(p)) if is_local(p) else p)
    paths = list(unique.values())
    description = "; ".join(descriptions)
    if not paths:
        raise MicrographError(description, "no micrograph files found")
    first = roots[0]
    if len(items) == 1 and first is not None:
        root = Path(os.path.abspath(first)) if is_local(first) else first
    else:
        root = _common_root(paths)
    return Listing(paths=paths, root=root, description=description)


def _relative_name(path: Location, root: Location, keep_suffix: bool) -> str:
    if is_local(path) and is_local(root):
        relative = path.relative_to(root) if _under(path, root) else Path(*path.parts[1:])
    else:
        text, base = absolute(path), absolute(root).rstrip("/") + "/"
        relative = Path(text[len(base) :] if text.startswith(base) else text.partition("://")[2])
    relative = relative if keep_suffix else relative.with_suffix("")
    return "__".join(relative.parts)


def unique_names(paths: Sequence[Location], root: Location) -> list[str]:
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
