"""The per-micrograph unit of work, and the driver that feeds it to a cluster.

:func:`process_micrograph` reads one micrograph, applies the enabled steps, writes that
micrograph's outputs atomically, records it in the manifest and returns its row. Everything
that writes results — the command line, :func:`daskmic.write`, resume and streaming — submits
this one function (:func:`process_sources`), so one bad micrograph fails alone and a killed run
loses at most the micrographs in flight.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client, as_completed

from daskmic import __version__
from daskmic.cluster_progress import track
from daskmic.config import RunConfig, optics_for
from daskmic.io import (
    add_pixels,
    catalogue_micrographs,
    make_thumbnail,
    read_header,
    read_micrograph,
    write_mrc,
)
from daskmic.manifest import Manifest, ensure_not_input
from daskmic.ops.kernel import compose
from daskmic.preprocess import build_pipeline
from daskmic.publish import publish
from daskmic.tilt.angle import estimate_tilt
from daskmic.tilt.defocus_map import save_defocus_map
from daskmic.tilt.screen import corner_regions, screen_windows
from daskmic.tilt.summary import write_psd_png

Row = dict[str, Any]
ZARR_NAME = "micrographs.zarr"


@dataclass(frozen=True)
class Source:
    """One input micrograph, as the driver hands it to a worker (paths, never pixels)."""

    micrograph: str
    path: str
    pixel_size_A: float
    columns: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def sources_from(mics: xr.DataArray) -> list[Source]:
    """List the micrographs of an opened set, error rows included, sorted by name."""
    carried = [
        name
        for name, coord in mics.coords.items()
        if coord.dims == ("micrograph",) and name not in ("micrograph", "path", "pixel_size_A")
    ]
    sources = [
        Source(
            micrograph=str(name),
            path=str(mics["path"].values[i]),
            pixel_size_A=float(mics["pixel_size_A"].values[i]),
            columns={c: _plain(mics[c].values[i]) for c in carried},
        )
        for i, name in enumerate(mics["micrograph"].values)
    ]
    sources += [
        Source(
            micrograph=bad["micrograph"],
            path=bad["path"],
            pixel_size_A=float("nan"),
            error=bad["error"],
        )
        for bad in mics.attrs.get("failed", [])
    ]
    return sorted(sources, key=lambda s: s.micrograph)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_pixels(image: np.ndarray) -> None:
    """Refuse images no step can process meaningfully."""
    if not np.isfinite(image).all():
        raise ValueError(f"contains {int((~np.isfinite(image)).sum())} NaN/Inf pixels")
    if float(np.ptp(image)) == 0.0:
        raise ValueError("is a constant image")


def _label(step: str, xmipp_compat: bool) -> str:
    """The MRC header label of an output: what made it, and in which mode."""
    return f"daskmic {__version__} {step} xmipp_compat={xmipp_compat}"


def _preprocess_step(source: Source, pixel_size_A: float, config: RunConfig, out: Path) -> Row:
    image = read_micrograph(source.path)
    _check_pixels(image)
    pipeline = build_pipeline(config.preprocess, image.shape, pixel_size_A)
    result = compose(pipeline.kernels)(image)
    if not np.isfinite(result).all():
        raise ValueError("preprocessing produced NaN/Inf pixels")
    output = out / "mrc" / f"{source.micrograph}.mrc"
    label = _label("preprocess", config.preprocess.xmipp_compat)
    write_mrc(output, result, pipeline.output_pixel_size_A, label=label)
    if config.write_stack:
        add_pixels(
            out / ZARR_NAME, source.micrograph, result, pixel_size_A=pipeline.output_pixel_size_A
        )
    Manifest(out).write_thumbnail(source.micrograph, make_thumbnail(result, config.thumbnail_px))
    return {
        "output_path": str(output.resolve()),
        "output_pixel_size_A": pipeline.output_pixel_size_A,
        "output_ny": result.shape[0],
        "output_nx": result.shape[1],
        "crop_px": pipeline.crop_px,
    }


def _tilt_step(source: Source, pixel_size_A: float, config: RunConfig, out: Path) -> Row:
    header = read_header(source.path)
    windows = [
        read_micrograph(source.path, region) for region in corner_regions(header.shape, config.tilt)
    ]
    for window in windows:
        _check_pixels(window)
    result = screen_windows(windows, pixel_size_A, config.tilt)
    psd = out / "psd" / f"{source.micrograph}.mrc"
    write_mrc(psd, result.psd_summary, 1.0, label=_label("tilt PSD", config.tilt.xmipp_compat))
    write_psd_png(psd.with_suffix(".png"), result.psd_summary)
    return {**result.to_row(), "psd_path": str(psd.resolve())}


def _angle_step(source: Source, pixel_size_A: float, config: RunConfig, out: Path) -> Row:
    optics = optics_for(config.optics, source.columns.get("rlnOpticsGroup"), Manifest(out).optics())
    image = read_micrograph(source.path)
    _check_pixels(image)
    result = estimate_tilt(image, pixel_size_A, **optics)
    save_defocus_map(out / "defocus" / f"{source.micrograph}.json", result)
    return result.as_row()


def process_micrograph(source: Source, config: RunConfig, out_dir: str, digest: str) -> Row:
    """Process one micrograph end to end and record it; never raises for bad data.

    Parameters
    ----------
    source : Source
        The micrograph to process.
    config : RunConfig
        The run's steps and options.
    out_dir : str
        The output folder.
    digest : str
        The hash of ``config`` the output folder is bound to.

    Returns
    -------
    dict
        The micrograph's row: ``micrograph, path, status, error``, the pixel size, output
        paths and the tilt statistics. ``status`` is ``"failed"`` with a reason in ``error``
        when anything about this micrograph is wrong.
    """
    out = Path(out_dir)
    manifest = Manifest(out)
    if manifest.is_done(source.micrograph, digest, source.path):
        return manifest.read(source.micrograph)["row"]
    row: Row = {
        "micrograph": source.micrograph,
        "path": source.path,
        "pixel_size_A": source.pixel_size_A,
        **source.columns,
        "status": "done",
        "error": source.error,
    }
    step = "read"
    try:
        if source.error:
            raise ValueError(source.error)
        pixel_size_A = config.pixel_size_A or source.pixel_size_A
        if not np.isfinite(pixel_size_A) or pixel_size_A <= 0:
            raise ValueError("unknown pixel size: give it with --pixel-size (pixel_size_A)")
        row["pixel_size_A"] = pixel_size_A
        if config.preprocess is not None:
            step = "preprocess"
            row.update(_preprocess_step(source, pixel_size_A, config, out))
        if config.tilt is not None:
            step = "tilt"
            row.update(_tilt_step(source, pixel_size_A, config, out))
            if config.tilt.estimate_angle:
                step = "tilt angle"
                row.update(_angle_step(source, pixel_size_A, config, out))
            row["status"] = row["tilt_status"]
    except Exception as exc:  # one bad micrograph fails alone, with its reason
        message = str(exc) if source.error else f"{step}: {source.path} {exc}"
        row.update(status="failed", error=message)
        if config.tilt is not None:
            row.update(tilt_status="failed", accepted=False)
    manifest.write(row, digest)
    return row


def process_sources(
    client: Client,
    sources: Iterable[Source],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    digest: str,
    *,
    batch_size: int = 8,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Submit the unit for each source, at most ``2 × threads`` in flight; publish per batch.

    The tables are rebuilt after every ``batch_size`` micrographs but the last; the caller
    publishes once all are in. The driver holds paths only, never pixels: workers read,
    process and write.
    """
    pending = list(sources)
    in_flight = max(2 * sum(client.nthreads().values()), 2)
    submitted = as_completed(loop=client.loop)
    rows: list[Row] = []

    def submit(source: Source) -> None:
        submitted.add(
            client.submit(
                process_micrograph,
                source,
                config,
                os.path.abspath(out_dir),  # workers may run in another working directory
                digest,
                key=f"micrograph-{digest}-{source.micrograph}",
                pure=False,
            )
        )

    for source in pending[:in_flight]:
        submit(source)
    queue = iter(pending[in_flight:])
    since_publish = 0
    for future in track(submitted, total=len(pending)):
        row = future.result()
        future.release()
        rows.append(row)
        if on_row is not None:
            on_row(row)
        nxt = next(queue, None)
        if nxt is not None:
            submit(nxt)
        since_publish += 1
        if since_publish >= batch_size and len(rows) < len(pending):
            publish(Path(out_dir), config)  # the caller publishes once the last one is in
            since_publish = 0
    return rows


