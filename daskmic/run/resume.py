"""Resume from the manifest: what is left to do, and whether the published outputs are current.

The driver asks here before it starts any worker: the micrographs whose done-record matches
the parameters and the input file are left out (one listing of the records and their reads,
no worker involved), and when nothing is left and nothing changed since the outputs were last
published, nothing is rebuilt. What the outputs are made of is summed up in a *state*: the
parameters, the working directory (the tables name files relative to it), the input optics and
every record's name and modification time. The last full rebuild stores its state, with the
modification times of the outputs it wrote, in ``OUT/.daskmic/published.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from daskmic.io.storage import Location, list_files, write_whole
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout
from daskmic.run.manifest import Manifest, canonical_json, input_changed, parameters_hash
from daskmic.run.source import Row, Source

"""The state of the last full rebuild, in the manifest's folder."""


def split_finished(
    out: Location, sources: list[Source], digest: str
) -> tuple[list[Source], list[Row]]:
    """The ``sources`` not done in ``out``, and the rows of those done (sorted by name).

    Done is a successful record made with ``digest`` from the source's file
    (:meth:`daskmic.run.manifest.Manifest.done`), as the file is now when the record kept its
    stamp (:func:`daskmic.run.manifest.input_changed`); failed micrographs are tried again.
    """
    done = Manifest(out).done(digest)
    pending, finished = [], []
    for source in sources:
        record = done.get(source.micrograph)
        if (
            record is not None
            and record["row"].get("path") == source.path
            and not input_changed(record, source.stamp)
        ):
            finished.append(record["row"])
        else:
            pending.append(source)
    return pending, sorted(finished, key=lambda row: row["micrograph"])


def nothing_to_do(
    out: Location, config: RunConfig, sources: list[Source], optics: list[dict[str, Any]]
) -> bool:
    """Whether a run of ``sources`` into ``out`` would process nothing and find its tables
    current.

    True when the folder is bound to exactly ``config``'s parameters and keeps these
    ``optics``, every source is done (:func:`split_finished`) and the tables show the
    records, from the same working directory (:func:`is_current`): then the checks a run
    makes before it writes (names the tables can hold, outputs that would land on inputs,
    partial writes and unreadable records to clear) were made when these outputs were, and
    no micrograph output or table is written now (a QC page asked for may still be).
    """
    manifest = Manifest(out)
    parameters, hashed = config.to_dict(), config.hashed_parameters()
    if not (manifest.is_bound_to(parameters, hashed) and manifest.keeps_optics(optics)):
        return False
    pending, _ = split_finished(out, sources, parameters_hash(hashed))
    return not pending and is_current(out, config, report=False)


def _state(out: Location, config: RunConfig) -> str:
    """A hash of everything the published outputs are made of (see the module's text)."""
    layout = OutputLayout(out)
    try:
        optics = layout.optics.read_bytes().decode()
    except FileNotFoundError:
        optics = ""
    records = sorted(list_files(layout.records).items())
    made_of = [canonical_json(config.to_dict()), os.getcwd(), optics, canonical_json(records)]
    return hashlib.sha256("\n".join(made_of).encode()).hexdigest()


def _stamps(out: Location) -> dict[str, Any] | None:
    """Modification time of each table and of the page that are there (locally with its size);
    None without the main table. Any other rebuild since (``select``, ``watch``,
    ``write_report``) or a damaged or removed output changes them.

    The tables are renamed into place without an fsync (they are rebuilt from the records): a
    machine crash can leave one empty with its new time, which its size tells. On an object
    store an object is written whole in one request.
    """
    layout = OutputLayout(out)
    names = {path.name for path in [*layout.tables(), layout.report]}
    stamps: dict[str, Any] = {
        name: when for name, when in list_files(layout.root).items() if name in names
    }
    if layout.micrographs_csv.name not in stamps:
        return None
    if isinstance(out, Path):
        try:
            stamps = {name: [when, (out / name).stat().st_size] for name, when in stamps.items()}
        except OSError:  # removed since the listing
            return None
    return stamps


def is_current(out: Location, config: RunConfig, *, report: bool) -> bool:
    """Whether the tables (and, with ``report``, the QC page) already show what is recorded.

    True only when the last full rebuild was made from the state now (with the page, if
    ``report``) and no output was rebuilt, changed or removed since.
    """
    try:
        stored: Any = json.loads(_published(out).read_bytes())
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


def mark_published(out: Location, config: RunConfig, *, report: bool) -> None:
    """Keep the state the outputs were just fully rebuilt from, and whether the page was too."""
    state = {"state": _state(out, config), "stamps": _stamps(out), "report": report}
    # no fsync: a state lost in a crash only makes the next run rebuild
    write_whole(_published(out), canonical_json(state).encode(), sync=False)


def _published(out: Location) -> Location:
    return OutputLayout(out).published
