"""Streaming: find new, completely written micrographs in a folder and feed them to the run.

:func:`watch` polls a folder (inotify does not work on NFS, GPFS or SMB), or a prefix of an
object store (``s3://bucket/incoming``: one listing per poll), for files matching a pattern,
waits until each is completely written (:mod:`daskmic.run.arrivals`), and feeds the
complete ones to the same per-micrograph unit as a batch run, through the same
:class:`daskmic.run.feeder.Feeder`: arrivals
join its queue while others are in flight. The tables and the zarr store are rebuilt from the
manifest after each batch of completions, and while the stream waits for arrivals (so they follow
a slow microscope); with ``report=True`` the live QC page follows each rebuild
(``daskmic.report.live``). The stream closes when a marker file (a key, on an object store)
appears in the folder (and everything seen is done) or when nothing new has arrived for a
while. Pending work is a list of paths: the driver never holds pixels.

Names are those a batch run on the glob ``folder/pattern`` gives
(:func:`daskmic.io.sources.unique_names` over every file seen so far), so they do not depend on
arrival order: when a later file's stem collides with an earlier one, the earlier micrograph's
record and outputs are removed and it is processed again under its new name.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client
from upath import UPath

from daskmic.errors import UsageError
from daskmic.io.scipion import SET_SUFFIX, is_set_file
from daskmic.io.sources import unique_names
from daskmic.io.storage import Location, absolute, is_local, is_url, location, remove
from daskmic.run.arrivals import Arrivals, FolderClosing, KeyArrivals, PrefixClosing, inside
from daskmic.run.config import RunConfig, StreamOptions
from daskmic.run.driver import RunSummary, bind, open_client
from daskmic.run.feeder import Feeder
from daskmic.run.layout import OutputLayout, output_locations, overwritten_inputs
from daskmic.run.manifest import Manifest
from daskmic.run.publish import publish
from daskmic.run.publish_tables import check_table_names
from daskmic.run.set_stream import SetArrivals, SetClosing
from daskmic.run.sources import check_run
from daskmic.run.unit import Row, Source

if TYPE_CHECKING:
    from daskmic.report.live import LiveReport


Following = Arrivals | KeyArrivals | SetArrivals
"""What a stream follows: a local folder, a prefix of an object store, or a Scipion set."""


def _nameable(out: Location, source: Source) -> Source:
    """``source``, failed alone if the tables could not hold its paths (the stream goes on)."""
    try:
        check_table_names(absolute(out), [source])
    except UsageError as error:
        return dataclasses.replace(source, error=str(error))
    return source


def _forget(out: Location, name: str) -> None:
    """Remove a micrograph's outputs, then its record (so an interrupted removal is redone)."""
    for output in OutputLayout(out).outputs(name):
        remove(output)


