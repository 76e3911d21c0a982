"""The driver: feeds the per-micrograph unit (:mod:`daskmic.run.unit`) to a cluster.

Everything that writes results — the command line, :func:`daskmic.write`, resume and
streaming — submits one function, :func:`daskmic.run.unit.process_micrograph`, through
:func:`process_sources`, so one bad micrograph fails alone and a killed run loses at most the
micrographs in flight.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Final, Literal

from daskmic.io.storage import Location, list_files, location
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout, refuse_overwriting_inputs
from daskmic.run.manifest import Manifest, parameters_hash
from daskmic.run.resume import is_current, mark_published, nothing_to_do, split_finished
from daskmic.run.sources import KnownHeaders, catalogue, check_run

if TYPE_CHECKING:
    from distributed import Client

    from daskmic.report.live import LiveReport
    from daskmic.run.source import Row, Source

IN_PROCESS_MAX: Final = 16
"""A local run of at most this many micrographs to do, with no cluster sizing asked for, runs
on threads of the command's own process (:class:`daskmic.cluster.inprocess.InProcess`):
nothing to start, and their kernels share the cores."""

LOCAL_PROCESSES_MAX_PX: Final = 2**30
"""A larger local run without sizing, of at most this many pixels to do (64 × 4096², a
minute or two of two cores' work with the typical steps), runs on a pool of worker processes
(:class:`daskmic.cluster.inprocess.LocalProcesses`): it starts for about 0.5 s of CPU where a
local cluster costs 4.5 s, more than the compute of 2,000 128² micrographs. A larger run
starts a cluster, whose start is then a few per cent of the run, for its dashboard and the
workers' memory management."""

SIZING: Final = ("workers", "threads_per_worker", "memory_limit")
"""Cluster options that ask for a cluster of a given shape (never replaced by threads)."""


def process_sources(
    client: Any,
    sources: Iterable[Source],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    digest: str,
    *,
    batch_size: int = 8,
    on_row: Callable[[Row], None] | None = None,
    on_publish: Callable[[], None] | None = None,
) -> list[Row]:
    """Run the unit for each source through a :class:`~daskmic.run.feeder.Feeder`.

    At most ``2 × threads`` are in flight; the tables are rebuilt after every ``batch_size``
    micrographs (calling ``on_publish`` after each) as the feeder spaces rebuilds, none in the
    run's last stretch, and the caller publishes once all are in. The driver holds paths
    only, never pixels: workers read, process and write.

    Parameters
    ----------
    client : distributed.Client or daskmic.cluster.inprocess.InProcess
        Where the unit runs.
    sources, out_dir, config, digest, batch_size, on_row, on_publish
        As for :class:`~daskmic.run.feeder.Feeder`.

    Returns
    -------
    list of dict
        The rows, in completion order.
    """
    from daskmic.cluster.progress import track  # the unit's and rich's imports: only for work
    from daskmic.run.feeder import Feeder

    pending = list(sources)
    feeder = Feeder(
        client,
        out_dir,
        config,
        digest,
        batch_size=batch_size,
        on_row=on_row,
        on_publish=on_publish,
    )
    feeder.add(pending, last=True)
    import_module("daskmic.run.publish")  # the end's imports while they compute
    return list(track(feeder.rows(), total=len(pending)))


def prepare(
    inputs: str | os.PathLike[str] | list[str],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    *,
    overwrite: bool = False,
    limit: int | None = None,
    on_listed: Callable[[list[Source]], None] | None = None,
) -> tuple[list[Source], str]:
    """Open the inputs' headers, validate the run against them and bind the output folder.

    ``on_listed`` is called with the sources once the headers are read, before the checks
    and the binding (the batch run starts its cluster there). The headers of files read
    before into this folder, unchanged since, are not read again
    (:class:`daskmic.run.sources.KnownHeaders`), and a finished set whose outputs are current
    is neither checked again nor bound anew (:func:`daskmic.run.resume.nothing_to_do`).

    Raises
    ------
    UsageError
        Inputs that cannot be listed, parameters the set cannot support, or an output folder
        bound to other parameters or whose outputs would overwrite an input; raised before
        any work starts.
    """
    out = location(out_dir, config.storage_options)
    known = KnownHeaders(out)
    listed, optics = catalogue(inputs, config.pixel_size_A, config.storage_options, known)
    sources = listed if limit is None else listed[:limit]
    if on_listed is not None:
        on_listed(sources)
    check_run(config, sources)
    if not overwrite and nothing_to_do(out, config, sources, optics):
        digest = parameters_hash(config.hashed_parameters())
    else:
        items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
        read = [s.path for s in listed] + [os.fspath(i) for i in items if os.path.isfile(i)]
        digest = bind(out_dir, config, sources, optics, overwrite=overwrite, inputs=read)
    known.keep()
    return sources, digest


def bind(
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    sources: list[Source],
    optics: list[dict[str, Any]],
    *,
    overwrite: bool = False,
    inputs: Iterable[str] = (),
) -> str:
    """Tie ``out_dir`` to ``config`` (refusing other parameters) and keep the input optics.

    Every run (batch, :func:`daskmic.write`, :func:`daskmic.watch`) passes here before any
    work: it also refuses an output folder where the outputs of ``sources`` would overwrite
    one of their files or of ``inputs`` (other files the run reads, such as a table).

    Returns
    -------
    str
        The parameters' hash the records carry.

    Raises
    ------
    UsageError
        If the folder holds a run made with other parameters (unless ``overwrite``), an
        output would land on an input, or a path or name cannot be written to the tables (see
        :func:`daskmic.run.publish_tables.check_table_names`).
    """
    from daskmic.run.publish_tables import check_table_names

    check_table_names(out_dir, sources)
    read = [*(s.path for s in sources), *inputs]
    refuse_overwriting_inputs(out_dir, config, [s.micrograph for s in sources], read)
    manifest = Manifest(location(out_dir, config.storage_options))
    digest = manifest.bind(config.to_dict(), config.hashed_parameters(), overwrite=overwrite)
    manifest.remove_partial()
    manifest.remove_unreadable()
    manifest.write_optics(optics)
    return digest


@dataclass(frozen=True)
class RunSummary:
    """What a run did: its rows (sorted by micrograph) and where the outputs are."""

    out_dir: Location
    rows: list[Row]
    report: Location | None = None
    """The QC page written at the end, if the run was asked for one."""

    @property
    def failed(self) -> list[Row]:
        """Rows of the micrographs that failed."""
        return [row for row in self.rows if row["status"] == "failed"]

    def counts(self) -> dict[str, int]:
        """Number of micrographs per status."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return dict(sorted(counts.items()))


def run_batch(
    inputs: str | os.PathLike[str] | list[str],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    *,
    client: Client | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    batch_size: int | None = None,
    on_row: Callable[[Row], None] | None = None,
    report: bool = False,
    live_after_seconds: float | None = None,
    cluster: str = "local",
    **cluster_options: Any,
) -> RunSummary:
    """Process a set of micrographs into ``out_dir``; rerunning it resumes.

    Parameters
    ----------
    inputs : path, glob, folder, table or list of them
        The micrographs (see :func:`daskmic.open_micrographs`).
    out_dir : path-like
        The output folder (created if needed).
    config : RunConfig
        Steps and options.
    client : distributed.Client, optional
        Where to run. By default the client open in this process (the one dask's
        ``compute`` uses, as after ``with daskmic.connect(...) as client:``) unless
        ``cluster`` or a sizing option asks for another place; with none open, a cluster is
        started with :func:`daskmic.connect` for the micrographs not done yet (none when
        every one is), or, for a local run without sizing options, they run on this
        process's threads or a pool of local processes when the work is small (see
        ``daskmic.run.driver.where_to_run``).
    overwrite : bool
        Restart a folder that holds a run made with other parameters.
    limit : int, optional
        Process only the first ``limit`` micrographs (by name), to try settings.
    batch_size : int, optional
        Rebuild the tables after this many micrographs; by default about ten times per run
        and at least every 8 micrographs (each rebuild costs the driver CPU the workers
        could use).
    on_row : callable, optional
        Called with each micrograph's row as it completes.
    report : bool
        Write ``OUT/report.html`` at the end; a run that lasts longer than
        ``live_after_seconds`` keeps a live page there meanwhile (see
        ``daskmic.report.live``).
    live_after_seconds : float, optional
        Default ``daskmic.report.live.DEFAULT_LIVE_AFTER_SECONDS`` (a minute).
    cluster : str
        Cluster kind or scheduler address when no ``client`` is given.
    **cluster_options
        Passed to :func:`daskmic.connect`.

    Returns
    -------
    RunSummary
        Every micrograph's row.

    Examples
    --------
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> from daskmic.preprocessing.params import PreprocessParams
    >>> truth = make_dataset("raw", n=2, shape=(256, 256), pixel_size_A=1.0)
    >>> config = dm.RunConfig(preprocess=PreprocessParams.from_options(crop=True, invert=True))
    >>> summary = dm.run_batch("raw/*.mrc", "results", config, workers=1, dashboard=False,
    ...                        quiet=True)
    >>> summary.counts()
    {'done': 2}
    >>> dm.run_batch("raw/*.mrc", "results", config, workers=1, dashboard=False,
    ...              quiet=True).counts()   # resumes: nothing left to do
    {'done': 2}
    """
    with ExitStack() as started:

        def warm(sources: list[Source]) -> None:
            """Start a new folder's workers now: they start while the driver binds."""
            nonlocal client
            fresh = not list_files(OutputLayout(out).records)
            where = where_to_run(sources, cluster, cluster_options)
            if client is None and fresh and where != "threads":
                client = started.enter_context(
                    _started(where, len(sources), cluster, cluster_options)
                )

        out = location(out_dir, config.storage_options)
        sources, digest = prepare(
            inputs, out_dir, config, overwrite=overwrite, limit=limit, on_listed=warm
        )
        live = None
        if report:
            from daskmic.report.live import LiveReport  # matplotlib: only when a page is wanted

            live = LiveReport(out, "batch", after_seconds=live_after_seconds)
        return execute(
            sources,
            out_dir,
            config,
            digest,
            client=client,
            batch_size=batch_size,
            on_row=on_row,
            live=live,
            cluster=cluster,
            **cluster_options,
        )


