"""The per-micrograph unit of work: what a worker does with one micrograph.

:func:`process_micrograph` reads one micrograph, applies the enabled steps, writes that
micrograph's outputs (each whole: renamed into place locally, one request to an object store),
records it in the manifest last and returns its row. It never
raises for bad data: one bad micrograph fails alone, with its reason in its row. The driver
(:mod:`daskmic.run.driver`) submits it for every micrograph; this module imports only what the unit
needs, so a worker starts quickly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from daskmic import __version__
from daskmic.io.mrc_write import write_mrc
from daskmic.io.readers import read_header, read_micrograph
from daskmic.io.storage import Location
from daskmic.io.thumbnails import make_thumbnail
from daskmic.ops.kernel import compose
from daskmic.preprocessing.pipeline import build_pipeline
from daskmic.run.config import RunConfig
from daskmic.run.layout import OutputLayout, recorded_path
from daskmic.run.manifest import Manifest
from daskmic.run.source import Row, Source
from daskmic.tilt.decision import decide
from daskmic.tilt.optics import optics_for
from daskmic.tilt.params import TiltParams

__all__ = ["Row", "Source", "process_micrograph", "record_lost"]


def _check_pixels(image: np.ndarray) -> None:
    """Refuse images no step can process meaningfully (two reductions, no temporary)."""
    low, high = float(np.min(image)), float(np.max(image))  # NaN propagates through both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"contains {int((~np.isfinite(image)).sum())} NaN/Inf pixels")
    if low == high:
        raise ValueError("is a constant image")


def _label(step: str, xmipp_compat: bool) -> str:
    """The MRC header label of an output: what made it, and in which mode."""
    return f"daskmic {__version__} {step} xmipp_compat={xmipp_compat}"


class _Pixels:
    """One micrograph's pixels for its steps: the whole image read and checked at most once.

    Steps that need the whole image share one read; the tilt screen takes its corner windows
    from it when it is there, else reads only those regions from the file.
    """

    def __init__(self, path: str, storage_options: dict[str, Any]) -> None:
        self.path = path
        self.storage_options = storage_options
        self._image: np.ndarray | None = None

    def whole(self) -> np.ndarray:
        if self._image is None:
            image = read_micrograph(self.path, storage_options=self.storage_options)
            _check_pixels(image)
            self._image = image
        return self._image

    def region(self, region: tuple[slice, slice]) -> np.ndarray:
        if self._image is None:
            return read_micrograph(self.path, region, self.storage_options)
        return self._image[region]

    @property
    def shape(self) -> tuple[int, int]:
        if self._image is not None:
            return self._image.shape
        return read_header(self.path, self.storage_options).shape


def _preprocess_step(
    micrograph: str, pixels: _Pixels, pixel_size_A: float, config: RunConfig, out: OutputLayout
) -> Row:
    params = config.preprocess
    if params is None:
        raise ValueError("the run has no preprocessing step")
    image = pixels.whole()
    pipeline = build_pipeline(params, image.shape, pixel_size_A)
    result = compose(pipeline.kernels)(image)
    if not np.isfinite(result).all():
        raise ValueError("preprocessing produced NaN/Inf pixels")
    output = out.micrograph(micrograph)
    label = _label("preprocess", params.xmipp_compat)
    write_mrc(output, result, pipeline.output_pixel_size_A, label=label)
    if config.write_stack:
        from daskmic.io.ngff import MICROGRAPHS, write_image  # zarr's 0.3 s import when needed

        write_image(
            out.zarr, MICROGRAPHS, micrograph, result, pixel_size_A=pipeline.output_pixel_size_A
        )
    Manifest(out.root).write_thumbnail(micrograph, make_thumbnail(result, config.thumbnail_px))
    return {
        "output_path": recorded_path(output),
        "output_pixel_size_A": pipeline.output_pixel_size_A,
        "output_ny": result.shape[0],
        "output_nx": result.shape[1],
        "crop_px": pipeline.crop_px,
    }


def _tilt_step(
    micrograph: str, pixels: _Pixels, pixel_size_A: float, config: RunConfig, out: OutputLayout
) -> Row:
    from daskmic.tilt.screen import corner_regions, screen_windows  # scipy: only for a screen
    from daskmic.tilt.summary import write_psd_png

    params = config.tilt
    if params is None:
        raise ValueError("the run has no tilt step")
    windows = [pixels.region(region) for region in corner_regions(pixels.shape, params)]
    for window in windows:
        _check_pixels(window)
    result = screen_windows(windows, pixel_size_A, params)
    psd = out.psd(micrograph)
    write_mrc(psd, result.psd_summary, 1.0, label=_label("tilt PSD", params.xmipp_compat))
    write_psd_png(out.psd_png(micrograph), result.psd_summary)
    if config.write_stack:
        from daskmic.io.ngff import PSD, write_image

        write_image(out.zarr, PSD, micrograph, result.psd_summary, pixel_size_A=None)
    return {**result.to_row(), "psd_path": recorded_path(psd)}


def _angle_step(
    source: Source, pixels: _Pixels, pixel_size_A: float, config: RunConfig, out: OutputLayout
) -> Row:
    from daskmic.tilt.angle import estimate_tilt  # scipy.ndimage: only for an angle estimate
    from daskmic.tilt.defocus_map import save_defocus_map

    carried = Manifest(out.root).optics()
    optics = optics_for(config.optics, source.columns.get("rlnOpticsGroup"), carried)
    result = estimate_tilt(pixels.whole(), pixel_size_A, **optics)
    save_defocus_map(out.defocus_map(source.micrograph), result)
    return result.as_row()


def _decision(row: Row, params: TiltParams) -> Row:
    """Accept or discard by the screen's statistics and, with a maximum tilt, the angle."""
    accepted, status, reason = decide(
        row["tilt_mean_corr"],
        row["tilt_std_corr"],
        mean_threshold=params.mean_threshold,
        std_threshold=params.std_threshold,
        max_tilt_deg=params.max_tilt_deg,
        angle_deg=row.get("tilt_angle_deg"),
    )
    return {"accepted": bool(accepted), "tilt_status": str(status), "discard_reason": str(reason)}


