"""The output folder's layout: every path a run writes, and the check that none is an input.

A run writes, for each micrograph, ``mrc/<name>.mrc`` (preprocessing), ``psd/<name>.mrc`` and
``.png`` (tilt screen), ``defocus/<name>.json`` (tilt angle) and its record and thumbnail in
``.daskmic/``; for the folder, the tables and Scipion sets, ``report.html``,
``micrographs.zarr`` and ``.daskmic/``'s own files. :func:`overwritten_inputs` compares that
set with the inputs, by inode for files that exist and by resolved path for those to be
created, so that no output (through a symlink or a hard link either) ever lands on an input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from daskmic.errors import UsageError
from daskmic.run.config import RunConfig
from daskmic.run.manifest import MANIFEST_DIR, Manifest

ZARR_NAME = "micrographs.zarr"
REPORT_NAME = "report.html"
SET_NAMES = {
    "micrographs": "micrographs.sqlite",
    "accepted": "accepted.sqlite",
    "discarded": "discarded.sqlite",
}
"""The Scipion sets a run writes: the preprocessed micrographs, the tilt screen's split."""
TABLE_NAMES = (
    "micrographs.csv",
    "micrographs.star",
    "micrographs.xmd",
    "tilt.csv",
    "accepted.star",
    "discarded.star",
    "accepted.txt",
    "rejected.txt",
    *SET_NAMES.values(),
)
"""The tables a run rebuilds from its records (those of its steps)."""

OWNED_FOLDERS = (MANIFEST_DIR, ZARR_NAME)
"""Folders daskmic rewrites as a whole: nothing inside them may be an input."""


MRC_DIR, PSD_DIR, DEFOCUS_DIR = "mrc", "psd", "defocus"
_MRC = (MRC_DIR, "{}.mrc")
_PSD = (PSD_DIR, "{}.mrc")
_PSD_PNG = (PSD_DIR, "{}.png")
_DEFOCUS = (DEFOCUS_DIR, "{}.json")
_RECORD = (os.fspath(Manifest(Path()).records_dir), "{}.json")
_THUMBNAIL = (os.fspath(Manifest(Path()).thumbnails_dir), "{}.npy")
"""Per-micrograph files: (folder in the output folder, file name with ``{}`` for the name)."""


def _path(out_dir: str | os.PathLike[str], kind: tuple[str, str], micrograph: str) -> Path:
    return Path(out_dir, kind[0], kind[1].format(micrograph))


def mrc_path(out_dir: str | os.PathLike[str], micrograph: str) -> Path:
    """Where a preprocessed micrograph goes."""
    return _path(out_dir, _MRC, micrograph)


def psd_path(out_dir: str | os.PathLike[str], micrograph: str) -> Path:
    """Where a micrograph's PSD summary image goes (and its ``.png`` beside it)."""
    return _path(out_dir, _PSD, micrograph)


def defocus_path(out_dir: str | os.PathLike[str], micrograph: str) -> Path:
    """Where a micrograph's local-defocus map goes."""
    return _path(out_dir, _DEFOCUS, micrograph)


def _micrograph_kinds(config: RunConfig) -> list[tuple[str, str]]:
    """The kinds of file a run with ``config`` writes for each micrograph."""
    kinds = [_RECORD, _THUMBNAIL]
    if config.preprocess is not None:
        kinds.append(_MRC)
    if config.tilt is not None:
        kinds += [_PSD, _PSD_PNG]
        if config.tilt.estimate_angle:
            kinds.append(_DEFOCUS)
    return kinds