class _Stream:
    """The driver's state between polls: names, records, what to submit (paths only)."""

    def __init__(
        self,
        arrivals: Following,
        out: Location,
        config: RunConfig,
        digest: str,
        *,
        batch_size: int,
        on_row: Callable[[Row], None] | None,
        live: LiveReport | None,
    ) -> None:
        self.arrivals = arrivals
        self.out = out
        self.config = config
        self.digest = digest
        self.batch_size = batch_size
        self.on_row = on_row
        self.live = live
        self.recorded = {row["micrograph"]: row for row in Manifest(out).rows()}
        self.names: dict[str, str] = {}
        self.ready: list[str] = []
        self.submitted: dict[str, str] = {}
        self._since_count = 0
        self._checked = False

    def follow(
        self, client: Client, closing: FolderClosing | SetClosing, poll_seconds: float
    ) -> None:
        """Poll, name and submit as files arrive, publish per batch, until the stream closes.

        Micrographs are fed continuously: new arrivals join the queue while others are in
        flight, so the workers never wait for a batch to drain or for the tables.
        """
        feeder = Feeder(
            client,
            absolute(self.out),
            self.config,
            self.digest,
            batch_size=self.batch_size,
            on_row=self.record,
            on_publish=None if self.live is None else self.live.update,
        )
        while True:
            marker_seen = closing.signalled()  # before listing: files written before count
            arrived = self.arrivals.poll()
            self.ready += arrived
            if self.live is not None:
                self.live.received(len(arrived))
                self.live.session.waiting = self.arrivals.waiting
            self.rename()
            if self.ready:
                feeder.add(self.batch())
            if feeder.busy:
                feeder.completed(timeout=poll_seconds)
            elif closing.due(marker_seen, self.arrivals):
                break
            else:
                feeder.flush()
                time.sleep(poll_seconds)
        publish(self.out, self.config)  # closes the Scipion sets
        if self.live is not None:
            self.live.close()
        if self._since_count:  # record() printed after full batches
            print(self.count(), flush=True)

    def rename(self) -> None:
        """Name every file seen as a batch run would; redo micrographs whose name changed."""
        seen = self.arrivals.seen
        options = self.config.storage_options
        root = location(self.arrivals.root, options)
        where = [location(p, options) for p in seen]
        self.names = dict(zip(seen, unique_names(where, root), strict=True))
        for name, row in list(self.recorded.items()):
            path = row["path"] if is_url(row["path"]) else os.path.abspath(row["path"])
            if path in self.names and self.names[path] != name:
                _forget(self.out, name)
                del self.recorded[name]
        for path, name in list(self.submitted.items()):
            if self.names[path] != name:
                del self.submitted[path]
                self.ready.append(path)

    def batch(self) -> list[Source]:
        """Take the sources to submit now, sorted by name."""
        paths = list(dict.fromkeys(self.ready))
        self.ready = []
        self.submitted.update({p: self.names[p] for p in paths})
        sources = [self.arrivals.source(p, self.names[p], self.config) for p in paths]
        sources = [_nameable(self.out, source) for source in sources]
        if not self._checked:  # before this session submits anything: a batch run's checks
            check_run(self.config, sources)
            self._checked = True
        # an output that is an arriving file (a hard link into OUT): that micrograph fails alone
        names = [s.micrograph for s in sources]
        paths = [s.path for s in sources]
        clash = dict(overwritten_inputs(absolute(self.out), self.config, names, paths))
        sources = [
            dataclasses.replace(s, error=f"{s.path}: output {clash[s.path]} is this file")
            if s.path in clash
            else s
            for s in sources
        ]
        return sorted(sources, key=attrgetter("micrograph"))

    def record(self, row: Row) -> None:
        """Keep a completed row, pass it on, and print the count after each full batch."""
        self.recorded[row["micrograph"]] = row
        if self.on_row is not None:
            self.on_row(row)
        self._since_count += 1
        if self._since_count == self.batch_size:
            print(self.count(), flush=True)
            self._since_count = 0

    def count(self) -> str:
        """The running count, one line."""
        rows = [self.recorded[n] for n in self.names.values() if n in self.recorded]
        failed = sum(row["status"] == "failed" for row in rows)
        return (
            f"watch: {len(self.names)} seen, {len(rows) - failed} done, {failed} failed, "
            f"{self.arrivals.waiting} being written"
        )


def _check_folders(folder: Path, out: Location) -> None:
    if not folder.is_dir():
        raise UsageError(f"watched folder {folder} does not exist or is not a folder")
    if not is_local(out):  # an object store's prefix cannot contain a local folder
        return
    watched, output = os.path.realpath(folder), os.path.realpath(out)
    if inside(watched, output):
        raise UsageError(
            f"output folder {out} must not be the watched folder {folder} or contain it; "
            "choose another output folder (a subfolder of the watched folder is fine)"
        )
    for place in output_locations(out):  # a symlink out of OUT into the watched folder
        real = os.path.realpath(place)
        if inside(real, watched) and not inside(real, output):
            raise UsageError(
                f"output {place} leads to {real}, inside the watched folder {folder}: the "
                "outputs would land on watched files and be taken as input; choose another "
                "output folder"
            )


