"""The output folder's layout: where each output lives, and the check that none is an input.

::

    OUT/
      mrc/<micrograph>.mrc          preprocessed micrograph (float32, voxel size in the header)
      psd/<micrograph>.mrc, .png    tilt analysis: the PSD summary image
      defocus/<micrograph>.json     tilt angle: the local-defocus map behind the estimate
      micrographs.zarr              the results store (inside: :mod:`daskmic.io.zarr_store`)
      micrographs.csv, .star, .xmd  one row per micrograph; STAR/xmd of the preprocessed ones
      tilt.csv                      the tilt statistics and decision
      accepted.star, discarded.star the tilt split (and accepted.txt, rejected.txt: input paths)
      micrographs.sqlite            Scipion sets: the preprocessed micrographs, and the split
      accepted.sqlite, discarded.sqlite
      report.html                   the QC page
      .daskmic/                     the manifest: parameters.json, optics.json,
                                    records/<micrograph>.json, thumbnails/<micrograph>.u8
                                    (8-bit grey levels) and .json (their mapping), sets/
                                    (the Scipion sets' live databases)

``OUT`` may be a local folder or a URL prefix (``s3://bucket/run``): every path the layout
gives is a :data:`daskmic.io.storage.Location` under its root, carrying the run's storage
options. Everything else asks an :class:`OutputLayout` for a path; nothing else spells one.
:func:`overwritten_inputs` compares what a run will write with its inputs, by inode for files
that exist and by resolved path for those to be created (by normalised URL when ``OUT`` is a
URL), so that no output (through a symlink or a hard link either) ever lands on an input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import fsspec

from daskmic.errors import UsageError
from daskmic.io.contract import RESULTS_STORE
from daskmic.io.storage import Location, StorageOptions, is_url, location

if TYPE_CHECKING:
    from daskmic.run.config import RunConfig

MANIFEST_DIR: Final = ".daskmic"
"""The hidden folder of the manifest inside an output folder."""
REPORT_NAME: Final = "report.html"
MRC_DIR, PSD_DIR, DEFOCUS_DIR = "mrc", "psd", "defocus"

_MRC = (MRC_DIR, "{}.mrc")
_PSD = (PSD_DIR, "{}.mrc")
_PSD_PNG = (PSD_DIR, "{}.png")
_DEFOCUS = (DEFOCUS_DIR, "{}.json")
_RECORD = (f"{MANIFEST_DIR}/records", "{}.json")
_THUMBNAIL = (f"{MANIFEST_DIR}/thumbnails", "{}.u8")
_THUMBNAIL_MAPPING = (f"{MANIFEST_DIR}/thumbnails", "{}.json")
"""Per-micrograph files: (folder in the output folder, file name with ``{}`` for the name)."""

_SPLIT = {
    "accepted": ("accepted.star", "accepted.txt"),
    "discarded": ("discarded.star", "rejected.txt"),
}
SET_NAMES: Final = {
    "micrographs": "micrographs.sqlite",
    "accepted": "accepted.sqlite",
    "discarded": "discarded.sqlite",
}
"""The Scipion sets a run writes: the preprocessed micrographs, the tilt screen's split."""

OWNED_FOLDERS: Final = (MANIFEST_DIR, RESULTS_STORE)
"""Folders daskmic rewrites as a whole: nothing inside them may be an input."""


def _path(root: Location, kind: tuple[str, str], micrograph: str) -> Location:
    return root.joinpath(*kind[0].split("/"), kind[1].format(micrograph))


