"""Keep an output folder's tables and zarr store equal to its manifest, at the cost of what
changed.

Called after each batch and at the end of every run. The outputs depend only on the records
(sorted by micrograph name) and the parameters, so batch, resumed and streamed runs give the
same files; :class:`Publisher` remembers what it published, so each publish reads and writes
what is new (the tables, :mod:`daskmic.run.publish_tables`, are rewritten from remembered rows).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from upath import UPath

from daskmic.errors import UsageError
from daskmic.io import write_results
from daskmic.io.storage import Location, StorageOptions, is_local, list_stamped, location
from daskmic.io.thumbnails import THUMBNAIL_DTYPE
from daskmic.io.zarr_store import THUMBNAIL_MAPPING, ImageIndex, Thumbnails, thumbnail_chunk
from daskmic.run.config import RunConfig
from daskmic.run.manifest import Manifest, canonical_json
from daskmic.run.publish_tables import RememberedRows, split_tilt, table_of, write_tables


class Publisher:
    """Keeps an output folder's tables and zarr store equal to its records, at the cost of
    what changed.

    It remembers what it published: the rows (a record is read once, again only when its file
    changes), the thumbnails' order in the store (only new, moved or rewritten ones are linked
    in) and the images' metadata (:class:`daskmic.io.zarr_store.ImageIndex`). The tables are
    written whole from the remembered rows, sorted by micrograph name, so every publish gives
    the files a single publish of the same records gives. When the store changed behind its
    back (another process published), it starts over from the records.

    Parameters
    ----------
    out_dir, config
        As :func:`publish` takes them.
    """

    def __init__(self, out_dir: Location, config: RunConfig) -> None:
        self.manifest = Manifest(out_dir)
        self.config = config
        self._rows: dict[str, dict[str, Any]] = {}
        self._stamps: dict[str, object] = {}
        self._written: dict[str, float] = {}
        self._published: list[str] | None = None
        self._store_stamp: object = None
        self._stream_open: bool | None = None
        self._images = ImageIndex()
        self._mappings: dict[str, tuple[float, float, Location | bytes | None]] = {}
        layout = self.manifest.layout  # the live sets there when local, else in memory
        self._tables = RememberedRows(self._stamps, layout if is_local(layout.root) else None)

    def _scan(self) -> set[str]:
        """Read the records written since the last scan; the micrographs whose row changed."""
        changed: set[str] = set()
        seen: set[str] = set()
        for file, (written, stamp) in list_stamped(self.manifest.records_dir).items():
            if file.startswith(".") or not file.endswith(".json"):
                continue
            name = file[: -len(".json")]
            seen.add(name)
            if self._stamps.get(name) == stamp:
                continue
            self._stamps[name] = stamp
            self._written[name] = written
            record = self.manifest.read(name)
            if record is not None:
                self._rows[name] = record["row"]
            elif self._rows.pop(name, None) is None:
                continue  # unreadable, and never published
            changed.add(name)
        for name in set(self._stamps) - seen:
            del self._stamps[name]
            self._written.pop(name, None)
            if self._rows.pop(name, None) is not None:
                changed.add(name)
        return changed

    def _stamp(self) -> object:
        """What identifies the store's root metadata as written (None when there is none)."""
        root = self.manifest.layout.zarr / "zarr.json"
        listed = list_stamped(root.parent).get(root.name)
        return None if listed is None else listed.stamp

    def _thumbnails(self, names: list[str], changed: set[str]) -> Thumbnails:
        """The thumbnails of ``names``; chunks for those not already in the store at their row."""
        published = self._published if self._stamp() == self._store_stamp else None
        edge_px = self.config.thumbnail_px
        low, high = np.full(len(names), np.nan), np.full(len(names), np.nan)
        chunks: dict[int, Location | bytes | None] = {}
        for index, name in enumerate(names):
            stays = (
                published is not None
                and index < len(published)
                and published[index] == name
                and name not in changed
            )
            mapping = self._mappings.get(name) if stays else None
            if mapping is None:
                mapping = self._mapping(name, edge_px)
                chunks[index] = mapping[2]
            low[index], high[index] = mapping[0], mapping[1]
        return Thumbnails(edge_px, low, high, chunks)

    def _mapping(self, name: str, edge_px: int) -> tuple[float, float, Location | bytes | None]:
        """A stored thumbnail's mapping and what to put in the store (NaN, None: none)."""
        stored = self.manifest.thumbnail(name)
        if stored is None:
            found: tuple[float, float, Location | bytes | None] = (np.nan, np.nan, None)
        elif stored.levels.shape == (edge_px, edge_px):
            found = (stored.low, stored.high, stored.path)
        else:  # made with another thumbnail size: cropped or padded with level 0
            frame = np.zeros((edge_px, edge_px), THUMBNAIL_DTYPE)
            part = stored.levels[:edge_px, :edge_px]
            frame[: part.shape[0], : part.shape[1]] = part
            found = (stored.low, stored.high, frame.tobytes())
        self._mappings[name] = found
        return found

    def _adopt(self, changed: set[str]) -> set[str]:
        """Take over what an earlier process published in this (local) store; the micrographs
        it published as they are now.

        Those whose record is older than the store's root metadata keep their images'
        metadata and, when their thumbnail chunk is still the manifest's file (a hard link to
        it), their thumbnail: a new process on a published folder reads and links only what
        changed since.
        """
        store = self.manifest.layout.zarr
        if not isinstance(store, Path) or not (store / "zarr.json").is_file():
            return set()
        published = self._images.adopt(store)
        if "micrograph" not in published:
            return set()
        names = [str(name) for name in published["micrograph"]]
        root_ns = (store / "zarr.json").stat().st_mtime_ns
        index = {name: i for i, name in enumerate(names)}
        kept = set()
        for name in changed & set(index):
            stamp = self._stamps[name]
            if not (isinstance(stamp, tuple) and stamp[1] < root_ns):
                continue  # recorded since that rebuild (or not known when)
            if set(THUMBNAIL_MAPPING) <= set(published):
                low, high = (float(published[k][index[name]]) for k in THUMBNAIL_MAPPING)
                thumbnail = self.manifest.thumbnail_path(name)
                if not np.isnan(low):
                    if not _same_file(thumbnail, thumbnail_chunk(store, index[name])):
                        continue
                    self._mappings[name] = (low, high, thumbnail)
            kept.add(name)
        self._published, self._store_stamp = names, self._stamp()
        return kept

    def publish(self, *, stream_open: bool = False) -> list[dict[str, Any]]:
        """Bring the tables and the zarr store up to the records; see :func:`publish`."""
        first = self._published is None
        changed = self._scan()
        if first:
            changed -= self._adopt(changed)
        rows = [self._rows[name] for name in sorted(self._rows)]
        current = self._stamp() == self._store_stamp and self._published is not None
        if not rows or (not changed and current and stream_open == self._stream_open):
            return rows
        out, config = self.manifest.layout, self.config
        table = table_of(rows, config)
        write_tables(
            out,
            table,
            self._written,
            self.manifest,
            config,
            stream_open=stream_open,
            remembered=self._tables,
        )
        names = list(table["micrograph"])
        thumbnails = self._thumbnails(names, changed) if config.preprocess is not None else None
        self._images.forget(sorted(changed))
        write_results(
            out.zarr, table, thumbnails=thumbnails, parameters=config.to_dict(), images=self._images
        )
        self._published, self._store_stamp, self._stream_open = names, self._stamp(), stream_open
        return rows