def process_micrographs(
    sources: list[Source], config: RunConfig, out_dir: str | Location, digest: str
) -> list[Row]:
    """Process each of ``sources`` end to end, then record them; never raises for bad data.

    Each micrograph runs alone (one bad micrograph fails alone, with its reason in its row).
    The done-records go last, after every output of the group, and are made durable together
    (:meth:`daskmic.run.manifest.Manifest.write_records`: one round of fsyncs, not one per
    micrograph); a micrograph already done with ``digest`` from the same file keeps its record.

    Parameters
    ----------
    sources : list of Source
        The micrographs to process.
    config : RunConfig
        The run's steps and options.
    out_dir : str or Location
        The output folder: a local path, or a URL (opened with ``config.storage_options``).
    digest : str
        The hash of ``config`` the output folder is bound to.

    Returns
    -------
    list of dict
        Each micrograph's row, in order: ``micrograph, path, status, error``, the pixel size,
        output paths and the tilt statistics. ``status`` is ``"failed"`` with a reason in
        ``error`` when anything about that micrograph is wrong.
    """
    out = OutputLayout(out_dir, config.storage_options)
    manifest = Manifest(out.root)
    rows: list[Row] = []
    made: list[tuple[Row, tuple[int, int | str] | None]] = []
    for source in sources:
        if manifest.is_done(source.micrograph, digest, source.path, source.stamp):
            record = manifest.read(source.micrograph)
            if record is not None:  # else removed since (watch forgets renamed micrographs)
                rows.append(record["row"])
                continue
        row = _process(source, config, out)
        rows.append(row)
        made.append((row, source.stamp))
    manifest.write_records(made, digest)
    return rows


def process_micrograph(
    source: Source, config: RunConfig, out_dir: str | Location, digest: str
) -> Row:
    """:func:`process_micrographs` for one micrograph: its row."""
    return process_micrographs([source], config, out_dir, digest)[0]


def record_lost(
    sources: list[Source], config: RunConfig, out_dir: str | Location, digest: str, reason: str
) -> list[Row]:
    """Record ``sources`` as failed because their task was lost (its worker process died).

    The driver calls it for a micrograph whose task ended its worker however it was run
    (:class:`daskmic.run.feeder.Feeder`): a crash or the operating system's out-of-memory kill
    takes the process, so the unit could not write the record itself.

    Returns
    -------
    list of dict
        Each micrograph's row, ``status`` failed, ``error`` ``worker: <path> <reason>``.
    """
    out = OutputLayout(out_dir, config.storage_options)
    made = [(_failed(_row(s), config, f"worker: {s.path} {reason}"), s.stamp) for s in sources]
    Manifest(out.root).write_records(made, digest)
    return [row for row, _ in made]


def _row(source: Source) -> Row:
    """A micrograph's row before its steps."""
    return {
        "micrograph": source.micrograph,
        "path": source.path,
        "pixel_size_A": source.pixel_size_A,
        **source.columns,
        "status": "done",
        "error": source.error,
    }


def _failed(row: Row, config: RunConfig, message: str) -> Row:
    """``row`` marked failed with ``message``."""
    row.update(status="failed", error=message)
    if config.tilt is not None:
        row.update(tilt_status="failed", accepted=False)
    return row


def _process(source: Source, config: RunConfig, out: OutputLayout) -> Row:
    """One micrograph's steps and outputs; its row (``status`` failed with the reason)."""
    row = _row(source)
    step = "read"
    try:
        if source.error:
            raise ValueError(source.error)
        pixel_size_A = source.pixel_size_A
        if not np.isfinite(pixel_size_A) or pixel_size_A <= 0:
            raise ValueError("unknown pixel size: give it with --pixel-size (pixel_size_A)")
        pixels, name = _Pixels(source.path, config.storage_options), source.micrograph
        if config.preprocess is not None:
            step = "preprocess"
            row.update(_preprocess_step(name, pixels, pixel_size_A, config, out))
        if config.tilt is not None:
            step = "tilt"
            row.update(_tilt_step(name, pixels, pixel_size_A, config, out))
            if config.tilt.estimate_angle:
                step = "tilt angle"
                row.update(_angle_step(source, pixels, pixel_size_A, config, out))
            row.update(_decision(row, config.tilt))
            row["status"] = row["tilt_status"]
    except Exception as exc:  # one bad micrograph fails alone, with its reason
        _failed(row, config, str(exc) if source.error else f"{step}: {source.path} {exc}")
    return row
