"""The output folder's layout: every path a run writes, and the check that none is an input.

A run writes, for each micrograph, ``mrc/<name>.mrc`` (preprocessing), ``psd/<name>.mrc`` and
``.png`` (tilt screen), ``defocus/<name>.json`` (tilt angle) and its record and thumbnail in
``.daskmic/``; for the folder, the tables, ``report.html``, ``micrographs.zarr`` and
``.daskmic/``'s own files. :func:`overwritten_inputs` compares that set with the inputs, by
inode for files that exist and by resolved path for those to be created, so that no output
(through a symlink or a hard link either) ever lands on an input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from daskmic.config import RunConfig
from daskmic.errors import UsageError
from daskmic.manifest import MANIFEST_DIR

ZARR_NAME = "micrographs.zarr"
REPORT_NAME = "report.html"
TABLE_NAMES = (
    "micrographs.csv",
    "micrographs.star",
    "micrographs.xmd",
    "tilt.csv",
    "accepted.star",
    "discarded.star",
    "accepted.txt",
    "rejected.txt",
)
"""The tables a run rebuilds from its records (those of its steps)."""

OWNED_FOLDERS = (MANIFEST_DIR, ZARR_NAME)
"""Folders daskmic rewrites as a whole: nothing inside them may be an input."""


def mrc_path(out_dir: str | os.PathLike[str], micrograph: str) -> Path:
    """Where a preprocessed micrograph goes."""
    return Path(out_dir) / "mrc" / f"{micrograph}.mrc"


def psd_path(out_dir: str | os.PathLike[str], micrograph: str) -> Path:
    """Where a micrograph's PSD summary image goes (and its ``.png`` beside it)."""
    return Path(out_dir) / "psd" / f"{micrograph}.mrc"


def defocus_path(out_dir: str | os.PathLike[str], micrograph: str) -> Path:
    """Where a micrograph's local-defocus map goes."""
    return Path(out_dir) / "defocus" / f"{micrograph}.json"


def micrograph_outputs(
    out_dir: str | os.PathLike[str], micrograph: str, config: RunConfig
) -> list[Path]:
    """Every file a run with ``config`` writes for ``micrograph``."""
    out = Path(out_dir)
    paths = [
        out / MANIFEST_DIR / "records" / f"{micrograph}.json",
        out / MANIFEST_DIR / "thumbnails" / f"{micrograph}.npy",
    ]
    if config.preprocess is not None:
        paths.append(mrc_path(out, micrograph))
    if config.tilt is not None:
        psd = psd_path(out, micrograph)
        paths += [psd, psd.with_suffix(".png")]
        if config.tilt.estimate_angle:
            paths.append(defocus_path(out, micrograph))
    return paths


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` leads to; None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


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
    identities = {os.fspath(p): _identity(p) for p in inputs}
    real = {p: os.path.realpath(p) for p, i in identities.items() if i is not None}
    by_real = {r: p for p, r in real.items()}
    by_identity = {i: p for p, i in identities.items() if i is not None}
    out = Path(out_dir)
    conflicts = [(p, str(out)) for p, r in real.items() if r == os.path.realpath(out)]
    for name in OWNED_FOLDERS:
        owned = os.path.realpath(out / name)
        conflicts += [(p, str(out / name)) for p, r in real.items() if _inside(r, owned)]
    outputs = [out / name for name in (*TABLE_NAMES, REPORT_NAME)]
    outputs += [p for name in micrographs for p in micrograph_outputs(out, name, config)]
    resolved = {folder: os.path.realpath(folder) for folder in {p.parent for p in outputs}}
    for output in outputs:
        ident = _identity(output)
        if ident is not None:
            hit = by_identity.get(ident)
        else:
            hit = by_real.get(os.path.join(resolved[output.parent], output.name))
        if hit is not None:
            conflicts.append((hit, str(output)))
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
    names = ["mrc", "psd", "defocus", *OWNED_FOLDERS, *TABLE_NAMES, REPORT_NAME]
    return [out / name for name in names]