def where_to_run(
    pending: list[Source], cluster: str, cluster_options: dict[str, Any]
) -> Literal["threads", "processes", "cluster"]:
    """Where a run of the ``pending`` micrographs goes when no client is given.

    A cluster asked for by address, kind or shape (a :data:`SIZING` option) is always
    started. A local run without sizing goes by its work: at most :data:`IN_PROCESS_MAX`
    micrographs on this process's threads, at most :data:`LOCAL_PROCESSES_MAX_PX` pixels on a
    pool of local processes, more on a local cluster.
    """
    sized = any(cluster_options.get(name) is not None for name in SIZING)
    if cluster.strip() != "local" or sized:
        return "cluster"
    if len(pending) <= IN_PROCESS_MAX:
        return "threads"
    if sum(math.prod(s.shape) for s in pending if s.shape is not None) <= LOCAL_PROCESSES_MAX_PX:
        return "processes"
    return "cluster"


def open_client(cluster: str, cluster_options: dict[str, Any]) -> Client | None:
    """The ``distributed.Client`` open in this process, when the run asks for no other place.

    None when ``cluster`` names another place or a :data:`SIZING` option shapes a new one,
    or when no client is open (``distributed`` is then not imported for it).
    """
    sized = any(cluster_options.get(name) is not None for name in SIZING)
    if cluster.strip() != "local" or sized or "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:  # none open
        return None