_PUBLISHERS: dict[tuple[str, str], Publisher] = {}
"""This process's publishers, by output folder and parameters: what each has published."""


def _same_file(a: Location, b: Location) -> bool:
    """Whether ``a`` and ``b`` are one local file (hard links of it)."""
    try:
        return isinstance(a, Path) and isinstance(b, Path) and os.path.samefile(a, b)
    except OSError:
        return False


def publish(
    out_dir: Location, config: RunConfig, *, stream_open: bool = False
) -> list[dict[str, Any]]:
    """Bring every table and the zarr store of ``out_dir`` up to its records.

    The files are those a single rebuild from all the records gives (sorted by micrograph
    name); the work is what changed since this process last published the folder with the same
    parameters (:class:`Publisher`), and nothing when nothing did.

    Parameters
    ----------
    out_dir : Location
        The output folder (a URL as a Location carrying its storage options).
    config : RunConfig
        The run's steps and options.
    stream_open : bool
        Whether the run is still going (more micrographs may come): the Scipion sets are
        written with their stream state open; the last rebuild of a run closes them.

    Returns
    -------
    list of dict
        The recorded rows, sorted by micrograph name.
    """
    out = out_dir if isinstance(out_dir, UPath) else Path(os.path.abspath(out_dir))
    key = (str(out), canonical_json(config.to_dict()))
    publisher = _PUBLISHERS.pop(key, None) or Publisher(out, config)
    _PUBLISHERS[key] = publisher  # the most recent last
    while len(_PUBLISHERS) > 4:
        del _PUBLISHERS[next(iter(_PUBLISHERS))]
    return publisher.publish(stream_open=stream_open)


def select(
    out_dir: str | os.PathLike[str],
    *,
    mean_threshold: float,
    std_threshold: float,
    max_tilt_deg: float | None = None,
    storage_options: StorageOptions | None = None,
) -> dict[str, int]:
    """Re-split a tilt run's micrographs with new thresholds, without recomputing.

    Parameters
    ----------
    out_dir : path-like
        Output folder of a run that included tilt analysis.
    mean_threshold, std_threshold : float
        Accept when ``tilt_mean_corr > mean_threshold`` and ``tilt_std_corr < std_threshold``.
    max_tilt_deg : float, optional
        Also discard micrographs whose estimated ``tilt_angle_deg`` is above it (runs made
        with angle estimation only).
    storage_options : dict, optional
        For an output folder given by URL: its filesystem's options (credentials, endpoint).

    Returns
    -------
    dict
        Number of micrographs per status (accepted, discarded, failed).

    Examples
    --------
    >>> import daskmic as dm
    >>> from daskmic.datasets import make_dataset
    >>> truth = make_dataset("raw", n=2, shape=(700, 700), pixel_size_A=2.0, phase_std=0.3)
    >>> qc = dm.tilt_analysis(dm.open_micrographs("raw/*.mrc"))
    >>> dm.write(None, "screen", tilt=qc, workers=1, dashboard=False, quiet=True).counts()
    {'accepted': 2}
    >>> dm.select("screen", mean_threshold=0.99, std_threshold=0.1)   # no recomputation
    {'discarded': 2}
    """
    out = location(out_dir, storage_options)
    manifest = Manifest(out)
    if not manifest.is_bound():
        raise UsageError(f"{out} is not a daskmic output folder (no {manifest.root.name}/)")
    config = RunConfig.from_dict(manifest.parameters())
    if config.tilt is None:
        raise UsageError(f"{out} holds no tilt analysis to re-split")
    tilt = dataclasses.replace(
        config.tilt,
        mean_threshold=mean_threshold,
        std_threshold=std_threshold,
        max_tilt_deg=max_tilt_deg,
    )
    config = dataclasses.replace(config, tilt=tilt)
    manifest.bind(config.to_dict(), config.hashed_parameters())
    rows = publish(out, config)
    counts: dict[str, int] = {}
    for status in split_tilt(pd.DataFrame(rows), tilt)["tilt_status"]:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))