def _check_prefix(folder: UPath, out: Location) -> None:
    """Refuse a prefix that cannot be watched: no listing (HTTP), no bucket, inside ``out``."""
    if folder.protocol in ("http", "https"):
        raise UsageError(
            f"{folder}: a web server lists nothing, so it cannot be watched; watch a folder "
            "or an object-store prefix (s3://, gs://, az://)"
        )
    if folder.suffix.lower() == SET_SUFFIX:
        raise UsageError(f"{folder}: a Scipion set to follow must be a local file")
    bucket = folder.path.split("/")[0]
    try:  # one listing of the bucket's top level: it exists and may be listed
        folder.fs.ls(bucket, detail=False, refresh=True)
    except FileNotFoundError as error:
        raise UsageError(f"watched {folder}: bucket {bucket!r} does not exist") from error
    except PermissionError as error:
        raise UsageError(f"watched {folder}: listing is denied ({error})") from error
    if not is_local(out) and out.protocol == folder.protocol:
        watched, output = folder.path.rstrip("/") + "/", out.path.rstrip("/") + "/"
        if watched.startswith(output):
            raise UsageError(
                f"output {out} must not be the watched prefix {folder} or contain it; choose "
                "another output prefix (one inside the watched prefix is fine)"
            )


def _following(
    watched: Location, out: Location, config: RunConfig, options: StreamOptions, overwrite: bool
) -> tuple[Following, FolderClosing | SetClosing, str]:
    """What ``watch`` follows, how it closes, and the digest ``out`` is bound to."""
    if not is_local(watched):
        _check_prefix(watched, out)
        digest = bind(absolute(out), config, [], [], overwrite=overwrite)  # no optics table
        keys = KeyArrivals(watched, options.pattern, exclude=out, marker=options.close_marker)
        closing = PrefixClosing(watched / options.close_marker, options.idle_timeout, keys)
        return keys, closing, digest
    if is_set_file(watched):
        if not watched.is_file():
            raise FileNotFoundError(f"followed Scipion set {watched} does not exist")
        # optics come with the items; the set itself must not be an output
        digest = bind(
            absolute(out), config, [], [], overwrite=overwrite, inputs=[os.fspath(watched)]
        )
        items = SetArrivals(watched, absolute(out))
        return items, SetClosing(items, options.idle_timeout), digest
    _check_folders(watched, out)
    digest = bind(absolute(out), config, [], [], overwrite=overwrite)  # no optics table
    files = Arrivals(watched, options.pattern, exclude=out, settle_seconds=options.settle_seconds)
    return files, FolderClosing(watched / options.close_marker, options.idle_timeout), digest