def prepare(
    inputs: str | os.PathLike[str] | list[str],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    *,
    overwrite: bool = False,
    limit: int | None = None,
) -> tuple[list[Source], str]:
    """Open the inputs' headers, validate the run against them and bind the output folder.

    Raises
    ------
    ValueError
        On parameters the set cannot support (before any work starts) or an output folder
        bound to other parameters.
    """
    entries, optics = catalogue_micrographs(inputs, pixel_size_A=config.pixel_size_A)
    sources = sorted(
        (Source(e.micrograph, e.path, e.pixel_size_A, e.columns, e.error) for e in entries),
        key=lambda s: s.micrograph,
    )
    if limit is not None:
        sources = sources[:limit]
    wanted = {s.micrograph for s in sources}
    good = [e for e in entries if not e.error and e.micrograph in wanted]
    shapes = [e.shape for e in good]
    pixel_sizes = [config.pixel_size_A or e.pixel_size_A for e in good]
    if config.preprocess is not None:
        for shape in sorted(set(shapes)):
            config.preprocess.validate(shape)
    if config.tilt is not None and good:
        config.tilt.validate_for_set(shapes, pixel_sizes)
    digest = bind(out_dir, config, sources, optics, overwrite=overwrite)
    return sources, digest


def bind(
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    sources: list[Source],
    optics: list[dict[str, Any]],
    *,
    overwrite: bool = False,
) -> str:
    """Tie ``out_dir`` to ``config`` (refusing other parameters) and keep the input optics.

    Returns
    -------
    str
        The parameters' hash the records carry.
    """
    ensure_not_input(out_dir, [s.path for s in sources])
    manifest = Manifest(Path(out_dir))
    digest = manifest.bind(config.to_dict(), config.hashed_parameters(), overwrite=overwrite)
    manifest.remove_partial()
    manifest.write_optics(optics)
    return digest