class OutputLayout:
    """Where the outputs of one output folder live.

    Parameters
    ----------
    root : path-like, URL or Location
        The output folder: a local path, or a URL prefix (``s3://bucket/run``).
    storage_options : dict, optional
        For a URL root: its filesystem's options (see :func:`daskmic.io.storage.location`).
    """

    def __init__(
        self, root: str | os.PathLike[str] | Location, storage_options: StorageOptions | None = None
    ) -> None:
        self.root: Location = location(root, storage_options)

    def __repr__(self) -> str:
        return f"OutputLayout({str(self.root)!r})"

    # --- per micrograph --------------------------------------------------------------------

    def micrograph(self, name: str) -> Location:
        """The preprocessed micrograph (MRC)."""
        return _path(self.root, _MRC, name)

    def psd(self, name: str) -> Location:
        """The PSD summary image (MRC)."""
        return _path(self.root, _PSD, name)

    def psd_png(self, name: str) -> Location:
        """The PSD summary image (PNG, for the eye and the report)."""
        return _path(self.root, _PSD_PNG, name)

    def defocus_map(self, name: str) -> Location:
        """The local-defocus map behind a tilt-angle estimate (JSON)."""
        return _path(self.root, _DEFOCUS, name)

    def record(self, name: str) -> Location:
        """The micrograph's done-record (JSON): what marks it done."""
        return _path(self.root, _RECORD, name)

    def thumbnail(self, name: str) -> Location:
        """The micrograph's thumbnail: its 8-bit grey levels, raw (a zarr chunk as it is)."""
        return _path(self.root, _THUMBNAIL, name)

    def thumbnail_mapping(self, name: str) -> Location:
        """The grey values of the thumbnail's levels 0 and 255, and its shape (JSON)."""
        return _path(self.root, _THUMBNAIL_MAPPING, name)

    def store_images(self, name: str) -> list[Location]:
        """The micrograph's images inside the results store (processed pixels, PSD summary).

        The store's inside is :mod:`daskmic.io.zarr_store`'s; this asks it.
        """
        from daskmic.io.ngff import COLLECTIONS  # imports zarr: only when asked

        return [self.zarr / collection / name for collection in COLLECTIONS]

    def outputs(self, name: str) -> list[Location]:
        """Every output of one micrograph in any run, its record last (remove in this order)."""
        return [
            self.micrograph(name),
            self.psd(name),
            self.psd_png(name),
            self.defocus_map(name),
            *self.store_images(name),
            self.thumbnail(name),
            self.thumbnail_mapping(name),
            self.record(name),
        ]

    # --- the set ---------------------------------------------------------------------------

    @property
    def zarr(self) -> Location:
        """The results store."""
        return self.root / RESULTS_STORE

    @property
    def micrographs_csv(self) -> Location:
        """One row per input micrograph."""
        return self.root / "micrographs.csv"

    @property
    def micrographs_star(self) -> Location:
        """RELION STAR of the preprocessed micrographs."""
        return self.root / "micrographs.star"

    @property
    def micrographs_xmd(self) -> Location:
        """Xmipp metadata of the preprocessed micrographs."""
        return self.root / "micrographs.xmd"

    @property
    def tilt_csv(self) -> Location:
        """The tilt statistics and decision, one row per micrograph."""
        return self.root / "tilt.csv"

    def split_star(self, status: str) -> Location:
        """The STAR of the micrographs the tilt screen gave ``status`` (accepted/discarded)."""
        return self.root / _SPLIT[status][0]

    def split_list(self, status: str) -> Location:
        """The input paths of the micrographs with ``status``, one per line."""
        return self.root / _SPLIT[status][1]

    def scipion_set(self, kind: str) -> Location:
        """The Scipion set of ``kind``: ``"micrographs"``, ``"accepted"`` or ``"discarded"``."""
        return self.root / SET_NAMES[kind]

    def tables(self) -> list[Location]:
        """Every table and Scipion set a run may rebuild from its records."""
        split = [f(status) for status in _SPLIT for f in (self.split_star, self.split_list)]
        csv, star, xmd = self.micrographs_csv, self.micrographs_star, self.micrographs_xmd
        sets = [self.scipion_set(kind) for kind in SET_NAMES]
        return [csv, star, xmd, self.tilt_csv, *split, *sets]

    @property
    def report(self) -> Location:
        """The QC page."""
        return self.root / REPORT_NAME

    # --- the manifest ----------------------------------------------------------------------

    @property
    def manifest(self) -> Location:
        """The manifest's hidden folder."""
        return self.root / MANIFEST_DIR

    @property
    def parameters(self) -> Location:
        """The parameters the folder is bound to, and their hash (JSON)."""
        return self.manifest / "parameters.json"

    @property
    def published(self) -> Location:
        """The state the outputs were last fully rebuilt from (:mod:`daskmic.run.resume`)."""
        return self.manifest / "published.json"

    @property
    def headers(self) -> Location:
        """The input headers the last run read, with their files' stamps (JSON, a cache:
        :mod:`daskmic.run.sources`)."""
        return self.manifest / "headers.json"

    @property
    def live_sets(self) -> Location:
        """The folder of the Scipion sets' live databases (:mod:`daskmic.io.live_set`)."""
        return self.manifest / "sets"

    def live_set(self, kind: str) -> Location:
        """The live database of the Scipion set of ``kind`` (as :meth:`scipion_set`)."""
        return self.live_sets / SET_NAMES[kind]

    @property
    def optics(self) -> Location:
        """The input table's optics groups (JSON)."""
        return self.manifest / "optics.json"

    @property
    def records(self) -> Location:
        """The folder of the done-records."""
        return self.root / _RECORD[0]

    @property
    def thumbnails(self) -> Location:
        """The folder of the thumbnails."""
        return self.root / _THUMBNAIL[0]