def watch(
    folder: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    *,
    pattern: str = StreamOptions.pattern,
    batch_size: int = StreamOptions.batch_size,
    settle_seconds: float = StreamOptions.settle_seconds,
    poll_seconds: float = StreamOptions.poll_seconds,
    close_marker: str = StreamOptions.close_marker,
    idle_timeout: float | None = StreamOptions.idle_timeout,
    client: Client | None = None,
    on_row: Callable[[Row], None] | None = None,
    overwrite: bool = False,
    report: bool = False,
    refresh_seconds: float | None = None,
    **cluster_options: Any,
) -> RunSummary:
    """Process micrographs as they arrive in ``folder``, until the stream closes.

    Restarting it on the same ``out_dir`` (after any interruption, ``SIGKILL`` included)
    resumes: micrographs already recorded are not recomputed, and the outputs end identical to
    a batch run on the same files.

    Parameters
    ----------
    folder : path-like or URL
        The folder the microscope writes to; or a prefix of an object store
        (``s3://bucket/incoming``): its new keys are new micrographs, complete once listed,
        and the close marker is a key (``s3://bucket/incoming/CLOSED``); or a Scipion
        ``SetOfMicrographs`` (``.sqlite``) to follow: its new enabled items are new
        micrographs, and the stream ends once the set's stream state is closed and they are
        all done (``pattern`` and ``close_marker`` do not apply).
    out_dir : path-like or URL
        The output folder or prefix; it may lie inside ``folder`` (it is never read as input).
    config : RunConfig
        Steps and options, as for a batch run; its ``storage_options`` reach every URL.
    pattern, batch_size, settle_seconds, poll_seconds, close_marker, idle_timeout
        How to follow the folder: see :class:`daskmic.run.config.StreamOptions` (their
        defaults and checks); e.g. ``pattern="GridSquare_*/Data/*.mrc"``.
    client : distributed.Client, optional
        Where to run; by default the client open in this process (as after
        ``with daskmic.connect(...) as client:``) unless ``cluster`` or a sizing option asks
        for another place, else a cluster started with :func:`daskmic.connect`.
    on_row : callable, optional
        Called with each micrograph's row as it completes.
    overwrite : bool
        Restart an output folder that holds a run made with other parameters.
    report : bool
        Keep ``OUT/report.html`` live while the stream is open (rewritten after each table
        rebuild, reloading itself every ``refresh_seconds``) and write the final QC page when
        it closes (see ``daskmic.report.live``).
    refresh_seconds : float, optional
        How often the open page reloads itself (default
        ``daskmic.report.live.DEFAULT_REFRESH_SECONDS``).
    **cluster_options
        Passed to :func:`daskmic.connect` when no ``client`` is given.

    Returns
    -------
    RunSummary
        The rows of every micrograph seen in the stream, sorted by name.

    Raises
    ------
    UsageError
        Before any work: invalid options, a ``folder`` that is not a folder (or a URL whose
        bucket does not exist, or a web server's, which lists nothing), an output folder that
        contains the watched folder or leads into it (a symlink), or one bound to other
        parameters (unless ``overwrite``).

    Examples
    --------
    Here the session is already over (its ``CLOSED`` marker is there), so ``watch`` processes what
    it finds and returns:

    >>> from pathlib import Path
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> from daskmic.preprocessing.params import PreprocessParams
    >>> truth = make_dataset("session", n=2, shape=(256, 256), pixel_size_A=1.0)
    >>> Path("session/CLOSED").touch()
    >>> config = dm.RunConfig(preprocess=PreprocessParams.from_options(crop=True))
    >>> summary = dm.watch("session", "live", config, settle_seconds=0.0, poll_seconds=0.1,
    ...                    workers=1, dashboard=False, quiet=True)
    watch: 2 seen, 2 done, 0 failed, 0 being written
    >>> summary.counts()
    {'done': 2}
    """
    options = StreamOptions(
        pattern, batch_size, settle_seconds, poll_seconds, close_marker, idle_timeout
    )
    watched = location(folder, config.storage_options)
    out = location(out_dir, config.storage_options)
    arrivals, closing, digest = _following(watched, out, config, options, overwrite)
    live = None
    if report:
        from daskmic.report.live import LiveReport  # matplotlib: only when a page is wanted

        live = LiveReport(out, "stream", refresh_seconds=refresh_seconds)
    stream = _Stream(
        arrivals, out, config, digest, batch_size=batch_size, on_row=on_row, live=live
    )
    if client is None:
        client = open_client(cluster_options.get("cluster", "local"), cluster_options)
    if client is None:
        from daskmic.cluster.client import connect

        with connect(**cluster_options) as started:
            stream.follow(started, closing, poll_seconds)
    else:
        stream.follow(client, closing, poll_seconds)
    wanted = set(stream.names.values())
    rows = [row for row in Manifest(out).rows() if row["micrograph"] in wanted]
    return RunSummary(out, rows, None if live is None else live.final)