def micrograph_outputs(
    out_dir: str | os.PathLike[str], micrograph: str, config: RunConfig
) -> list[Path]:
    """Every file a run with ``config`` writes for ``micrograph``."""
    return [_path(out_dir, kind, micrograph) for kind in _micrograph_kinds(config)]


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` leads to; None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _inside(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is the resolved ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _resolved(paths: Iterable[str]) -> dict[str, str]:
    """``os.path.realpath`` of each path, resolving each parent folder once."""
    parents: dict[str, str] = {}
    resolved = {}
    for path in paths:
        if os.path.islink(path):
            resolved[path] = os.path.realpath(path)
            continue
        head, tail = os.path.split(path)
        if head not in parents:
            parents[head] = os.path.realpath(head)
        resolved[path] = os.path.join(parents[head], tail)
    return resolved


def overwritten_inputs(
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    micrographs: Iterable[str],
    inputs: Iterable[str | os.PathLike[str]],
) -> list[tuple[str, str]]:
    """The inputs that a run writing ``micrographs`` into ``out_dir`` would overwrite.

    An output lands on an input when it exists and is the same file (same device and inode:
    the same path, a symlink or a hard link), or, when it is still to be created, when its
    resolved path is the input's. An input inside ``micrographs.zarr`` or ``.daskmic/``, or
    one that is the output folder itself, counts too. One ``stat`` per output, and each
    output folder resolved once.

    Parameters
    ----------
    out_dir : path-like
        The output folder.
    config : RunConfig
        The run's steps (they decide which outputs exist).
    micrographs : iterable of str
        The names of the micrographs the run writes.
    inputs : iterable of path-like
        Every file the run reads (micrographs and tables).

    Returns
    -------
    list of (str, str)
        ``(input, output)`` pairs, the input as given; empty when the run is safe.
    """
    identities = {os.fspath(p): i for p in inputs if (i := _identity(p)) is not None}
    real = _resolved(identities)
    by_real: dict[str, list[str]] = {}
    by_identity: dict[tuple[int, int], list[str]] = {}
    for path, ident in identities.items():
        by_real.setdefault(real[path], []).append(path)
        by_identity.setdefault(ident, []).append(path)
    out = Path(out_dir)
    conflicts = [(p, str(out)) for p, r in real.items() if r == os.path.realpath(out)]
    for name in OWNED_FOLDERS:
        owned = os.path.realpath(out / name)
        conflicts += [(p, str(out / name)) for p, r in real.items() if _inside(r, owned)]
    files = [("", name) for name in (*TABLE_NAMES, REPORT_NAME)]
    kinds = _micrograph_kinds(config)
    files += [(folder, file.format(m)) for m in micrographs for folder, file in kinds]
    folders = {}
    for folder in {folder for folder, _ in files}:
        path = os.path.join(out, folder)
        folders[folder] = path, os.path.realpath(path), os.path.isdir(path)
    for folder, name in files:
        path, resolved, exists = folders[folder]
        found = _identity(os.path.join(path, name)) if exists else None
        if found is not None:
            hits = by_identity.get(found, [])
        else:
            hits = by_real.get(os.path.join(resolved, name), [])
        conflicts += [(hit, os.path.join(path, name)) for hit in hits]
    return list(dict.fromkeys(conflicts))


def refuse_overwriting_inputs(
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    micrographs: Iterable[str],
    inputs: Iterable[str | os.PathLike[str]],
) -> None:
    """Refuse, before any work, a run whose outputs would land on an input.

    Raises
    ------
    UsageError
        Naming each input and the output that would overwrite it (see
        :func:`overwritten_inputs`).
    """
    conflicts = overwritten_inputs(out_dir, config, micrographs, inputs)
    if conflicts:
        shown = "; ".join(f"input {i} would be overwritten by output {o}" for i, o in conflicts[:5])
        more = f" (and {len(conflicts) - 5} more)" if len(conflicts) > 5 else ""
        raise UsageError(
            f"{shown}{more}; inputs are never written to: choose another output folder"
        )


def output_locations(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The folders and folder-level files a run writes into (without micrograph names)."""
    out = Path(out_dir)
    names = [MRC_DIR, PSD_DIR, DEFOCUS_DIR, *OWNED_FOLDERS, *TABLE_NAMES, REPORT_NAME]
    return [out / name for name in names]
