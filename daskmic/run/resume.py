"""Resume from the manifest: what is left to do, and whether the published outputs are current.

The driver asks here before it starts any worker: the micrographs whose done-record matches
the parameters and the input file are left out (one listing of the records and one small read
each, no worker involved), and when nothing is left and nothing changed since the outputs were
last published, nothing is rebuilt. What the outputs are made of is summed up in a *state*:
the parameters, the working directory (the tables name files relative to it), the input
optics and, for every record, its name, size and modification time. The last full rebuild
stores its state in ``OUT/.daskmic/published.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest, canonical_json
from daskmic.run.unit import Source

PUBLISHED_NAME = "published.json"
"""The state of the last full rebuild, in the manifest's folder."""


def _recorded(out_dir: Path) -> list[os.DirEntry[str]]:
    """The record files of ``out_dir``: one listing."""
    folder = OutputLayout(out_dir).records
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return [e for e in entries if e.name.endswith(".json") and not e.name.startswith(".")]


def has_records(out_dir: str | os.PathLike[str]) -> bool:
    """Whether ``out_dir`` holds any micrograph's record (a run has been there)."""
    return bool(_recorded(Path(out_dir)))


def unfinished(
    out_dir: str | os.PathLike[str], sources: list[Source], digest: str
) -> list[Source]:
    """The ``sources`` not done in ``out_dir`` (no successful record of this file, ``digest``).

    Failed micrographs are not done: a rerun tries them again.
    """
    manifest = Manifest(Path(out_dir))
    listed = {entry.name[: -len(".json")] for entry in _recorded(Path(out_dir))}
    return [
        source
        for source in sources
        if source.micrograph not in listed
        or not manifest.is_done(source.micrograph, digest, source.path)
    ]


def _state(out_dir: Path, config: RunConfig) -> str:
    """A hash of everything the published outputs are made of (see the module's text)."""
    optics = OutputLayout(out_dir).optics
    listing = sorted(
        (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
        for entry in _recorded(out_dir)
    )
    made_of = [
        canonical_json(config.to_dict()),
        os.getcwd(),
        optics.read_text() if optics.exists() else "",
        canonical_json(listing),
    ]
    return hashlib.sha256("\n".join(made_of).encode()).hexdigest()


def _published(out_dir: Path) -> Path:
    return OutputLayout(out_dir).manifest / PUBLISHED_NAME


def _stamps(out_dir: Path) -> list[list[Any]] | None:
    """Name, size and modification time of each table and of the page that are there.

    None without the main table. Any other rebuild since (``select``, ``watch``,
    ``write_report``) or a damaged or removed output changes them.
    """
    layout = OutputLayout(out_dir)
    stamps = []
    for path in [*layout.tables(), layout.report]:
        try:
            stat = path.stat()
        except OSError:
            if path == layout.micrographs_csv:
                return None
            continue
        stamps.append([path.name, stat.st_size, stat.st_mtime_ns])
    return stamps


def is_current(out_dir: str | os.PathLike[str], config: RunConfig, *, report: bool) -> bool:
    """Whether the tables (and, with ``report``, the QC page) already show what is recorded.

    True only when the last full rebuild was made from the state now (with the page, if
    ``report``) and no output was rebuilt, changed or removed since.
    """
    out = Path(out_dir)
    try:
        stored = json.loads(_published(out).read_bytes())
    except (OSError, ValueError):
        return False
    stamps = _stamps(out)
    return (
        isinstance(stored, dict)
        and stamps is not None
        and stored.get("stamps") == stamps
        and (stored.get("report") is True or not report)
        and stored.get("state") == _state(out, config)
    )


def mark_published(out_dir: str | os.PathLike[str], config: RunConfig, *, report: bool) -> None:
    """Keep the state the outputs were just fully rebuilt from, and whether the page was too."""
    from daskmic.io.atomic import write_bytes_atomic

    out = Path(out_dir)
    state = {"state": _state(out, config), "stamps": _stamps(out), "report": report}
    write_bytes_atomic(_published(out), canonical_json(state).encode())
