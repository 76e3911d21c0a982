"""What the driver hands the per-micrograph unit: one input micrograph, by path.

Kept apart from :mod:`daskmic.run.unit` (which imports every step) so that listing the inputs
and asking the manifest what is done (:mod:`daskmic.run.sources`, :mod:`daskmic.run.resume`)
import nothing of the processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
"""A micrograph's table row, as its done-record keeps it."""

Stamp = tuple[int, int | str]
"""What identifies a file's content: ``(size, mtime_ns)`` locally, ``(size, version)`` at a URL
(see :func:`daskmic.io.storage.file_stamp`)."""


@dataclass(frozen=True)
class Source:
    """One input micrograph, as the driver hands it to a worker (paths, never pixels).

    Made by :mod:`daskmic.run.sources` from its header (``shape``; None when unreadable) and
    its table row (``columns``); ``pixel_size_A`` is final (any override already applied).
    ``stamp`` is the file's when it was listed (None when not known): its done-record keeps
    it, and a later run redoes the micrograph when the file's stamp has changed since.
    """

    micrograph: str
    path: str
    pixel_size_A: float
    columns: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    shape: tuple[int, int] | None = None
    stamp: Stamp | None = None
