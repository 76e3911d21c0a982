"""The output folder's layout: the one module that knows where each output lives.

::

    OUT/
      mrc/<micrograph>.mrc          preprocessed micrograph (float32, voxel size in the header)
      psd/<micrograph>.mrc, .png    tilt analysis: the PSD summary image
      defocus/<micrograph>.json     tilt angle: the local-defocus map behind the estimate
      micrographs.zarr              the results store (inside: :mod:`daskmic.io.zarr_store`)
      micrographs.csv, .star, .xmd  one row per micrograph; STAR/xmd of the preprocessed ones
      tilt.csv                      the tilt statistics and decision
      accepted.star, discarded.star the tilt split (and accepted.txt, rejected.txt: input paths)
      report.html                   the QC page
      .daskmic/                     the manifest: parameters.json, optics.json,
                                    records/<micrograph>.json, thumbnails/<micrograph>.npy

Everything else asks an :class:`OutputLayout` for a path; nothing else spells one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MANIFEST_DIR: Final = ".daskmic"
"""The hidden folder of the manifest inside an output folder."""

_SPLIT = {
    "accepted": ("accepted.star", "accepted.txt"),
    "discarded": ("discarded.star", "rejected.txt"),
}


@dataclass(frozen=True)
class OutputLayout:
    """Where the outputs of one output folder live.

    Parameters
    ----------
    root : pathlib.Path
        The output folder.
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    # --- per micrograph --------------------------------------------------------------------

    def micrograph(self, name: str) -> Path:
        """The preprocessed micrograph (MRC)."""
        return self.root / "mrc" / f"{name}.mrc"

    def psd(self, name: str) -> Path:
        """The PSD summary image (MRC)."""
        return self.root / "psd" / f"{name}.mrc"

    def psd_png(self, name: str) -> Path:
        """The PSD summary image (PNG, for the eye and the report)."""
        return self.psd(name).with_suffix(".png")

    def defocus_map(self, name: str) -> Path:
        """The local-defocus map behind a tilt-angle estimate (JSON)."""
        return self.root / "defocus" / f"{name}.json"

    def store_images(self, name: str) -> list[Path]:
        """The micrograph's images inside the results store (processed pixels, PSD summary).

        The store's inside is :mod:`daskmic.io.zarr_store`'s; this asks it.
        """
        from daskmic.io.ngff import COLLECTIONS  # imports zarr: only when asked

        return [self.zarr / collection / name for collection in COLLECTIONS]

    def record(self, name: str) -> Path:
        """The micrograph's done-record (JSON): what marks it done."""
        return self.records / f"{name}.json"

    def thumbnail(self, name: str) -> Path:
        """The micrograph's thumbnail (``.npy``)."""
        return self.thumbnails / f"{name}.npy"

    def outputs(self, name: str) -> list[Path]:
        """Every output of one micrograph, its record last (remove in this order)."""
        return [
            self.micrograph(name),
            self.psd(name),
            self.psd_png(name),
            self.defocus_map(name),
            *self.store_images(name),
            self.thumbnail(name),
            self.record(name),
        ]

    # --- the set ---------------------------------------------------------------------------

    @property
    def zarr(self) -> Path:
        """The results store."""
        return self.root / "micrographs.zarr"

    @property
    def micrographs_csv(self) -> Path:
        """One row per input micrograph."""
        return self.root / "micrographs.csv"

    @property
    def micrographs_star(self) -> Path:
        """RELION STAR of the preprocessed micrographs."""
        return self.root / "micrographs.star"

    @property
    def micrographs_xmd(self) -> Path:
        """Xmipp metadata of the preprocessed micrographs."""
        return self.root / "micrographs.xmd"

    @property
    def tilt_csv(self) -> Path:
        """The tilt statistics and decision, one row per micrograph."""
        return self.root / "tilt.csv"

    def split_star(self, status: str) -> Path:
        """The STAR of the micrographs the tilt screen gave ``status`` (accepted/discarded)."""
        return self.root / _SPLIT[status][0]

    def split_list(self, status: str) -> Path:
        """The input paths of the micrographs with ``status``, one per line."""
        return self.root / _SPLIT[status][1]

    @property
    def report(self) -> Path:
        """The QC page."""
        return self.root / "report.html"

    # --- the manifest ----------------------------------------------------------------------

    @property
    def manifest(self) -> Path:
        """The manifest's hidden folder."""
        return self.root / MANIFEST_DIR

    @property
    def parameters(self) -> Path:
        """The parameters the folder is bound to, and their hash (JSON)."""
        return self.manifest / "parameters.json"

    @property
    def optics(self) -> Path:
        """The input table's optics groups (JSON)."""
        return self.manifest / "optics.json"

    @property
    def records(self) -> Path:
        """The folder of the done-records."""
        return self.manifest / "records"

    @property
    def thumbnails(self) -> Path:
        """The folder of the thumbnails."""
        return self.manifest / "thumbnails"