@contextmanager
def runner(
    client: Client | None,
    pending: list[Source],
    cluster: str,
    cluster_options: dict[str, Any],
) -> Iterator[Any]:
    """Where ``pending`` runs: ``client``, the client open in this process, or as
    :func:`where_to_run` says.

    A ``distributed.Client`` opened before the run (``with dm.connect("slurm") as client:``)
    is where dask's own ``compute`` goes, so a run asked for no other place goes there too,
    not to threads of the process that opened it. A cluster started here returns as soon as
    its scheduler is up (its workers join as they start, while the driver submits); what is
    started here is closed on exit.
    """
    if client is None:
        client = open_client(cluster, cluster_options)
        if client is not None and not cluster_options.get("quiet"):
            scheduler = client.scheduler
            print(
                f"daskmic: {len(pending)} micrographs on the open client "
                f"({scheduler.address if scheduler is not None else 'no scheduler'})",
                file=sys.stderr,
                flush=True,
            )
    if client is not None:
        yield client
        return
    where = where_to_run(pending, cluster, cluster_options)
    with _started(where, len(pending), cluster, cluster_options) as started:
        yield started


@contextmanager
def _started(
    where: Literal["threads", "processes", "cluster"],
    pending: int,
    cluster: str,
    cluster_options: dict[str, Any],
) -> Iterator[Any]:
    """Start where a run goes (:func:`where_to_run`), without waiting for its workers.

    A cluster returns once its scheduler is up and its workers join as they start; a pool of
    local processes starts its workers in the background. Closed on exit.
    """
    if where == "cluster":
        from daskmic.cluster.client import connect  # distributed: only when a cluster is wanted

        with connect(cluster, **{"wait": False, **cluster_options}) as client:
            yield client
        return
    from daskmic.cluster.inprocess import InProcess, LocalProcesses

    with InProcess() if where == "threads" else LocalProcesses() as local:
        local.start()
        if not cluster_options.get("quiet"):
            print(
                f"daskmic: {pending} micrographs on {local.threads} {where} of this machine "
                "(no cluster, no dashboard)",
                file=sys.stderr,
                flush=True,
            )
        yield local