@dataclass(frozen=True)
class RunSummary:
    """What a run did: its rows (sorted by micrograph) and where the outputs are."""

    out_dir: Path
    rows: list[Row]

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
        Where to run; by default a cluster is started with :func:`daskmic.cluster.connect`.
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
    cluster : str
        Cluster kind or scheduler address when no ``client`` is given.
    **cluster_options
        Passed to :func:`daskmic.cluster.connect`.

    Returns
    -------
    RunSummary
        Every micrograph's row.
    """
    sources, digest = prepare(inputs, out_dir, config, overwrite=overwrite, limit=limit)
    return execute(
        sources,
        out_dir,
        config,
        digest,
        client=client,
        batch_size=batch_size,
        on_row=on_row,
        cluster=cluster,
        **cluster_options,
    )


def execute(
    sources: list[Source],
    out_dir: str | os.PathLike[str],
    config: RunConfig,
    digest: str,
    *,
    client: Client | None = None,
    batch_size: int | None = None,
    on_row: Callable[[Row], None] | None = None,
    cluster: str = "local",
    **cluster_options: Any,
) -> RunSummary:
    """Run the unit for ``sources`` on ``client`` (or a cluster started for the purpose).

    Returns
    -------
    RunSummary
        The rows of ``sources`` after the final publish.
    """
    from daskmic.cluster import connect

    if batch_size is None:
        batch_size = max(8, math.ceil(len(sources) / 10))
    if client is None:
        with connect(cluster, **cluster_options) as started:
            process_sources(
                started, sources, out_dir, config, digest, batch_size=batch_size, on_row=on_row
            )
    else:
        process_sources(
            client, sources, out_dir, config, digest, batch_size=batch_size, on_row=on_row
        )
    rows = publish(Path(out_dir), config)
    wanted = {s.micrograph for s in sources}
    return RunSummary(Path(out_dir), [row for row in rows if row["micrograph"] in wanted])