def recorded_path(output: Location) -> str:
    """How records and tables name an output: its resolved local path, or its URL."""
    return str(output.resolve()) if isinstance(output, Path) else str(output)


TABLE_NAMES: Final = tuple(path.name for path in OutputLayout("").tables())
"""The tables and Scipion sets a run rebuilds from its records (those of its steps)."""


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
) -> list[Location]:
    """Every file a run with ``config`` writes for ``micrograph`` (beside the store's images)."""
    root = location(out_dir, config.storage_options)
    return [_path(root, kind, micrograph) for kind in _micrograph_kinds(config)]


def normalized_url(url: str | os.PathLike[str]) -> str:
    """``protocol://bucket/key`` of a URL, the same for every spelling of one object.

    The protocol is the filesystem's own name (``s3a://`` is ``s3://``), the path as the
    filesystem strips it (no trailing ``/``, no doubled ``//``); options play no part.
    """
    protocol, path = fsspec.core.split_protocol(str(url))
    kind = fsspec.get_filesystem_class(protocol)
    names = kind.protocol if isinstance(kind.protocol, tuple | list) else (kind.protocol,)
    stripped = kind._strip_protocol(str(url))
    if "://" in stripped:  # filesystems whose paths are whole URLs (http)
        return stripped.rstrip("/")
    return f"{names[0]}://" + "/".join(part for part in stripped.split("/") if part)


def _overwritten_urls(
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    micrographs: Iterable[str],
    inputs: Iterable[str | os.PathLike[str]],
) -> list[tuple[str, str]]:
    """:func:`overwritten_inputs` for an output URL: by normalised URL (links do not exist)."""
    out = normalized_url(out_dir)
    urls = {}
    for given in (str(i) for i in inputs if is_url(i)):
        try:
            urls[normalized_url(given)] = given
        except (ImportError, ValueError):  # a filesystem not installed cannot be the output's
            continue
    conflicts = [(given, out) for url, given in urls.items() if url == out]
    for name in OWNED_FOLDERS:
        owned = f"{out}/{name}"
        conflicts += [(given, owned) for url, given in urls.items() if _inside(url, owned, "/")]
    for folder, name in _planned(config, micrographs):
        file = "/".join(part for part in (out, folder, name) if part)
        conflicts += [(urls[file], file)] if file in urls else []
    return list(dict.fromkeys(conflicts))


def _planned(config: RunConfig, micrographs: Iterable[str]) -> list[tuple[str, str]]:
    """``(folder, file name)`` of every file a run writes (folder "" for the output folder)."""
    files = [("", name) for name in (*TABLE_NAMES, REPORT_NAME)]
    kinds = _micrograph_kinds(config)
    return files + [(folder, file.format(m)) for m in micrographs for folder, file in kinds]


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` leads to; None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _inside(path: str, folder: str, sep: str = os.sep) -> bool:
    """Whether the resolved ``path`` is the resolved ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(sep) + sep)


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
    output folder resolved once. For an output URL the inputs given by URL are compared by
    their normalised URLs (:func:`normalized_url`), without a request; local inputs cannot
    be overwritten by it.

    Parameters
    ----------
    out_dir : path-like or URL
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
    if is_url(out_dir):
        return _overwritten_urls(out_dir, config, micrographs, inputs)
    inputs = [i for i in inputs if not is_url(i)]
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
    files = _planned(config, micrographs)
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
    """The local folders and folder-level files a run writes into (without micrograph names)."""
    out = Path(out_dir)
    names = [MRC_DIR, PSD_DIR, DEFOCUS_DIR, *OWNED_FOLDERS, *TABLE_NAMES, REPORT_NAME]
    return [out / name for name in names]