def execute(
    sources: list[Source],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    digest: str,
    *,
    client: Client | None = None,
    batch_size: int | None = None,
    on_row: Callable[[Row], None] | None = None,
    live: LiveReport | None = None,
    cluster: str = "local",
    **cluster_options: Any,
) -> RunSummary:
    """Run the unit for the ``sources`` not done yet; publish unless the outputs are current.

    The manifest says which micrographs are done before anything starts (see
    :mod:`daskmic.run.resume`): only the others are submitted, to ``client`` or to where
    :func:`runner` says, and a finished set whose outputs show its records is neither
    submitted nor rebuilt. With ``live``, the report is kept live after each rebuild and made
    final at the end.

    Returns
    -------
    RunSummary
        The rows of ``sources`` after the final publish.
    """
    out = location(out_dir, config.storage_options)
    pending, finished = split_finished(out, sources, digest)
    report = live is not None
    if not pending and is_current(out, config, report=report):
        return RunSummary(out, finished, OutputLayout(out).report if report else None)
    if batch_size is None:
        batch_size = max(8, math.ceil(len(pending) / 10))
    options: dict[str, Any] = {"batch_size": batch_size, "on_row": on_row}
    if live is not None:
        live.received(len(sources))
        options["on_publish"] = live.update
    if pending:
        with runner(client, pending, cluster, cluster_options) as where:
            process_sources(where, pending, out_dir, config, digest, **options)
    from daskmic.run.publish import publish

    rows = publish(out, config)
    page = None if live is None else live.close()
    mark_published(out, config, report=page is not None)
    wanted = {s.micrograph for s in sources}
    rows = [row for row in rows if row["micrograph"] in wanted]
    return RunSummary(out, rows, page)
